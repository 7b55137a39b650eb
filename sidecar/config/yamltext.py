"""YAML parsing shared by every config file: safe, strict about duplicate keys.

PyYAML keeps the last of two equal keys in a mapping without a word, so a
key pasted twice into a config file silently loses one value. Here it is an
error that points at the second occurrence.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """Text that is not valid YAML; the message gives the line and column."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], ScalarNode] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            identity = (key_node.tag, key_node.value)
            first = seen.setdefault(identity, key_node)
            if first is not key_node:
                raise ConstructorError(
                    None, None,
                    f"duplicate key {key_node.value!r} (first on line "
                    f"{first.start_mark.line + 1})",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """The document in ``text``; YamlError names the line, the column and the problem."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlError(f"{where}{problem}") from None
