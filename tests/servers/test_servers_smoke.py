"""Smoke tests: the real test servers start and do their job.

Nothing here is skipped: a server that was not provisioned makes its test
fail (run `make test`, or scripts/provision/all.sh).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tests.servers._util import provisioned
from tests.servers.kafka import KafkaBroker
from tests.servers.kube import KubeApiServer

# -- Kafka ------------------------------------------------------------------


@pytest.fixture(scope="module")
def kafka() -> Iterator[KafkaBroker]:
    with KafkaBroker(properties={"message.max.bytes": 2_000_000}) as broker:
        yield broker


async def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2_000_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def _consume_one(bootstrap: str, topic: str, group: str | None) -> bytes:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        fetch_max_bytes=4_000_000,
        max_partition_fetch_bytes=4_000_000,
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), timeout=30)
        value: bytes | None = msg.value  # aiokafka has no type hints
        assert value is not None
        return value
    finally:
        await consumer.stop()


def test_kafka_produce_consume_and_restart(kafka: KafkaBroker) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    # Bigger than the 1 MB broker default: proves message.max.bytes applied.
    value = b"x" * 1_500_000
    asyncio.run(_produce(kafka.bootstrap, topic, value))
    assert asyncio.run(_consume_one(kafka.bootstrap, topic, group="smoke")) == value

    bootstrap = kafka.bootstrap
    kafka.restart()
    assert kafka.bootstrap == bootstrap
    # The data survived the restart (read without a group: from the start).
    assert asyncio.run(_consume_one(kafka.bootstrap, topic, group=None)) == value

    kafka.restart(hard=True)
    asyncio.run(_produce(kafka.bootstrap, topic, b"after-kill"))


# -- Kubernetes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeApiServer]:
    with KubeApiServer() as server:
        yield server


def _api_client(kubeconfig: Path) -> k8s.ApiClient:
    conf = k8s.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]  # kubernetes leaves it untyped
        config_file=str(kubeconfig), client_configuration=conf)
    return k8s.ApiClient(conf)


def _pod(name: str) -> k8s.V1Pod:
    return k8s.V1Pod.model_validate({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "smoke"}},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
    })


def test_kube_pod_and_rbac(kube: KubeApiServer, tmp_path: Path) -> None:
    ns = "smoke"
    admin_kc = kube.write_kubeconfig(tmp_path / "admin.kubeconfig")
    with _api_client(admin_kc) as api:
        core = k8s.CoreV1Api(api)
        core.create_namespace(k8s.V1Namespace.model_validate(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        # No kubelet and no controller manager: the Pod is an object only.
        core.create_namespaced_pod(ns, _pod("web-0"))
        pod = core.read_namespaced_pod("web-0", ns)
        assert pod.metadata is not None and pod.metadata.labels == {"app": "smoke"}
        assert pod.status is not None and pod.status.phase == "Pending"

        # A ServiceAccount that may read Pods, but not delete them.
        rbac = k8s.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            ns,
            k8s.V1Role.model_validate({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "pod-reader"},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
                ],
            }),
        )
        token = kube.create_token(ns, "reader")
        rbac.create_namespaced_role_binding(
            ns,
            k8s.V1RoleBinding.model_validate({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "pod-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
            }),
        )

    sa_kc = kube.write_kubeconfig(tmp_path / "reader.kubeconfig", token, namespace=ns)
    with _api_client(sa_kc) as api:
        core = k8s.CoreV1Api(api)
        # The token authenticates as the ServiceAccount...
        status, review = kube.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            token=token,
        )
        assert status == 201, review
        assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:reader"
        # ...RBAC lets it read the Pod...
        meta = core.read_namespaced_pod("web-0", ns).metadata
        assert meta is not None and meta.name == "web-0"
        # ...and denies deleting it.
        with pytest.raises(ApiException) as denied:
            core.delete_namespaced_pod("web-0", ns)
        assert denied.value.status == 403
        # A token that is not a ServiceAccount's is not even authenticated.
        status, _ = kube.request("GET", f"/api/v1/namespaces/{ns}/pods", token="bogus")
        assert status == 401

    # Same port, same data, and the ServiceAccount token still valid.
    url = kube.url
    kube.restart()
    assert kube.url == url
    status, pod_json = kube.request("GET", f"/api/v1/namespaces/{ns}/pods/web-0", token=token)
    assert status == 200, pod_json


# -- helm -----------------------------------------------------------------------


def test_helm_runs(kube: KubeApiServer, tmp_path: Path) -> None:
    # HOME-independent state dirs, so that helm writes nothing outside tmp.
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }
    binary = provisioned("helm", "CNINFRA_HELM", "scripts/provision/helm.sh")

    def helm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(binary), *args], check=False, env=env,
                              capture_output=True, text=True, timeout=60)

    version = helm("version", "--short")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("v3."), version.stdout

    # And it talks to the test cluster.
    kc = kube.write_kubeconfig(tmp_path / "admin.kubeconfig")
    listed = helm("list", "--all-namespaces", "--output", "json", "--kubeconfig", str(kc))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
