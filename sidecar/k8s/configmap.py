"""The programs ConfigMap: each new ``supervisor.conf`` text is hot-applied by the supervisor.

The supervisor's diff rules decide what happens (new programs start, removed
ones stop, changed ones restart, the rest keep running). A text it rejects
changes nothing: the running programs stay, the sidecar logs the reason and
posts a Warning Event on its Pod. A deleted ConfigMap also leaves the programs
running (a ``helm uninstall`` deletes it before the pods go).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sidecar.config import ConfigError

from .api import ProgramSupervisor, ReloadOutcome

log = logging.getLogger("sidecar.k8s")

#: Posts an Event on the Pod: ``(type, reason, message)``.
EventPoster = Callable[[str, str, str], object]


def describe_outcome(outcome: ReloadOutcome) -> str:
    """``started a, b; stopped c`` (empty when nothing changed)."""
    parts = [f"{verb} {', '.join(sorted(names))}"
             for verb, names in (("started", outcome.started), ("stopped", outcome.stopped),
                                 ("restarted", outcome.restarted)) if names]
    return "; ".join(parts)


class ConfigMapApplier:
    """Turns the ConfigMap's watch events into supervisor reloads and Events."""

    def __init__(self, supervisor: ProgramSupervisor, namespace: str, name: str, key: str,
                 post_event: EventPoster | None = None) -> None:
        self._supervisor = supervisor
        self._namespace = namespace
        self._name = name
        self._key = key
        self._post_event = post_event
        self._last_text: str | None = None
        #: Texts applied (whether or not they changed anything), and rejected.
        self.applied = 0
        self.rejected = 0

    @property
    def where(self) -> str:
        return f"ConfigMap {self._namespace}/{self._name}"

    async def handle(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """One watch event (``type`` None for the initial listing, as kopf gives it)."""
        meta = body.get("metadata") or {}
        version = meta.get("resourceVersion", "?")
        if event_type == "DELETED":
            self._last_text = None
            log.warning("%s was deleted; the running programs are kept", self.where)
            self._event("Warning", "ConfigMapDeleted",
                        f"{self.where} was deleted; the running programs are kept")
            return
        data = body.get("data") or {}
        text = data.get(self._key)
        if not isinstance(text, str):
            # Said once per version: a re-list of the same object is not news.
            if self._last_text != f"<missing {version}>":
                self._last_text = f"<missing {version}>"
                log.warning("%s has no key %r; the running programs are kept",
                            self.where, self._key)
                self._reject(f"{self.where} (resourceVersion {version})",
                             f"it has no key {self._key!r}")
            return
        if text == self._last_text:
            return
        self._last_text = text
        source = f"{self.where} key {self._key} (resourceVersion {version})"
        try:
            outcome = await self._supervisor.reload_text(text, source)
        except ConfigError as exc:
            # The supervisor's message starts with the source: the Event says it once.
            self._reject(source, str(exc).removeprefix(f"{source}: "))
            return
        except Exception as exc:
            self._last_text = None  # not the text's fault: try it again on the next event
            log.exception("applying %s failed", self.where)
            self._event("Warning", "ConfigMapNotApplied",
                        f"{self.where} (resourceVersion {version}) could not be applied: {exc}")
            return
        self.applied += 1
        changes = describe_outcome(outcome)
        # The supervisor logs what it applied or rejected: these are for debugging.
        if changes:
            log.debug("%s applied: %s", self.where, changes)
            self._event("Normal", "ConfigMapApplied",
                        f"{self.where} (resourceVersion {version}) applied: {changes}")
        else:
            log.debug("%s (resourceVersion %s): no program changed", self.where, version)

    def _reject(self, what: str, reason: str) -> None:
        self.rejected += 1
        log.debug("%s rejected: %s", what, reason)
        self._event("Warning", "ConfigMapRejected",
                    f"{what} rejected, the running programs are kept: {reason}")

    def _event(self, type_: str, reason: str, message: str) -> None:
        if self._post_event is not None:
            self._post_event(type_, reason, message)
