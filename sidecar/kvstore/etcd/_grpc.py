"""gRPC imported with its fork handlers off.

gRPC's C core, as the grpcio wheels build it, registers ``pthread_atfork``
handlers; it reads ``GRPC_ENABLE_FORK_SUPPORT`` once, when ``grpc`` is imported.
They are for a child that goes on using gRPC after fork() without exec (grpc
issue 14056). The sidecar's children exec at once, but the process manager forks
them (a ``preexec_fn`` sets the parent-death signal), so the handlers ran in
every child, and when other threads were inside gRPC at that moment the child died
of SIGSEGV or SIGABRT before it reached exec: 30 to 50 starts of 300 while the
channel was busy (tests/exec/test_fork_beside_grpc.py). The variable is set
only during the import: programs get the environment they were given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

log = logging.getLogger("sidecar.kvstore.etcd")

VARIABLE = "GRPC_ENABLE_FORK_SUPPORT"
_OFF = ("0", "false", "f", "no", "n")


@contextlib.contextmanager
def fork_handlers_off() -> Iterator[None]:
    """Around the first import of ``grpc`` (also through aetcd): its fork handlers stay off."""
    if "grpc" in sys.modules:  # too late: the handlers are registered as the variable said
        if os.environ.get(VARIABLE, "").strip().lower() not in _OFF:
            log.warning("grpc was imported before the etcd plugin, with its fork handlers "
                        "on: the programs this process starts may die of SIGSEGV or SIGABRT "
                        "before exec; set %s=false before grpc is imported", VARIABLE)
        yield
        return
    previous = os.environ.get(VARIABLE)
    os.environ[VARIABLE] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(VARIABLE, None)
        else:
            os.environ[VARIABLE] = previous
