"""The one place where plugins are wired together into the ready-to-run sidecar.

Every config file is loaded and checked here, before any plugin starts, so a
mistake is reported as one line and nothing is left half-started.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar.agent import DEFAULT_START_TIMEOUT, DEFAULT_STOP_TIMEOUT, Agent, Plugin, deps_among
from sidecar.config import ConfigError, ConfigSources
from sidecar.health.probe import ProbePlugin
from sidecar.health.statuscheck import (
    StatusCheckConfig,
    StatusCheckPlugin,
    StatusPublisher,
    check_names,
)
from sidecar.kvstore.etcd.config import EtcdConfig
from sidecar.logging.levels import InvalidLevelError, parse_level
from sidecar.logging.logmanager import LogManagerPlugin, LogsConfig
from sidecar.logging.measure import Tracer
from sidecar.logging.measure.plugin import StartupTracePlugin
from sidecar.metrics import MetricsConfig, MetricsPlugin
from sidecar.rest import HTTPConfig, RestPlugin, parse_port
from sidecar.servicelabel import InvalidLabelError, ServiceLabelConfig, ServiceLabelPlugin

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sidecar.exec.processmanager import ProcessManagerPlugin
    from sidecar.exec.supervisor import SupervisorPlugin
    from sidecar.k8s import K8sPlugin
    from sidecar.messaging.kafka import KafkaPlugin


log = logging.getLogger("sidecar.config")


@dataclass(frozen=True)
class ConfigFile:
    """A config file the sidecar reads: ``<name>.conf``, the dataclass it decodes into,
    and what the sidecar does without it (``sidecar config check``, the chart's values
    schema and the reference docs are generated from these)."""

    name: str
    #: ``module:Class`` of its model; imported on demand, so that listing the files
    #: imports no optional plugin.
    model: str
    #: What the file configures (one line).
    summary: str
    #: What the sidecar does when the file is absent.
    without: str
    #: ``module:function`` that reads and checks the file beyond its model (given the
    #: path; raises ConfigError), for files with rules across their keys.
    reader: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}.conf"

    def model_class(self) -> type:
        cls = _import(self.model)
        assert isinstance(cls, type)
        return cls

    def check(self, sources: ConfigSources) -> None:
        """Load the file as ``sidecar run`` would; ConfigError (every problem) if bad."""
        if self.reader:
            path, _ = sources.locate(self.name)
            _import(self.reader)(path)
        else:
            sources.load(self.name, self.model_class())


def _import(name: str) -> Any:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


_DEFAULTS = "the defaults"
#: Config files the sidecar itself reads, in the order they are checked
#: (``--<name>-config`` flags exist for each).
CONFIG_FILES = (
    ConfigFile("http", "sidecar.rest.config:HTTPConfig",
               "the REST server: address, timeouts, TLS, who is admin", _DEFAULTS),
    ConfigFile("servicelabel", "sidecar.servicelabel.config:ServiceLabelConfig",
               "where the agent label comes from when no flag or variable sets it", _DEFAULTS),
    ConfigFile("statuscheck", "sidecar.health.statuscheck.config:StatusCheckConfig",
               "how plugin states are polled, published and counted by the probes", _DEFAULTS),
    ConfigFile("etcd", "sidecar.kvstore.etcd.config:EtcdConfig",
               "the etcd connection; the status is published into it",
               "no etcd: the status is not published"),
    ConfigFile("logs", "sidecar.logging.logmanager.config:LogsConfig",
               "log levels at start-up (cn-infra's logs.conf loads unchanged)", _DEFAULTS),
    ConfigFile("metrics", "sidecar.metrics.config:MetricsConfig",
               "the Prometheus endpoint", "the defaults: /metrics is served"),
    ConfigFile("kafka", "sidecar.messaging.kafka.config:KafkaConfig",
               "the Kafka client, and the status topic", "the Kafka plugin is off"),
    ConfigFile("process-manager", "sidecar.exec.processmanager.config:ProcessManagerConfig",
               "the process manager: templates, status polling, zombie reaping",
               "off, unless supervisor.conf needs it (then the defaults)"),
    ConfigFile("supervisor", "sidecar.exec.supervisor.config:SupervisorConfig",
               "programs to run and hooks to call on their events (reloaded when it changes)",
               "the supervisor is off",
               reader="sidecar.exec.supervisor.config:read_config_file"),
    ConfigFile("k8s", "sidecar.k8s.config:K8sConfig",
               "the state on the Pod, the programs ConfigMap watch, Events",
               "on in a cluster (the defaults), off outside one"),
    ConfigFile("fleet", "sidecar.fleet.config:FleetConfig",
               "the fleet view of every agent's status in etcd (needs etcd.conf)",
               "the fleet view is off"),
)
CONFIG_NAMES = tuple(file.name for file in CONFIG_FILES)

#: The status checks of the built-in plugins: statuscheck.conf may name them whether or
#: not their plugin is on (one file serves pods with different plugins).
BUILTIN_CHECKS = ("etcd", "fleet", "k8s", "kafka", "process-manager", "supervisor")
#: Checks named ``<prefix><name>``: supervisor programs and process-manager templates.
CHECK_FAMILIES = ("program:", "process:")


@dataclass(frozen=True)
class Options:
    """What the command line says; anything unset falls back to env, then files."""

    config_dir: str | None = None
    config_files: Mapping[str, str] = field(default_factory=dict)
    http_port: str | None = None
    #: The probe listener's port (beats PROBE_PORT and http.conf's probe-endpoint port).
    probe_port: str | None = None
    microservice_label: str | None = None
    #: Initial root log level (cn-infra name); beats INITIAL_LOGLVL and logs.conf.
    log_level: str | None = None
    env: Mapping[str, str] | None = None
    start_timeout: float = DEFAULT_START_TIMEOUT
    stop_timeout: float = DEFAULT_STOP_TIMEOUT


@dataclass
class Sidecar:
    """The built plugins, reachable by name for tests and for programs that embed them."""

    rest: RestPlugin
    servicelabel: ServiceLabelPlugin
    statuscheck: StatusCheckPlugin
    probe: ProbePlugin
    etcd: Plugin | None = None
    plugins: list[Plugin] = field(default_factory=list)
    options: Options = field(default_factory=Options)
    logmanager: LogManagerPlugin | None = None
    metrics: MetricsPlugin | None = None
    #: With kafka.conf: its ``.mux`` is the shared Multiplexer, ``publish_event`` the
    #: hook for supervisor program events.
    kafka: KafkaPlugin | None = None
    #: The agent's start-up trace, served at ``GET /debug/startup-trace``.
    tracer: Tracer = field(default_factory=lambda: Tracer("startup"))
    #: With process-manager.conf: its ``.manager`` is the sidecar's ProcessManager.
    process_manager: ProcessManagerPlugin | None = None
    #: In a cluster or with k8s.conf: the Pod status writer, ConfigMap watch and Events.
    k8s: K8sPlugin | None = None
    #: With supervisor.conf: the programs and hooks (``reload_text``, ``add_listener``).
    supervisor: SupervisorPlugin | None = None
    #: Where statuscheck.conf came from, for errors about the plugins it names.
    statuscheck_source: str = "statuscheck.conf"

    def agent(self, *extra: Plugin) -> Agent:
        """The agent of the built plugins and ``extra`` ones (your own).

        Raises ConfigError when statuscheck.conf names a plugin that is neither
        built in nor one of ``extra`` (with the closest name).
        """
        known = {*BUILTIN_CHECKS, *(p.name for p in extra)}
        check_names(self.statuscheck.config, self.statuscheck_source, known, CHECK_FAMILIES)
        agent = Agent(*self.plugins, *extra, start_timeout=self.options.start_timeout,
                      stop_timeout=self.options.stop_timeout, tracer=self.tracer)
        agent.on_started(self.statuscheck.mark_started)
        if self.supervisor is not None:
            # Programs need their stop-timeout to stop: the agent's budget grows to cover it.
            self.supervisor.cover_stop_timeout(agent)
        return agent


@dataclass(frozen=True)
class _Core:
    """What the plugins are built from: the config, and the plugins every sidecar has."""

    sources: ConfigSources
    env: Mapping[str, str]
    options: Options
    rest: RestPlugin
    servicelabel: ServiceLabelPlugin
    statuscheck: StatusCheckPlugin
    metrics: MetricsPlugin | None
    #: The metrics plugin's registry, for plugins' collectors (None without metrics).
    registry: CollectorRegistry | None


def build(options: Options | None = None) -> Sidecar:
    """Load and check all config, construct the plugins; raise ConfigError on bad input.

    Each helper below builds one plugin (None when its config says it is off), in the
    order their config files are checked; the agent orders their start by ``deps``.
    """
    core = _core(options or Options())
    logmanager = _logmanager(core)
    tracer = Tracer("startup")
    etcd, publisher = _etcd(core)
    fleet = _fleet(core, etcd)
    # The supervisor runs its programs in the process manager: it gets one with defaults.
    process_manager = _process_manager(core, required=core.sources.has("supervisor"))
    kafka = _kafka(core)
    supervisor = _supervisor(core, process_manager, kafka)
    k8s = _k8s(core, supervisor)
    probe = ProbePlugin(core.rest, core.statuscheck)
    # The log manager first, so that every other plugin starts at its configured level.
    plugins: list[Plugin | None] = [
        logmanager, core.servicelabel, core.statuscheck, core.rest, probe,
        StartupTracePlugin(core.rest, tracer), core.metrics,
        etcd, publisher, fleet, process_manager, kafka, supervisor, k8s,
    ]
    return Sidecar(rest=core.rest, servicelabel=core.servicelabel, statuscheck=core.statuscheck,
                   probe=probe, etcd=etcd, plugins=[p for p in plugins if p is not None],
                   options=core.options, logmanager=logmanager, kafka=kafka, metrics=core.metrics,
                   tracer=tracer, process_manager=process_manager, k8s=k8s,
                   supervisor=supervisor, statuscheck_source=_source(core.sources, "statuscheck"))


def _core(options: Options) -> _Core:
    """The config sources, and the plugins every sidecar has: REST, the service label,
    the status check and (unless metrics.conf turns it off) metrics."""
    env = dict(os.environ) if options.env is None else dict(options.env)
    sources = ConfigSources.from_env(options.config_dir, options.config_files, env)
    if sources.config_dir is not None and not sources.config_dir.is_dir():
        raise ConfigError(f"config dir {sources.config_dir}: no such directory")
    for unread in sources.unread_files([*CONFIG_NAMES, *options.config_files]):
        log.warning("%s", unread)  # a misnamed file would otherwise be ignored silently
    http = sources.load("http", HTTPConfig)
    port_text, port_source = _first(
        (options.http_port, "--http-port"), (env.get("HTTP_PORT"), "HTTP_PORT"))
    if port_text is not None:
        try:
            http = http.with_port(parse_port(port_text, port_source))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    probe_text, probe_source = _first(
        (options.probe_port, "--probe-port"), (env.get("PROBE_PORT"), "PROBE_PORT"))
    if probe_text is not None:
        try:
            http = http.with_probe_port(parse_port(probe_text, probe_source))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    label_config = sources.load("servicelabel", ServiceLabelConfig)
    try:
        servicelabel = ServiceLabelPlugin.from_config(
            label_config, options.microservice_label, env)
    except InvalidLabelError as exc:
        raise ConfigError(str(exc)) from None
    statuscheck = StatusCheckPlugin(sources.load("statuscheck", StatusCheckConfig))
    try:
        rest = RestPlugin(http)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    metrics_config = sources.load("metrics", MetricsConfig)
    metrics = MetricsPlugin(rest, statuscheck, metrics_config) if metrics_config.enabled else None
    if metrics is not None:
        metrics.watch_rest(rest.stats)
    return _Core(sources, env, options, rest, servicelabel, statuscheck, metrics,
                 registry=metrics.registry if metrics is not None else None)


def _logmanager(core: _Core) -> LogManagerPlugin:
    return LogManagerPlugin(core.rest, core.sources.load("logs", LogsConfig),
                            _initial_log_level(core.options, core.env), registry=core.registry)


def _etcd(core: _Core) -> tuple[Plugin | None, StatusPublisher | None]:
    """With etcd.conf: the etcd plugin, and the publisher of the status into it."""
    config = core.sources.load_optional("etcd", EtcdConfig)
    if config is None:
        return None, None
    from sidecar.kvstore.etcd import EtcdPlugin

    etcd = EtcdPlugin(config, core.statuscheck)
    publisher = StatusPublisher(core.statuscheck, etcd, core.servicelabel.agent_prefix)
    if core.metrics is not None:
        core.metrics.watch_publisher(publisher)
    return etcd, publisher


def _fleet(core: _Core, etcd: Plugin | None) -> Plugin | None:
    """With fleet.conf (not ``enabled: false``): the fleet view, read from etcd."""
    # Optional plugins are imported only when their file exists: start-up time is a feature.
    if not core.sources.has("fleet"):
        return None
    from sidecar.fleet import FleetConfig, FleetPlugin

    config = core.sources.load("fleet", FleetConfig)
    if not config.enabled:
        return None
    if etcd is None:
        raise ConfigError("fleet.conf: the fleet view reads agent statuses from etcd; "
                          "add etcd.conf or set 'enabled: false'")
    return FleetPlugin(config, etcd, core.rest, core.statuscheck, registry=core.registry)


def _process_manager(core: _Core, *, required: bool = False) -> ProcessManagerPlugin | None:
    """With process-manager.conf, or when another plugin requires one (then with its
    defaults if there is no file)."""
    if not core.sources.has("process-manager") and not required:
        return None
    from sidecar.exec.processmanager import ProcessManagerConfig, ProcessManagerPlugin

    return ProcessManagerPlugin(core.sources.load("process-manager", ProcessManagerConfig),
                                core.statuscheck, registry=core.registry)


def _kafka(core: _Core) -> KafkaPlugin | None:
    """With kafka.conf."""
    if not core.sources.has("kafka"):
        return None
    from sidecar.messaging.kafka import KafkaConfig, KafkaPlugin

    return KafkaPlugin(core.sources.load("kafka", KafkaConfig), core.statuscheck,
                       core.servicelabel.agent_label(), status_reader=core.statuscheck,
                       registry=core.registry)


def _supervisor(core: _Core, process_manager: ProcessManagerPlugin | None,
                kafka: KafkaPlugin | None) -> SupervisorPlugin | None:
    """With supervisor.conf; its program events go to Kafka's status topic when kafka.conf
    has one."""
    path, _ = core.sources.locate("supervisor")
    if path is None or not core.sources.has("supervisor"):
        return None
    from sidecar.exec.supervisor import SupervisorPlugin

    supervisor = SupervisorPlugin.from_file(
        path, manager=process_manager, statuscheck=core.statuscheck, rest=core.rest,
        env=core.env, registry=core.registry)
    if kafka is not None and kafka.config.status_topic:
        publish = kafka.publish_event
        supervisor.add_listener(lambda event: publish(event.to_dict()))
    return supervisor


def _k8s(core: _Core, supervisor: SupervisorPlugin | None) -> K8sPlugin | None:
    """With k8s.conf (not ``enabled: false``), or in a cluster without one."""
    if not core.sources.has("k8s") and not core.env.get("KUBERNETES_SERVICE_HOST"):
        return None  # outside a cluster: not even the package is imported
    from sidecar.k8s.config import K8sConfig, in_cluster

    config = core.sources.load_optional("k8s", K8sConfig)
    if config is None and not in_cluster(core.env):
        return None
    config = config or K8sConfig()
    if not config.enabled:
        return None
    from sidecar.k8s import K8sPlugin

    return K8sPlugin(config, core.statuscheck, env=core.env, supervisor=supervisor,
                     deps=deps_among(core.statuscheck, supervisor), registry=core.registry)


def _initial_log_level(options: Options, env: Mapping[str, str]) -> int | None:
    """``--log-level`` > ``INITIAL_LOGLVL`` (both beat logs.conf's default-level)."""
    text, source = _first((options.log_level, "--log-level"),
                          (env.get("INITIAL_LOGLVL"), "INITIAL_LOGLVL"))
    if text is None:
        return None
    try:
        return parse_level(text, source)
    except InvalidLevelError as exc:
        raise ConfigError(str(exc)) from None


def _source(sources: ConfigSources, name: str) -> str:
    path, _ = sources.locate(name)
    return str(path) if path is not None and path.exists() else f"{name}.conf"


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in candidates:
        if value is not None and value != "":
            return value, source
    return None, ""


def example_config_dir() -> Path:
    """The embedded default used by ``make run``."""
    return Path(__file__).resolve().parent.parent / "examples" / "config"


__all__: Sequence[str] = ["BUILTIN_CHECKS", "CHECK_FAMILIES", "CONFIG_FILES", "CONFIG_NAMES",
                          "ConfigFile", "Options", "Sidecar", "build"]
