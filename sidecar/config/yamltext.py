"""YAML parsing shared by every config file: safe, strict about duplicate keys.

PyYAML keeps the last of two equal keys in a mapping without a word, so a
key pasted twice into a config file silently loses one value. Here it is an
error that points at the second occurrence.
"""

from __future__ import annotations

import re
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
    """The document in ``text``; YamlError names the line and the column and says what
    is wrong in plain words, with the parser's own words after them."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise YamlError(describe_yaml_error(exc)) from None


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """``line 3, column 2: <what is wrong, in plain words> (YAML: <the parser's words>)``."""
    problem = str(getattr(exc, "problem", None) or exc)
    mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    plain, at_context = _plain_words(problem, str(getattr(exc, "context", None) or ""))
    if at_context and context_mark is not None:
        mark = context_mark  # where the unclosed thing began, not the end of the file
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{plain} (YAML: {problem})" if plain else f"{where}{problem}"


_FOUND = re.compile(r"but found '(.*)'$")
_CHARACTER = re.compile(r"found character '(.*)' that cannot start any token")
_CLOSERS = {"]": ("list", "["), "}": ("mapping", "{")}


def _plain_words(problem: str, context: str) -> tuple[str, bool]:
    """What a parser message means for someone editing a config file, and whether the
    mark to show is where the construct began (the context) rather than the problem."""
    if "'\\t'" in problem:
        return "a tab character: YAML indents with spaces only", False
    if match := _CHARACTER.search(problem):
        return (f"a value cannot start with {match.group(1)!r}: put the value in quotes",
                False)
    if problem == "mapping values are not allowed here":
        return ("an unexpected ':' (a value that contains ': ' must be in quotes, or this "
                "line is indented deeper than the keys before it)", False)
    for closer, (kind, opener) in _CLOSERS.items():
        if f"expected ',' or '{closer}'" in problem:
            return (f"a {kind} opened with '{opener}' here is not closed with '{closer}' "
                    "(or two of its items lack a ',' between them)", True)
    if problem == "expected the node content, but found '<stream end>'":
        return ("the file ends where a value was expected (an unclosed '[' or '{', or a "
                "key or '-' with nothing after it)", False)
    if "quoted scalar" in context and "end of stream" in problem:
        return "a quoted value that starts here has no closing quote", True
    if "could not find expected ':'" in problem:
        return ("a line that is neither 'key: value' nor a list item '- ...' "
                "(a missing ':'?)", True)
    if problem.startswith("found undefined alias"):
        return "a value that starts with '*' must be in quotes ('*' names an anchor)", False
    if "scanning an alias" in context or "scanning an anchor" in context:
        return "a value that starts with '*' or '&' must be in quotes", True
    if problem.startswith("could not determine a constructor for the tag"):
        return "a value that starts with '!' must be in quotes ('!' names a YAML tag)", False
    if "found another document" in problem:
        return "a second document after '---': a config file holds one", False
    if "expected <block end>" in problem:
        found = match.group(1) if (match := _FOUND.search(problem)) else ""
        if found in _CLOSERS:
            return f"a '{found}' that closes nothing", False
        if found == "-":
            return ("a list item where a key was expected: indent the '- ' items under "
                    "their key, or line it up with the list's other items", False)
        if found == "?":
            return ("a 'key: value' line among the items of a list: a list and a "
                    "mapping cannot share one level of indentation", False)
        if found == "<scalar>":
            return "text after a quoted value: put the whole value in the quotes", False
        return ("this line is not indented like the lines before it: the keys of one "
                "mapping (and the items of one list) must start in the same column", False)
    return "", False
