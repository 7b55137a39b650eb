"""Programs that the JSON-output tests supervise: a flood, binary junk, long lines, a burst.

Run as ``python noisy.py KIND ARGS...``; each ends by sleeping, so that its exit
adds nothing to what the sidecar writes while the test reads it.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

#: Bytes no UTF-8 decoder accepts as they are, and characters a JSON writer must escape.
NASTY = [
    b"\xff\xfe\xfd invalid start bytes",
    b"NUL \x00 BEL \x07 ESC \x1b[31m red \x1b[0m DEL \x7f",
    b"an encoded surrogate \xed\xa0\x80 and a cut sequence \xe2\x82",
    b"a lone CR \r in the middle, a tab \t, quotes \" and a backslash \\",
    b"line separators \xe2\x80\xa8 \xe2\x80\xa9 and \xc2\x85",
    b"overlong \xc0\xaf and beyond Unicode \xf4\x90\x80\x80",
]


def _done(path: str, text: str) -> None:
    """Tell the test (atomically: it never reads half a file)."""
    temporary = Path(path + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def flood(rate: int, seconds: float, done: str) -> None:
    """``rate`` lines a second for ``seconds``, paced; writes the count to ``done``."""
    out = sys.stdout.buffer
    total = int(rate * seconds)
    sent = 0
    start = time.monotonic()
    while sent < total:
        due = min(int((time.monotonic() - start) * rate) + 1, total)
        if due > sent:
            out.write(b"".join(b"flood %d\n" % n for n in range(sent + 1, due + 1)))
            out.flush()
            sent = due
        time.sleep(0.002)
    _done(done, f"{sent} {time.monotonic() - start:.3f}")


def junk() -> None:
    """Random bytes and the nastiest lines, on both streams."""
    rng = random.Random(19)
    streams = (sys.stdout.buffer, sys.stderr.buffer)
    for i, line in enumerate(NASTY):
        streams[i % 2].write(line + b"\n")
    for i in range(200):
        streams[i % 2].write(rng.randbytes(rng.randint(0, 300)) + b"\n")
    for stream in streams:
        stream.write(b"junk done\n")
        stream.flush()


def long_lines() -> None:
    """A 64 kB line, a 200 kB one, and one of 3-byte characters that a cut at 8 KiB
    falls inside."""
    out = sys.stdout.buffer
    out.write(b"x" * 65536 + b"\n")
    out.write(b"y" * 200_000 + b"\n")
    out.write("€".encode() * 4000 + b"\n")
    out.write(b"long done\n")
    out.flush()


def burst(count: int) -> None:
    """``count`` lines at once, then (once a bucket would have refilled) one more."""
    out = sys.stdout.buffer
    out.write(b"z" * 70_000 + b"\n")
    out.write(b"".join(b"burst %d\n" % n for n in range(1, count + 1)))
    out.flush()
    time.sleep(1.0)  # the program's pace: a rate limit lets the next line through
    out.write(b"burst done\n")
    out.flush()


def main() -> None:
    kind, args = sys.argv[1], sys.argv[2:]
    if kind == "flood":
        flood(int(args[0]), float(args[1]), args[2])
    elif kind == "junk":
        junk()
    elif kind == "long":
        long_lines()
    elif kind == "burst":
        burst(int(args[0]))
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    time.sleep(3600)


if __name__ == "__main__":
    main()
