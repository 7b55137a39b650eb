"""Program metrics, read at scrape time from the manager (no series to keep in sync).

``cninfra_program_*``: the managed processes (the supervisor's programs, the
templates' processes), apart from prometheus_client's ``process_*``, which are the
sidecar's own. CPU and memory come from psutil, imported with this module (that is,
only when the process manager runs) and sampled on scrape: two small ``/proc``
reads per running program, for at most :data:`SAMPLE_LIMIT` of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import psutil
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .process import Process

#: Programs whose CPU and memory one scrape reads, at most (in name order): the cost of
#: a scrape stays bounded whatever a template or a library user starts.
SAMPLE_LIMIT = 256


class ProcessCollector(Collector):
    """``cninfra_program_*`` for every managed process, labelled ``program``."""

    def __init__(self, processes: Callable[[], Iterable[Process]],
                 sample_limit: int = SAMPLE_LIMIT) -> None:
        self._processes = processes
        self._sample_limit = sample_limit
        # pid -> psutil's handle, kept between scrapes: it checks the process's start
        # time, so a pid that the kernel gave to another process is never read as ours.
        self._handles: dict[int, psutil.Process] = {}

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        state, up, restarts, uptime, started, looping, cpu, memory = families = self._families()
        handles: dict[int, psutil.Process] = {}
        for process in sorted(self._processes(), key=lambda p: p.name):
            name = process.name
            state.add_metric([name, process.state.value], 1)
            alive = process.is_alive()
            up.add_metric([name], 1 if alive else 0)
            restarts.add_metric([name], process.restarts)
            uptime.add_metric([name], process.uptime)
            looping.add_metric([name], 1 if process.crash_looping else 0)
            if process.start_time is not None:
                started.add_metric([name], process.start_time)
            pid = process.pid
            if alive and pid is not None and len(handles) < self._sample_limit:
                sample = self._sample(pid, handles)
                if sample is not None:
                    cpu.add_metric([name], sample[0])
                    memory.add_metric([name], sample[1])
        self._handles = handles  # exited programs' handles go
        return list(families)

    def _sample(self, pid: int, handles: dict[int, psutil.Process]) -> tuple[float, int] | None:
        """CPU seconds (its own and its reaped children's) and resident bytes; None when
        it is gone or unreadable (it exited between the manager's view and the read)."""
        try:
            handle = self._handles.get(pid)
            if handle is None or not handle.is_running():
                handle = psutil.Process(pid)
            with handle.oneshot():
                times = handle.cpu_times()
                rss = handle.memory_info().rss
        except psutil.Error:
            return None
        handles[pid] = handle
        return times.user + times.system + times.children_user + times.children_system, rss

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                             GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily,
                             CounterMetricFamily, GaugeMetricFamily]:
        program = ["program"]
        return (
            GaugeMetricFamily("cninfra_program_state",
                              "1 on the series of each program's current state (running, "
                              "sleeping, disk sleep, zombie, terminated, ...); only that "
                              "series is exposed.", labels=["program", "state"]),
            GaugeMetricFamily("cninfra_program_up", "1 while the program runs.",
                              labels=program),
            CounterMetricFamily("cninfra_program_restarts",
                                "Automatic restarts of the program.", labels=program),
            GaugeMetricFamily("cninfra_program_uptime_seconds",
                              "Seconds since the program last started; 0 when not running.",
                              labels=program),
            GaugeMetricFamily("cninfra_program_start_time_seconds",
                              "When the program last started, Unix seconds.", labels=program),
            GaugeMetricFamily("cninfra_program_crash_looping",
                              "1 while the program crash-loops: it exited on its own more "
                              "than once in a row soon after starting, and has not run "
                              "healthily since.", labels=program),
            CounterMetricFamily("cninfra_program_cpu_seconds",
                                "CPU time (user and system) of the running program and of "
                                "the children it has reaped; starts again at 0 when the "
                                "program restarts.", labels=program),
            GaugeMetricFamily("cninfra_program_resident_memory_bytes",
                              "Resident memory of the running program (its own process).",
                              labels=program),
        )
