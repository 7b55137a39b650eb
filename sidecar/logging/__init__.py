"""Logging: output set-up, the log manager (``logmanager``) and the tracer (``measure``)."""

from .setup import setup_logging

__all__ = ["setup_logging"]
