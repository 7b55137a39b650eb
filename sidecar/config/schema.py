"""The JSON Schema and the documentation of a config dataclass, read from the dataclass.

What :func:`~sidecar.config.decode` accepts, as a JSON Schema (draft-07): the chart's
``values.schema.json`` checks ``config.*`` with it, so that ``helm template --set
config.http.admin-alow=...`` fails naming the key's path before a pod starts. The
ranges that ``__post_init__`` checks stay with the sidecar (``sidecar config check``).

Field documentation is the ``#:`` comment above each field (as Sphinx reads it);
:func:`fields_of` lists the keys of a file with their type, default and that text,
for the generated reference pages.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from ._decode import _ANY_CASE, Parse, config_key
from .duration import DurationMarker, format_duration

#: A duration as :func:`~sidecar.config.parse_duration` reads it (a number of seconds, or
#: ``500ms``, ``5s``, ``1m30s``, ``2h``).
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?|(\d+(\.\d+)?(ms|s|m|h))+)\s*$"


@dataclass(frozen=True)
class FieldDoc:
    """One key of a config file, for the reference: ``tls.ca-file``, its type, its default."""

    key: str
    type: str
    default: str
    doc: str
    required: bool = False


def json_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of config dataclass ``cls`` (an object with exactly its keys)."""
    return _dataclass_schema(cls)


def _dataclass_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = field_comments(cls)
    any_case = bool(getattr(cls, _ANY_CASE, False))
    properties: dict[str, Any] = {}
    required = []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        key = config_key(field)
        schema = _schema(hints[field.name])
        if doc := docs.get(field.name):
            schema["description"] = doc
        default = _default(field)
        if default is dataclasses.MISSING:
            if not any_case:
                required.append(key)
        elif default is not None:
            schema["default"] = _shown(default, hints[field.name])
        properties[key] = schema
    result: dict[str, Any] = {"type": "object", "additionalProperties": False}
    if doc := _class_doc(cls):
        result["description"] = doc
    if any_case:
        # Keys in any case, with or without dashes and underscores (as cn-infra reads them):
        # one pattern per key, so that every spelling is checked and no other key passes.
        result["patternProperties"] = {_any_case_pattern(k): v for k, v in properties.items()}
    else:
        result["properties"] = properties
        if required:
            result["required"] = required
    return result


def _schema(tp: Any) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *extras = get_args(tp)
        if any(isinstance(e, DurationMarker) for e in extras):
            return {"type": ["string", "number"], "pattern": DURATION_PATTERN, "minimum": 0}
        if any(isinstance(e, Parse) for e in extras):
            return {}  # a parser of its own decides; the sidecar names what it expects
        return _schema(base)
    if origin in (Union, types.UnionType):
        options = [o for o in get_args(tp) if o is not type(None)]
        nullable = len(options) < len(get_args(tp))
        schemas = [_schema(o) for o in options]
        if nullable:
            if len(schemas) == 1 and isinstance(schemas[0].get("type"), str) \
                    and "enum" not in schemas[0]:
                return {**schemas[0], "type": [schemas[0]["type"], "null"]}
            schemas.append({"type": "null"})
        return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (list, tuple):
        return {"type": "array", "items": _schema(get_args(tp)[0])}
    if origin in (dict, Mapping):
        return {"type": "object", "additionalProperties": _schema(get_args(tp)[1])}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_schema(tp)
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    if tp is Any:
        return {}
    raise TypeError(f"config type {tp!r} has no JSON Schema")


def _any_case_pattern(key: str) -> str:
    letters = [c for c in key if c not in "-_"]
    parts = [f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in letters]
    return "^[-_]*" + "[-_]*".join(parts) + "[-_]*$"


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _shown(value: Any, tp: Any) -> Any:
    """A default as a config file would spell it (durations as ``5s``, tuples as lists)."""
    if _is_duration(tp) and isinstance(value, int | float):
        return format_duration(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {config_key(f): _shown(getattr(value, f.name), f.type)
                for f in dataclasses.fields(value) if f.init}
    if isinstance(value, tuple | list):
        return [_shown(v, Any) for v in value]
    if isinstance(value, dict):
        return {str(k): _shown(v, Any) for k, v in value.items()}
    return value


def _is_duration(tp: Any) -> bool:
    if get_origin(tp) is Annotated:
        return any(isinstance(e, DurationMarker) for e in get_args(tp)[1:])
    if get_origin(tp) in (Union, types.UnionType):
        return any(_is_duration(o) for o in get_args(tp))
    return False


def fields_of(cls: type, prefix: str = "") -> list[FieldDoc]:
    """Every key of config dataclass ``cls``, nested sections as ``tls.ca-file``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = field_comments(cls)
    rows = []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        tp = hints[field.name]
        key = prefix + config_key(field)
        default = _default(field)
        nested = _nested_dataclass(tp)
        rows.append(FieldDoc(
            key=key, type=type_name(tp),
            default="" if default is dataclasses.MISSING or default is None
            else _default_text(_shown(default, tp)),
            doc=docs.get(field.name, ""), required=default is dataclasses.MISSING))
        if nested is not None:
            rows += fields_of(nested, f"{key}." if get_origin(tp) not in (list, tuple)
                              else f"{key}[].")
    return rows


def _nested_dataclass(tp: Any) -> type | None:
    origin = get_origin(tp)
    if origin is Annotated:
        return _nested_dataclass(get_args(tp)[0])
    if origin in (Union, types.UnionType, list, tuple):
        found = [_nested_dataclass(o) for o in get_args(tp)]
        return next((f for f in found if f is not None), None)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    return None


def type_name(tp: Any) -> str:
    """``duration``, ``list of string``, ``one of auto, always, never``, ``section``."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *extras = get_args(tp)
        if any(isinstance(e, DurationMarker) for e in extras):
            return "duration"
        return type_name(base)
    if origin in (Union, types.UnionType):
        names = [type_name(o) for o in get_args(tp) if o is not type(None)]
        return " or ".join(names)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"list of {type_name(get_args(tp)[0])}"
    if origin in (dict, Mapping):
        return f"map of {type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "section"
    simple: dict[Any, str] = {bool: "boolean", int: "integer", float: "number",
                              str: "string", Any: "any"}
    return simple.get(tp) or str(getattr(tp, "__name__", tp))


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value in ("", [], {}):
        return ""
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_default_text(v)}" for k, v in value.items()) + "}"
    return str(value)


_FIELD = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:")


def field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comment lines right above each field of ``cls``, joined."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match and pending:
            docs[match.group(2)] = " ".join(pending)
        pending = []
    return docs


def _class_doc(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    if doc.startswith(f"{cls.__name__}("):  # dataclass's generated signature: no doc
        return ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")


__all__ = ["DURATION_PATTERN", "FieldDoc", "field_comments", "fields_of", "json_schema",
           "type_name"]
