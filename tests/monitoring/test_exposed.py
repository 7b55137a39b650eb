"""Every metric the alerts and the dashboard name is one a running sidecar serves: a real
``sidecar run`` with every plugin on (etcd, Kafka with a status topic, the process
manager, the supervisor with a program, the fleet view, the k8s plugin against a real
kube-apiserver) is scraped, and the names are compared. The exposition also passes
``promtool check metrics`` (Prometheus' own naming and type conventions)."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._wait import wait_until
from tests.k8s.cluster import PodEnv
from tests.monitoring.monitoring import (
    alert_rules,
    dashboard,
    dashboard_queries,
    metric_names,
    promtool,
)
from tests.servers.etcd import EtcdServer
from tests.servers.kafka import KafkaBroker
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess, request

#: prometheus_client's own families (default-registry: true): the sidecar's process.
GLOBAL_PREFIXES = ("process_", "python_")


@pytest.fixture(scope="module")
def exposition(etcd_server: EtcdServer, kube_apiserver: KubeApiServer,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``GET /metrics`` of a sidecar with every plugin on, once all are OK and each kind
    of series has a sample (a log level changed for a while, requests answered)."""
    directory = tmp_path_factory.mktemp("exposed")
    config = directory / "config"
    config.mkdir()
    templates = directory / "templates"
    templates.mkdir()
    pod = PodEnv(kube_apiserver, directory)
    pod.write_k8s_conf(config)
    with KafkaBroker() as kafka:
        files = {
            "etcd": {"endpoints": [etcd_server.endpoint], "dial-timeout": "1s"},
            "kafka": {"addrs": [kafka.bootstrap],
                      "status-topic": f"cninfra-status-{uuid.uuid4().hex[:8]}"},
            "process-manager": {"template-path": str(templates)},
            "supervisor": {"programs": [{
                "name": "web", "executable-path": sys.executable,
                "executable-args": ["-c", "import time; time.sleep(3600)"]}]},
            "fleet": {"enabled": True},
            "statuscheck": {"probe-interval": "200ms"},
        }
        for name, content in files.items():
            (config / f"{name}.conf").write_text(json.dumps(content))
        proc = SidecarProcess(config, env=pod.env())
        try:
            proc.start(timeout=30)

            def every_plugin_ok() -> bool:
                status, body = proc.get("/readiness")
                plugins = body.get("plugins", {}) if isinstance(body, dict) else {}
                wanted = {"etcd", "kafka", "k8s", "fleet", "process-manager", "supervisor",
                          "program:web"}
                return status == 200 and wanted <= set(plugins) and all(
                    p["state"] == 1 for p in plugins.values())

            wait_until(every_plugin_ok, 60, "every plugin OK")
            status, _ = request("PUT", proc.url + "/log/sidecar.kafka/debug?ttl=1h")
            assert status == 200
            proc.get("/metrics")  # the request metrics of /metrics itself, for the next one
            status, text = proc.get("/metrics")
            assert status == 200, text
            yield str(text)
        finally:
            proc.kill()


def served(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_every_metric_of_the_alerts_and_the_dashboard_is_served(exposition: str) -> None:
    names = served(exposition)
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(rule["alert"])
    for query in dashboard_queries(dashboard()):
        for name in metric_names(query):
            used.setdefault(name, set()).add("the dashboard")
    assert len(used) >= 20  # the lexer found them
    missing = {name: sorted(where) for name, where in used.items() if name not in names}
    assert not missing, f"named but not served: {missing}"


def test_the_exposition_passes_promtool_check_metrics(exposition: str) -> None:
    done = promtool("check", "metrics", stdin=exposition)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_family_is_cninfra_and_none_has_created_samples(exposition: str) -> None:
    families = {family.name for family in text_string_to_metric_families(exposition)}
    ours = {name for name in families if not name.startswith(GLOBAL_PREFIXES)}
    assert all(name.startswith("cninfra_") for name in ours), sorted(ours)
    assert not [name for name in served(exposition) if name.endswith("_created")]
    # Every plugin's families are there (each comes only with its plugin).
    prefixes = ("cninfra_agent_", "cninfra_plugin_", "cninfra_http_", "cninfra_status_publish_",
                "cninfra_kafka_", "cninfra_program_", "cninfra_supervisor_", "cninfra_fleet_",
                "cninfra_k8s_", "cninfra_log_level_")
    assert [p for p in prefixes if not any(n.startswith(p) for n in ours)] == []


def test_the_lexer_sees_every_cninfra_name_of_the_rules() -> None:
    """metric_names against a plain search: no name of ours slips past the lexer."""
    for rule in alert_rules():
        assert metric_names(rule["expr"]) == set(re.findall(r"\bcninfra_\w+", rule["expr"]))


def test_promtool_check_metrics_has_teeth() -> None:
    done = promtool("check", "metrics",
                    stdin="# HELP jobs Jobs.\n# TYPE jobs counter\njobs 1\n")
    assert done.returncode != 0
    assert "counter metrics should have \"_total\" suffix" in done.stdout + done.stderr
