"""logmanager: list loggers and change their levels at run time over REST; ``logs.conf``."""

from .config import LoggerConfig, LogsConfig
from .manager import ROOT, ChangeListener, LevelManager, LoggerLevel, UnknownLoggerError
from .plugin import LogManager

__all__ = [
    "ROOT",
    "ChangeListener",
    "LevelManager",
    "LogManager",
    "LoggerConfig",
    "LoggerLevel",
    "LogsConfig",
    "UnknownLoggerError",
]
