"""The k8s plugin's own state: ERROR while its API calls fail, OK once one succeeds."""

from __future__ import annotations

import logging

from sidecar.agent.errors import reason
from sidecar.health.statuscheck import PluginState, StatusWriter

from .errors import ApiError

log = logging.getLogger("sidecar.k8s")


class ApiHealth:
    """Reports ``name`` to the status check from the outcome of API calls.

    A failed call is ERROR at once (the status JSON, etcd and /metrics show it);
    the status check's grace for the k8s check (k8s.conf's ``error-grace``)
    decides when that ERROR counts for a health group that includes k8s.
    """

    def __init__(self, statuscheck: StatusWriter, name: str) -> None:
        self._statuscheck = statuscheck
        self._name = name
        self._failing = False

    @property
    def failing(self) -> bool:
        """Calls have failed since the last success."""
        return self._failing

    def ok(self) -> None:
        if self._failing:
            log.info("Kubernetes API calls succeed again")
        self._failing = False
        self._report(PluginState.OK, None)

    def failed(self, exc: ApiError) -> None:
        if not self._failing:
            log.warning("Kubernetes API call failed: %s", exc)
        else:
            log.debug("Kubernetes API call failed again: %s", exc)
        self._failing = True
        self._report(PluginState.ERROR, str(exc))

    def crashed(self, task: str, exc: BaseException) -> None:
        """A background task of the plugin died (a bug): ERROR until restart."""
        self._report(PluginState.ERROR, f"{task} stopped: {reason(exc)}")

    def _report(self, state: PluginState, error: str | None) -> None:
        self._statuscheck.report_state_change(self._name, state, error)
