"""The metrics plugin's contract: what it reads of the plugins it exports.

Other plugins get the registry itself (``MetricsPlugin.registry``) and add
their collectors to it; these are the views the metrics plugin exports for them.
"""

from __future__ import annotations

from typing import Protocol


class PublishCounts(Protocol):
    """What the status publisher counts (``StatusPublisher`` has both)."""

    @property
    def commits(self) -> int: ...

    @property
    def errors(self) -> int: ...
