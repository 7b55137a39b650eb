"""One config loader for every plugin: ``<name>.conf`` YAML files, flags and environment."""

from ._decode import config_key, decode
from .duration import DURATION, format_duration, parse_duration
from .errors import ConfigError, ConfigFileError, ConfigValueError
from .loader import ConfigSources, env_name

__all__ = [
    "DURATION",
    "ConfigError",
    "ConfigFileError",
    "ConfigSources",
    "ConfigValueError",
    "config_key",
    "decode",
    "env_name",
    "format_duration",
    "parse_duration",
]
