"""The one place where plugins are wired together into the ready-to-run sidecar.

Every config file is loaded and checked here, before any plugin starts, so a
mistake is reported as one line and nothing is left half-started.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sidecar.agent import DEFAULT_START_TIMEOUT, DEFAULT_STOP_TIMEOUT, Agent, Plugin
from sidecar.config import ConfigError, ConfigSources
from sidecar.health.probe import ProbePlugin
from sidecar.health.statuscheck import StatusCheckConfig, StatusCheckPlugin, StatusPublisher
from sidecar.kvstore.etcd.config import EtcdConfig
from sidecar.logging.levels import InvalidLevelError, parse_level
from sidecar.logging.logmanager import LogManagerPlugin, LogsConfig
from sidecar.logging.measure import Tracer
from sidecar.logging.measure.plugin import StartupTracePlugin
from sidecar.metrics import MetricsConfig, MetricsPlugin
from sidecar.rest import HTTPConfig, RestPlugin, parse_port
from sidecar.servicelabel import InvalidLabelError, ServiceLabelConfig, ServiceLabelPlugin

if TYPE_CHECKING:
    from sidecar.exec.processmanager import ProcessManagerPlugin
    from sidecar.exec.supervisor import SupervisorPlugin
    from sidecar.k8s import K8sPlugin
    from sidecar.messaging.kafka import KafkaPlugin

#: Config files the sidecar itself reads (``--<name>-config`` flags exist for each).
CONFIG_NAMES = ("http", "servicelabel", "statuscheck", "etcd", "logs", "metrics", "kafka",
                "process-manager", "supervisor", "k8s", "fleet")


@dataclass(frozen=True)
class Options:
    """What the command line says; anything unset falls back to env, then files."""

    config_dir: str | None = None
    config_files: Mapping[str, str] = field(default_factory=dict)
    http_port: str | None = None
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

    def agent(self, *extra: Plugin) -> Agent:
        agent = Agent(*self.plugins, *extra, start_timeout=self.options.start_timeout,
                      stop_timeout=self.options.stop_timeout, tracer=self.tracer)
        agent.on_started(self.statuscheck.mark_started)
        if self.supervisor is not None:
            # Programs need their stop-timeout to stop: the agent's budget grows to cover it.
            self.supervisor.cover_stop_timeout(agent)
        return agent


def build(options: Options | None = None) -> Sidecar:  # noqa: PLR0915 - the one wiring place
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

    statuscheck = StatusCheckPlugin(sources.load("statuscheck", StatusCheckConfig))
    try:
        rest = RestPlugin(http)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    probe = ProbePlugin(rest, statuscheck)

    metrics_config = sources.load("metrics", MetricsConfig)
    metrics = MetricsPlugin(rest, statuscheck, metrics_config) if metrics_config.enabled else None
    logmanager = LogManagerPlugin(rest, sources.load("logs", LogsConfig),
                            _initial_log_level(options, env),
                            registry=metrics.registry if metrics else None)
    tracer = Tracer("startup")
    # The log manager first, so that every other plugin starts at its configured level.
    plugins: list[Plugin] = [logmanager, servicelabel, statuscheck, rest, probe,
                             StartupTracePlugin(rest, tracer)]
    if metrics is not None:
        plugins.append(metrics)

    etcd_plugin: Plugin | None = None
    etcd_config = sources.load_optional("etcd", EtcdConfig)
    if etcd_config is not None:
        from sidecar.kvstore.etcd import EtcdPlugin

        etcd = EtcdPlugin(etcd_config, statuscheck)
        publisher = StatusPublisher(statuscheck, etcd, servicelabel.agent_prefix)
        plugins += [etcd, publisher]
        etcd_plugin = etcd
        if metrics is not None:
            metrics.watch_publisher(publisher)

    # Optional plugins are imported only when their file exists: start-up time is a feature.
    if sources.has("fleet"):
        from sidecar.fleet import FleetConfig, FleetPlugin

        fleet_config = sources.load("fleet", FleetConfig)
        if fleet_config.enabled:
            if etcd_plugin is None:
                raise ConfigError("fleet.conf: the fleet view reads agent statuses from etcd; "
                                  "add etcd.conf or set 'enabled: false'")
            plugins.append(FleetPlugin(
                fleet_config, etcd_plugin, rest, statuscheck,
                registry=metrics.registry if metrics is not None else None))

    # The supervisor runs its programs in the process manager: it gets one with defaults.
    process_manager = _process_manager(sources, statuscheck, metrics, plugins,
                                       required=sources.has("supervisor"))
    kafka = _kafka(sources, statuscheck, servicelabel, plugins)
    supervisor = _supervisor(sources, env, rest, statuscheck, metrics=metrics,
                             process_manager=process_manager, kafka=kafka, plugins=plugins)

    return Sidecar(rest=rest, servicelabel=servicelabel, statuscheck=statuscheck, probe=probe,
                   etcd=etcd_plugin, plugins=plugins, options=options, logmanager=logmanager,
                   kafka=kafka, metrics=metrics, tracer=tracer, process_manager=process_manager,
                   k8s=_k8s(sources, env, statuscheck, metrics, plugins, supervisor=supervisor),
                   supervisor=supervisor)


def _process_manager(sources: ConfigSources, statuscheck: StatusCheckPlugin,
                     metrics: MetricsPlugin | None, plugins: list[Plugin], *,
                     required: bool = False) -> ProcessManagerPlugin | None:
    """The process manager plugin (appended to ``plugins``) when process-manager.conf exists
    or another plugin requires it (then with its defaults if there is no file)."""
    if not sources.has("process-manager") and not required:
        return None
    from sidecar.exec.processmanager import ProcessManagerConfig, ProcessManagerPlugin

    plugin = ProcessManagerPlugin(sources.load("process-manager", ProcessManagerConfig),
                                  statuscheck,
                                  registry=metrics.registry if metrics is not None else None)
    plugins.append(plugin)
    return plugin


def _supervisor(sources: ConfigSources, env: Mapping[str, str], rest: RestPlugin,
                statuscheck: StatusCheckPlugin, *, metrics: MetricsPlugin | None,
                process_manager: ProcessManagerPlugin | None, kafka: KafkaPlugin | None,
                plugins: list[Plugin]) -> SupervisorPlugin | None:
    """The supervisor (appended to ``plugins``) when supervisor.conf exists; its program
    events go to Kafka's status topic when kafka.conf has one."""
    path, _ = sources.locate("supervisor")
    if path is None or not sources.has("supervisor"):
        return None
    from sidecar.exec.supervisor import SupervisorPlugin

    supervisor = SupervisorPlugin.from_file(
        path, manager=process_manager, statuscheck=statuscheck, rest=rest, env=env,
        registry=metrics.registry if metrics is not None else None)
    if kafka is not None and kafka.config.status_topic:
        publish = kafka.publish_event
        supervisor.add_listener(lambda event: publish(event.to_dict()))
    plugins.append(supervisor)
    return supervisor


