"""``sidecar inject``: the mutation applied to the pods and pod templates of a YAML stream.

Pods, and the pod templates of Deployments, StatefulSets, DaemonSets,
ReplicaSets, ReplicationControllers, Jobs, CronJobs and PodTemplates (also
inside a ``kind: List``), get the sidecar; other documents pass unchanged.
Running the command is the opt-in, so only ``cninfra.io/inject: "false"``
keeps a pod template out; one that has the sidecar already is left as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import InjectError
from .mutation import Decision, decide, inject
from .spec import InjectionSpec

#: kind -> the path from the document to its pod template.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
    "Pod": (),
}


@dataclass(frozen=True)
class Outcome:
    """What happened to one pod (template): ``what`` is ``deployment/web`` or the like."""

    what: str
    decision: Decision


class DocumentError(InjectError):
    """A document of the stream could not be injected; the message names it."""


def describe(doc: dict[str, Any], index: int) -> str:
    kind = str(doc.get("kind") or "document")
    name = (doc.get("metadata") or {}).get("name") or (
        (doc.get("metadata") or {}).get("generateName") or "")
    return f"document {index + 1} ({kind}/{name})" if name else f"document {index + 1} ({kind})"


def _templates(doc: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, its pod template) for every pod template in ``doc``."""
    if not isinstance(doc, dict):
        return
    kind = doc.get("kind")
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List")
                          and isinstance(doc.get("items"), list)):
        for item in doc.get("items") or ():
            yield from _templates(item)
        return
    path = TEMPLATE_PATHS.get(str(kind))
    if path is None:
        return
    template: Any = doc
    for key in path:
        template = template.get(key) if isinstance(template, dict) else None
    if isinstance(template, dict):
        yield doc, template


def inject_documents(docs: list[Any], spec: InjectionSpec, *,
                     native: bool) -> list[Outcome]:
    """Inject every pod (template) of ``docs``, in place. On an error nothing is changed
    and DocumentError names the document, its kind and name, and the reason."""
    work = copy.deepcopy(docs)  # an error in the fifth document leaves the first four alone
    outcomes = []
    for index, doc in enumerate(work):
        for obj, template in _templates(doc):
            try:
                # Running the command is the opt-in: only "false" keeps a template out.
                decision = decide(template, spec, namespace_opted_in=True)
                if decision is Decision.INJECT:
                    inject(template, spec, native=native)
            except InjectError as exc:
                raise DocumentError(f"{describe(obj, index)}: {exc}") from None
            name = (obj.get("metadata") or {}).get("name") or f"#{index + 1}"
            outcomes.append(Outcome(f"{str(obj.get('kind')).lower()}/{name}", decision))
    docs[:] = work
    return outcomes
