"""Durations as people write them in config files and query strings: ``500ms``, ``5s``, ``15m``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


@dataclass(frozen=True)
class DurationMarker:
    """Marks an ``Annotated[float, DURATION]`` config field: seconds, written as a duration."""


DURATION = DurationMarker()


def parse_duration(value: str | float) -> float:
    """Seconds from a number of seconds or a Go-style duration (``1m30s``, ``250ms``)."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"expected a duration such as 500ms, 5s, 15m or 1h30m, got {value!r}"
                ) from None
    if not math.isfinite(seconds):  # float() reads "nan", "inf" and "1e309" too
        raise ValueError(f"a duration must be a finite number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    if seconds % 3600:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"
