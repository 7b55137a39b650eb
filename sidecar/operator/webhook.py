"""The admission review of one Pod: inject, leave alone, or deny with the annotation's name.

kopf calls :meth:`Injector.review` from its ``on.mutate`` handlers (one per
webhook of the MutatingWebhookConfiguration: pods of namespaces labelled
``cninfra.io/inject=true``, and pods of the others, which must ask by
annotation); nothing here depends on kopf, so it is tested on plain dicts.
"""

from __future__ import annotations

import bisect
import copy
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from sidecar.inject import Decision, InjectError, InjectionSpec, decide, inject

log = logging.getLogger("sidecar.operator")

#: Seconds: a review is a dict copy and a few look-ups; the API server's own histogram
#: (apiserver_admission_webhook_admission_duration_seconds) adds the network and TLS.
DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
#: Results counted by ``cninfra_operator_admissions_total``.
RESULTS = ("injected", "present", "not-asked", "opted-out", "denied")
_RESULT = {Decision.INJECT: "injected", Decision.PRESENT: "present",
           Decision.NOT_ASKED: "not-asked", Decision.OPTED_OUT: "opted-out"}


class Denied(Exception):
    """The pod cannot be admitted as it is; the message is shown to whoever created it."""


@dataclass(frozen=True)
class Review:
    decision: Decision
    #: The pod with the sidecar (a copy), when ``decision`` is INJECT.
    mutated: dict[str, Any] | None = None


class Injector:
    """Decides and mutates; counts the outcomes and their durations for /metrics."""

    def __init__(self, spec: InjectionSpec, native: Callable[[], bool],
                 excluded_namespaces: AbstractSet[str] = frozenset()) -> None:
        self.spec = spec
        self._native = native
        self._excluded = excluded_namespaces
        #: ``(webhook, result)`` -> reviews.
        self.results: Counter[tuple[str, str]] = Counter()
        #: Reviews per duration bucket (DURATION_BUCKETS, +Inf last), and their total seconds.
        self.durations = [0] * (len(DURATION_BUCKETS) + 1)
        self.seconds = 0.0

    def review(self, pod: Mapping[str, Any], *, webhook: str,
               namespace_opted_in: bool) -> Review:
        """The review of ``pod`` (the admission request's object); Denied with a message
        that names the annotation or the clash."""
        start = time.perf_counter()
        try:
            outcome = self._review(pod, namespace_opted_in)
        except Denied:
            self.results[webhook, "denied"] += 1
            raise
        finally:
            took = time.perf_counter() - start
            self.durations[bisect.bisect_left(DURATION_BUCKETS, took)] += 1
            self.seconds += took
        self.results[webhook, _RESULT[outcome.decision]] += 1
        return outcome

    def _review(self, pod: Mapping[str, Any], namespace_opted_in: bool) -> Review:
        namespace = (pod.get("metadata") or {}).get("namespace")
        if namespace in self._excluded:
            return Review(Decision.NOT_ASKED)
        try:
            decision = decide(pod, self.spec, namespace_opted_in=namespace_opted_in)
            if decision is not Decision.INJECT:
                return Review(decision)
            mutated = copy.deepcopy(dict(pod))
            inject(mutated, self.spec, native=self._native())
        except InjectError as exc:
            log.info("denied pod %s/%s: %s", namespace, _pod_name(pod), exc)
            raise Denied(f"cninfra sidecar injection: {exc}") from None
        log.debug("injected pod %s/%s", namespace, _pod_name(pod))
        return Review(Decision.INJECT, mutated)


def _pod_name(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("name") or (meta.get("generateName") or "") + "*")
