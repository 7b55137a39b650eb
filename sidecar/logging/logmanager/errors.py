"""Log manager errors (a bad level is :class:`sidecar.logging.InvalidLevelError`)."""

from __future__ import annotations

import difflib


class UnknownLoggerError(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        super().__init__(f"unknown logger {name!r}{hint}")
