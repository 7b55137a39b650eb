"""Process templates: cn-infra's ``process.Template`` as JSON (or YAML) files.

A template file is what cn-infra writes (``name``, ``cmd``, ``p_options``
with snake_case keys), so its templates load here unchanged; camelCase
(protobuf JSON) and dashed keys are accepted too. A few optional keys go
beyond cn-infra: ``env``, ``working_dir``, ``out_file``, ``err_file``,
``stop_signal``, ``stop_timeout``, ``backoff_base``, ``backoff_cap``,
``backoff_reset_after``. Example::

    {"name": "sleeper", "cmd": "/bin/sleep",
     "p_options": {"args": ["3600"], "restart": -1, "run_on_startup": true}}
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

import yaml

from sidecar.config import (
    ConfigValueError,
    Parse,
    YamlError,
    decode,
    format_duration,
    parse_duration,
    parse_yaml,
)
from sidecar.logging.output import ProgramOutput, json_mode

from .errors import TemplateError
from .options import Backoff, ProcessOptions, parse_cpu_list, parse_signal

JSON_SUFFIX = ".json"
TEMPLATE_SUFFIXES = (".json", ".yaml", ".yml")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _duration_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"expected a duration such as 500ms or 5s, got {value!r}")
    return format_duration(parse_duration(value))


def _signal_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"expected a signal name or number, got {value!r}")
    parse_signal(value)
    return str(value)


#: Kept as text (as written to the file), checked and normalised when read.
_Duration = Annotated[str, Parse(_duration_text)]
_Signal = Annotated[str, Parse(_signal_text)]


@dataclass(frozen=True)
class TemplateOptions:
    """``p_options`` of a template; every field is optional."""

    args: tuple[str, ...] = ()
    #: Output to the sidecar's stdout/stderr; false discards it (unless a file is named).
    #: With ``--log-format json`` (and not detached) each line becomes a JSON object on
    #: the sidecar's stdout, as a supervised program's does.
    out_writer: bool = False
    err_writer: bool = False
    #: Automatic restarts: 0 none, N at most N, -1 always.
    restart: int = 0
    detach: bool = False
    run_on_startup: bool = False
    #: Give the process a notification queue (``Process.notification_queue``).
    notify: bool = False
    auto_terminate: bool = False
    #: taskset's hexadecimal mask (``"0x3"``) or cpu list (``"0-2,6"``).
    cpu_affinity_mask: str = ""
    cpu_affinity_list: str = ""
    cpu_affinity_delay: _Duration = ""
    env: Mapping[str, str] | None = None
    working_dir: str = ""
    out_file: str = ""
    err_file: str = ""
    #: A signal name (``SIGINT``) or number.
    stop_signal: _Signal = ""
    stop_timeout: _Duration = ""
    backoff_base: _Duration = ""
    backoff_cap: _Duration = ""
    backoff_reset_after: _Duration = ""


_ALIASES = {"cpu_affinity": "cpu_affinity_mask"}  # the field's name in older cn-infra


def _key(raw: object) -> str:
    text = str(raw)
    return _CAMEL.sub(r"_\1", text).lower().replace("-", "_")


def _decode_options(raw: Mapping[Any, Any], source: str) -> TemplateOptions:
    """``p_options`` in any spelling (snake_case, camelCase, dashed) through the config
    decoder; a null value means the default."""
    options = {_ALIASES.get(_key(k), _key(k)): v for k, v in raw.items() if v is not None}
    try:
        return decode(TemplateOptions, options, source, "p_options",
                      key_of=lambda spec: spec.name)
    except ConfigValueError as exc:
        raise TemplateError(source, f"{exc.key}: {exc.reason}" if exc.key else exc.reason) \
            from None


def _check_name(name: str, source: str) -> None:
    if not name:
        raise TemplateError(source, "name: a template needs a name")
    if "/" in name or "\0" in name or name in (".", ".."):
        raise TemplateError(source, f"name: {name!r} cannot be a file name")


@dataclass(frozen=True)
class Template:
    """A process definition that can be stored as a file and started by the plugin."""

    name: str
    cmd: str
    p_options: TemplateOptions = field(default_factory=TemplateOptions)

    def __post_init__(self) -> None:
        _check_name(self.name, "")
        if not self.cmd:
            raise TemplateError("", f"template {self.name!r}: cmd: a template needs a command")

    @property
    def run_on_startup(self) -> bool:
        return self.p_options.run_on_startup

    # -- conversion to and from processes ------------------------------------
    def process_options(self) -> ProcessOptions:
        """The options a process created from this template runs with."""
        opts = self.p_options
        backoff = Backoff()
        if opts.backoff_base or opts.backoff_cap or opts.backoff_reset_after:
            backoff = Backoff(
                base=parse_duration(opts.backoff_base) if opts.backoff_base else backoff.base,
                cap=parse_duration(opts.backoff_cap) if opts.backoff_cap else backoff.cap,
                reset_after=(parse_duration(opts.backoff_reset_after)
                             if opts.backoff_reset_after else backoff.reset_after))
        affinity = None
        if opts.cpu_affinity_list:
            affinity = parse_cpu_list(opts.cpu_affinity_list)
        elif opts.cpu_affinity_mask:
            mask = opts.cpu_affinity_mask
            affinity = parse_cpu_list(mask if mask.lower().startswith("0x") else f"0x{mask}")
        kwargs: dict[str, Any] = {}
        # The sidecar's streams: inherited (no cost to the sidecar), but read and turned
        # into JSON objects when the sidecar writes JSON lines.
        mine: ProgramOutput | None = (
            ProgramOutput(self.name) if json_mode() and not opts.detach else None)
        if opts.stop_signal:
            kwargs["stop_signal"] = parse_signal(opts.stop_signal)
        if opts.stop_timeout:
            kwargs["stop_timeout"] = parse_duration(opts.stop_timeout)
        try:
            return ProcessOptions(
                args=opts.args,
                restarts=opts.restart,
                backoff=backoff,
                stdout=opts.out_file or (mine if opts.out_writer else subprocess.DEVNULL),
                stderr=opts.err_file or (mine if opts.err_writer else subprocess.DEVNULL),
                detach=opts.detach,
                env=opts.env,
                working_dir=opts.working_dir or None,
                run_on_startup=opts.run_on_startup,
                notify=True if opts.notify else None,
                auto_terminate=opts.auto_terminate,
                cpu_affinity=affinity,
                cpu_affinity_delay=(parse_duration(opts.cpu_affinity_delay)
                                    if opts.cpu_affinity_delay else 0.0),
                **kwargs,
            )
        except ValueError as exc:
            raise TemplateError("", f"template {self.name!r}: {exc}") from None

    @classmethod
    def from_process(cls, name: str, cmd: str, options: ProcessOptions) -> Template:
        """The template of a process; writers that are not files become the sidecar's streams."""
        default = Backoff()
        backoff = options.backoff
        return cls(name=name, cmd=cmd, p_options=TemplateOptions(
            args=options.args,
            out_writer=_to_stream(options.stdout),
            err_writer=_to_stream(options.stderr),
            out_file=_to_file(options.stdout),
            err_file=_to_file(options.stderr),
            restart=options.restarts,
            detach=options.detach,
            run_on_startup=options.run_on_startup,
            notify=options.notify not in (None, False),
            auto_terminate=options.auto_terminate,
            cpu_affinity_list=(",".join(str(c) for c in sorted(options.cpu_affinity))
                               if options.cpu_affinity else ""),
            cpu_affinity_delay=(format_duration(options.cpu_affinity_delay)
                                if options.cpu_affinity_delay else ""),
            env=dict(options.env) if options.env is not None else None,
            working_dir=options.working_dir or "",
            stop_signal=(options.stop_signal.name
                         if options.stop_signal != signal.SIGTERM else ""),
            stop_timeout=(format_duration(options.stop_timeout)
                          if options.stop_timeout != ProcessOptions.stop_timeout else ""),
            backoff_base=format_duration(backoff.base) if backoff.base != default.base else "",
            backoff_cap=format_duration(backoff.cap) if backoff.cap != default.cap else "",
            backoff_reset_after=(format_duration(backoff.reset_after)
                                 if backoff.reset_after != default.reset_after else ""),
        ))

    # -- serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """cn-infra's JSON shape; options at their default are left out."""
        options: dict[str, Any] = {}
        for spec in fields(TemplateOptions):
            value = getattr(self.p_options, spec.name)
            if value == spec.default or (value == () and spec.name == "args"):
                continue
            options[spec.name] = list(value) if isinstance(value, tuple) else (
                dict(value) if isinstance(value, Mapping) else value)
        data: dict[str, Any] = {"name": self.name, "cmd": self.cmd}
        if options:
            data["p_options"] = options
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> Template:
        """Build from parsed JSON/YAML; TemplateError names ``source`` and the key."""
        if not isinstance(data, Mapping):
            raise TemplateError(source, f"expected an object with name, cmd and p_options, "
                                        f"got {type(data).__name__}")
        top = {_key(k): v for k, v in data.items()}
        unknown = sorted(set(top) - {"name", "cmd", "p_options"})
        if unknown:
            raise TemplateError(source, f"unknown key {unknown[0]!r}; valid keys are: "
                                        "name, cmd, p_options")
        name = top.get("name", "")
        cmd = top.get("cmd", "")
        if not isinstance(name, str):
            raise TemplateError(source, f"name: expected a string, got {name!r}")
        if not isinstance(cmd, str):
            raise TemplateError(source, f"cmd: expected a string, got {cmd!r}")
        _check_name(name, source)
        if not cmd:
            raise TemplateError(source, "cmd: a template needs a command")
        raw_options = top.get("p_options") or {}
        if not isinstance(raw_options, Mapping):
            raise TemplateError(source, "p_options: expected an object")
        template = cls(name=name, cmd=cmd, p_options=_decode_options(raw_options, source))
        try:
            template.process_options()
        except (TemplateError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, TemplateError) else str(exc)
            raise TemplateError(source, reason) from None
        return template

    @classmethod
    def from_json(cls, text: str, source: str = "") -> Template:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(source, f"invalid JSON: line {exc.lineno}, column {exc.colno}: "
                                        f"{exc.msg}") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_yaml(cls, text: str, source: str = "") -> Template:
        try:
            data = parse_yaml(text)
        except YamlError as exc:
            raise TemplateError(source, f"invalid YAML: {exc}") from None
        return cls.from_dict(data, source)

    @classmethod
    def read(cls, path: Path) -> Template:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise TemplateError(str(path), "not UTF-8 text") from None
        except OSError as exc:
            raise TemplateError(str(path), f"cannot read: {exc.strerror or exc}") from None
        if path.suffix == JSON_SUFFIX:
            return cls.from_json(text, str(path))
        return cls.from_yaml(text, str(path))


