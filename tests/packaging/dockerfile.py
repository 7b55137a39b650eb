"""A small Dockerfile reader for the packaging tests (no Docker engine here).

It knows what this project's Dockerfile uses: comments, line continuations,
parser directives, ``ARG`` defaults and ``${VAR}`` substitution in ``FROM``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Instruction", "Stage", "dockerignore_includes", "parse"]


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the (joined) line
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of ``CMD``/``ENTRYPOINT``/``RUN`` exec form, else None."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value

    def words(self) -> list[str]:
        return shlex.split(self.args)


@dataclass
class Stage:
    base: str  # FROM's image, with global ARG defaults substituted
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def key_values(self, keyword: str) -> dict[str, str]:
        """``ENV``/``LABEL``/``ARG`` pairs of this stage (``KEY=VALUE`` form)."""
        pairs: dict[str, str] = {}
        for instr in self.all(keyword):
            for word in instr.words():
                key, sep, value = word.partition("=")
                pairs[key] = value if sep else ""
        return pairs


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue  # comments may sit inside a continued instruction
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].rstrip())
            continue
        buf.append(stripped)
        lines.append((start, " ".join(b for b in buf if b)))
        buf = []
    if buf:
        lines.append((start, " ".join(buf)))
    return lines


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults (before the first FROM) and the build stages."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in _logical_lines(path.read_text()):
        keyword, _, args = text.partition(" ")
        instr = Instruction(keyword.upper(), args.strip(), line)
        if instr.keyword == "FROM":
            words = instr.words()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)",
                          lambda m: global_args.get(m.group(1) or m.group(2), ""), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            if instr.keyword == "ARG":
                key, _, value = args.strip().partition("=")
                global_args[key] = value
        else:
            stages[-1].instructions.append(instr)
    return global_args, stages


def dockerignore_includes(dockerignore: Path, path: str) -> bool:
    """Whether ``path`` (relative to the context) is sent to the builder, by the
    Docker rules: patterns in order, the last match wins, ``!`` re-includes, a
    pattern matching a parent directory matches what is inside it."""
    patterns = [ln.strip() for ln in dockerignore.read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            included = negate
    return included


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker's globs: ``*`` and ``?`` within a segment, ``**`` across segments,
    ``[...]`` classes."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            out.append(pattern[i:end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
