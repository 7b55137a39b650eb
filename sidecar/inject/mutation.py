"""The mutation: the sidecar added to a pod (or a pod template), and who asked for it.

Pure functions on the pod as a dict, shared by the admission webhook and
``sidecar inject``. What is added comes from the :class:`InjectionSpec` (the
chart's rendering); this module decides where it goes:

* the container first among ``initContainers`` (a native sidecar: started
  before the other init containers and the workload, stopped after them) or
  last among ``containers`` (classic), as ``examples/chart-include`` places it;
* the volumes, readiness gates, labels and annotations appended;
* the per-pod overrides (annotations) applied as the chart's equivalent
  values would render them.

A pod that already has a container of the sidecar's name is left as it is.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from sidecar.logging.levels import LEVELS, VALID_LEVELS
from sidecar.servicelabel.api import InvalidLabelError, validate_label

from . import api
from .errors import AnnotationError, PodSpecError
from .spec import InjectionSpec

#: A DNS-1123 subdomain: what a ConfigMap's name must be.
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TRUE, _FALSE = "true", "false"

#: Where the chart's container template puts each variable an override sets: after
#: the first of these that the container has (the chart's order, checked by a test).
_ENV_AFTER = {
    "MICROSERVICE_LABEL": ("PROBE_PORT", "HTTP_PORT", "CONFIG_DIR", "POD_UID", "POD_NAMESPACE",
                           "POD_NAME"),
    api.PROGRAMS_CONFIGMAP_ENV: ("SUPERVISOR_CONFIG",),
    "INITIAL_LOGLVL": (api.PROGRAMS_CONFIGMAP_ENV, "SUPERVISOR_CONFIG", "MICROSERVICE_LABEL",
                       "PROBE_PORT", "HTTP_PORT", "CONFIG_DIR", "POD_UID", "POD_NAMESPACE",
                       "POD_NAME"),
}


class Decision(enum.Enum):
    """What happens to a pod."""

    INJECT = "inject"
    #: It has the sidecar already (injected before, or the chart's named templates).
    PRESENT = "present"
    #: Neither the pod nor its namespace asked.
    NOT_ASKED = "not asked"
    #: ``cninfra.io/inject: "false"`` (wins over the namespace label).
    OPTED_OUT = "opted out"


@dataclass(frozen=True)
class Overrides:
    """The validated per-pod override annotations (None: the spec's value)."""

    log_level: str | None = None
    microservice_label: str | None = None
    config_map: str | None = None
    programs_config_map: str | None = None


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return ((obj.get("metadata") or {}).get("annotations")) or {}


def inject_value(value: str | None, what: str = api.INJECT) -> bool | None:
    """``"true"`` -> True, ``"false"`` -> False, absent -> None; anything else is an error."""
    if value is None:
        return None
    text = value.strip().lower()
    if text == _TRUE:
        return True
    if text == _FALSE:
        return False
    raise AnnotationError(what, f'{value!r} is not "true" or "false"')


def has_sidecar(pod_spec: Mapping[str, Any], spec: InjectionSpec) -> bool:
    name = spec.container_name
    return any(c.get("name") == name
               for key in ("initContainers", "containers") for c in pod_spec.get(key) or ())


def decide(obj: Mapping[str, Any], spec: InjectionSpec, *,
           namespace_opted_in: bool = False) -> Decision:
    """Whether ``obj`` (a Pod or a pod template) gets the sidecar; AnnotationError for a
    ``cninfra.io/inject`` value that is neither true nor false."""
    asked = inject_value(annotations_of(obj).get(api.INJECT))
    if asked is False:
        return Decision.OPTED_OUT
    if not asked and not namespace_opted_in:
        return Decision.NOT_ASKED
    if has_sidecar(obj.get("spec") or {}, spec):
        return Decision.PRESENT
    return Decision.INJECT


def read_overrides(annotations: Mapping[str, str], spec: InjectionSpec) -> Overrides:
    """The override annotations, each validated; AnnotationError names the bad one
    (also a misspelt ``cninfra.io/`` annotation, with the one it was probably meant as)."""
    for key in annotations:
        if key.startswith(api.PREFIX) and key not in api.KNOWN_ANNOTATIONS:
            close = difflib.get_close_matches(key, api.KNOWN_ANNOTATIONS, n=1, cutoff=0.8)
            if close:
                raise AnnotationError(key, f"not a cninfra.io annotation (did you mean "
                                           f"{close[0]}?); the overrides are "
                                           f"{', '.join(api.OVERRIDES)}")
    level = annotations.get(api.LOG_LEVEL)
    if level is not None and level.strip().lower() not in LEVELS:
        raise AnnotationError(api.LOG_LEVEL,
                              f"{level!r} is not a log level; use one of {VALID_LEVELS}")
    label = annotations.get(api.MICROSERVICE_LABEL)
    if label is not None:
        try:
            validate_label(label, "the annotation")
        except InvalidLabelError as exc:
            raise AnnotationError(api.MICROSERVICE_LABEL, str(exc)) from None
    config = _config_map_name(annotations, api.CONFIG_CONFIGMAP)
    programs = _config_map_name(annotations, api.PROGRAMS_CONFIGMAP)
    if programs is not None and not spec.programs_config_map:
        raise AnnotationError(api.PROGRAMS_CONFIGMAP,
                              "the injected sidecar runs no supervisor (supervisor.enabled "
                              "is false in the operator's values), so it reads no programs")
    return Overrides(log_level=level.strip().lower() if level is not None else None,
                     microservice_label=label, config_map=config, programs_config_map=programs)


def _config_map_name(annotations: Mapping[str, str], key: str) -> str | None:
    name = annotations.get(key)
    if name is None:
        return None
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        raise AnnotationError(key, f"{name!r} is not a ConfigMap name (lower-case letters, "
                                   "digits, '-' and '.', at most 253 characters)")
    return name


def inject(obj: MutableMapping[str, Any], spec: InjectionSpec, *, native: bool) -> Overrides:
    """Add the sidecar to ``obj`` (a Pod or a pod template: ``metadata`` and ``spec``), in
    place; returns the overrides applied. Raises AnnotationError or PodSpecError and then
    leaves ``obj`` unchanged. The caller has decided (:func:`decide`) that it is wanted."""
    pod_spec = obj.get("spec")
    if not isinstance(pod_spec, dict):
        raise PodSpecError("the pod has no spec")
    overrides = read_overrides(annotations_of(obj), spec)
    taken = {v.get("name") for v in pod_spec.get("volumes") or ()}
    clash = [v["name"] for v in spec.volumes if v["name"] in taken]
    if clash:
        raise PodSpecError(f"the pod already has a volume named {clash[0]}, which the "
                           "sidecar needs for itself; rename the pod's volume")

    container = spec.sidecar_container(native)
    volumes = [dict(v) for v in spec.volumes]
    _apply_overrides(container, volumes, overrides, spec)

    if not isinstance(obj.get("metadata"), dict):
        obj["metadata"] = {}
    metadata = obj["metadata"]
    if spec.pod_labels:
        metadata["labels"] = {**(metadata.get("labels") or {}), **spec.pod_labels}
    annotations = {k: v for k, v in spec.pod_annotations.items()
                   if not (overrides.config_map and k.startswith("checksum/"))}
    if annotations:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    if native:
        pod_spec["initContainers"] = [container, *(pod_spec.get("initContainers") or ())]
    else:
        pod_spec["containers"] = [*(pod_spec.get("containers") or ()), container]
    pod_spec["volumes"] = [*(pod_spec.get("volumes") or ()), *volumes]
    if _needs_account(volumes) and not pod_spec.get("serviceAccountName"):
        # What the ServiceAccount admission plugin would set; the apiserver refuses a
        # projected token without it, which a template in a file may not have yet.
        pod_spec["serviceAccountName"] = pod_spec.get("serviceAccount") or "default"
    gates = list(pod_spec.get("readinessGates") or ())
    gates += [g for g in spec.readiness_gates if g not in gates]
    if gates:
        pod_spec["readinessGates"] = gates
    return overrides


def _apply_overrides(container: dict[str, Any], volumes: list[dict[str, Any]],
                     overrides: Overrides, spec: InjectionSpec) -> None:
    env: list[dict[str, Any]] = container.setdefault("env", [])
    if overrides.microservice_label is not None:
        _set_env(env, {"name": "MICROSERVICE_LABEL", "value": overrides.microservice_label})
    if overrides.programs_config_map is not None:
        _rename_config_map(volumes, spec.programs_config_map, overrides.programs_config_map)
        # The k8s plugin watches this one instead of the one k8s.conf names.
        _set_env(env, {"name": api.PROGRAMS_CONFIGMAP_ENV,
                       "value": overrides.programs_config_map})
    if overrides.log_level is not None:
        _set_env(env, {"name": "INITIAL_LOGLVL", "value": overrides.log_level})
    if overrides.config_map is not None:
        _rename_config_map(volumes, spec.config_map, overrides.config_map)


def _needs_account(volumes: Iterable[dict[str, Any]]) -> bool:
    return any("serviceAccountToken" in source
               for volume in volumes for source in (volume.get("projected") or {}).get("sources")
               or ())


def _set_env(env: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    names = [e.get("name") for e in env]
    if entry["name"] in names:
        env[names.index(entry["name"])] = entry
        return
    after = next((n for n in _ENV_AFTER[entry["name"]] if n in names), None)
    env.insert(names.index(after) + 1 if after else len(env), entry)


def _rename_config_map(volumes: Iterable[dict[str, Any]], old: str, new: str) -> None:
    for volume in volumes:
        config_map = volume.get("configMap")
        if isinstance(config_map, dict) and config_map.get("name") == old:
            volume["configMap"] = {**config_map, "name": new}
