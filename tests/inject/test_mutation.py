"""The mutation's decisions and checks, on pods as dicts (no chart needed: the packaged spec)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sidecar.inject import (
    AnnotationError,
    Decision,
    InjectionSpec,
    PodSpecError,
    api,
    decide,
    inject,
    load_spec,
)

SPEC = load_spec()


def pod(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"},
                         **({"annotations": annotations} if annotations is not None else {})},
            "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec}}


def names(containers: list[dict[str, Any]] | None) -> list[str]:
    return [c["name"] for c in containers or ()]


@pytest.mark.parametrize(("annotations", "namespace", "decision"), [
    ({api.INJECT: "true"}, False, Decision.INJECT),
    ({api.INJECT: "True"}, False, Decision.INJECT),
    ({}, True, Decision.INJECT),
    (None, False, Decision.NOT_ASKED),
    ({api.INJECT: "false"}, False, Decision.OPTED_OUT),
    ({api.INJECT: "false"}, True, Decision.OPTED_OUT),  # the pod's opt-out wins
])
def test_who_asked(annotations: dict[str, str] | None, namespace: bool,
                   decision: Decision) -> None:
    assert decide(pod(annotations), SPEC, namespace_opted_in=namespace) is decision


def test_a_bad_inject_value_is_an_error_naming_the_annotation() -> None:
    with pytest.raises(AnnotationError, match=r'cninfra.io/inject: .yes. is not "true" or '
                                              r'"false"') as caught:
        decide(pod({api.INJECT: "yes"}), SPEC)
    assert caught.value.annotation == api.INJECT


def test_injection_is_idempotent() -> None:
    first = pod({api.INJECT: "true"})
    inject(first, SPEC, native=True)
    assert decide(first, SPEC) is Decision.PRESENT
    # The same holds for a pod that includes the named templates itself (classic here).
    classic = pod({api.INJECT: "true"})
    inject(classic, SPEC, native=False)
    assert decide(classic, SPEC, namespace_opted_in=True) is Decision.PRESENT


def test_native_sidecar_goes_before_the_pods_own_init_containers() -> None:
    target = pod({api.INJECT: "true"}, initContainers=[{"name": "migrate", "image": "db"}])
    inject(target, SPEC, native=True)
    init = target["spec"]["initContainers"]
    assert names(init) == [SPEC.container_name, "migrate"]
    assert init[0]["restartPolicy"] == "Always"
    assert names(target["spec"]["containers"]) == ["app"]


def test_classic_sidecar_goes_after_the_pods_containers() -> None:
    target = pod({api.INJECT: "true"})
    inject(target, SPEC, native=False)
    assert names(target["spec"]["containers"]) == ["app", SPEC.container_name]
    assert "restartPolicy" not in target["spec"]["containers"][1]
    assert "initContainers" not in target["spec"]


def test_the_pods_own_volumes_gates_labels_and_annotations_stay() -> None:
    target = pod({api.INJECT: "true", "team": "a"},
                 volumes=[{"name": "data", "emptyDir": {}}],
                 readinessGates=[{"conditionType": "example.com/ready"}])
    inject(target, SPEC, native=True)
    spec = target["spec"]
    assert [v["name"] for v in spec["volumes"]] == ["data"] + [v["name"] for v in SPEC.volumes]
    assert spec["readinessGates"] == [{"conditionType": "example.com/ready"},
                                      {"conditionType": "cninfra.io/ready"}]
    assert target["metadata"]["labels"] == {"app": "web", **SPEC.pod_labels}
    assert target["metadata"]["annotations"]["team"] == "a"


def test_a_readiness_gate_the_pod_has_is_not_added_twice() -> None:
    target = pod({api.INJECT: "true"}, readinessGates=[{"conditionType": "cninfra.io/ready"}])
    inject(target, SPEC, native=True)
    assert target["spec"]["readinessGates"] == [{"conditionType": "cninfra.io/ready"}]


def test_a_volume_name_the_sidecar_needs_is_refused_and_nothing_changes() -> None:
    target = pod({api.INJECT: "true"}, volumes=[{"name": "cninfra-tmp", "emptyDir": {}}])
    before = copy.deepcopy(target)
    with pytest.raises(PodSpecError, match="already has a volume named cninfra-tmp"):
        inject(target, SPEC, native=True)
    assert target == before


@pytest.mark.parametrize(("annotation", "value", "message"), [
    (api.LOG_LEVEL, "loud", r"'loud' is not a log level; use one of trace, debug"),
    (api.MICROSERVICE_LABEL, "a/b", r"must not contain '/'"),
    (api.MICROSERVICE_LABEL, "", r"is empty"),
    (api.MICROSERVICE_LABEL, "two words", r"must not contain spaces"),
    (api.CONFIG_CONFIGMAP, "My_Config", r"'My_Config' is not a ConfigMap name"),
    (api.PROGRAMS_CONFIGMAP, "x" * 254, r"is not a ConfigMap name"),
    ("cninfra.io/log-levle", "debug", r"did you mean cninfra.io/log-level\?"),
])
def test_a_bad_override_is_refused_naming_the_annotation(annotation: str, value: str,
                                                         message: str) -> None:
    target = pod({api.INJECT: "true", annotation: value})
    before = copy.deepcopy(target)
    with pytest.raises(AnnotationError, match=message) as caught:
        inject(target, SPEC, native=True)
    assert caught.value.annotation == annotation
    assert str(caught.value).startswith(f"annotation {annotation}: ")
    assert target == before


def test_other_annotations_under_the_prefix_are_left_alone() -> None:
    target = pod({api.INJECT: "true", "cninfra.io/owner": "team-a"})
    inject(target, SPEC, native=True)
    assert target["metadata"]["annotations"]["cninfra.io/owner"] == "team-a"


def test_programs_override_without_a_supervisor_is_refused() -> None:
    no_supervisor = InjectionSpec(**{**SPEC.__dict__, "programs_config_map": ""})
    with pytest.raises(AnnotationError, match="runs no supervisor"):
        inject(pod({api.PROGRAMS_CONFIGMAP: "p"}), no_supervisor, native=True)


def test_overrides_reach_the_container() -> None:
    target = pod({api.INJECT: "true", api.LOG_LEVEL: "DEBUG", api.MICROSERVICE_LABEL: "billing"})
    inject(target, SPEC, native=True)
    env = {e["name"]: e for e in target["spec"]["initContainers"][0]["env"]}
    assert env["INITIAL_LOGLVL"] == {"name": "INITIAL_LOGLVL", "value": "debug"}
    assert env["MICROSERVICE_LABEL"] == {"name": "MICROSERVICE_LABEL", "value": "billing"}


def test_a_pod_without_a_service_account_gets_the_default_one() -> None:
    """The sidecar's projected token needs one; the ServiceAccount admission plugin would
    set the same, but a template in a file has none yet."""
    target = pod({api.INJECT: "true"})
    inject(target, SPEC, native=True)
    assert target["spec"]["serviceAccountName"] == "default"
    own = pod({api.INJECT: "true"}, serviceAccountName="billing")
    inject(own, SPEC, native=True)
    assert own["spec"]["serviceAccountName"] == "billing"


def test_the_k8s_plugin_reads_the_variable_the_injector_sets() -> None:
    from sidecar.k8s.config import PROGRAMS_CONFIGMAP_ENV

    assert api.PROGRAMS_CONFIGMAP_ENV == PROGRAMS_CONFIGMAP_ENV
