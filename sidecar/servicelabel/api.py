"""The service label: which agent this is, and the etcd prefixes derived from it."""

from __future__ import annotations

from typing import Protocol

ALL_AGENTS_PREFIX = "/vnf-agent/"
MAX_LABEL_LENGTH = 253


class ServiceLabelReader(Protocol):
    def agent_label(self) -> str:
        """This agent's label."""
        ...

    def agent_prefix(self) -> str:
        """``/vnf-agent/<label>/``: the prefix of this agent's keys."""
        ...

    def different_agent_prefix(self, label: str) -> str:
        """The key prefix of another agent."""
        ...

    def all_agents_prefix(self) -> str:
        """``/vnf-agent/``: the prefix of every agent's keys."""
        ...


class InvalidLabelError(ValueError):
    """A label that cannot be an etcd path segment."""


def validate_label(label: str, source: str) -> str:
    """``label`` unchanged, or :class:`InvalidLabelError` saying what is wrong and where from."""
    if not label:
        raise InvalidLabelError(f"microservice label from {source} is empty")
    if "/" in label:
        raise InvalidLabelError(
            f"microservice label {label!r} from {source} must not contain '/'")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidLabelError(
            f"microservice label from {source} is {len(label)} characters long; "
            f"the limit is {MAX_LABEL_LENGTH}")
    if any(ch.isspace() or not ch.isprintable() for ch in label):
        raise InvalidLabelError(
            f"microservice label {label!r} from {source} must not contain spaces or "
            "control characters")
    return label


def agent_prefix_of(label: str) -> str:
    return f"{ALL_AGENTS_PREFIX}{label}/"
