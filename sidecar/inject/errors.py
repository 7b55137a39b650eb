"""Errors of the injector.

    InjectError               any reason a pod or a document cannot be injected
    ├── SpecError             the injection spec is not one the chart renders
    ├── AnnotationError       an annotation of the pod has a bad value (names the annotation)
    └── PodSpecError          the pod already has something the sidecar needs (a volume name)
"""

from __future__ import annotations


class InjectError(Exception):
    """Why the sidecar cannot be injected; the message is meant for the pod's author."""


class SpecError(InjectError):
    """The injection spec (``--spec``, the operator's ConfigMap) is not valid."""


class AnnotationError(InjectError):
    """A ``cninfra.io/`` annotation of the pod is not valid; ``annotation`` names it."""

    def __init__(self, annotation: str, reason: str) -> None:
        self.annotation = annotation
        self.reason = reason
        super().__init__(f"annotation {annotation}: {reason}")


class PodSpecError(InjectError):
    """The pod spec clashes with what the sidecar adds."""
