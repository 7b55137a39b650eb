"""Configuration errors.

    ConfigError            any problem with a config file, flag or environment variable
    ├── ConfigFileError    the file cannot be read or is not valid YAML
    └── ConfigValueError   a key is unknown or a value has the wrong type or range
"""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A configuration problem; the message is meant for the person who wrote the config."""


class ConfigFileError(ConfigError):
    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ConfigValueError(ConfigError):
    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: {key}: {reason}" if key else f"{source}: {reason}")
