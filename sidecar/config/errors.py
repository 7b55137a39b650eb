"""Configuration errors.

    ConfigError            any problem with a config file, flag or environment variable
    ├── ConfigFileError    the file cannot be read or is not valid YAML
    └── ConfigValueError   a key is unknown or a value has the wrong type or range
        └── ConfigValueErrors  several of those in one file, every one reported
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class ConfigError(Exception):
    """A configuration problem; the message is meant for the person who wrote the config."""

    @property
    def messages(self) -> list[str]:
        """One line per problem (several when a file has more than one mistake)."""
        return [str(self)]


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

    @property
    def errors(self) -> tuple[ConfigValueError, ...]:
        """Each problem (this one alone, unless several were found together)."""
        return (self,)

    @property
    def messages(self) -> list[str]:
        return [str(e) for e in self.errors]


class ConfigValueErrors(ConfigValueError):
    """Every problem found in one file, so that one round of fixes is enough.

    ``source``, ``key`` and ``reason`` are the first problem's; ``errors`` all of them.
    """

    def __init__(self, errors: Sequence[ConfigValueError]) -> None:
        flat = [e for error in errors for e in error.errors]
        first = flat[0]
        super().__init__(first.source, first.key, first.reason)
        self.args = ("\n".join(str(e) for e in flat),)
        self._errors = tuple(flat)

    @property
    def errors(self) -> tuple[ConfigValueError, ...]:
        return self._errors


def combine(errors: Sequence[ConfigValueError]) -> ConfigValueError:
    """One error for ``errors`` (not empty): itself when there is one."""
    return errors[0] if len(errors) == 1 else ConfigValueErrors(errors)
