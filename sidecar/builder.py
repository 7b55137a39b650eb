"""The one place where plugins are wired together into the ready-to-run sidecar.

Every config file is loaded and checked here, before any plugin starts, so a
mistake is reported as one line and nothing is left half-started.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.agent import DEFAULT_START_TIMEOUT, DEFAULT_STOP_TIMEOUT, Agent, Plugin
from sidecar.config import ConfigError, ConfigSources
from sidecar.fleet.config import FleetConfig
from sidecar.health.probe import ProbePlugin
from sidecar.health.statuscheck import StatusCheck, StatusCheckConfig, StatusPublisher
from sidecar.kvstore.etcd.config import EtcdConfig
from sidecar.rest import HTTPConfig, RestPlugin, parse_port
from sidecar.servicelabel import InvalidLabelError, ServiceLabelConfig, ServiceLabelPlugin

#: Config files the sidecar itself reads (``--<name>-config`` flags exist for each).
CONFIG_NAMES = ("http", "servicelabel", "statuscheck", "etcd", "logs", "kafka",
                "process-manager", "supervisor", "k8s", "fleet")


@dataclass(frozen=True)
class Options:
    """What the command line says; anything unset falls back to env, then files."""

    config_dir: str | None = None
    config_files: Mapping[str, str] = field(default_factory=dict)
    http_port: str | None = None
    microservice_label: str | None = None
    env: Mapping[str, str] | None = None
    start_timeout: float = DEFAULT_START_TIMEOUT
    stop_timeout: float = DEFAULT_STOP_TIMEOUT


@dataclass
class Sidecar:
    """The built plugins, reachable by name for tests and for programs that embed them."""

    rest: RestPlugin
    servicelabel: ServiceLabelPlugin
    statuscheck: StatusCheck
    probe: ProbePlugin
    etcd: Plugin | None = None
    plugins: list[Plugin] = field(default_factory=list)
    options: Options = field(default_factory=Options)

    def agent(self, *extra: Plugin) -> Agent:
        agent = Agent(*self.plugins, *extra, start_timeout=self.options.start_timeout,
                      stop_timeout=self.options.stop_timeout)
        agent.on_started(self.statuscheck.mark_started)
        return agent


def build(options: Options | None = None) -> Sidecar:
    """Load and check all config, construct the plugins; raise ConfigError on bad input."""
    options = options or Options()
    env = dict(os.environ) if options.env is None else dict(options.env)
    sources = ConfigSources.from_env(options.config_dir, options.config_files, env)
    if sources.config_dir is not None and not sources.config_dir.is_dir():
        raise ConfigError(f"config dir {sources.config_dir}: no such directory")

    http = sources.load("http", HTTPConfig)
    port_text, port_source = _first(
        (options.http_port, "--http-port"), (env.get("HTTP_PORT"), "HTTP_PORT"))
    if port_text is not None:
        try:
            http = http.with_port(parse_port(port_text, port_source))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    label_config = sources.load("servicelabel", ServiceLabelConfig)
    try:
        servicelabel = ServiceLabelPlugin.from_config(
            label_config, options.microservice_label, env)
    except InvalidLabelError as exc:
        raise ConfigError(str(exc)) from None

    statuscheck = StatusCheck(sources.load("statuscheck", StatusCheckConfig))
    try:
        rest = RestPlugin(http)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    probe = ProbePlugin(rest, statuscheck)
    plugins: list[Plugin] = [servicelabel, statuscheck, rest, probe]

    etcd_plugin: Plugin | None = None
    etcd_config = sources.load_optional("etcd", EtcdConfig)
    if etcd_config is not None:
        from sidecar.kvstore.etcd import EtcdPlugin

        etcd = EtcdPlugin(etcd_config, statuscheck)
        publisher = StatusPublisher(statuscheck, etcd, servicelabel.agent_prefix)
        plugins += [etcd, publisher]
        etcd_plugin = etcd

    fleet_config = sources.load_optional("fleet", FleetConfig)
    if fleet_config is not None and fleet_config.enabled:
        if etcd_plugin is None:
            raise ConfigError("fleet.conf: the fleet view reads agent statuses from etcd; "
                              "add etcd.conf or set 'enabled: false'")
        from sidecar.fleet import FleetPlugin

        plugins.append(FleetPlugin(fleet_config, etcd_plugin, rest, statuscheck))

    return Sidecar(rest=rest, servicelabel=servicelabel, statuscheck=statuscheck, probe=probe,
                   etcd=etcd_plugin, plugins=plugins, options=options)


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in candidates:
        if value is not None and value != "":
            return value, source
    return None, ""


def example_config_dir() -> Path:
    """The embedded default used by ``make run``."""
    return Path(__file__).resolve().parent.parent / "examples" / "config"


__all__: Sequence[str] = ["CONFIG_NAMES", "Options", "Sidecar", "build"]
