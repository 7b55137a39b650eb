"""The command line's parser: argparse with the habits of kubectl and git.

A mistyped option or command gets the nearest right one (``--port`` -> ``--http-port``);
every command's ``--help`` ends with its exit statuses.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

_UNRECOGNIZED = re.compile(r"^unrecognized arguments: (.*)$")
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)$")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-parsers are Parsers too, and whose errors suggest."""

    def __init__(self, *args: Any, exit_codes: Mapping[int, str] | None = None,
                 **kwargs: Any) -> None:
        if exit_codes:
            lines = [f"  {code}  {meaning}" for code, meaning in sorted(exit_codes.items())]
            epilog = kwargs.pop("epilog", None)
            kwargs["epilog"] = "\n".join(
                ([epilog, ""] if epilog else []) + ["exit status:", *lines])
            kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        #: Every parser that took part in the last parse (this one and its sub-commands').
        self._used: list[Parser] = [self]

    def parse_known_args(  # type: ignore[override]  # one signature for argparse's overloads
            self, args: Sequence[str] | None = None,
            namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        root = _ROOT[-1] if _ROOT else None
        if root is not None and root is not self:
            root._used.append(self)  # a sub-command's parser: its options count for hints
        else:
            self._used = [self]
            _ROOT.append(self)
        try:
            return super().parse_known_args(args, namespace)
        finally:
            if root is None:
                _ROOT.pop()

    def error(self, message: str) -> NoReturn:
        parser = self._used[-1]  # the sub-command's usage, where the mistake is
        parser.print_usage(sys.stderr)
        self.exit(2, f"{parser.prog}: error: {message}{self._hint(message)}\n")

    def _hint(self, message: str) -> str:
        if match := _UNRECOGNIZED.match(message):
            options = [o for parser in self._used for action in parser._actions
                       for o in action.option_strings if o.startswith("--")]
            hints = {}
            for word in match.group(1).split():
                flag = word.split("=", 1)[0]
                if flag.startswith("-") and (close := suggest(flag, options)):
                    hints[flag] = close
            if len(hints) == 1:
                return f" (did you mean {next(iter(hints.values()))}?)"
            return "".join(f"; {flag}: did you mean {close}?" for flag, close in hints.items())
        if match := _INVALID_CHOICE.search(message):
            choices = re.findall(r"'([^']*)'", match.group(2))
            if close := suggest(match.group(1), choices):
                return f" (did you mean '{close}'?)"
        return ""


_ROOT: list[Parser] = []


def suggest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate ``word`` was probably meant to be: the closest spelling, else the one
    that contains it (``--port`` -> ``--http-port``)."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if close:
        return close[0]
    bare = word.lstrip("-")
    containing = [c for c in candidates if bare and bare in c.lstrip("-").split("-")]
    return containing[0] if len(containing) == 1 else None
