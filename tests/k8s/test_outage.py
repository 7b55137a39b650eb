"""The API server going away: the probes keep answering, and the Pod catches up after."""

from __future__ import annotations

from pathlib import Path

from tests.k8s.cluster import PodEnv, wait_for
from tests.k8s.test_pod_status import plugin_error, start_sidecar, write_etcd_conf
from tests.probes import ProbePoller
from tests.servers.etcd import EtcdServer
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess


def k8s_state(proc: SidecarProcess) -> int | None:
    body = proc.get("/readiness")[1]
    return body["plugins"]["k8s"]["state"] if isinstance(body, dict) else None


def test_apiserver_outage_never_breaks_the_probes_and_the_pod_catches_up(
        own_kube_apiserver: KubeApiServer, own_etcd: EtcdServer, config_dir: Path,
        tmp_path: Path, sidecars: list[SidecarProcess]) -> None:
    api = own_kube_apiserver
    env = PodEnv(api, tmp_path)
    env.write_k8s_conf(config_dir, error_grace="2s",
                       status={"min-interval": "1s", "max-backoff": "2s"})
    write_etcd_conf(config_dir, own_etcd)
    proc = start_sidecar(config_dir, env, sidecars)
    wait_for(lambda: env.shown() == ("OK", "True"), 15, "the Pod showing OK")

    with ProbePoller(proc.url) as probes:
        api.stop()
        # A change while the API server is away: the Pod cannot show it yet.
        own_etcd.stop()
        wait_for(lambda: plugin_error(proc, "etcd"), 15, "the etcd plugin ERROR")
        # After error-grace of failed writes the k8s plugin says so itself.
        wait_for(lambda: k8s_state(proc) == 2, 10, "the k8s plugin ERROR")
        k8s_error = proc.get("/readiness")[1]["plugins"]["k8s"]["error"]
        assert "PATCH" in k8s_error or "GET" in k8s_error

        api.start()
        # etcd only reports: the annotations show its outage, the condition stays True.
        wait_for(lambda: env.shown() == ("ERROR", "True"), 15, "the Pod catching up")
        wait_for(lambda: k8s_state(proc) == 1, 5, "the k8s plugin OK again")
        # What the Pod shows is the etcd outage, never the sidecar's own API outage.
        detail = env.detail()
        assert detail["plugins"]["k8s"]["state"] == 1
        assert detail["plugins"]["etcd"]["state"] == 2
        message = env.condition()["message"]  # type: ignore[index]
        assert message.startswith("all ") and "; not counted: etcd: " in message, message

        own_etcd.start()
        wait_for(lambda: env.shown() == ("OK", "True"), 15, "the Pod showing OK again")

    # Within the kubelet's 1 s, well below the 5 s request-timeout of an API call.
    probes.assert_always_answered()
    assert len(probes.snapshot("/liveness")) > 20
    # k8s and etcd only report: neither probe ever failed for them.
    assert probes.statuses("/liveness") == {200}
    assert probes.statuses("/readiness") == {200}
    # No Event ever blamed the sidecar's own API outage.
    messages = [e["message"] for e in env.events("AgentError")]
    assert messages
    assert not [m for m in messages if "k8s:" in m], messages
    assert proc.stop() == 0