def _k8s(sources: ConfigSources, env: Mapping[str, str], statuscheck: StatusCheckPlugin,
         metrics: MetricsPlugin | None, plugins: list[Plugin], *,
         supervisor: SupervisorPlugin | None = None) -> K8sPlugin | None:
    """The k8s plugin (appended to ``plugins``) with k8s.conf, or in a cluster without one."""
    if not sources.has("k8s") and not env.get("KUBERNETES_SERVICE_HOST"):
        return None  # outside a cluster: not even the package is imported
    from sidecar.k8s.config import K8sConfig, in_cluster

    config = sources.load_optional("k8s", K8sConfig)
    if config is None and not in_cluster(env):
        return None
    config = config or K8sConfig()
    if not config.enabled:
        return None
    from sidecar.k8s import K8sPlugin

    plugin = K8sPlugin(config, statuscheck, env=env, supervisor=supervisor,
                       deps=(statuscheck,) if supervisor is None else (statuscheck, supervisor),
                       registry=metrics.registry if metrics is not None else None)
    plugins.append(plugin)
    return plugin


def _kafka(sources: ConfigSources, statuscheck: StatusCheckPlugin, servicelabel: ServiceLabelPlugin,
           plugins: list[Plugin]) -> KafkaPlugin | None:
    """The Kafka plugin (appended to ``plugins``) when kafka.conf exists."""
    if not sources.has("kafka"):
        return None
    from sidecar.messaging.kafka import KafkaConfig, KafkaPlugin

    plugin = KafkaPlugin(sources.load("kafka", KafkaConfig), statuscheck,
                         servicelabel.agent_label(), status_reader=statuscheck)
    plugins.append(plugin)
    return plugin


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


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in candidates:
        if value is not None and value != "":
            return value, source
    return None, ""


def example_config_dir() -> Path:
    """The embedded default used by ``make run``."""
    return Path(__file__).resolve().parent.parent / "examples" / "config"


__all__: Sequence[str] = ["CONFIG_NAMES", "Options", "Sidecar", "build"]
