"""The k8s plugin's pure logic: what the Pod shows, rate limits, health, config, ConfigMaps."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import sidecar.k8s
from sidecar.builder import Options, build
from sidecar.config import ConfigError, ConfigSources, ConfigValueError
from sidecar.health.statuscheck import PluginState, StatusCheck
from sidecar.k8s import (
    DETAIL_ANNOTATION,
    READY_CONDITION,
    STATUS_ANNOTATION,
    ApiError,
    ApiUnavailableError,
    ConfigMapApplier,
    K8sConfig,
    PodStatus,
    PodStatusConfig,
    TokenBucket,
    enabled,
    in_cluster,
    pod_name,
)
from sidecar.k8s._credentials import find_credentials, in_cluster_credentials
from sidecar.k8s._health import ApiHealth
from sidecar.k8s._operator import _agent_keeps_signals, _ForeverBackoffs
from sidecar.k8s.podstatus import patch_body
from tests._wait import until
from tests.servers._util import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "optional" / "k8s.conf"


def test_public_api_is_complete() -> None:
    exported = set(sidecar.k8s.__all__)
    assert exported == {n for n, v in vars(sidecar.k8s).items()
                        if not n.startswith("_") and not isinstance(v, types.ModuleType)}


# -- what the Pod shows ----------------------------------------------------------------


def status_with(*plugins: tuple[str, PluginState, str | None]) -> StatusCheck:
    check = StatusCheck()
    for name, state, error in plugins:
        check.report_state_change(name, state, error)
    check.mark_started()
    return check


def test_pod_status_of_an_agent_in_error_names_the_failing_plugins() -> None:
    check = status_with(("etcd", PluginState.OK, None),
                        ("kafka", PluginState.ERROR, "no broker reachable"))
    shown = PodStatus.of(check.agent_status())
    assert shown.state == "ERROR"
    assert shown.ready is False
    assert shown.reason == "ReadinessError"
    assert shown.message == "kafka: no broker reachable"
    assert shown.summary == "kafka: no broker reachable"
    detail = json.loads(shown.detail)
    assert detail["state"] == 2
    assert detail["plugins"]["kafka"]["error"] == "no broker reachable"
    assert "last_update" not in shown.detail  # a refresh must not make a new PATCH


def test_pod_status_of_ok_and_starting_agents() -> None:
    ok = PodStatus.of(status_with(("etcd", PluginState.OK, None)).agent_status())
    assert (ok.state, ok.ready, ok.reason, ok.message) == (
        "OK", True, "ReadinessOK", "all 1 plugins are OK")
    starting = StatusCheck()
    starting.register("kafka")
    init = PodStatus.of(starting.agent_status())
    assert (init.state, init.ready, init.message) == ("INIT", False, "waiting for kafka")


def test_the_condition_follows_the_readiness_group_and_the_annotations_every_plugin() -> None:
    check = StatusCheck()
    check.register("etcd", groups=())  # only reports
    check.register("program:web", fatal=False)
    check.report_state_change("etcd", PluginState.ERROR, "etcd unreachable")
    check.report_state_change("program:web", PluginState.OK)
    check.mark_started()
    shown = PodStatus.of(check.agent_status())
    assert (shown.state, shown.ready, shown.reason) == ("ERROR", True, "ReadinessOK")
    assert shown.message == "all 1 plugins are OK; not counted: etcd: etcd unreachable"
    assert json.loads(shown.detail)["plugins"]["etcd"]["error"] == "etcd unreachable"
    assert shown.summary == "etcd: etcd unreachable"  # what an AgentError Event says
    check.report_state_change("program:web", PluginState.ERROR, "crash-looping")
    shown = PodStatus.of(check.agent_status())
    assert (shown.ready, shown.reason) == (False, "ReadinessError")
    assert shown.message == "program:web: crash-looping; not counted: etcd: etcd unreachable"


def test_long_errors_are_clipped() -> None:
    check = status_with(("a", PluginState.ERROR, "x" * 5000))
    shown = PodStatus.of(check.agent_status())
    assert len(shown.message) == 1024
    assert len(json.loads(shown.detail)["plugins"]["a"]["error"]) == 256


def test_a_patch_makes_the_pod_show_the_status_and_only_enabled_parts_are_compared() -> None:
    desired = PodStatus.of(status_with(("etcd", PluginState.ERROR, "down")).agent_status())
    body = patch_body(desired, "2026-01-01T00:00:00Z")
    pod = {"metadata": body["metadata"], "status": body["status"]}
    assert PodStatus.from_pod(pod) == desired
    assert body["status"]["conditions"][0]["type"] == READY_CONDITION
    assert set(body["metadata"]["annotations"]) == {STATUS_ANNOTATION, DETAIL_ANNOTATION}

    only_condition = desired.limited_to(PodStatusConfig(annotations=False))
    assert "metadata" not in patch_body(only_condition, "t")
    only_annotations = desired.limited_to(PodStatusConfig(condition=False))
    assert "status" not in patch_body(only_annotations, "t")
    assert PodStatus.from_pod({}).limited_to(PodStatusConfig()) == PodStatus()


# -- rate limit and health ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(per_minute=6, burst=3, clock=clock)
    assert [bucket.take() for _ in range(5)] == [True, True, True, False, False]
    clock.now += 10  # 6 a minute: one more token every 10 s
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 3600
    assert sum(bucket.take() for _ in range(10)) == 3  # never more than the burst


def test_api_health_is_error_from_the_first_failed_call_until_one_succeeds() -> None:
    check = StatusCheck()
    health = ApiHealth(check, "k8s")

    def failing() -> bool:  # not the property itself: mypy would keep it narrowed across steps
        return health.failing

    health.failed(ApiUnavailableError("PATCH", "/p", 0, "connection refused"))
    status = check.plugin_status("k8s")
    assert status is not None and status.state is PluginState.ERROR
    assert status.error == "PATCH /p: connection refused"
    assert failing()
    health.ok()
    assert check.plugin_status("k8s").state is PluginState.OK  # type: ignore[union-attr]
    assert not failing()


async def test_error_grace_is_the_k8s_checks_grace_in_the_groups_that_count_it(
        config_dir: Path) -> None:
    # An API server nobody listens on: the first read of the Pod fails at once.
    kubeconfig = config_dir / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    (config_dir / "k8s.conf").write_text(
        f"kubeconfig: {kubeconfig}\npod-name: p\nnamespace: ns\nerror-grace: 3s\n")
    (config_dir / "statuscheck.conf").write_text("liveness:\n  include: [k8s]\n")
    (config_dir / "http.conf").write_text("endpoint: 127.0.0.1:0\n")
    sidecar = build(Options(config_dir=str(config_dir), env={}))
    async with sidecar.agent():
        check = sidecar.statuscheck

        def k8s_error() -> str | None:
            status = check.plugin_status("k8s")
            return status.error if status is not None and status.state is PluginState.ERROR \
                else None

        await until(k8s_error, 10, "the k8s plugin ERROR")
        status = check.agent_status()
        assert status.state is PluginState.ERROR  # in the status at once
        assert status.live and "k8s" in status.groups["liveness"].in_grace
        assert not status.groups["readiness"].in_grace  # readiness does not count k8s
        await until(lambda: not check.agent_status().live, 10, "liveness down after 3 s")


def test_api_errors_say_whether_a_retry_may_help() -> None:
    assert ApiUnavailableError("GET", "/x", 0, "refused").retryable
    assert ApiError("PATCH", "/x", 409, "conflict").retryable
    assert ApiError("PATCH", "/x", 503, "unavailable").retryable
    assert not ApiError("PATCH", "/x", 403, "forbidden").retryable
    assert not ApiError("GET", "/x", 404, "not found").retryable
    assert str(ApiError("GET", "/x", 404, "not found")) == "GET /x: 404 not found"


# -- config and enabling ---------------------------------------------------------------


def service_account(tmp_path: Path, token: str = "t0k3n") -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir(exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_text("")
    (directory / "namespace").write_text("shop\n")
    return directory


def test_the_example_k8s_conf_loads_and_unknown_keys_are_named(tmp_path: Path) -> None:
    sources = ConfigSources.from_env(None, {"k8s": EXAMPLE}, {})
    config = sources.load("k8s", K8sConfig)
    assert config.configmap.name == "demo-cninfra-sidecar-programs"
    assert config.status.min_interval == 1.0
    assert config.events.per_minute == 12

    bad = tmp_path / "k8s.conf"
    bad.write_text("status:\n  min-intreval: 2s\n")
    with pytest.raises(ConfigValueError, match=r"status\.min-intreval: unknown key .*min-interval"):
        ConfigSources.from_env(None, {"k8s": bad}, {}).load("k8s", K8sConfig)
    bad.write_text("events:\n  per-minute: 0\n")
    with pytest.raises(ConfigValueError, match="per-minute must be at least 1"):
        ConfigSources.from_env(None, {"k8s": bad}, {}).load("k8s", K8sConfig)


def test_enabled_in_a_cluster_or_by_k8s_conf(tmp_path: Path) -> None:
    sa = str(service_account(tmp_path))
    cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert in_cluster(cluster, sa)
    assert not in_cluster({}, sa)
    assert not in_cluster(cluster, str(tmp_path / "nowhere"))
    assert not enabled(None, {})
    assert enabled(K8sConfig(), {})
    assert not enabled(K8sConfig(enabled=False), cluster)


def test_pod_name_from_conf_env_or_an_error() -> None:
    assert pod_name(K8sConfig(), {"POD_NAME": "web-0"}) == "web-0"
    assert pod_name(K8sConfig(pod_name="web-1"), {"POD_NAME": "web-0"}) == "web-1"
    with pytest.raises(ConfigError, match="POD_NAME"):
        pod_name(K8sConfig(), {})


def test_in_cluster_credentials_follow_a_rotated_token(tmp_path: Path) -> None:
    directory = service_account(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    credentials = in_cluster_credentials(str(directory), env)
    assert credentials.server == "https://[fd00::1]:6443"
    assert credentials.namespace == "shop"
    assert credentials.bearer_token() == "t0k3n"
    (directory / "token").write_text("rotated-and-longer")
    assert credentials.bearer_token() == "rotated-and-longer"
    config = K8sConfig(service_account_dir=str(directory))
    assert find_credentials(config, env).server == "https://[fd00::1]:6443"


def test_no_credentials_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(sidecar.k8s.CredentialsError, match="no Kubernetes credentials"):
        find_credentials(K8sConfig(service_account_dir=str(tmp_path)), {})
    with pytest.raises(sidecar.k8s.CredentialsError, match=r"missing\.kubeconfig: no such file"):
        find_credentials(K8sConfig(kubeconfig=str(tmp_path / "missing.kubeconfig")), {})


def test_a_kubeconfig_without_the_kubernetes_client_names_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As installed in the image, which leaves the kubeconfig extra out.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ImportError
    with pytest.raises(sidecar.k8s.CredentialsError,
                       match=r"needs the Kubernetes client: pip install "
                             r"'cninfra-sidecar\[kubeconfig\]'"):
        find_credentials(K8sConfig(kubeconfig=str(kubeconfig)), {})


def test_builder_turns_the_plugin_on_with_k8s_conf_or_in_a_cluster(
        tmp_path: Path, config_dir: Path) -> None:
    env = {"POD_NAME": "web-0", "POD_NAMESPACE": "shop"}
    assert build(Options(config_dir=str(config_dir), env=env)).k8s is None
    (config_dir / "k8s.conf").write_text("enabled: true\n")
    built = build(Options(config_dir=str(config_dir), env=env))
    assert built.k8s is not None
    assert built.k8s in built.plugins
    (config_dir / "k8s.conf").write_text("enabled: false\n")
    assert build(Options(config_dir=str(config_dir), env=env)).k8s is None
    (config_dir / "k8s.conf").unlink()
    sa = service_account(tmp_path)
    in_pod = {**env, "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    (config_dir / "k8s.conf").write_text(f"service-account-dir: {sa}\n")
    assert build(Options(config_dir=str(config_dir), env=in_pod)).k8s is not None


def test_a_configmap_without_a_supervisor_is_a_config_error(config_dir: Path) -> None:
    (config_dir / "k8s.conf").write_text("configmap:\n  name: programs\n")
    with pytest.raises(ConfigError, match="supervisor is not enabled"):
        build(Options(config_dir=str(config_dir), env={"POD_NAME": "web-0"}))


def test_programs_configmap_env_wins_over_k8s_conf(config_dir: Path) -> None:
    """What the operator sets for a pod annotated cninfra.io/programs-configmap."""
    (config_dir / "k8s.conf").write_text("configmap:\n  name: programs\n")
    (config_dir / "supervisor.conf").write_text("programs: []\n")
    env = {"POD_NAME": "web-0", "PROGRAMS_CONFIGMAP": "my-programs"}
    built = build(Options(config_dir=str(config_dir), env=env))
    assert built.k8s is not None
    assert built.k8s.config.configmap.name == "my-programs"


# -- ConfigMap events -------------------------------------------------------------------


@dataclass
class Outcome:
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)


class StandInSupervisor:
    """Accepts YAML lists of program names; anything else is a ConfigError."""

    def __init__(self) -> None:
        self.programs: set[str] = set()
        self.reloads: list[str] = []

    async def reload_text(self, text: str, source: str) -> Outcome:
        self.reloads.append(source)
        if not text.startswith("programs:"):
            raise ConfigError(f"{source}: programs: required key is missing")
        wanted = set(text.removeprefix("programs:").split())
        outcome = Outcome(started=sorted(wanted - self.programs),
                          stopped=sorted(self.programs - wanted))
        self.programs = wanted
        return outcome


def configmap(text: str | None, version: str) -> dict[str, Any]:
    data = {} if text is None else {"supervisor.conf": text}
    return {"metadata": {"name": "programs", "resourceVersion": version}, "data": data}


async def test_configmap_texts_are_applied_once_and_bad_ones_change_nothing() -> None:
    supervisor = StandInSupervisor()
    events: list[tuple[str, str, str]] = []
    applier = ConfigMapApplier(supervisor, "shop", "programs", "supervisor.conf",
                               post_event=lambda *e: events.append(e))
    await applier.handle(None, configmap("programs: web", "1"))
    assert supervisor.programs == {"web"}
    assert events[-1][:2] == ("Normal", "ConfigMapApplied")
    assert "started web" in events[-1][2]
    assert "resourceVersion 1" in supervisor.reloads[-1]

    await applier.handle(None, configmap("programs: web", "1"))  # a re-list: nothing to do
    assert len(supervisor.reloads) == 1

    await applier.handle("MODIFIED", configmap("progrms: web", "2"))
    assert supervisor.programs == {"web"}
    assert events[-1][:2] == ("Warning", "ConfigMapRejected")
    assert "programs: required key is missing" in events[-1][2]
    assert "the running programs are kept" in events[-1][2]
    await applier.handle("MODIFIED", configmap("progrms: web", "2"))
    assert applier.rejected == 1  # said once

    await applier.handle("MODIFIED", configmap(None, "3"))
    assert events[-1][1] == "ConfigMapRejected"
    assert "no key 'supervisor.conf'" in events[-1][2]

    await applier.handle("MODIFIED", configmap("programs: web db", "4"))
    assert supervisor.programs == {"web", "db"}
    await applier.handle("DELETED", configmap("programs: web db", "5"))
    assert supervisor.programs == {"web", "db"}
    assert events[-1][:2] == ("Warning", "ConfigMapDeleted")
    assert (applier.applied, applier.rejected) == (2, 2)


# -- kopf's embedding -----------------------------------------------------------------


def test_kopf_retries_forever_with_capped_backoff() -> None:
    backoffs = _ForeverBackoffs((0.5, 1.0, 5.0))
    assert not hasattr(backoffs, "__len__")  # kopf treats a sized one as a retry budget
    first = [d for d, _ in zip(backoffs, range(6), strict=False)]
    again = [d for d, _ in zip(backoffs, range(6), strict=False)]
    assert first == again == [0.5, 1.0, 5.0, 5.0, 5.0, 5.0]


async def test_kopf_cannot_take_the_agents_signal_handlers() -> None:
    loop = asyncio.get_running_loop()
    flag: asyncio.Future[int] = loop.create_future()
    calls: list[int] = []
    try:
        with _agent_keeps_signals(loop):
            loop.add_signal_handler(signal.SIGUSR1, flag.set_result, signal.SIGUSR1)  # kopf's
            loop.add_signal_handler(signal.SIGUSR2, calls.append, 2)  # anyone else's
        assert "add_signal_handler" not in vars(loop)
        assert not loop.remove_signal_handler(signal.SIGUSR1)
        assert loop.remove_signal_handler(signal.SIGUSR2)
    finally:
        flag.cancel()


def test_kopf_is_imported_without_the_kubernetes_client_which_still_imports_after() -> None:
    code = ("import sys\n"
            "from sidecar.k8s._operator import _import_kopf\n"
            "kopf = _import_kopf()\n"
            "assert 'kubernetes' not in sys.modules, 'kopf pulled in the client'\n"
            "assert kopf.OperatorRegistry\n"
            "import kubernetes.client\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "ok", done.stderr


def test_a_sidecar_in_a_pod_imports_no_kubernetes_client(tmp_path: Path) -> None:
    sa = service_account(tmp_path)
    code = ("import sys\n"
            "from sidecar.builder import Options, build\n"
            f"env = {{'KUBERNETES_SERVICE_HOST': '10.0.0.1', 'POD_NAME': 'web-0'}}\n"
            f"(d := __import__('pathlib').Path({str(tmp_path)!r}) / 'cfg').mkdir()\n"
            f"(d / 'k8s.conf').write_text('service-account-dir: {sa}\\n')\n"
            "built = build(Options(config_dir=str(d), env=env))\n"
            "assert built.k8s is not None\n"
            "heavy = [m for m in ('kopf', 'kubernetes') if m in sys.modules]\n"
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
