"""The agent: starts plugins in dependency order, stops them in reverse, handles signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from sidecar.logging.context import current_plugin
from sidecar.logging.measure import Tracer

from .api import Plugin, plugin_deps
from .errors import AgentStartError, AgentStopError, reason

log = logging.getLogger("sidecar.agent")

DEFAULT_START_TIMEOUT = 15.0
DEFAULT_STOP_TIMEOUT = 5.0
# Every close runs even when the stop deadline has passed, with this much time.
_CLOSE_GRACE = 0.5

StartedHook = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True)
class PhaseTiming:
    """How long one plugin took in one lifecycle phase."""

    plugin: str
    phase: str
    start: float
    duration: float


def order_plugins(plugins: Iterable[Plugin]) -> list[Plugin]:
    """Dependencies first, otherwise in the given order; missing dependencies are added."""
    ordered: list[Plugin] = []
    done: set[int] = set()
    visiting: set[int] = set()

    def visit(plugin: Plugin, chain: tuple[str, ...]) -> None:
        key = id(plugin)
        if key in done:
            return
        if key in visiting:
            cycle = " -> ".join((*chain, plugin.name))
            raise ValueError(f"plugin dependency cycle: {cycle}")
        visiting.add(key)
        for dep in plugin_deps(plugin):
            visit(dep, (*chain, plugin.name))
        visiting.discard(key)
        done.add(key)
        ordered.append(plugin)

    for plugin in plugins:
        visit(plugin, ())
    names = [p.name for p in ordered]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two plugins share the name(s): {', '.join(duplicates)}")
    return ordered


class Agent:
    """Runs a set of plugins through init, after_init and close.

    Use it as an async context manager, or call :meth:`run` from a program's
    ``main`` to get signal handling and an exit code.
    """

    def __init__(
        self,
        *plugins: Plugin,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        tracer: Tracer | None = None,
    ) -> None:
        self.plugins: Sequence[Plugin] = order_plugins(plugins)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.timings: list[PhaseTiming] = []
        #: Every plugin's init and after_init, as entities ``<plugin>.<phase>``.
        self.tracer = tracer or Tracer("startup")
        self._initialised: list[Plugin] = []
        self._started_hooks: list[StartedHook] = []
        self._stopped = asyncio.Event()
        self._started = False

    def on_started(self, hook: StartedHook) -> None:
        """Call ``hook`` once every plugin has finished ``after_init``."""
        self._started_hooks.append(hook)

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Initialise every plugin; on failure close the initialised ones and raise."""
        deadline = time.monotonic() + self.start_timeout
        begin = time.perf_counter()
        try:
            for plugin in self.plugins:
                await self._run_phase(plugin, "init", plugin.init, deadline)
                self._initialised.append(plugin)
            for plugin in self.plugins:
                await self._run_phase(plugin, "after_init", plugin.after_init, deadline)
            for hook in self._started_hooks:
                result = hook()
                if result is not None:
                    await result
        except BaseException:
            # A close failure is logged; the start-up error is the one to report.
            with contextlib.suppress(AgentStopError):
                await self._close_initialised()
            raise
        self._started = True
        log.info("agent started %d plugins in %.0f ms",
                 len(self.plugins), (time.perf_counter() - begin) * 1000)

    async def _run_phase(
        self, plugin: Plugin, phase: str, step: Callable[[], Awaitable[None]], deadline: float
    ) -> None:
        remaining = deadline - time.monotonic()
        started_at = time.time()
        begin = time.perf_counter()
        token = current_plugin.set(plugin.name)
        try:
            async with asyncio.timeout(max(remaining, 0)):
                await step()
        except TimeoutError:
            raise AgentStartError(
                plugin.name, phase,
                f"did not finish within the {self.start_timeout:g}s start timeout",
            ) from None
        except AgentStartError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise AgentStartError(plugin.name, phase, reason(exc)) from exc
        finally:
            current_plugin.reset(token)
            self.tracer.log_time(f"{plugin.name}.{phase}", begin)
            self.timings.append(
                PhaseTiming(plugin.name, phase, started_at, time.perf_counter() - begin)
            )

    async def stop(self) -> None:
        """Close every initialised plugin in reverse order; raise if any close failed."""
        self._started = False
        try:
            await self._close_initialised()
        finally:
            self._stopped.set()

    async def _close_initialised(self) -> None:
        deadline = time.monotonic() + self.stop_timeout
        failures: dict[str, str] = {}
        while self._initialised:
            plugin = self._initialised.pop()
            budget = max(deadline - time.monotonic(), _CLOSE_GRACE)
            token = current_plugin.set(plugin.name)
            try:
                async with asyncio.timeout(budget):
                    await plugin.close()
            except TimeoutError:
                failures[plugin.name] = f"close did not finish within {budget:.1f}s"
            except Exception as exc:  # noqa: BLE001 - every close runs; failures reported together
                failures[plugin.name] = reason(exc)
            finally:
                current_plugin.reset(token)
        if failures:
            for name, why in failures.items():
                log.error("plugin %s failed to close: %s", name, why)
            raise AgentStopError(failures)

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def run(self) -> int:
        """Start, serve until SIGTERM or SIGINT, stop; return the process exit code."""
        return asyncio.run(self.serve())

    async def serve(self, stop_event: asyncio.Event | None = None) -> int:
        """The body of :meth:`run` for callers that own the event loop."""
        loop = asyncio.get_running_loop()
        stop = stop_event or asyncio.Event()
        received: list[int] = []

        def on_signal(signum: int) -> None:
            if received:
                # The second signal: the operator does not want to wait for a graceful stop.
                log.warning("second %s: forcing exit", signal.Signals(signum).name)
                logging.shutdown()
                os._exit(128 + signum)
            received.append(signum)
            log.info("%s received: stopping", signal.Signals(signum).name)
            stop.set()

        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        try:
            start = asyncio.create_task(self.start(), name="agent-start")
            stop_wait = asyncio.create_task(stop.wait(), name="agent-stop-wait")
            await asyncio.wait({start, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not start.done():
                # Stopped during start-up: cancelling start closes what was initialised.
                start.cancel()
                await asyncio.gather(start, return_exceptions=True)
                return 0
            stop_wait.cancel()
            try:
                start.result()
            except AgentStartError as exc:
                log.error("start-up failed: %s", exc)  # noqa: TRY400 - one line, no traceback
                return 1
            await stop.wait()
            try:
                await self.stop()
            except AgentStopError:
                return 1
            return 0
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
