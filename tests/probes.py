"""Polls a sidecar's probes from a background thread, the way the kubelet does, and keeps
every answer, so that a test that breaks something under a running sidecar (tests/faults,
tests/k8s) can assert that they never stopped answering.

    with ProbePoller(url) as probes:
        ... inject the fault, wait for states with probes.wait_for(...) ...
    probes.assert_always_answered()
    assert probes.statuses("/liveness") == {200}

Every request opens a new connection (as the kubelet's probes do) and has the
kubelet's default probe timeout, 1 s: a slower answer counts as none.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: The kubelet's default ``timeoutSeconds`` of a probe.
KUBELET_TIMEOUT = 1.0
PATHS = ("/liveness", "/readiness")


@dataclass(frozen=True)
class Answer:
    path: str
    #: time.monotonic() when the request was sent.
    sent: float
    seconds: float
    #: None when there was no answer (refused, reset, timed out).
    status: int | None
    body: Any = None
    error: str | None = None

    @property
    def plugins(self) -> dict[str, Any]:
        if isinstance(self.body, dict):
            return dict(self.body.get("plugins") or {})
        return {}

    def plugin_state(self, name: str) -> int | None:
        entry = self.plugins.get(name)
        return int(entry["state"]) if entry else None


@dataclass
class ProbePoller:
    url: str
    interval: float = 0.05
    timeout: float = KUBELET_TIMEOUT
    paths: tuple[str, ...] = PATHS
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._new = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="probe-poller", daemon=True)

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> ProbePoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout * len(self.paths) + 5)

    def __enter__(self) -> ProbePoller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- polling --------------------------------------------------------------------
    def ask(self, path: str) -> Answer:
        sent = time.monotonic()
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request("GET", path, headers={"User-Agent": "kube-probe/1.30",
                                               "Connection": "close"})
            reply = conn.getresponse()
            raw = reply.read()
        except (OSError, http.client.HTTPException) as exc:
            return Answer(path, sent, time.monotonic() - sent, None,
                          error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        return Answer(path, sent, time.monotonic() - sent, reply.status, body)

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in self.paths:
                answer = self.ask(path)
                with self._new:
                    self.answers.append(answer)
                    self._new.notify_all()
            self._stop.wait(self.interval)

    # -- reading --------------------------------------------------------------------
    def snapshot(self, path: str | None = None, since: float = 0.0) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers
                    if (path is None or a.path == path) and a.sent >= since]

    def wait_for(self, condition: Callable[[Answer], bool], timeout: float, what: str,
                 path: str = "/readiness") -> Answer:
        """The first answer on ``path`` sent from now on that satisfies ``condition``."""
        since = time.monotonic()
        deadline = since + timeout
        seen = 0
        last: Answer | None = None
        with self._new:
            while True:
                fresh = [a for a in self.answers if a.path == path and a.sent >= since]
                for answer in fresh[seen:]:
                    last = answer
                    if condition(answer):
                        return answer
                seen = len(fresh)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    shown = (f"{last.status} {json.dumps(last.body)[:600]}" if last
                             else "no answer")
                    raise AssertionError(f"{what}: not within {timeout:g}s (last {path}: "
                                         f"{shown})")
                self._new.wait(min(remaining, 0.5))

    def statuses(self, path: str, since: float = 0.0) -> set[int | None]:
        return {a.status for a in self.snapshot(path, since)}

    def assert_always_answered(self, minimum: int = 10,
                               limit: float = KUBELET_TIMEOUT) -> None:
        """Every probe got 200 or 503 with the status JSON, within ``limit``."""
        answers = self.snapshot()
        assert len(answers) >= minimum, f"only {len(answers)} probe answers"
        failed = [a for a in answers if a.status not in (200, 503)
                  or not isinstance(a.body, dict) or "state" not in a.body]
        assert not failed, "probes without an answer: " + "; ".join(
            f"{a.path} +{a.sent - answers[0].sent:.1f}s: {a.error or a.status}"
            for a in failed[:5])
        slowest = max(answers, key=lambda a: a.seconds)
        assert slowest.seconds < limit, (
            f"{slowest.path} took {slowest.seconds:.3f}s (limit {limit:g}s)")

    def latency_summary(self) -> str:
        times = sorted(a.seconds for a in self.snapshot())
        if not times:
            return "no answers"
        p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
        return (f"{len(times)} answers, p50 {times[len(times) // 2] * 1000:.1f} ms, "
                f"p99 {p99 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms")
