"""inject: the cninfra sidecar added to a pod by annotation (the operator's webhook) or
offline (``sidecar inject``). What is added comes from the chart (:mod:`.spec`)."""

from . import api
from .documents import DocumentError, Outcome, inject_documents
from .errors import AnnotationError, InjectError, PodSpecError, SpecError
from .mutation import Decision, Overrides, decide, has_sidecar, inject, read_overrides
from .spec import InjectionSpec, load_spec, parse_kube_version, parse_spec

__all__ = [
    "AnnotationError",
    "Decision",
    "DocumentError",
    "InjectError",
    "InjectionSpec",
    "Outcome",
    "Overrides",
    "PodSpecError",
    "SpecError",
    "api",
    "decide",
    "has_sidecar",
    "inject",
    "inject_documents",
    "load_spec",
    "parse_kube_version",
    "parse_spec",
    "read_overrides",
]