def _to_stream(target: object) -> bool:
    if target is None:
        return True
    return not (target == subprocess.DEVNULL or isinstance(target, str | os.PathLike))


def _to_file(target: object) -> str:
    return os.fspath(target) if isinstance(target, str | os.PathLike) else ""


class TemplateStore:
    """The template directory: reads every template file, writes one file per template."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def ensure(self) -> None:
        """Create the directory when missing (as cn-infra does)."""
        self.path.mkdir(parents=True, exist_ok=True)

    def load(self) -> tuple[list[Template], list[TemplateError]]:
        """Every valid template, sorted by file name, and one error per file that is not."""
        templates: list[Template] = []
        errors: list[TemplateError] = []
        seen: dict[str, Path] = {}
        try:
            entries = sorted(self.path.iterdir())
        except OSError as exc:
            raise TemplateError(str(self.path), f"cannot list the template path: "
                                                f"{exc.strerror or exc}") from None
        for entry in entries:
            if entry.suffix not in TEMPLATE_SUFFIXES or entry.name.startswith("."):
                continue
            if not entry.is_file():
                continue
            try:
                template = Template.read(entry)
            except TemplateError as exc:
                errors.append(exc)
                continue
            if template.name in seen:
                errors.append(TemplateError(str(entry), f"template {template.name!r} is already "
                                                        f"defined in {seen[template.name]}"))
                continue
            seen[template.name] = entry
            templates.append(template)
        return templates, errors

    def get(self, name: str) -> Template | None:
        templates, _ = self.load()
        return next((t for t in templates if t.name == name), None)

    def write(self, template: Template) -> Path:
        """Write ``<name>.json`` atomically (readers never see half a file)."""
        self.ensure()
        target = self.path / f"{template.name}{JSON_SUFFIX}"
        fd, name = tempfile.mkstemp(prefix=f".{template.name}.", dir=self.path)
        temporary = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(template.to_json())
            temporary.chmod(0o644)
            temporary.replace(target)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return target

