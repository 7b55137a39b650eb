"""Noticing that ``supervisor.conf`` changed, the kubelet's ConfigMap updates included.

The kubelet never rewrites a mounted ConfigMap's file: it writes a new
timestamped directory and swaps the ``..data`` symlink onto it in one
rename, and ``supervisor.conf`` is a symlink to ``..data/supervisor.conf``.
So the watcher ``stat``s the path (following the links) each interval and
reads the file only when the file it resolves to is another one or was
modified; the caller compares the content with what it applied. One stat a
second costs nothing measurable, needs no inotify, and works the same for a
plain file edited in place. A file that is missing for a moment (an editor
replacing it, the swap) is simply looked at again next time.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from sidecar.agent.tasks import cancel_and_wait, spawn

log = logging.getLogger("sidecar.supervisor")

Signature = tuple[int, int, int, int, int]


def signature(path: Path) -> Signature | None:
    """Identity and modification of the file ``path`` resolves to; None when missing."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class ConfigWatcher:
    """Calls ``on_text(text)`` when the file at ``path`` may have new content, and
    ``on_unreadable(reason)`` when it has content that is not UTF-8 text.

    ``interval()`` is asked before every wait, so a reloaded config can change
    it; 0 ends the watching.
    """

    def __init__(self, path: str | os.PathLike[str], interval: Callable[[], float],
                 on_text: Callable[[str], Awaitable[None]],
                 on_unreadable: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self._interval = interval
        self._on_text = on_text
        self._on_unreadable = on_unreadable
        self._last: Signature | None = None
        self._missing = False
        self._task: asyncio.Task[None] | None = None
        self.checks = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, initial: Signature | None = None) -> None:
        """Watch from now on; ``initial``: the signature of the file already applied."""
        if self.running:
            return
        if initial is not None or self._task is None:
            self._last = initial
        self._task = spawn(self._run(), "supervisor-config-watch")

    async def check(self) -> bool:
        """Look once; True if the file was read and handed on."""
        self.checks += 1
        current = await asyncio.to_thread(signature, self.path)
        if current is None:
            if not self._missing:
                self._missing = True
                log.warning("%s is missing; the programs keep running as they are "
                            "(watching for it to come back)", self.path)
            return False
        if self._missing:
            self._missing = False
            log.info("%s is back", self.path)
        if current == self._last:
            return False
        data = await asyncio.to_thread(read_bytes, self.path)
        if data is None:  # gone again between stat and read: next time
            return False
        self._last = current
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:  # a rejection like any other, once per change
            if self._on_unreadable is not None:
                self._on_unreadable(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                                    f"offset {exc.start})")
            return False
        await self._on_text(text)
        return True

    async def _run(self) -> None:
        while True:
            interval = self._interval()
            if interval <= 0:
                log.info("no longer watching %s for changes (watch-interval: 0)", self.path)
                return
            await asyncio.sleep(interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad round must not end the watching
                log.exception("checking %s for changes failed", self.path)

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
