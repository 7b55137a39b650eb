"""logmanager: list loggers and change their levels at run time over REST; ``logs.conf``."""

from .api import MAX_TTL, ROOT, ChangeListener, LoggerLevel
from .config import LoggerConfig, LogsConfig
from .errors import UnknownLoggerError
from .manager import LevelManager
from .plugin import LogManager, LogManagerPlugin

__all__ = [
    "MAX_TTL",
    "ROOT",
    "ChangeListener",
    "LevelManager",
    "LogManager",
    "LogManagerPlugin",
    "LoggerConfig",
    "LoggerLevel",
    "LogsConfig",
    "UnknownLoggerError",
]
