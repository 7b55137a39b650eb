"""One config loader for every plugin: ``<name>.conf`` YAML files, flags and environment."""

from ._decode import Parse, config_key, decode, did_you_mean, keys_in_any_case
from .duration import DURATION, format_duration, parse_duration
from .errors import (
    ConfigError,
    ConfigFileError,
    ConfigValueError,
    ConfigValueErrors,
)
from .errors import (
    combine as combine_errors,
)
from .loader import ConfigSources, UnreadFile, env_name
from .yamltext import YamlError, describe_yaml_error, parse_yaml

__all__ = [
    "DURATION",
    "ConfigError",
    "ConfigFileError",
    "ConfigSources",
    "ConfigValueError",
    "ConfigValueErrors",
    "Parse",
    "UnreadFile",
    "YamlError",
    "combine_errors",
    "config_key",
    "decode",
    "describe_yaml_error",
    "did_you_mean",
    "env_name",
    "format_duration",
    "keys_in_any_case",
    "parse_duration",
    "parse_yaml",
]
