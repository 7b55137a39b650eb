"""``sidecar config check [DIR]``: every config file the sidecar would read, checked at once.

Like ``promtool check config``: each file is loaded as ``sidecar run`` loads it and
every mistake is collected (file, key, what was expected), not only the first; the
files of the config dir that no plugin reads are warnings ("did you mean etcd.conf?").
When every file is fine on its own, the sidecar is built (not started) from them,
which finds what only the files together, the flags or the environment can get
wrong (fleet.conf without etcd.conf, a bad ``HTTP_PORT``, an unreadable token file).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sidecar.builder import CONFIG_FILES, CONFIG_NAMES, ConfigFile, Options, build
from sidecar.config import ConfigError, ConfigSources

OK, ERRORS, ABSENT = "ok", "error", "no file"


@dataclass(frozen=True)
class FileResult:
    """One config file: where it is (None: it has none) and its problems."""

    file: ConfigFile
    path: Path | None
    errors: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        if self.path is None:
            return ABSENT
        return ERRORS if self.errors else OK

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file.filename, "path": str(self.path) if self.path else None,
                "status": self.status, "errors": list(self.errors),
                "without": self.file.without}


@dataclass
class Report:
    config_dir: Path | None
    files: list[FileResult] = field(default_factory=list)
    #: Every error: those of each file, then those the files, flags and env make together.
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"config_dir": str(self.config_dir) if self.config_dir else None,
                "ok": self.ok, "files": [f.to_dict() for f in self.files],
                "errors": self.errors, "warnings": self.warnings}


def check(options: Options | None = None) -> Report:
    """Check the config that ``sidecar run`` with ``options`` would read."""
    options = options or Options()
    env = dict(os.environ) if options.env is None else dict(options.env)
    sources = ConfigSources.from_env(options.config_dir, options.config_files, env)
    report = Report(sources.config_dir)
    if sources.config_dir is not None and not sources.config_dir.is_dir():
        report.errors.append(f"config dir {sources.config_dir}: no such directory")
        return report
    for file in CONFIG_FILES:
        path, _ = sources.locate(file.name)
        if not sources.has(file.name):
            report.files.append(FileResult(file, None))
            continue
        try:
            file.check(sources)
        except ConfigError as exc:
            report.files.append(FileResult(file, path, tuple(exc.messages)))
            report.errors.extend(exc.messages)
        else:
            report.files.append(FileResult(file, path))
    report.warnings.extend(
        str(u) for u in sources.unread_files([*CONFIG_NAMES, *options.config_files]))
    if report.ok:
        with _warnings_of("sidecar") as warnings:
            try:
                # The agent is made, not run: it checks the plugins statuscheck.conf names.
                build(options).agent()
            except ConfigError as exc:
                report.errors.extend(exc.messages)
                _blame(report, exc.messages)
        report.warnings.extend(w for w in warnings if w not in report.warnings)
    return report


def _blame(report: Report, messages: list[str]) -> None:
    """Mark the files that the errors found together name (``fleet.conf: ...``)."""
    for index, result in enumerate(report.files):
        names = [str(result.path), result.file.filename, result.file.name] if result.path else []
        mine = tuple(m for m in messages if any(m.startswith(f"{n}:") for n in names))
        if mine:
            report.files[index] = replace(result, errors=result.errors + mine)


@contextmanager
def _warnings_of(name: str) -> Iterator[list[str]]:
    """The warnings logged under logger ``name`` meanwhile (and not printed)."""
    caught: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record.getMessage())

    logger = logging.getLogger(name)
    handler, propagate = Catch(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield caught
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


__all__ = ["FileResult", "Report", "check"]
