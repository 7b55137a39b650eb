"""The k8s plugin's own state: ERROR when the API server refuses, or fails for too long."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sidecar.agent.errors import reason
from sidecar.health.statuscheck import PluginState, StatusWriter

from .errors import ApiError

log = logging.getLogger("sidecar.k8s")


class ApiHealth:
    """Reports ``name`` to the status check from the outcome of API calls.

    An error that will not heal by itself (401, 403, 404, 422) is ERROR at once;
    an unreachable or overloaded server only after failing for ``grace``
    seconds, so that an API server rollout does not flip every pod's readiness.
    """

    def __init__(self, statuscheck: StatusWriter, name: str, grace: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._statuscheck = statuscheck
        self._name = name
        self._grace = grace
        self._clock = clock
        self._failing_since: float | None = None
        self._permanent = False
        self._state = PluginState.INIT

    @property
    def failing(self) -> bool:
        """Calls have failed since the last success."""
        return self._failing_since is not None

    def ok(self) -> None:
        if self._failing_since is not None:
            log.info("Kubernetes API calls succeed again")
        self._failing_since = None
        self._permanent = False
        self._report(PluginState.OK, None)

    def failed(self, exc: ApiError) -> None:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("Kubernetes API call failed: %s", exc)
        else:
            log.debug("Kubernetes API call failed again: %s", exc)
        self._permanent = not exc.retryable
        if self._permanent or now - self._failing_since >= self._grace:
            self._report(PluginState.ERROR, str(exc))

    def crashed(self, task: str, exc: BaseException) -> None:
        """A background task of the plugin died (a bug): ERROR until restart."""
        self._report(PluginState.ERROR, f"{task} stopped: {reason(exc)}")

    def _report(self, state: PluginState, error: str | None) -> None:
        self._state = state
        self._statuscheck.report_state_change(self._name, state, error)
