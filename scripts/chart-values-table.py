#!/usr/bin/env python3
"""Write the chart README's values table from the comments in values.yaml.

    .venv/bin/python scripts/chart-values-table.py           # rewrite the table
    .venv/bin/python scripts/chart-values-table.py --check   # exit 1 when it is stale

The comments follow helm-docs' convention, so that helm-docs could take over:

    # -- What the key does (the table's description),
    # which may go on for several lines.
    # @default -- what to show instead of the value (when the value is computed)
    key: value

A key is a row when its comment starts with ``# --``; its children then need
no rows of their own (they may have them). Comments without ``--`` are
ordinary comments and stay out of the table. Every key must be described, by
itself or by an ancestor: an undescribed key is an error, so that a new value
cannot reach a release without a line in the README.

The table goes between ``<!-- values:start -->`` and ``<!-- values:end -->``
in the chart's README.md. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "cninfra-sidecar"
START, END = "<!-- values:start -->", "<!-- values:end -->"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-]+|\"[^\"]+\"):(?:\s|$)")
_DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")
_DEFAULT = re.compile(r"^ *# @default -- ?(?P<text>.*)$")
_COMMENT = re.compile(r"^ *#(?P<text>.*)$")


@dataclass
class Row:
    path: tuple[str, ...]
    value: Any
    description: list[str] = field(default_factory=list)
    default: str | None = None
    line: int = 0

    @property
    def key(self) -> str:
        return ".".join(self.path)


class ValuesError(ValueError):
    """values.yaml's comments do not make a complete table."""


def _lookup(data: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return False, None
        data = data[key]
    return True, data


def parse(text: str) -> list[Row]:
    """The rows of ``text`` (a values.yaml), in file order."""
    data = yaml.safe_load(text) or {}
    rows: list[Row] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] = []  # the comment lines right above the current line
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            pending = []
            continue
        if _COMMENT.match(line):
            pending.append(line)
            continue
        match = _KEY.match(line)
        comments, pending = pending, []
        if not match:
            continue  # a list item, or a line of a block scalar
        indent, key = len(match["indent"]), match["key"].strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (*[k for _, k in stack], key)
        found, value = _lookup(data, path)
        if not found:
            continue  # a key inside a list item: part of its parent's value
        stack.append((indent, key))
        row = _row(path, value, comments, number)
        if row is not None:
            rows.append(row)
    return rows


def _row(path: tuple[str, ...], value: Any, comments: list[str], line: int) -> Row | None:
    start = next((i for i, c in enumerate(comments) if _DOC.match(c)), None)
    if start is None:
        return None
    row = Row(path, value, line=line)
    for comment in comments[start:]:
        if (doc := _DOC.match(comment)) is not None:
            row.description.append(doc["text"].strip())
        elif (default := _DEFAULT.match(comment)) is not None:
            row.default = default["text"].strip()
        else:
            row.description.append(_COMMENT.match(comment)["text"].strip())  # type: ignore[index]
    return row


def undescribed(text: str, rows: list[Row]) -> list[str]:
    """Keys with no description of their own nor of an ancestor."""
    described = {row.path for row in rows}
    missing: list[str] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if any(path[:i] in described for i in range(1, len(path) + 1)):
            return
        if isinstance(node, dict) and node:
            for key, child in node.items():
                walk(child, (*path, str(key)))
        elif path:
            missing.append(".".join(path))

    walk(yaml.safe_load(text) or {}, ())
    return missing


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return "object"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: list[Row]) -> str:
    lines = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for row in rows:
        default = row.default if row.default is not None else \
            f"`{json.dumps(row.value, separators=(',', ':'))}`"
        lines.append(f"| `{row.key}` | {_type(row.value)} | {_cell(default)} | "
                     f"{_cell(' '.join(row.description))} |")
    return "\n".join(lines)


def render(chart: Path) -> tuple[str, str]:
    """(the README as it is, the README with a fresh table)."""
    values = (chart / "values.yaml").read_text()
    rows = parse(values)
    missing = undescribed(values, rows)
    if missing:
        raise ValuesError(
            f"{chart / 'values.yaml'}: no '# --' description for {', '.join(missing)} "
            "(describe the key, or one of its parents)")
    readme_path = chart / "README.md"
    readme = readme_path.read_text()
    if START not in readme or END not in readme:
        raise ValuesError(f"{readme_path}: no {START} ... {END} section to write the table in")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    note = ("<!-- Generated from values.yaml by scripts/chart-values-table.py: "
            "edit the comments there, not this table. -->")
    return readme, f"{head}{START}\n{note}\n{table(rows)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", type=Path, default=CHART, help="the chart's directory")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when README.md's table is stale")
    args = parser.parse_args(argv)
    try:
        current, fresh = render(args.chart)
    except ValuesError as exc:
        print(f"chart-values-table: {exc}", file=sys.stderr)
        return 1
    readme = args.chart / "README.md"
    if current == fresh:
        return 0
    if args.check:
        print(f"chart-values-table: {readme} is stale: run scripts/chart-values-table.py",
              file=sys.stderr)
        return 1
    readme.write_text(fresh)
    print(f"wrote the values table of {readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
