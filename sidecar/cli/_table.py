"""How the commands print tables, as kubectl does: aligned columns under upper-case
headers, ``-o wide`` for more columns, ``-o json`` for the data, ``--no-headers`` for
scripts (``sidecar programs --no-headers | awk '{print $1}'``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FORMATS = ("table", "wide", "json")


def add_output_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``-o/--output table|wide|json`` and ``--no-headers`` on ``parser``; ``suppress``
    leaves them out of the namespace unless given (for options that may stand before
    and after a sub-command)."""
    parser.add_argument("-o", "--output", choices=FORMATS,
                        default=argparse.SUPPRESS if suppress else "table",
                        help="table (the default), wide (more columns) or json (the data as "
                             "the REST API returns it)")
    parser.add_argument("--no-headers", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="leave out the header line of a table")


@dataclass(frozen=True)
class Column:
    header: str
    #: Shown only with ``-o wide``.
    wide: bool = False


def render(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, wide: bool = False,
           headers: bool = True) -> str:
    """Rows under their headers, columns two spaces apart; the last column is not padded."""
    shown = [i for i, column in enumerate(columns) if wide or not column.wide]
    table = [[columns[i].header for i in shown]] if headers else []
    table += [[str(row[i]) for i in shown] for row in rows]
    if not table:
        return ""
    widths = [max(len(line[i]) for line in table) for i in range(len(shown))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                     .rstrip() for line in table)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2)
