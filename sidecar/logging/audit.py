"""The audit trail: what changed the sidecar through its admin API, and who asked.

Each change is one line at info on the ``sidecar.audit`` logger, whatever the
default level (``logs.conf`` can still name that logger to quiet it), with a
stable ``event`` name and, when a request caused it, ``caller`` (the peer's
address, as the admin check saw it: a forwarded-for header never counts) and
``token`` (whether a valid admin token came with it; the token itself is never
logged). In JSON mode these are fields; in text mode the message says them::

    {"level":"info","logger":"sidecar.audit","message":"log level of sidecar.etcd set
     to debug for 15m by 127.0.0.1 (allow-list)","plugin":"logmanager",
     "event":"log.level.set","caller":"127.0.0.1","token":false,
     "target_logger":"sidecar.etcd","target_level":"debug","ttl":900.0}

Events: ``log.level.set``, ``log.level.reset``, ``log.level.expired`` (no
caller: the ttl ran out), ``program.start``, ``program.stop``,
``program.restart``, and ``admin.request`` for any other admin request that may
change state (a method other than GET, HEAD or OPTIONS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

#: The logger of every audit line.
AUDIT_LOGGER = "sidecar.audit"

log = logging.getLogger(AUDIT_LOGGER)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made an admin request: the peer's address and how it was let in."""

    #: The socket peer's address; None when the transport has none.
    address: str | None
    #: A valid admin bearer token came with the request (else the allow-list let it in).
    token: bool

    def __str__(self) -> str:
        return f"{self.address or 'an unknown peer'} ({'token' if self.token else 'allow-list'})"


def pin_level() -> None:
    """Keep the audit logger at info when the default level is higher (called at set-up)."""
    logging.getLogger(AUDIT_LOGGER).setLevel(logging.INFO)


def audit(event: str, message: str, *args: object, caller: Caller | None = None,
          **fields: object) -> None:
    """Log ``message % args`` as audit ``event``; with ``caller``, who asked.

    ``fields`` become JSON fields; their names must not be those of a log line's
    own fields (``time``, ``level``, ``logger``, ``message``, ``plugin``, ...).
    """
    extra: dict[str, object] = {"event": event}
    if caller is not None:
        message += " by %s"
        args = (*args, caller)
        extra["caller"] = caller.address
        extra["token"] = caller.token
    extra.update(fields)
    log.info(message, *args, extra=extra)


__all__ = ["AUDIT_LOGGER", "Caller", "audit", "pin_level"]
