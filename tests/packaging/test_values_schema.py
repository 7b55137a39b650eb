"""The chart's values.schema.json checks config.*, k8s.config and supervisor's programs and
hooks key by key, from the same dataclasses the sidecar decodes (scripts/values-schema.py):
a misspelt key fails ``helm template`` with its path, and the schema cannot go stale."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from sidecar.builder import CONFIG_FILES, ConfigFile, example_config_dir
from tests.packaging.render import REPO, HelmError, find, helm_template

SCRIPT = REPO / "scripts" / "values-schema.py"
OPTIONAL = example_config_dir().parent / "optional"


def load_script() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("values_schema", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_schema_is_what_the_script_writes() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@dataclass(frozen=True)
class GrownHTTP:
    """http.conf with one key more, as a new release would have it."""

    endpoint: str = "0.0.0.0:9191"
    #: A key added after the schema was written.
    brand_new_key: int = 3


def test_a_new_config_key_makes_the_schema_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    script = load_script()
    current = script.SCHEMA.read_text(encoding="utf-8")
    module = types.ModuleType("grown_config")
    module.GrownHTTP = GrownHTTP  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "grown_config", module)
    grown = tuple(ConfigFile(f.name, "grown_config:GrownHTTP", f.summary, f.without)
                  if f.name == "http" else f for f in CONFIG_FILES)
    monkeypatch.setattr(script, "CONFIG_FILES", grown)
    wanted = script.render(script.generate(json.loads(current)))
    assert wanted != current
    http = json.loads(wanted)["properties"]["config"]["properties"]["http"]
    assert http["properties"]["brand-new-key"] == {
        "type": "integer", "description": "A key added after the schema was written.",
        "default": 3}


@pytest.mark.parametrize(("set_value", "message"), [
    ("config.http.admin-alow=10.0.0.0/8", "at '/config/http': additional properties "
                                          "'admin-alow' not allowed"),
    ("config.etdc.endpoints=x", "at '/config': additional properties 'etdc' not allowed"),
    ("config.statuscheck.probe-interval=often",
     "at '/config/statuscheck/probe-interval': 'often' does not match pattern"),
    ("config.metrics.enabled=maybe", "at '/config/metrics/enabled': got string, want boolean"),
    ("config.etcd.tls.ca-fil=/x", "at '/config/etcd/tls': additional properties 'ca-fil'"),
    ("config.process-manager.reap-zombies=sometimes",
     "at '/config/process-manager/reap-zombies': value must be one of"),
    ("k8s.config.events.per-minut=3", "at '/k8s/config/events': additional properties "
                                      "'per-minut' not allowed"),
    ("supervisor.programs[0].executable-path=/bin/true,supervisor.programs[0].restars=3",
     "at '/supervisor/programs/0': additional properties 'restars' not allowed"),
    ("config.logs.Defaul-Level=debug", "at '/config/logs': additional properties "
                                       "'Defaul-Level' not allowed"),
])
def test_a_misspelt_config_key_fails_helm_with_its_path(set_value: str, message: str) -> None:
    with pytest.raises(HelmError) as err:
        helm_template(set_values=[set_value])
    assert "values don't meet the specifications of the schema" in err.value.stderr
    assert message in err.value.stderr


def example(name: str) -> Any:
    for directory in (example_config_dir(), OPTIONAL):
        path = directory / f"{name}.conf"
        if path.exists():
            return yaml.safe_load(path.read_text())
    return None


def test_every_example_config_file_passes_the_schema() -> None:
    config = {f.name: example(f.name) for f in CONFIG_FILES
              if f.name not in ("supervisor", "k8s") and example(f.name) is not None}
    assert {"http", "etcd", "kafka", "logs", "fleet"} <= set(config)
    supervisor = example("supervisor")
    docs = helm_template({"config": config, "k8s": {"config": example("k8s")},
                          "supervisor": {"programs": supervisor["programs"],
                                         "hooks": supervisor.get("hooks", [])}})
    data = find(docs, "ConfigMap", "demo-cninfra-sidecar-config")["data"]
    assert yaml.safe_load(data["etcd.conf"]) == config["etcd"]
    # cn-infra's spelling of logs.conf keys passes too (the sidecar reads any case).
    helm_template({"config": {"logs": {"default-level": None, "DefaultLevel": "debug",
                                       "Loggers": [{"Name": "a", "Level": "info"}]}}})

