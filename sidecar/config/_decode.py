"""Turn parsed YAML into frozen dataclasses, with errors that name the key and the expectation."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from .duration import DURATION, DurationMarker, parse_duration
from .errors import ConfigValueError, combine

T = TypeVar("T")

#: The YAML key of a dataclass field (:func:`config_key` unless a caller says otherwise).
KeyOf = Callable[[dataclasses.Field[Any]], str]


@dataclass(frozen=True)
class Parse:
    """``Annotated[T, Parse(fn)]``: the field's value is ``fn(value)``; the text of a
    ValueError or TypeError that ``fn`` raises is the error (``p_options.stop_signal: ...``)."""

    fn: Callable[[Any], Any]


def config_key(field: dataclasses.Field[Any]) -> str:
    """The YAML key of a field: its metadata ``key`` or its name with dashes."""
    key = field.metadata.get("key")
    return key if isinstance(key, str) else field.name.replace("_", "-")


#: Class attribute set by ``keys_in_any_case``.
_ANY_CASE = "__config_keys_in_any_case__"


def keys_in_any_case(cls: type[T]) -> type[T]:
    """Let the keys of config dataclass ``cls`` match in any case, with or without
    dashes and underscores (``default-level``, ``DefaultLevel``, ``Name``).

    For files that cn-infra's Go agents share: its decoder (mapstructure) matches
    keys ignoring case, so their files spell ``Name`` and ``Level``. Applies to
    ``cls`` only: mark each nested dataclass that should match the same way.
    Unknown keys are still errors, and so are two spellings of one key.
    """
    setattr(cls, _ANY_CASE, True)
    return cls


def _folded(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


def _match_keys(cls: type[Any], data: Mapping[Any, Any], fields: dict[str, Any],
                source: str, path: str, *,
                errors: list[ConfigValueError]) -> dict[str, Any]:
    """``data`` re-keyed by the canonical key of each field; an unknown key (or one
    spelled twice) goes to ``errors`` and is left out."""
    any_case = bool(getattr(cls, _ANY_CASE, False))
    folded = {_folded(key): key for key in fields} if any_case else {}
    matched: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in data.items():
        canonical = str(key) if key in fields else folded.get(_folded(str(key)))
        if canonical is None:
            where = _join(path, str(key))
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            if not hint and any_case:
                hint = [folded[h] for h in difflib.get_close_matches(
                    _folded(str(key)), list(folded), n=1)]
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            errors.append(ConfigValueError(
                source, where,
                f"unknown key{suggestion}; valid keys are: {', '.join(sorted(fields)) or 'none'}",
            ))
            continue
        if canonical in spelled:
            errors.append(ConfigValueError(source, _join(path, canonical),
                                           f"set twice, as '{spelled[canonical]}' and as '{key}'"))
            continue
        spelled[canonical] = str(key)
        matched[canonical] = value
    return matched


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or "" when none is close."""
    hint = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def decode(cls: type[T], data: Any, source: str, path: str = "", *,
           key_of: KeyOf = config_key) -> T:
    """Build ``cls`` (a dataclass) from ``data``; ``source`` names the file in errors,
    ``path`` the place of ``data`` in it, ``key_of`` the key of each field.

    Every problem is reported, not only the first: the error raised is a
    :class:`~sidecar.config.ConfigValueErrors` when there are several.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigValueError(source, path or "(top level)",
                               f"expected a mapping of keys, got {_describe(data)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {key_of(f): f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    errors: list[ConfigValueError] = []
    data = _match_keys(cls, data, fields, source, path, errors=errors)
    values: dict[str, Any] = {}
    for key, field in fields.items():
        where = _join(path, key)
        if key in data:
            try:
                values[field.name] = _convert(hints[field.name], data[key], source, where,
                                              key_of)
            except ConfigValueError as exc:
                errors.append(exc)
        elif (field.default is dataclasses.MISSING
              and field.default_factory is dataclasses.MISSING):
            errors.append(ConfigValueError(source, where, "required key is missing"))
    if errors:  # the checks of __post_init__ need every value: they wait for a clean file
        raise combine(errors)
    try:
        return cls(**values)
    except ValueError as exc:  # __post_init__ validation
        raise ConfigValueError(source, path, str(exc)) from exc


def _convert(tp: Any, value: Any, source: str, where: str, key_of: KeyOf) -> Any:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *extras = get_args(tp)
        if any(isinstance(e, DurationMarker) for e in extras):
            return _duration(value, source, where)
        for extra in extras:
            if isinstance(extra, Parse):
                try:
                    return extra.fn(value)
                except (ValueError, TypeError) as exc:
                    raise ConfigValueError(source, where, str(exc)) from None
        return _convert(base, value, source, where, key_of)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        non_none = [o for o in options if o is not type(None)]
        if len(non_none) == 1:
            return _convert(non_none[0], value, source, where, key_of)
        errors = []
        for option in non_none:
            try:
                return _convert(option, value, source, where, key_of)
            except ConfigValueError as exc:
                errors.append(exc.reason)
        raise ConfigValueError(source, where, " or ".join(errors))
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            choices = ", ".join(map(str, allowed))
            raise ConfigValueError(source, where,
                                   f"expected one of {choices}, got {_describe(value)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigValueError(source, where, f"expected a list, got {_describe(value)}")
        items = _convert_items(get_args(tp)[0], value, source, where, key_of)
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigValueError(source, where, f"expected a mapping, got {_describe(value)}")
        return _convert_mapping(get_args(tp), value, source, where, key_of)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return decode(tp, value, source, where, key_of=key_of)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigValueError(source, where, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigValueError(source, where, f"expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigValueError(source, where, f"expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigValueError(source, where, f"expected a string, got {_describe(value)}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"config type {tp!r} of {where} is not supported")


def _convert_items(item_type: Any, value: list[Any], source: str, where: str,
                   key_of: KeyOf) -> list[Any]:
    """Every item converted, or every bad item's error at once."""
    items, errors = [], []
    for i, item in enumerate(value):
        try:
            items.append(_convert(item_type, item, source, f"{where}[{i}]", key_of))
        except ConfigValueError as exc:
            errors.append(exc)
    if errors:
        raise combine(errors)
    return items


def _convert_mapping(types_: tuple[Any, ...], value: Mapping[Any, Any], source: str,
                     where: str, key_of: KeyOf) -> dict[Any, Any]:
    key_type, value_type = types_
    converted, errors = {}, []
    for key, item in value.items():
        try:
            converted[_convert(key_type, key, source, f"{where}.{key}", key_of)] = \
                _convert(value_type, item, source, f"{where}.{key}", key_of)
        except ConfigValueError as exc:
            errors.append(exc)
    if errors:
        raise combine(errors)
    return converted


def _duration(value: Any, source: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigValueError(
            source, where, f"expected a duration such as 5s, 100ms or 2m, got {_describe(value)}")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigValueError(source, where, str(exc)) from None
    return seconds


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


__all__ = ["DURATION", "KeyOf", "Parse", "config_key", "decode", "did_you_mean",
           "keys_in_any_case"]
