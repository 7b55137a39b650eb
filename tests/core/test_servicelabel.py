"""Where the microservice label comes from, and which labels are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.servicelabel import (
    InvalidLabelError,
    ServiceLabelConfig,
    ServiceLabelPlugin,
    resolve_label,
)


def labels_file(tmp_path: Path, text: str) -> ServiceLabelConfig:
    path = tmp_path / "labels"
    path.write_text(text)
    return ServiceLabelConfig(labels_file=str(path), label_key="cninfra.io/microservice-label")


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    config = labels_file(tmp_path, 'app="web"\ncninfra.io/microservice-label="from-file"\n')
    env = {"MICROSERVICE_LABEL": "from-env"}
    assert resolve_label(config, "from-flag", env)[0] == "from-flag"
    assert resolve_label(config, None, env)[0] == "from-env"
    assert resolve_label(config, None, {})[0] == "from-file"
    no_file = ServiceLabelConfig(labels_file=str(tmp_path / "none"), default="fallback")
    assert resolve_label(no_file, None, {})[0] == "fallback"


def test_downward_api_quoting_is_undone(tmp_path: Path) -> None:
    config = labels_file(tmp_path, 'cninfra.io/microservice-label="say\\"hi\\""\n')
    assert resolve_label(config, None, {})[0] == 'say"hi"'


@pytest.mark.parametrize(("label", "problem"), [
    ("", "is empty"),
    ("a/b", "must not contain '/'"),
    ("x" * 254, "254 characters long; the limit is 253"),
    ("has space", "must not contain spaces"),
])
def test_bad_labels_are_refused_with_the_reason(label: str, problem: str) -> None:
    with pytest.raises(InvalidLabelError, match=problem) as info:
        resolve_label(ServiceLabelConfig(), None, {"MICROSERVICE_LABEL": label})
    assert "MICROSERVICE_LABEL" in str(info.value)


def test_prefixes() -> None:
    plugin = ServiceLabelPlugin("vpp1")
    assert plugin.agent_label() == "vpp1"
    assert plugin.agent_prefix() == "/vnf-agent/vpp1/"
    assert plugin.different_agent_prefix("vpp2") == "/vnf-agent/vpp2/"
    assert plugin.all_agents_prefix() == "/vnf-agent/"
