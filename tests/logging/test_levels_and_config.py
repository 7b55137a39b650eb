"""Level names as cn-infra spells them, and logs.conf checking."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sidecar.builder import Options, build
from sidecar.config import ConfigError, ConfigSources, ConfigValueError
from sidecar.logging import InvalidLevelError, level_name, parse_level
from sidecar.logging.logmanager import LogsConfig
from tests.logging.samples import CN_INFRA_LOGS_CONF


@pytest.mark.parametrize(("name", "level"), [
    ("trace", 5), ("debug", logging.DEBUG), ("info", logging.INFO), ("warn", logging.WARNING),
    ("warning", logging.WARNING), ("error", logging.ERROR), ("fatal", logging.CRITICAL),
    ("panic", 60), ("DEBUG", logging.DEBUG), (" Info ", logging.INFO),
])
def test_cn_infra_names_map_onto_python_levels(name: str, level: int) -> None:
    assert parse_level(name) == level


def test_levels_are_shown_with_cn_infra_names() -> None:
    assert [level_name(n) for n in (5, 10, 20, 30, 40, 50, 60)] == [
        "trace", "debug", "info", "warning", "error", "fatal", "panic"]
    assert level_name(15) == "15"
    assert logging.getLevelName(5) == "TRACE"


def test_bad_level_names_the_valid_ones() -> None:
    with pytest.raises(InvalidLevelError) as caught:
        parse_level("verbose", "INITIAL_LOGLVL")
    message = str(caught.value)
    assert message.startswith("INITIAL_LOGLVL: unknown log level 'verbose'")
    for name in ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"):
        assert name in message


def load_logs(tmp_path: Path, text: str) -> LogsConfig:
    (tmp_path / "logs.conf").write_text(text)
    return ConfigSources.from_env(tmp_path, env={}).load("logs", LogsConfig)


def test_logs_conf_as_cn_infra_writes_it(tmp_path: Path) -> None:
    config = load_logs(tmp_path, "default-level: debug\nloggers:\n"
                                 "  - name: sidecar.etcd\n    level: warn\n")
    assert config.default_level == "debug"
    assert [(e.name, e.level) for e in config.loggers] == [("sidecar.etcd", "warn")]


def test_a_cn_infra_agents_logs_conf_loads(tmp_path: Path) -> None:
    config = load_logs(tmp_path, CN_INFRA_LOGS_CONF)
    assert config.default_level == "debug"
    assert [(e.name, e.level) for e in config.loggers] == [
        ("vpp-agent", "warn"), ("examplechild", "error")]
    assert sorted(config.hooks) == ["fluent", "logstash", "syslog"]
    assert config.hooks["logstash"].levels == ["error", "fatal"]
    assert load_logs(tmp_path, "DefaultLevel: warn\n").default_level == "warn"


@pytest.mark.parametrize(("text", "where", "reason"), [
    ("default-level: loud\n", "default-level", "unknown log level 'loud'"),
    ("loggers:\n  - name: a\n    level: chatty\n", "loggers[0]", "unknown log level 'chatty'"),
    ("loggers:\n  - name: a\n", "loggers[0].level", "required key is missing"),
    ("loggers:\n  - {name: a, level: info}\n  - {name: a, level: debug}\n", "",
     "'a' is listed twice"),
    ("loggers:\n  - {name: root, level: debug}\n", "", "the root logger's level is default-level"),
    ("default-levle: info\n", "default-levle", "did you mean 'default-level'"),
])
def test_bad_logs_conf_names_file_key_and_reason(tmp_path: Path, text: str, where: str,
                                                 reason: str) -> None:
    with pytest.raises(ConfigValueError) as caught:
        load_logs(tmp_path, text)
    message = str(caught.value)
    assert "logs.conf" in message
    assert where in message
    assert reason in message


def test_bad_initial_loglvl_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="INITIAL_LOGLVL: unknown log level 'loud'"):
        build(Options(config_dir=str(tmp_path), env={"INITIAL_LOGLVL": "loud"}))
    with pytest.raises(ConfigError, match="--log-level: unknown log level"):
        build(Options(config_dir=str(tmp_path), log_level="x", env={}))
