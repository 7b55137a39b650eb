"""kopf, embedded in the sidecar's event loop, watching one ConfigMap.

How it is embedded, and why (kopf is built to own its process):

* ``kopf.spawn_tasks`` and the root tasks it returns are run and stopped
  here, not by ``kopf.run_tasks``/``kopf.operator``: those cancel every task
  of the loop created after the operator started, which would include other
  plugins' tasks (programs started by a reload, HTTP handlers).
* The call runs in a task of its own, so the context variables kopf sets
  (its settings, its credentials vault) stay in kopf's tasks.
* ``spawn_tasks`` installs SIGINT/SIGTERM handlers when called on the main
  thread; those belong to the agent (graceful stop, forced second signal),
  so kopf's are refused for the duration of the call.
* Standalone (no peering objects), namespace-scoped, no scanning for CRDs or
  namespaces, no Events or patches of its own: with only an ``on.event``
  handler kopf stores nothing on the ConfigMap, and the Role needs no more
  than get/list/watch of that ConfigMap (discovery is open to every account).
* The list and the watch are filtered on the server
  (``fieldSelector=metadata.name=...``), so other ConfigMaps of the namespace
  are never sent to the pod, and the apiserver authorizes them as requests for
  that one name: the Role can grant it by ``resourceNames`` alone.
* kopf is imported in a thread, with the Kubernetes clients hidden from it
  (see :func:`_import_kopf`): 4 MiB instead of 25 MiB per pod.
* API errors are retried forever with capped backoff instead of kopf's
  default of giving up after a minute, and an exit of kopf's root tasks is
  logged and followed by a fresh start.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sidecar.agent.tasks import cancel_and_wait, spawn

from ._credentials import Credentials

if TYPE_CHECKING:
    import kopf

log = logging.getLogger("sidecar.k8s")

#: ``(event type or None for a listed object, the object)``
EventHandler = Callable[[str | None, Mapping[str, Any]], Awaitable[None]]

_BACKOFFS = (0.5, 1.0, 2.0, 3.0, 5.0)
_RESTART_DELAY = 5.0
_STOP_TIMEOUT = 3.0


_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")


def _import_kopf() -> Any:
    """kopf imports every Kubernetes client it finds installed, only to recognise the
    client's model objects (``kubernetes``: ~20 MiB of RSS and 0.2 s). The sidecar
    hands kopf none of them, so the clients not loaded yet are hidden from it while
    it is imported; they can be imported as usual afterwards."""
    hidden = [name for name in _CLIENTS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import name" fails
    try:
        return importlib.import_module("kopf")
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


class _ForeverBackoffs:
    """Re-iterable and unsized: kopf then retries a failing request forever."""

    def __init__(self, delays: tuple[float, ...]) -> None:
        self._delays = delays

    def __iter__(self) -> Iterator[float]:
        yield from self._delays
        while True:
            yield self._delays[-1]


@contextlib.contextmanager
def _agent_keeps_signals(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Refuse the signal handlers kopf's spawn_tasks sets (they set a Future's result)."""
    original = loop.add_signal_handler

    def add_signal_handler(sig: int, callback: Callable[..., object], *args: Any) -> None:
        if isinstance(getattr(callback, "__self__", None), asyncio.Future):
            log.debug("kopf's handler of signal %d refused: the agent handles signals", sig)
            return
        original(sig, callback, *args)

    loop.add_signal_handler = add_signal_handler  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        del loop.add_signal_handler  # the class's method shows again


class ConfigMapOperator:
    """Runs kopf in a supervised task (``k8s-configmap-watch``) that calls ``handler``."""

    def __init__(self, credentials: Credentials, namespace: str, name: str,
                 handler: EventHandler, request_timeout: float) -> None:
        self._credentials = credentials
        self._namespace = namespace
        self._name = name
        self._handler = handler
        self._request_timeout = request_timeout
        self._task: asyncio.Task[None] | None = None
        #: Watch events received (including the initial listing) and kopf restarts.
        self.events = 0
        self.restarts = 0

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._supervise(), "k8s-configmap-watch")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _supervise(self) -> None:
        while True:
            try:
                await self._run_once()
            except Exception:
                log.exception("the ConfigMap watch (kopf) failed")
            else:
                log.error("the ConfigMap watch (kopf) stopped by itself")
            self.restarts += 1
            await asyncio.sleep(_RESTART_DELAY)

    def _settings(self, kopf_: Any) -> kopf.OperatorSettings:
        settings = kopf_.OperatorSettings()
        settings.peering.standalone = True
        settings.posting.enabled = False
        settings.scanning.disabled = True
        settings.process.ultimate_exiting_timeout = None
        settings.watching.field_selectors["v1", "configmaps"] = f"metadata.name={self._name}"
        settings.watching.connect_timeout = self._request_timeout
        # Reconnect now and then even when idle: a half-open connection heals by itself.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = self._request_timeout * 3
        settings.networking.connect_timeout = self._request_timeout
        settings.networking.error_backoffs = _ForeverBackoffs(_BACKOFFS)
        return settings  # type: ignore[no-any-return]

    def _registry(self, kopf_: Any) -> kopf.OperatorRegistry:
        registry = kopf_.OperatorRegistry()
        credentials = self._credentials

        @kopf_.on.login(registry=registry)  # type: ignore[untyped-decorator]
        async def login(**_: Any) -> kopf.ConnectionInfo:
            # Called again by kopf after a 401: a rotated token is read afresh (in a
            # thread: a kubeconfig's exec plugin may run).
            token = await asyncio.to_thread(credentials.bearer_token)
            return kopf_.ConnectionInfo(  # type: ignore[no-any-return]
                server=credentials.server, ca_path=credentials.ca_file,
                ca_data=credentials.ca_data, insecure=credentials.insecure or None,
                scheme="Bearer" if token else None, token=token,
                certificate_path=credentials.cert_file, private_key_path=credentials.key_file,
                default_namespace=self._namespace)

        @kopf_.on.event("v1", "configmaps", registry=registry,  # type: ignore[untyped-decorator]
                        field="metadata.name", value=self._name)
        async def on_event(type: str | None, body: Mapping[str, Any],
                           **_: Any) -> None:
            self.events += 1
            await self._handler(type, body)

        return registry  # type: ignore[no-any-return]

    async def _run_once(self) -> None:
        # In a thread: the loop keeps serving probes meanwhile.
        kopf: Any = await asyncio.to_thread(_import_kopf)
        stop = asyncio.Event()
        with _agent_keeps_signals(asyncio.get_running_loop()):
            tasks = await kopf.spawn_tasks(
                registry=self._registry(kopf), settings=self._settings(kopf),
                standalone=True, clusterwide=False, namespaces=[self._namespace],
                stop_flag=stop)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
        finally:
            stop.set()  # an intended stop: kopf's "ultimate termination" stays quiet
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
            if stuck:
                log.warning("kopf tasks still running after %gs: %s", _STOP_TIMEOUT,
                            ", ".join(sorted(t.get_name() for t in stuck)))
