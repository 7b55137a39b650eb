"""The operator's pure parts: reviews, the Pod status documents of the fleet view, the
needs of a namespace, and the certificates."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sidecar.inject import Decision, load_spec
from sidecar.inject import api as keys
from sidecar.k8s import DETAIL_ANNOTATION, STATUS_ANNOTATION
from sidecar.operator import Denied, Injector, certs
from sidecar.operator.fleet import pod_status
from sidecar.operator.namespaces import Needs, pod_needs
from sidecar.operator.tls import Material, _due

SPEC = load_spec()


def pod(annotations: dict[str, str] | None = None, namespace: str = "shop",
        **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": namespace,
                         "annotations": annotations or {}},
            "spec": {"containers": [{"name": "app", "image": "app"}], **spec}}


# -- reviews -------------------------------------------------------------------------------

def test_a_review_returns_a_mutated_copy_and_counts_it() -> None:
    injector = Injector(SPEC, lambda: True, {"kube-system"})
    sent = pod({keys.INJECT: "true"})
    before = copy.deepcopy(sent)
    review = injector.review(sent, webhook="inject-pod", namespace_opted_in=False)
    assert review.decision is Decision.INJECT
    assert sent == before  # the request's object is not touched
    assert review.mutated is not None
    assert review.mutated["spec"]["initContainers"][0]["name"] == SPEC.container_name
    assert injector.results["inject-pod", "injected"] == 1
    assert sum(injector.durations) == 1


def test_a_review_follows_the_servers_version() -> None:
    native = {"on": False}
    injector = Injector(SPEC, lambda: native["on"])
    classic = injector.review(pod({keys.INJECT: "true"}), webhook="w", namespace_opted_in=False)
    assert classic.mutated is not None and "initContainers" not in classic.mutated["spec"]


def test_an_excluded_namespace_is_never_injected() -> None:
    injector = Injector(SPEC, lambda: True, {"kube-system"})
    review = injector.review(pod({keys.INJECT: "true"}, "kube-system"), webhook="inject-pod",
                             namespace_opted_in=True)
    assert review.decision is Decision.NOT_ASKED and review.mutated is None


def test_a_denial_names_the_annotation_and_is_counted() -> None:
    injector = Injector(SPEC, lambda: True)
    with pytest.raises(Denied, match=r"annotation cninfra\.io/log-level: 'x' is not a log level"):
        injector.review(pod({keys.INJECT: "true", keys.LOG_LEVEL: "x"}),
                        webhook="inject-pod", namespace_opted_in=False)
    assert injector.results["inject-pod", "denied"] == 1


# -- the fleet's status documents ------------------------------------------------------------

def test_a_pod_status_comes_from_the_detail_annotation() -> None:
    detail = {"state": 2, "last_change": 7, "plugins": {"web": {"state": 2, "error": "x"}}}
    doc, readable = pod_status({"metadata": {"name": "p", "namespace": "n", "annotations": {
        STATUS_ANNOTATION: "ERROR", DETAIL_ANNOTATION: json.dumps(detail)}},
        "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}})
    assert readable
    assert doc == {"namespace": "n", "pod": "p", "node": "node-1", "phase": "Running",
                   "state": 2, "last_change": 7, "plugins": detail["plugins"],
                   "reported": True}


@pytest.mark.parametrize(("annotations", "state", "reported", "readable"), [
    ({}, 0, False, True),
    ({STATUS_ANNOTATION: "OK"}, 1, True, True),
    ({STATUS_ANNOTATION: "OK", DETAIL_ANNOTATION: "{not json"}, 0, False, False),
    ({DETAIL_ANNOTATION: json.dumps({"state": 9})}, 0, False, False),
    ({STATUS_ANNOTATION: "SOMETIMES"}, 0, False, False),
])
def test_missing_or_bad_annotations(annotations: dict[str, str], state: int, reported: bool,
                                    readable: bool) -> None:
    doc, ok = pod_status({"metadata": {"name": "p", "namespace": "n",
                                       "annotations": annotations}})
    assert (doc["state"], doc["reported"], ok) == (state, reported, readable)


# -- a namespace's needs ------------------------------------------------------------------------

def injected(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    from sidecar.inject import inject

    target = pod({keys.INJECT: "true", **(annotations or {})}, **spec)
    inject(target, SPEC, native=True)
    return target


def test_needs_of_injected_pods() -> None:
    plain = pod_needs(injected(), SPEC)
    assert plain is not None
    assert plain.account == "default"
    assert plain.config_maps == {SPEC.config_map, SPEC.programs_config_map}
    assert plain.watched == SPEC.programs_config_map
    own = pod_needs(injected({keys.PROGRAMS_CONFIGMAP: "mine", keys.CONFIG_CONFIGMAP: "cfg"},
                             serviceAccountName="billing"), SPEC)
    assert own is not None
    assert (own.account, own.config_maps, own.watched) == ("billing", frozenset(), "mine")
    assert pod_needs(pod(), SPEC) is None
    assert Needs.of([plain, own]) == Needs(("billing", "default"),
                                           tuple(sorted(plain.config_maps)),
                                           tuple(sorted(("mine", SPEC.programs_config_map))))


# -- certificates -----------------------------------------------------------------------------

def test_a_serving_certificate_names_its_hosts_and_its_ca() -> None:
    ca = certs.new_ca("test-ca", 3600)
    other = certs.new_ca("other-ca", 3600)
    serving = certs.new_serving(ca, ["svc.ns.svc", "10.0.0.1"], 60)
    assert sorted(certs.hosts_of(serving.cert)) == ["10.0.0.1", "svc.ns.svc"]
    assert certs.signed_by(serving.cert, ca.cert)
    assert not certs.signed_by(serving.cert, other.cert)
    assert certs.split_bundle(ca.cert + other.cert) == [ca.cert, other.cert]
    with pytest.raises(ValueError, match="at least one host"):
        certs.new_serving(ca, [], 60)


def test_names_longer_than_a_common_name_may_be() -> None:
    # The chart's host in a namespace of 63 characters, and a CA named after a long Secret.
    host = f"cninfra-operator.{'n' * 63}.svc"
    ca = certs.new_ca(f"{'s' * 60}-webhook-tls-ca", 3600)
    serving = certs.new_serving(ca, [host], 60)
    assert certs.hosts_of(serving.cert) == [host]
    assert certs.signed_by(serving.cert, ca.cert)


def test_renewal_is_due_at_two_thirds_of_the_life() -> None:
    now = datetime.now(UTC)
    cert = certs.new_serving(certs.new_ca("ca", 3600), ["h"], 90, now).cert
    assert not _due(cert, 90, now + timedelta(seconds=59))
    assert _due(cert, 90, now + timedelta(seconds=61))


def test_the_secret_round_trips_and_a_partial_one_is_named() -> None:
    ca = certs.new_ca("ca", 3600)
    serving = certs.new_serving(ca, ["h"], 60)
    material = Material([ca.cert], ca.key, serving.cert, serving.key)
    assert Material.from_secret({"data": material.data()}) == material
    with pytest.raises(ValueError, match=r"the Secret has no ca\.key, tls\.key"):
        Material.from_secret({"data": {k: v for k, v in material.data().items()
                                       if k in ("ca.crt", "tls.crt")}})


# -- the command -------------------------------------------------------------------------------

@pytest.mark.parametrize(("conf", "message"), [
    (None, "operator.conf: tls.hosts: mode self-signed needs the names"),
    ({"webhok": {}}, "webhok: unknown key (did you mean 'webhook'?)"),
    ({"tls": {"mode": "self-signd"}}, "tls.mode: expected one of self-signed, files"),
    ({"tls": {"mode": "files"}}, "tls: mode files needs cert-file and key-file"),
    ({"spec": "/nonexistent/spec.yaml", "tls": {"hosts": ["h"]}},
     "/nonexistent/spec.yaml: No such file or directory"),
])
def test_a_bad_config_stops_the_operator_naming_the_key(
        conf: dict[str, Any] | None, message: str, tmp_path: Any) -> None:
    import subprocess
    import sys

    args = [sys.executable, "-m", "sidecar", "operator"]
    if conf is not None:
        path = tmp_path / "operator.conf"
        path.write_text(json.dumps(conf))
        args += ["--config", str(path)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2
    assert message in res.stderr, res.stderr
