"""Supervisor errors (a bad ``supervisor.conf`` is a :class:`sidecar.config.ConfigError`).

    SupervisorError           anything the supervisor refuses to do
    ├── ProgramNotFoundError  no program of that name
    └── ProgramStartError     the program could not be started (missing executable, ...)
"""

from __future__ import annotations


class SupervisorError(Exception):
    pass


class ProgramNotFoundError(SupervisorError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"no program named {name!r} (programs: {', '.join(known) or 'none'})")


class ProgramStartError(SupervisorError):
    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"program {name} could not be started: {reason}")
