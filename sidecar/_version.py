"""The distribution version; the single source of truth for pyproject and build info."""

__version__ = "0.1.0"
