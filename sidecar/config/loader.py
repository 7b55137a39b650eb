"""Find and load each plugin's ``<name>.conf`` the way cn-infra does.

A plugin's file is looked up, first match wins, in
``--<name>-config PATH`` > ``$<NAME>_CONFIG`` > ``<config dir>/<name>.conf``,
where the config dir comes from ``--config-dir`` or ``$CONFIG_DIR``.
A Kubernetes ConfigMap mounted as a directory is such a config dir.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ._decode import decode
from .errors import ConfigFileError
from .yamltext import YamlError, parse_yaml

T = TypeVar("T")


def env_name(name: str) -> str:
    """``process-manager`` -> ``PROCESS_MANAGER_CONFIG``."""
    return name.upper().replace("-", "_").replace(".", "_") + "_CONFIG"


@dataclass(frozen=True)
class UnreadFile:
    """A file of the config dir that no plugin reads; ``meant`` the likely intended name."""

    path: Path
    meant: str | None

    def __str__(self) -> str:
        hint = f" (did you mean {self.meant}?)" if self.meant else ""
        return f"{self.path}: no plugin reads this file{hint}"


def _meant(filename: str, known: Mapping[str, str]) -> str | None:
    """``logs.yaml`` -> ``logs.conf`` (same name, other suffix); ``etdc.conf`` -> ``etcd.conf``."""
    stem = filename.split(".", 1)[0]
    if stem in known.values():
        return f"{stem}.conf"
    close = difflib.get_close_matches(filename, list(known), n=1, cutoff=0.75)
    if not close:
        close = [f"{n}.conf" for n in difflib.get_close_matches(stem, list(known.values()),
                                                                  n=1, cutoff=0.75)]
    return close[0] if close else None


@dataclass(frozen=True)
class ConfigSources:
    """Where config comes from: the flags given, the environment and the config dir."""

    config_dir: Path | None = None
    flag_files: Mapping[str, Path] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_env(
        cls,
        config_dir: str | Path | None = None,
        flag_files: Mapping[str, str | Path] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ConfigSources:
        environ = dict(os.environ) if env is None else dict(env)
        directory = config_dir if config_dir is not None else environ.get("CONFIG_DIR") or None
        return cls(
            config_dir=Path(directory) if directory is not None else None,
            flag_files={k: Path(v) for k, v in (flag_files or {}).items()},
            env=environ,
        )

    def locate(self, name: str) -> tuple[Path | None, bool]:
        """The file for plugin ``name`` and whether it was asked for explicitly."""
        if name in self.flag_files:
            return self.flag_files[name], True
        from_env = self.env.get(env_name(name))
        if from_env:
            return Path(from_env), True
        if self.config_dir is not None:
            return self.config_dir / f"{name}.conf", False
        return None, False

    def has(self, name: str) -> bool:
        """Whether ``name`` has a config file (one named explicitly counts even if missing,
        so that loading it reports the missing file)."""
        path, explicit = self.locate(name)
        return path is not None and (explicit or path.exists())

    def unread_files(self, names: Iterable[str]) -> list[UnreadFile]:
        """Files in the config dir that none of ``names`` reads (``etdc.conf``,
        ``logs.yaml``), with the file each was probably meant to be.

        Hidden entries (a mounted ConfigMap's ``..data``) and directories are not files
        of the config dir's own.
        """
        if self.config_dir is None or not self.config_dir.is_dir():
            return []
        known = {f"{name}.conf": name for name in names}
        unread = []
        for entry in sorted(self.config_dir.iterdir()):
            if entry.name.startswith(".") or entry.name in known or not entry.is_file():
                continue
            unread.append(UnreadFile(entry, _meant(entry.name, known)))
        return unread

    def read(self, name: str) -> tuple[Path | None, Any]:
        """Parsed YAML of ``name``'s file, or ``(None, None)`` when it has none.

        A file named by a flag or an environment variable must exist; one that is
        merely absent from the config dir means "use the defaults".
        """
        path, explicit = self.locate(name)
        if path is None:
            return None, None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if explicit:
                raise ConfigFileError(path, "no such file") from None
            return None, None
        except OSError as exc:
            raise ConfigFileError(path, f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigFileError(path, "not UTF-8 text") from None
        try:
            return path, parse_yaml(text)
        except YamlError as exc:
            raise ConfigFileError(path, f"invalid YAML: {exc}") from None

    def load(self, name: str, cls: type[T]) -> T:
        """``cls`` from ``name``'s file, or ``cls()`` (the defaults) when there is none."""
        path, data = self.read(name)
        return decode(cls, data, str(path) if path else f"{name}.conf")

    def load_optional(self, name: str, cls: type[T]) -> T | None:
        """``cls`` from the file, or ``None`` (plugin disabled) when there is no file."""
        path, data = self.read(name)
        if path is None:
            return None
        return decode(cls, data, str(path))
