"""Process manager errors.

    ProcessManagerError          any misuse or failure of the process manager
    ├── ProcessStartError        the command could not be started (missing, not executable, ...)
    ├── ProcessExistsError       a process of that name is already managed
    ├── ProcessNotFoundError     no process of that name or pid is managed
    ├── ProcessNotRunningError   the operation needs a running process
    ├── AttachError              no process with that pid, or it cannot be watched
    └── TemplateError            a template is invalid or cannot be read or written
"""

from __future__ import annotations


class ProcessManagerError(Exception):
    """A process manager problem; the message names the process and what went wrong."""


class ProcessStartError(ProcessManagerError):
    def __init__(self, name: str, command: str, reason: str) -> None:
        self.name = name
        self.command = command
        self.reason = reason
        super().__init__(f"process {name!r}: cannot start {command!r}: {reason}")


class ProcessExistsError(ProcessManagerError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a process named {name!r} is already managed")


class ProcessNotFoundError(ProcessManagerError, LookupError):
    def __init__(self, what: str) -> None:
        super().__init__(f"no managed process {what}")


class ProcessNotRunningError(ProcessManagerError):
    def __init__(self, name: str, action: str) -> None:
        self.name = name
        super().__init__(f"process {name!r} is not running: cannot {action}")


class AttachError(ProcessManagerError):
    def __init__(self, name: str, pid: int, reason: str) -> None:
        self.name = name
        self.pid = pid
        super().__init__(f"cannot attach {name!r} to pid {pid}: {reason}")


class TemplateError(ProcessManagerError):
    """A template file or object that cannot be used; ``source`` names the file when known."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}" if source else reason)
