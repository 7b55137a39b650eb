"""The webhook's own TLS, without cert-manager: a CA and a serving certificate made by the
operator, renewed before they expire, the webhook configuration's caBundle kept current, and
not one pod refused (failurePolicy Fail) through the renewals."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.inject import api as keys
from sidecar.operator import certs
from tests._wait import wait_until
from tests.operator.cluster import app_pod, containers, create_pod, namespace
from tests.operator.harness import NAMESPACE, OperatorProcess, webhook_configuration
from tests.packaging.kubeapply import apply
from tests.servers.kube import KubeApiServer

SECRET = "cninfra-operator-webhook-tls"
CONFIGURATION = "cninfra-operator"
#: Short lives, so that renewals happen within the test: the serving certificate is renewed
#: about every 4 s, the CA every 10 s.
TLS = {"mode": "self-signed", "hosts": ["127.0.0.1"], "validity": "6s",
       "ca-validity": "15s", "check-interval": "300ms"}


def operator_with(api: KubeApiServer, workdir: Path) -> OperatorProcess:
    return OperatorProcess(api, workdir, config={
        "tls": TLS, "webhook": {"configuration": CONFIGURATION}})


@pytest.fixture
def operators(webhook_api: KubeApiServer, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    started: list[OperatorProcess] = []
    yield started
    for process in started:
        process.kill()


def secret(api: KubeApiServer) -> dict[str, bytes]:
    status, out = api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}")
    assert status == 200, out
    return {k: base64.b64decode(v) for k, v in out["data"].items()}


def ca_bundles(api: KubeApiServer) -> list[bytes]:
    status, out = api.request(
        "GET", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
               f"{CONFIGURATION}")
    assert status == 200, out
    return [base64.b64decode(w["clientConfig"].get("caBundle") or "") for w in out["webhooks"]]


def test_self_signed_tls_is_made_trusted_and_renewed_without_a_refused_pod(
        webhook_api: KubeApiServer, operators: list[OperatorProcess], tmp_path: Path) -> None:
    first, second = operator_with(webhook_api, tmp_path / "a"), operator_with(webhook_api,
                                                                               tmp_path / "b")
    # The chart's configuration, without a caBundle: the operator fills it in.
    config = webhook_configuration(first.url, failure_policy="Fail")
    assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    webhook_api.ensure_namespace(NAMESPACE)
    apply(webhook_api, [config], namespace=NAMESPACE)
    operators += [first, second]
    first.start()
    second.start()  # a second replica: the same Secret, the same certificate

    made = secret(webhook_api)
    assert set(made) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    assert certs.hosts_of(made["tls.crt"]) == ["127.0.0.1"]
    assert all(bundle == made["ca.crt"] for bundle in ca_bundles(webhook_api))

    ns = namespace(webhook_api, "tls")
    serving: set[bytes] = set()
    cas: set[bytes] = set()
    presented: dict[str, set[bytes]] = {"first": set(), "second": set()}
    refused: list[Any] = []
    deadline = time.monotonic() + 24
    count = 0
    while time.monotonic() < deadline:
        count += 1
        status, pod = create_pod(webhook_api, ns, app_pod(f"p{count}", {keys.INJECT: "true"}))
        if status != 201 or containers(pod)[0] != "cninfra-sidecar":
            refused.append((status, pod))
        current = secret(webhook_api)
        serving.add(current["tls.crt"])
        cas.add(certs.split_bundle(current["ca.crt"])[0])
        # Whatever the Secret holds, the webhook configuration trusts its CA by the time a
        # certificate it signed is served.
        for name, process in (("first", first), ("second", second)):
            der = process.served_certificate()
            if der:
                presented[name].add(der)
        time.sleep(0.2)
    assert not refused, refused[:3]
    assert count > 50
    assert len(serving) >= 4, "the serving certificate was renewed about every 4 s"
    assert len(cas) >= 2, "the CA was renewed at 10 s"
    assert len(presented["first"]) >= 3 and len(presented["second"]) >= 3
    assert (first.metric("cninfra_operator_certificate_loads_total") or 0) >= 3

    # The bundle the apiserver trusts now: the current CA, and no expired one.
    final = secret(webhook_api)
    assert all(bundle == final["ca.crt"] for bundle in ca_bundles(webhook_api))
    assert certs.signed_by(final["tls.crt"], certs.split_bundle(final["ca.crt"])[0])


def test_a_webhook_configuration_that_does_not_trust_it_keeps_the_operator_unready(
        webhook_api: KubeApiServer, operators: list[OperatorProcess], tmp_path: Path) -> None:
    process = OperatorProcess(webhook_api, tmp_path / "op", config={
        "tls": {**TLS, "secret": "unready-tls"},
        "webhook": {"configuration": "missing-configuration"}})
    webhook_api.ensure_namespace(NAMESPACE)
    operators.append(process)
    with pytest.raises(TimeoutError, match="the operator serving"):
        process.start(timeout=10)
    status, text = wait_until(lambda: (answer := process.get("/healthz")) and "404" in answer[1]
                              and answer, 10, "the reason in /healthz")
    assert status == 503
    assert "does not trust the certificate yet" in text and "missing-configuration" in text
    assert process.served_certificate() is not None  # serving, but unready


def test_a_webhook_configuration_made_after_the_operator_started_is_trusted_within_seconds(
        webhook_api: KubeApiServer, operators: list[OperatorProcess], tmp_path: Path) -> None:
    # helm install creates the MutatingWebhookConfiguration after the Deployment: the
    # replicas start before it exists. A long check-interval: the renewals' pace must not
    # be what makes a new replica ready.
    name = "late-configuration"
    process = OperatorProcess(webhook_api, tmp_path / "op", config={
        "tls": {**TLS, "secret": "late-tls", "validity": "1h", "ca-validity": "2h",
                "check-interval": "10m"},
        "webhook": {"configuration": name}})
    webhook_api.ensure_namespace(NAMESPACE)
    operators.append(process)
    with pytest.raises(TimeoutError, match="the operator serving"):
        process.start(timeout=3)
    config = webhook_configuration(process.url)
    config["metadata"]["name"] = name
    apply(webhook_api, [config], namespace=NAMESPACE)
    try:
        wait_until(lambda: process.get("/healthz")[0] == 200, 20,
                   "the operator ready once the configuration is there")
        _, out = webhook_api.request(
            "GET", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}")
        served = process.served_certificate()
        assert served is not None
        pem = ssl.DER_cert_to_PEM_cert(served).encode()
        assert all(certs.signed_by(pem, base64.b64decode(w["clientConfig"]["caBundle"]))
                   for w in out["webhooks"])
    finally:
        webhook_api.request(
            "DELETE", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}")
