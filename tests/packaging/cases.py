"""Value sets the chart is rendered with: each is linted, validated offline for
every Kubernetes version the chart supports, and dry-run applied to a real
kube-apiserver."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

from tests.packaging.render import Doc, helm_template

#: Kubernetes minor versions whose schemas every rendering must satisfy.
KUBE_VERSIONS = tuple(f"1.{minor}" for minor in range(29, 38))


@dataclass(frozen=True)
class Case:
    name: str
    values: dict[str, Any] = field(default_factory=dict)
    kube_version: str | None = None


#: Every value a platform team looks for, set at once.
PLATFORM: dict[str, Any] = {
    "global": {"imageRegistry": "mirror.example:5000/hub",
               "imagePullSecrets": ["mirror-pull", {"name": "mirror-pull-2"}]},
    "imagePullSecrets": [{"name": "regcred"}],
    "commonLabels": {"example.com/team": "infra"},
    "commonAnnotations": {"example.com/owner": "platform@example.com"},
    "sidecar": {
        "lifecycle": {"preStop": {"sleep": {"seconds": 2}}},
        "extraVolumes": [{"name": "extra-certs", "emptyDir": {"medium": "Memory"}}],
        "extraVolumeMounts": [{"name": "extra-certs", "mountPath": "/etc/extra-certs"}],
        "probes": {
            "startup": {"enabled": True, "initialDelaySeconds": 1, "periodSeconds": 1,
                        "timeoutSeconds": 2, "successThreshold": 1, "failureThreshold": 60,
                        "terminationGracePeriodSeconds": 5},
            "liveness": {"enabled": True, "initialDelaySeconds": 5, "periodSeconds": 10,
                         "timeoutSeconds": 3, "successThreshold": 1, "failureThreshold": 3,
                         "terminationGracePeriodSeconds": 10},
            "readiness": {"enabled": True, "initialDelaySeconds": 2, "periodSeconds": 5,
                          "timeoutSeconds": 2, "successThreshold": 2, "failureThreshold": 3},
        },
    },
    "adminToken": {"required": True},
    "metrics": {"service": {"type": "LoadBalancer", "allowExternal": True}},
    "networkPolicy": {"enabled": True,
                      "workloadFrom": [{"podSelector": {"matchLabels": {"role": "frontend"}}}],
                      "extraIngress": [{"ports": [{"port": 9999}]}]},
    "podDisruptionBudget": {"enabled": True, "minAvailable": "50%",
                            "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    "priorityClassName": "cninfra-high",
    "workload": {"replicas": 2},
}

CASES = (
    Case("default"),
    Case("classic-container", {"nativeSidecar": False}),
    # auto on a cluster without native sidecars: a second container instead.
    Case("auto-on-1.28", {}, kube_version="1.28.0"),
    Case("minimal", {
        "k8s": {"enabled": False},
        "readinessGate": {"enabled": False},
        "supervisor": {"enabled": False},
        "rbac": {"create": False},
        "serviceAccount": {"create": False},
        "metrics": {"service": {"enabled": False}},
        "workload": {"service": {"enabled": False}},
        "sidecar": {
            "microserviceLabel": {"value": "", "fieldPath": ""},
            "probes": {"startup": {"enabled": False}, "liveness": {"enabled": False},
                       "readiness": {"enabled": False}},
            "resources": None,
        },
        "config": {"http": None, "logs": None},
    }),
    Case("everything", {
        "image": {"repository": "registry.example/cninfra-sidecar",
                  "digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "regcred"}],
        "sidecar": {
            "httpPort": 9292,
            "microserviceLabel": {"value": "vpp-agent-1"},
            "logLevel": "debug",
            "logFormat": "text",
            "extraArgs": ["--start-timeout=30s"],
            "env": [{"name": "EXTRA", "value": "1"}],
            "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        },
        "adminToken": {"existingSecret": "cninfra-admin", "key": "token"},
        "config": {
            "etcd": {"endpoints": ["etcd.default.svc:2379"], "dial-timeout": "2s"},
            "statuscheck": {"probe-interval": "2s", "non-fatal": ["etcd"]},
            "metrics": {"path": "/metrics"},
        },
        "supervisor": {
            "programs": [{"name": "heartbeat", "executable-path": "/bin/sh",
                          "executable-args": ["-c", "sleep 3600"], "restarts": -1}],
            "hooks": [{"cmd": "/bin/true", "cmd-args": []}],
        },
        "k8s": {"config": {}},
        "serviceAccount": {"name": "custom-sa", "annotations": {"example.com/owner": "me"}},
        "metrics": {"service": {"type": "NodePort", "port": 9300, "allowExternal": True,
                                "annotations": {"example.com/team": "infra"}}},
        "podAnnotations": {"example.com/a": "b"},
        "podLabels": {"cninfra.io/microservice-label": "vpp1"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "cninfra-high",
        "workload": {
            "replicas": 3,
            "command": ["nginx"],
            "args": ["-g", "daemon off;"],
            "env": [{"name": "MODE", "value": "demo"}],
            "volumeMounts": [{"name": "scratch", "mountPath": "/var/cache/nginx"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
        },
    }),
    # Mode (b): only the shared objects; the pod spec is the user's.
    Case("include-only", {"workload": {"enabled": False}}),
    # What a platform team sets (issue 22): every value added for it.
    Case("platform", PLATFORM),
    Case("platform-include-only", {
        "workload": {"enabled": False},
        "networkPolicy": {"enabled": True, "extraIngress": [{"ports": [{"port": 8080}]}]},
        "adminToken": {"required": True},
        "commonLabels": {"example.com/team": "infra"},
    }),
)

CASE_IDS = [c.name for c in CASES]


@functools.cache
def _rendered(name: str) -> tuple[Doc, ...]:
    case = next(c for c in CASES if c.name == name)
    return tuple(helm_template(case.values or None, kube_version=case.kube_version))


def rendered(case: Case) -> list[Doc]:
    """The documents of ``case`` (rendered once per test session; copies)."""
    return copy.deepcopy(list(_rendered(case.name)))
