"""What a program wrote, for ``GET /supervisor/programs/<name>/log`` (``sidecar programs tail``).

A program without ``logfile-path`` writes to the sidecar's stdout behind ``[name] ``
(as JSON objects in JSON mode; see :mod:`sidecar.logging.output`); its
:class:`OutputLog` keeps the last lines of that (long ones cut, but none dropped by
the rate limit of the sidecar's stdout) and hands new ones to followers.
A program with a logfile is tailed from the file, which it writes directly (the
sidecar keeps nothing of it), as ``tail -f`` does: read what was added, every
quarter of a second, from the start again when the file was truncated or replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

from sidecar.logging.output import ProgramOutput

#: Lines kept of each program's output (what ``tail -n`` can reach back to).
KEEP_LINES = 1000
#: Lines a follower may be behind before the oldest are dropped for it.
FOLLOWER_BACKLOG = 1000
FILE_POLL_INTERVAL = 0.25
#: How far back in a logfile the last lines are looked for.
_TAIL_BYTES = 256 * 1024


class OutputLog:
    """The last :data:`KEEP_LINES` lines of one program's output, and its followers."""

    def __init__(self, keep: int = KEEP_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=keep)
        self._followers: set[asyncio.Queue[str | None]] = set()
        self.closed = asyncio.Event()
        self._output: ProgramOutput | None = None

    def program_output(self, program: str) -> ProgramOutput:
        """The writer of ``program``'s output: to the sidecar's stdout, and kept here.
        One for every run, so that one rate limit covers the program's restarts."""
        if self._output is None or self._output.program != program:
            self._output = ProgramOutput(program, tee=self.append)
        return self._output

    def append(self, line: str) -> None:
        self._lines.append(line)
        for queue in self._followers:
            if queue.full():  # a slow reader loses its oldest lines, never blocks the program
                queue.get_nowait()
            queue.put_nowait(line)

    def last(self, count: int) -> list[str]:
        return list(self._lines)[-count:] if count > 0 else []

    async def follow(self, count: int) -> AsyncIterator[str]:
        """The last ``count`` lines, then every new one until :meth:`close`."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(FOLLOWER_BACKLOG)
        self._followers.add(queue)  # before the last lines are read: none is missed
        try:
            for line in self.last(count):
                yield line
            if self.closed.is_set():
                return
            while (new := await queue.get()) is not None:
                yield new
        finally:
            self._followers.discard(queue)

    def close(self) -> None:
        """End every follow (the program was removed, or the supervisor stops)."""
        if self._output is not None:
            self._output.flush()  # what was dropped is said, not lost with the timer
        self.closed.set()
        for queue in self._followers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)


async def follow_file(path: Path, count: int, follow: bool,
                      closed: asyncio.Event) -> AsyncIterator[str]:
    """The last ``count`` lines of ``path``; with ``follow`` every line added to it later,
    until ``closed`` is set. A missing file has no lines yet."""
    position, lines = await asyncio.to_thread(_last_lines, path, count)
    for line in lines:
        yield line
    partial = b""
    identity = await asyncio.to_thread(_identity, path)
    while follow and not closed.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), FILE_POLL_INTERVAL)
        now = await asyncio.to_thread(_identity, path)
        if now != identity:  # replaced (rotated) or recreated: read the new file whole
            identity, position, partial = now, 0, b""
        data, position = await asyncio.to_thread(_read_from, path, position)
        *complete, partial = (partial + data).split(b"\n")
        for raw in complete:
            yield raw.decode("utf-8", "replace")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _last_lines(path: Path, count: int) -> tuple[int, list[str]]:
    """The file's size and its last ``count`` complete lines."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(size - _TAIL_BYTES, 0)
            handle.seek(start)
            data = handle.read(size - start)
    except OSError:
        return 0, []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first may be the end of a line cut by the seek
    complete, rest = lines[:-1], lines[-1]
    shown = [raw.decode("utf-8", "replace") for raw in complete][-count:] if count > 0 else []
    return size - len(rest), shown


def _read_from(path: Path, position: int) -> tuple[bytes, int]:
    """What was added after ``position``; from the start when the file was truncated."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size < position:
                position = 0
            handle.seek(position)
            data = handle.read(size - position)
    except OSError:
        return b"", position
    return data, position + len(data)
