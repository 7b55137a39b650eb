"""The k8s plugin: the sidecar's state on its Pod, the programs ConfigMap, Events.

Nothing here waits for the API server in ``init`` or ``after_init``: the Pod
is read, written and watched by background tasks, so the agent starts (and
the probes answer) with the API server away; the plugin is INIT until the
Pod has been read, and ERROR while its API calls fail (:class:`ApiHealth`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sidecar.agent import Plugin
from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.config import ConfigError
from sidecar.health.statuscheck import PluginState, StatusReadWriter

from ._api import ApiClient, pod_path
from ._credentials import Credentials, find_credentials
from ._health import ApiHealth
from .api import ProgramEventLike, SupervisorLike
from .config import PROGRAMS_CONFIGMAP_ENV, K8sConfig, in_cluster
from .configmap import ConfigMapApplier
from .errors import ApiError, CredentialsError
from .events import EventRecorder
from .podstatus import PodRef, PodStatus, PodStatusWriter

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from ._operator import ConfigMapOperator

log = logging.getLogger("sidecar.k8s")

NAME = "k8s"
_READ_BACKOFF_MAX = 10.0


def enabled(config: K8sConfig | None, env: Mapping[str, str] | None = None) -> bool:
    """On with a k8s.conf that does not say ``enabled: false``, or in a cluster without one."""
    if config is not None:
        return config.enabled
    return in_cluster(env)


def pod_name(config: K8sConfig, env: Mapping[str, str]) -> str:
    """k8s.conf's pod-name, else ``$POD_NAME``, else (in a cluster) the host name."""
    name = config.pod_name or env.get("POD_NAME", "")
    if not name and in_cluster(env, config.service_account_dir):
        name = socket.gethostname()  # a pod's host name is its name unless spec.hostname says
    if not name:
        raise ConfigError("k8s: the Pod's name is unknown: set POD_NAME (the Downward "
                          "API's metadata.name) or k8s.conf's pod-name")
    return name


