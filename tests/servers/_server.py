"""What the test servers share: a work dir, starting on free ports, restart and close.

The servers pick free ports by binding port 0 and releasing it, then start: in between,
another process can take a port (seen once in CI). The server then exits saying
"address already in use"; ``start_on_free_ports`` picks new ports and tries again, a
bounded number of times, as long as nobody has been told the ports yet (a restart
keeps them: clients are configured with them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Self

from ._process import ServerExited

__all__ = ["PORT_ATTEMPTS", "ManagedServer", "PortsTaken", "start_on_free_ports"]

#: How many sets of ports a first start tries before it gives up.
PORT_ATTEMPTS = 3


class PortsTaken(RuntimeError):
    """Another process took a port before the server bound it: on every attempt of a
    first start, or on a restart (which keeps its ports)."""


def start_on_free_ports(what: str, start: Callable[[], None],
                        ports: Callable[[], Mapping[str, int]],
                        repick: Callable[[], None] | None,
                        attempts: int = PORT_ATTEMPTS) -> None:
    """``start()``; when the server exits because a port was taken, ``repick()`` new
    ports and start again, ``attempts`` times in all. ``repick`` None: the ports are
    fixed (a restart keeps them), so a taken one is an error at once.

    ``start`` must leave no process running when it fails. ``ports()`` names the
    current ports, for the error messages.
    """
    tried: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            start()
        except ServerExited as exc:
            if not exc.port_taken:
                raise
            named = ", ".join(f"{role} {port}" + (" (taken)" if port == exc.taken_port else "")
                              for role, port in ports().items())
            if repick is None:
                raise PortsTaken(f"{what}: another process took one of its ports ({named}) "
                                 "while it was down; a restart keeps its ports") from exc
            tried.append(named)
            if attempt == attempts:
                raise PortsTaken(f"{what}: ports taken by other processes on all {attempts} "
                                 "attempts: " + "; ".join(tried)) from exc
            repick()
        else:
            return


class ManagedServer:
    """A test server with a work dir of its own (a temp dir unless given, deleted by
    ``close``). ``with Server() as s:`` starts it and always closes it, also when the
    start fails (which ``__exit__`` alone would not).

    A subclass names itself (``what``) and provides ``running``, ``ports()``,
    ``_start_once()`` (start and wait until it serves; leave nothing running when that
    fails), ``_repick()`` (new ports, and forget what a failed first start wrote),
    ``stop()`` and ``kill()``.
    """

    what = "server"

    def __init__(self, workdir: str | os.PathLike[str] | None, prefix: str) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=prefix))
        self._started = False

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def ports(self) -> dict[str, int]:
        raise NotImplementedError

    def _start_once(self) -> None:
        raise NotImplementedError

    def _repick(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        """Start and wait until it serves, or raise with the log tail (and leave nothing
        running). Ports are kept from then on."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        start_on_free_ports(self.what, self._start_once, self.ports,
                            None if self._started else self._repick)
        self._started = True
        return self

    def restart(self, *, hard: bool = False) -> Self:
        """Stop (or kill, with ``hard=True``: a crash) and start again on the same ports
        with the same data."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    def close(self) -> None:
        """Kill it (its data is going anyway) and delete the work dir if it is ours."""
        self.kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
