"""When no operator answers: failurePolicy Ignore admits pods uninjected (and the operator
reports each one when it is back), Fail refuses them until it answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.inject import api as keys
from tests._wait import wait_until
from tests.operator.cluster import app_pod, containers, create_pod, created, events, namespace
from tests.operator.harness import OperatorProcess, install_webhook
from tests.servers.kube import KubeApiServer

INJECT = {keys.INJECT: "true"}


@pytest.fixture
def operator(webhook_api: KubeApiServer, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(webhook_api, tmp_path / "operator")
    yield process
    process.kill()


def test_ignore_admits_the_pod_uninjected_and_the_operator_reports_it(
        webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    install_webhook(webhook_api, operator.url, operator.ca.read_bytes(),
                    failure_policy="Ignore")
    ns = namespace(webhook_api, "ignore")
    # Nothing listens on the webhook's port: the apiserver gives up on it and goes on.
    pod = created(webhook_api, ns, app_pod("missed", INJECT))
    assert containers(pod) == ["app"]
    plain = created(webhook_api, ns, app_pod("plain"))

    operator.start()
    found = wait_until(lambda: events(webhook_api, ns, pod["metadata"]["uid"],
                                      "SidecarNotInjected"), 30, "the SidecarNotInjected Event")
    assert found[0]["type"] == "Warning"
    assert "asked for the cninfra sidecar but was created without it" in found[0]["message"]
    assert wait_until(lambda: operator.metric("cninfra_operator_pods_not_injected",
                                              namespace=ns), 10, "the gauge") == 1.0
    # A pod that did not ask is nobody's concern.
    assert not events(webhook_api, ns, plain["metadata"]["uid"], "SidecarNotInjected")

    # The operator back, the next pod gets the sidecar; deleting the missed one clears the gauge.
    assert containers(created(webhook_api, ns, app_pod("next", INJECT)))[0] == "cninfra-sidecar"
    status, out = webhook_api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/missed")
    assert status == 200, out
    wait_until(lambda: operator.metric("cninfra_operator_pods_not_injected",
                                       namespace=ns) is None, 10, "the gauge cleared")

    # A restarted operator finds the Event posted and does not post it again.
    operator.stop()
    again = created(webhook_api, ns, app_pod("again", INJECT))
    operator.start()
    wait_until(lambda: events(webhook_api, ns, again["metadata"]["uid"], "SidecarNotInjected"),
               30, "the Event for the pod created while it was away")
    assert operator.metric("cninfra_operator_not_injected_events_total") == 1.0


def test_fail_refuses_pods_until_the_operator_answers(
        webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    install_webhook(webhook_api, operator.url, operator.ca.read_bytes(), failure_policy="Fail")
    ns = namespace(webhook_api, "fail")
    status, answer = create_pod(webhook_api, ns, app_pod("refused", INJECT))
    assert status == 500, answer
    assert 'failed calling webhook "pod.inject.cninfra.io"' in answer["message"]
    # Fail holds for every pod the webhook matches, whether it asked or not.
    status, _ = create_pod(webhook_api, ns, app_pod("plain"))
    assert status == 500

    operator.start()
    assert containers(created(webhook_api, ns, app_pod("admitted", INJECT)))[0] == \
        "cninfra-sidecar"
    assert containers(created(webhook_api, ns, app_pod("plain"))) == ["app"]
