"""Value decoders and key-to-name functions for :class:`~sidecar.idxmap.CacheHelper`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

M = TypeVar("M", bound="ProtoMessage")

#: ``bytes -> value``; raise to reject a value (it is counted and left out of the cache).
Decoder = Callable[[bytes], Any]

#: ``key -> name``, or None to leave the key out of the cache.
NameFunction = Callable[[str], str | None]


class ProtoMessage(Protocol):
    """What a generated protobuf message class offers (``google.protobuf.message.Message``)."""

    @classmethod
    def FromString(cls: type[M], data: bytes) -> M: ...


def json_value(data: bytes) -> Any:
    """The default decoder: the value is JSON."""
    return json.loads(data)


def protobuf_value(message_class: type[M]) -> Callable[[bytes], M]:
    """A decoder parsing values as ``message_class`` (a generated protobuf class)."""
    parse = message_class.FromString

    def decode(data: bytes) -> M:
        return parse(data)

    decode.__qualname__ = f"protobuf_value({message_class.__name__})"
    return decode


def as_decoder(decode: Decoder | type[Any]) -> Decoder:
    """``decode`` itself, or a protobuf decoder when given a message class."""
    if isinstance(decode, type) and callable(getattr(decode, "FromString", None)):
        return protobuf_value(decode)
    return decode


def strip_prefix(prefix: str) -> NameFunction:
    """The default names: the key without the prefix (the prefix itself is left out)."""
    size = len(prefix)

    def name_of(key: str) -> str | None:
        return key[size:] or None

    return name_of