class K8sPlugin:
    """Mirrors the status check onto the Pod, applies the programs ConfigMap, posts Events."""

    name = NAME

    def __init__(self, config: K8sConfig, statuscheck: StatusReadWriter, *,
                 supervisor: SupervisorLike | None = None,
                 env: Mapping[str, str] | None = None,
                 registry: CollectorRegistry | None = None,
                 deps: Iterable[Plugin] = ()) -> None:
        self._env = dict(os.environ) if env is None else dict(env)
        if self._env.get(PROGRAMS_CONFIGMAP_ENV):
            config = replace(config, configmap=replace(
                config.configmap, name=self._env[PROGRAMS_CONFIGMAP_ENV]))
        self.config = config
        self._statuscheck = statuscheck
        self._supervisor = supervisor
        self._registry = registry
        self.deps = tuple(deps)
        self.pod = PodRef(config.namespace or self._env.get("POD_NAMESPACE", ""),
                          pod_name(config, self._env), self._env.get("POD_UID") or None)
        if config.configmap.name and supervisor is None:
            raise ConfigError(
                f"k8s.conf: configmap.name is {config.configmap.name!r} but the supervisor "
                "is not enabled (add supervisor.conf or SUPERVISOR_CONFIG)")
        self.credentials: Credentials | None = None
        self.api: ApiClient | None = None
        self.health = ApiHealth(statuscheck, NAME)
        self.events: EventRecorder | None = None
        self.writer: PodStatusWriter | None = None
        self.applier: ConfigMapApplier | None = None
        self.operator: ConfigMapOperator | None = None
        self._task: asyncio.Task[None] | None = None
        self._collector: Any = None
        self._listening = False

    # -- lifecycle -------------------------------------------------------------
    async def init(self) -> None:
        if self.api is not None:
            return
        # Only reports: an API server outage must not fail any pod's probes. Where
        # statuscheck.conf counts it, its ERROR waits out error-grace (an API server
        # rollout is no reason to take the pod out of service).
        self._statuscheck.register(NAME, groups=(), grace=self.config.error_grace)
        # A kubeconfig may run an exec plugin: keep the loop free meanwhile.
        credentials = await asyncio.to_thread(find_credentials, self.config, self._env)
        if not self.pod.namespace:
            if not credentials.namespace:
                raise CredentialsError("k8s: the Pod's namespace is unknown: set POD_NAMESPACE "
                                       "(the Downward API's metadata.namespace) or k8s.conf's "
                                       "namespace")
            self.pod = PodRef(credentials.namespace, self.pod.name, self.pod.uid)
        self.credentials = credentials
        self.api = ApiClient(credentials, self.config.request_timeout)
        log.info("k8s: Pod %s/%s, API server %s (%s)", self.pod.namespace, self.pod.name,
                 credentials.server, credentials.source)
        self.events = EventRecorder(self.api, self.config.events)
        if self.config.status.enabled:
            self.writer = PodStatusWriter(self.api, self.pod, self._statuscheck,
                                          self.config.status, self.health,
                                          on_written=self._on_written)
        if self.config.configmap.name and self._supervisor is not None:
            from ._operator import ConfigMapOperator

            self.applier = ConfigMapApplier(
                self._supervisor, self.pod.namespace, self.config.configmap.name,
                self.config.configmap.key, post_event=self._post_event)
            self.operator = ConfigMapOperator(
                credentials, self.pod.namespace, self.config.configmap.name,
                self.applier.handle, self.config.request_timeout)
            _quiet_kopf()
        if self._supervisor is not None and not self._listening:
            self._supervisor.add_listener(self._on_program_event)
            self._listening = True
        if self._registry is not None and self._collector is None:
            from .metrics import K8sCollector

            self._collector = K8sCollector(self)
            self._registry.register(self._collector)

    async def after_init(self) -> None:
        if self._task is None and self.api is not None:
            self._task = spawn(self._start_on_pod(), "k8s-pod-read",
                               on_crash=lambda exc: self.health.crashed("reading the Pod", exc))
        if self.operator is not None:
            self.operator.start()

    async def _start_on_pod(self) -> None:
        """Read the Pod (retrying) for its uid and what it shows, then start writing."""
        assert self.api is not None
        backoff = 0.2
        while True:
            try:
                pod = await self.api.request("GET", pod_path(self.pod.namespace, self.pod.name))
            except ApiError as exc:
                self.health.failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _READ_BACKOFF_MAX)
                continue
            break
        uid = (pod.get("metadata") or {}).get("uid") or self.pod.uid
        self.pod = PodRef(self.pod.namespace, self.pod.name, uid)
        self.health.ok()
        if self.events is not None:
            self.events.start(self.pod)
        if self.writer is not None:
            self.writer.start(pod)

    async def close(self) -> None:
        for stop in (self._stop_task, self._close_operator, self._close_writer,
                     self._close_events, self._close_api):
            try:
                await stop()
            except Exception:
                log.exception("k8s: closing failed")
        if self._listening and self._supervisor is not None:
            self._supervisor.remove_listener(self._on_program_event)
            self._listening = False
        if self._collector is not None and self._registry is not None:
            with contextlib.suppress(KeyError):
                self._registry.unregister(self._collector)
            self._collector = None

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _close_operator(self) -> None:
        if self.operator is not None:
            await self.operator.close()

    async def _close_writer(self) -> None:
        if self.writer is not None:
            await self.writer.close()

    async def _close_events(self) -> None:
        if self.events is not None:
            await self.events.close()

    async def _close_api(self) -> None:
        if self.api is not None:
            await self.api.close()

    # -- Events ------------------------------------------------------------------
    def _post_event(self, type_: str, reason: str, message: str) -> None:
        if self.events is not None:
            self.events.post("Warning" if type_ == "Warning" else "Normal", reason, message)

    def _on_written(self, before: PodStatus, now: PodStatus) -> None:
        """An Event for each change of the overall state the Pod shows."""
        if not now.state or before.state == now.state:
            return
        if now.state == PluginState.ERROR.name:
            self._post_event("Warning", "AgentError", now.summary)
        elif now.state == PluginState.OK.name:
            reason = "AgentRecovered" if before.state == PluginState.ERROR.name else "AgentReady"
            self._post_event("Normal", reason, now.summary)
        elif before.state:
            self._post_event("Normal", "AgentStarting", now.summary)

    def _on_program_event(self, event: ProgramEventLike) -> None:
        """Crashes, automatic restarts and given-up programs become Events."""
        code = event.exit_code
        how = (f"was killed by {_signal_name(-code)}" if code is not None and code < 0
               else f"exited with code {code}" if code is not None else "exited")
        if event.crashed:
            self._post_event("Warning", "ProgramCrashed",
                             f"program {event.program} {how} (restarts so far: {event.restarts})")
        elif event.state == "gave-up":
            self._post_event("Warning", "ProgramGaveUp",
                             f"program {event.program} {how} and has no restart left "
                             f"(restarts: {event.restarts})")
        elif event.state == "failed":
            self._post_event("Warning", "ProgramFailed",
                             f"program {event.program} could not start: {event.error}")
        elif event.state == "started" and event.restarts > 0:
            self._post_event("Normal", "ProgramRestarted",
                             f"program {event.program} restarted (restart {event.restarts})")


def _quiet_kopf() -> None:
    """kopf logs each (re-)authentication and handler at INFO; keep them for debugging
    unless logs.conf set a level for kopf."""
    logger = logging.getLogger("kopf")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


def _signal_name(number: int) -> str:
    """``SIGTERM`` for 15, as people read it (``signal 99`` for one without a name)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
