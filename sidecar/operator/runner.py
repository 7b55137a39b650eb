"""``sidecar operator``: kopf, run as kopf is meant to run, owning its process.

* The admission webhook (``on.mutate``, two handlers: one per webhook of the
  MutatingWebhookConfiguration) is served by every replica, whatever peering
  decides: kopf's webhook server runs beside its watchers, never paused.
* The reconcilers (pods that went out without the sidecar; in later stages
  RBAC and ConfigMaps per namespace) run on one replica: replicas meet at a
  ClusterKopfPeering object, each with a random priority, and kopf pauses all
  but the highest. When it stops, its record goes at once (or expires after
  ``lifetime`` when it dies) and another takes over.
* kopf handles SIGTERM/SIGINT; ``on.cleanup`` closes what ``on.startup``
  opened (the API client, the HTTP server, the TLS task).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.fleet import FleetView
from sidecar.fleet.metrics import FleetCollector
from sidecar.inject import InjectionSpec, has_sidecar, parse_kube_version
from sidecar.k8s import ApiClient, ApiError, Credentials, K8sConfig, find_credentials
from sidecar.rest.api import error_response

from .config import OperatorConfig
from .fleet import PodFleet
from .metrics import OperatorCollector
from .namespaces import MANAGED_SELECTOR, NamespaceKeeper, PodNeeds, pod_needs
from .tls import SelfSignedTls, ServingTls, TlsFiles
from .uninjected import UninjectedPods
from .webhook import Denied, Injector

if TYPE_CHECKING:
    import kopf

log = logging.getLogger("sidecar.operator")

#: The webhooks of the MutatingWebhookConfiguration, by the URL path kopf serves them at.
WEBHOOKS = {"inject-namespace": True, "inject-pod": False}
_MAX_PRIORITY = 2**31 - 1
_VERSION_INTERVAL = 600.0


class Operator:
    """The operator's state: what kopf's handlers call, and what /metrics reads."""

    def __init__(self, config: OperatorConfig, spec: InjectionSpec,
                 env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.spec = spec
        self._env = dict(os.environ if env is None else env)
        self.namespace = config.namespace or self._env.get("POD_NAMESPACE", "")
        self.credentials: Credentials | None = None
        self.api: ApiClient | None = None
        #: The API server's version (``v1.37.2``); None until read: then a current one.
        self.kube_version: str | None = None
        # One set, shared: the namespace may be known only from the credentials (run()).
        excluded = set(config.webhook.excluded_namespaces) | (
            {self.namespace} if self.namespace else set())
        self.tls = ServingTls()
        self.injector = Injector(spec, self.native, excluded)
        self.uninjected = UninjectedPods(spec, lambda: self.api, excluded)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(OperatorCollector(self.injector, self.uninjected,
                                                 lambda: self.tls.renewals))
        self._tasks: list[asyncio.Task[None]] = []
        self._http: web.AppRunner | None = None
        self.fleet: PodFleet | None = None
        self.keeper: NamespaceKeeper | None = None
        self._excluded = excluded
        self.self_signed: SelfSignedTls | None = None
        self._fleet_view: FleetView | None = None

    def native(self) -> bool:
        return self.spec.native_on(self.kube_version)

    # -- start and stop (kopf's on.startup and on.cleanup) --------------------------------
    async def start(self) -> None:
        self.credentials = await asyncio.to_thread(
            find_credentials, K8sConfig(kubeconfig=self.config.kubeconfig), self._env)
        self.api = ApiClient(self.credentials, self.config.request_timeout)
        await self._read_version()
        self._tasks.append(spawn(self._follow_version(), "operator-version"))
        await self._start_tls()
        self.keeper = NamespaceKeeper(self.spec, self.api, self.namespace)
        self.fleet = PodFleet(self.api)
        self.fleet.start()
        self._fleet_view = FleetView(self.fleet.agents, self.fleet, store="the Kubernetes API")
        self.registry.register(FleetCollector(self.fleet.agents, self.fleet))
        await self._start_http()
        log.info("operator: API server %s (%s), Kubernetes %s: %s sidecars",
                 self.credentials.server, self.credentials.source, self.kube_version or "?",
                 "native" if self.native() else "classic")

    async def _read_version(self) -> None:
        assert self.api is not None
        try:
            version = await self.api.request("GET", "/version")
            text = str(version.get("gitVersion") or "")
            parse_kube_version(text)
            self.kube_version = text
        except (ApiError, ValueError) as exc:
            log.warning("cannot read the API server's version (%s): assuming >= 1.29", exc)

    async def _follow_version(self) -> None:
        """Read the version again now and then: an upgrade of the control plane to 1.29
        makes new pods' sidecars native without a restart of the operator."""
        while True:
            await asyncio.sleep(_VERSION_INTERVAL)
            before = self.kube_version
            await self._read_version()
            if self.kube_version != before:
                log.info("the API server is now Kubernetes %s: %s sidecars", self.kube_version,
                         "native" if self.native() else "classic")

    async def _start_tls(self) -> None:
        tls = self.config.tls
        if tls.mode == "files":
            files = TlsFiles(tls, self.tls)
            await asyncio.to_thread(files.check)
            self._tasks.append(spawn(files.run(), "operator-tls-files"))
        else:
            assert self.api is not None
            self.self_signed = SelfSignedTls(tls, self.tls, self.api, self.namespace,
                                             self.config.webhook.configuration)
            # Not awaited: the webhook waits for its first certificate, kopf does not.
            self._tasks.append(spawn(self.self_signed.run(), "operator-tls"))

    async def _start_http(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(self.registry))
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/fleet", self._list_fleet)
        app.router.add_get("/fleet/{namespace}/{pod}", self._fleet_pod)
        self._http = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._http.setup()
        await web.TCPSite(self._http, None, self.config.http_port).start()

    async def _healthz(self, request: web.Request) -> web.Response:
        if not self.tls.loaded.is_set():
            reason = self.self_signed.last_error if self.self_signed is not None else None
            return error_response(503, f"no serving certificate yet: {reason or 'loading'}")
        if self.self_signed is not None and not self.self_signed.trusted.is_set():
            return error_response(
                503, "the webhook configuration does not trust the certificate yet: "
                     f"{self.self_signed.last_error or 'updating its caBundle'}")
        return web.json_response({"ok": True})

    async def _list_fleet(self, request: web.Request) -> web.Response:
        assert self._fleet_view is not None
        return await self._fleet_view.list_agents(request)

    async def _fleet_pod(self, request: web.Request) -> web.Response:
        assert self._fleet_view is not None
        return await self._fleet_view.get_agent(
            f"{request.match_info['namespace']}/{request.match_info['pod']}")

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await cancel_and_wait(task)
        http, self._http = self._http, None
        if http is not None:
            await http.cleanup()
        if self.self_signed is not None:
            self.self_signed.close()
        fleet, self.fleet = self.fleet, None
        if fleet is not None:
            await fleet.close()
        api, self.api = self.api, None
        if api is not None:
            await api.close()

    # -- kopf ---------------------------------------------------------------------------
    def kopf_registry(self, kopf_: Any) -> kopf.OperatorRegistry:
        registry = kopf_.OperatorRegistry()
        on = kopf_.on

        @on.login(id="login", registry=registry)  # type: ignore[untyped-decorator]
        async def login(**_: Any) -> kopf.ConnectionInfo:
            if self.credentials is None:
                self.credentials = await asyncio.to_thread(
                    find_credentials, K8sConfig(kubeconfig=self.config.kubeconfig), self._env)
            credentials = self.credentials
            token = await asyncio.to_thread(credentials.bearer_token)
            return kopf_.ConnectionInfo(  # type: ignore[no-any-return]
                server=credentials.server, ca_path=credentials.ca_file,
                ca_data=credentials.ca_data, insecure=credentials.insecure or None,
                scheme="Bearer" if token else None, token=token,
                certificate_path=credentials.cert_file, private_key_path=credentials.key_file,
                default_namespace=credentials.namespace)

        @on.startup(id="start", registry=registry)  # type: ignore[untyped-decorator]
        async def startup(**_: Any) -> None:
            await self.start()

        @on.cleanup(id="stop", registry=registry)  # type: ignore[untyped-decorator]
        async def cleanup(**_: Any) -> None:
            await self.stop()

        for webhook, namespace_opted_in in WEBHOOKS.items():
            self._register_webhook(kopf_, registry, webhook, namespace_opted_in)

        @kopf_.index("namespaces", id="namespace_labels", registry=registry)  # type: ignore[untyped-decorator]
        def namespace_labels(name: str, labels: Mapping[str, str],
                             **_: Any) -> dict[str, dict[str, str]]:
            return {name: dict(labels)}

        spec = self.spec

        @kopf_.index("pods", id="sidecar_pods", registry=registry,  # type: ignore[untyped-decorator]
                     when=lambda body, **_: has_sidecar(body.get("spec") or {}, spec))
        def sidecar_pods(namespace: str, body: Mapping[str, Any],
                         **_: Any) -> dict[str, PodNeeds | None]:
            return {namespace: pod_needs(body, spec)}

        @on.event("pods", id="pods", registry=registry)  # type: ignore[untyped-decorator]
        async def pod_event(type: str | None, body: Mapping[str, Any],
                            namespace: str, namespace_labels: Any, sidecar_pods: Any,
                            **_: Any) -> None:
            labels: Mapping[str, str] = next(iter(namespace_labels.get(namespace, ())), {})
            await self.uninjected.on_event(type, body, labels)
            if self.keeper is not None and namespace not in self._excluded:
                await self.keeper.reconcile(namespace, sidecar_pods.get(namespace, ()))

        @on.event("rbac.authorization.k8s.io", "v1", "roles",  # type: ignore[untyped-decorator]
                  id="managed_roles", registry=registry)
        async def managed_role(type: str | None, namespace: str,
                               sidecar_pods: Any, **_: Any) -> None:
            # Listed at start (left by a predecessor: removed if no pod needs them), or
            # deleted by someone: made again if pods still need them.
            if self.keeper is not None and type in (None, "DELETED"):
                await self.keeper.reconcile(namespace, sidecar_pods.get(namespace, ()),
                                            force=True)

        sources = {n for n in (spec.config_map, spec.programs_config_map) if n}

        @on.event("configmaps", id="sources", registry=registry,  # type: ignore[untyped-decorator]
                  when=lambda name, **_: name in sources)
        async def source(type: str | None, name: str, body: Mapping[str, Any],
                         **_: Any) -> None:
            if self.keeper is not None:
                await self.keeper.source_changed(name, None if type == "DELETED" else body)

        return registry  # type: ignore[no-any-return]

    def _register_webhook(self, kopf_: Any, registry: Any, webhook: str,
                          namespace_opted_in: bool) -> None:
        @kopf_.on.mutate("pods", id=webhook, operations=["CREATE"],  # type: ignore[untyped-decorator]
                         registry=registry)
        async def mutate(body: Mapping[str, Any], patch: Any, **_: Any) -> None:
            try:
                review = self.injector.review(body, webhook=webhook,
                                              namespace_opted_in=namespace_opted_in)
            except Denied as exc:
                raise kopf_.AdmissionError(str(exc), code=400) from None
            except Exception:
                # A bug must not block pod creation: the pod goes out as it came, and
                # the reconciler reports it as not injected.
                log.exception("reviewing a pod failed; admitting it unchanged")
                return
            mutated = review.mutated
            if mutated is not None:
                patch.fns.append(lambda raw: _replace(raw, mutated))

    # -- run -----------------------------------------------------------------------------
    def settings(self, kopf_: Any) -> kopf.OperatorSettings:
        settings = kopf_.OperatorSettings()
        settings.admission.server = webhook_server(kopf_, self.config, self.tls)
        settings.admission.managed = None  # the chart's configuration; caBundle kept by us
        settings.posting.enabled = False  # handler logs are not Events on users' pods
        settings.scanning.disabled = True  # no CRDs to follow: no list/watch of CRDs
        settings.networking.request_timeout = self.config.request_timeout * 3
        settings.networking.connect_timeout = self.config.request_timeout
        # Two replicas must meet at the peering object; kopf.run(peering_name=) would also
        # make peering mandatory for a standalone one.
        settings.peering.name = self.config.peering.name
        settings.peering.mandatory = not self.config.peering.standalone
        # Server-side filters: only the operator's own ConfigMaps (the sources of the
        # copies) and only the Roles it manages are ever sent to it.
        watching = settings.watching
        watching.field_selectors["v1", "configmaps"] = f"metadata.namespace={self.namespace}"
        watching.label_selectors["rbac.authorization.k8s.io", "roles"] = MANAGED_SELECTOR
        return settings  # type: ignore[no-any-return]

    def run(self) -> None:
        import kopf as kopf_

        if not self.namespace:
            credentials = find_credentials(K8sConfig(kubeconfig=self.config.kubeconfig),
                                           self._env)
            self.namespace = credentials.namespace or "default"
            self._excluded.add(self.namespace)

        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # One line per admitted pod of the cluster is for debugging only.
            for name in ("aiohttp.access", "kopf.objects"):
                logging.getLogger(name).setLevel(logging.WARNING)

        peering = self.config.peering
        kopf_.run(registry=self.kopf_registry(kopf_), settings=self.settings(kopf_),
                  clusterwide=True, standalone=peering.standalone,
                  # Replicas of equal priority would all pause; a random one picks one.
                  priority=random.randint(1, _MAX_PRIORITY))


def _replace(raw: dict[str, Any], mutated: Mapping[str, Any]) -> None:
    # kopf diffs ``raw`` (its own copy of the request's pod) against the request into the
    # JSON patch; the mutated copy is this request's alone, so it is not copied again.
    raw["metadata"] = mutated["metadata"]
    raw["spec"] = mutated["spec"]


def webhook_server(kopf_: Any, config: OperatorConfig, tls: ServingTls) -> Any:
    """kopf's WebhookServer on ``config.webhook``, serving with ``tls``'s context once it has
    a certificate (and never restarting for a renewal: the context is reloaded in place)."""

    class Server(kopf_.WebhookServer):  # type: ignore[misc]
        def _build_ssl(self) -> tuple[bytes | None, Any]:
            return tls.ca_bundle, tls.context

        async def __call__(self, fn: Any) -> Any:
            await tls.loaded.wait()
            async for client_config in super().__call__(fn):
                yield client_config

    return Server(addr=config.webhook.address, port=config.webhook.port,
                  file_check_interval=3600.0)
