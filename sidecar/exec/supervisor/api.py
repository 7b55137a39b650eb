"""The supervisor's contract: program events (what happened to a program), for hooks and listeners.

``state`` is the seed's label: ``started`` when a run begins, always followed
by ``running``, then the process state as the kernel reports it (``sleeping``,
``idle``, ``disk sleep``, ``stopped``, ...), ``terminated`` when it exits, and
the supervisor's own ``backoff`` (exited, restarts after a delay), ``gave-up``
(exited, no restart left) and ``failed`` (could not be started). A restart
therefore reads terminated -> started -> running -> sleeping, every time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sidecar.exec.processmanager import EventKind, ProcessEvent, ProcessState

#: ``SUPERVISOR_EVENT_TYPE`` of every program event (cn-infra's ``ProcessStatus``).
PROCESS_STATUS = "ProcessStatus"

STARTED = "started"
TERMINATED = ProcessState.TERMINATED.value
BACKOFF = "backoff"
GAVE_UP = "gave-up"
FAILED = "failed"

#: Every state a program event can carry (and a hook filter can name).
HOOK_STATES = frozenset(
    {STARTED, BACKOFF, GAVE_UP, FAILED}
    | {s.value for s in ProcessState if s is not ProcessState.INITIAL})

#: The variables a hook gets, and nothing else.
HOOK_VARIABLES = ("SUPERVISOR_PROCESS_NAME", "SUPERVISOR_PROCESS_STATE",
                  "SUPERVISOR_EVENT_TYPE", "SUPERVISOR_PROCESS_PID")


@dataclass(frozen=True, slots=True)
class ProgramEvent:
    """One event of one program, as hooks, Kafka and Kubernetes Events see it."""

    program: str
    #: See the module docstring.
    state: str
    event_type: str
    #: The process the event is about (the exited one for ``terminated``); None if none.
    pid: int | None
    #: Automatic restarts of the program so far.
    restarts: int
    #: An exit nobody asked for (not a stop, restart, reload or shutdown).
    crashed: bool
    #: With ``terminated``, ``backoff`` and ``gave-up``: the exit code, -N for signal N.
    exit_code: int | None
    #: Unix time.
    time: float
    #: The state before.
    previous: str | None = None
    #: ``backoff``: seconds until the restart.
    delay: float | None = None
    #: ``failed``: why.
    error: str | None = None

    @classmethod
    def from_process_event(cls, program: str, event: ProcessEvent) -> ProgramEvent:
        if event.kind is EventKind.BACKOFF:
            state = BACKOFF
        elif event.kind is EventKind.GAVE_UP:
            state = GAVE_UP
        else:
            state = event.label
        crashed = (event.kind is EventKind.STATUS and event.state is ProcessState.TERMINATED
                   and not event.expected)
        return cls(program=program, state=state, event_type=PROCESS_STATUS, pid=event.pid,
                   restarts=event.restarts, crashed=crashed, exit_code=event.returncode,
                   time=event.time, previous=event.previous.value, delay=event.delay)

    def hook_env(self) -> dict[str, str]:
        """Exactly the hook's environment (the seed: never the sidecar's own)."""
        return dict(zip(HOOK_VARIABLES, (self.program, self.state, self.event_type,
                                         "" if self.pid is None else str(self.pid)),
                        strict=True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the fields that are None."""
        return {k: v for k, v in asdict(self).items() if v is not None}


#: Called with every program event (``Supervisor.add_listener``): Kafka, Kubernetes Events.
ProgramListener = Callable[[ProgramEvent], None]
