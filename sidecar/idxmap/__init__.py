"""idxmap: an indexed in-memory map with watches, and a cache of an etcd prefix.

``NamedMapping`` keeps values by name with secondary indexes computed by an
index function, and tells watchers about every change. ``CacheHelper`` keeps a
NamedMapping equal to an etcd prefix. Hand consumers the read side only
(``NamedMappingReader``), as cn-infra does.
"""

from .api import (
    DEFAULT_MAX_PENDING,
    IndexFunction,
    MappingEvent,
    NamedMappingReader,
    NamedMappingWriter,
    WatchCallback,
)
from .cache import CacheHelper
from .codec import Decoder, NameFunction, json_value, protobuf_value, strip_prefix
from .mapping import NamedMapping
from .watch import CallbackWatch, EventStream, Subscription

__all__ = [
    "DEFAULT_MAX_PENDING",
    "CacheHelper",
    "CallbackWatch",
    "Decoder",
    "EventStream",
    "IndexFunction",
    "MappingEvent",
    "NameFunction",
    "NamedMapping",
    "NamedMappingReader",
    "NamedMappingWriter",
    "Subscription",
    "WatchCallback",
    "json_value",
    "protobuf_value",
    "strip_prefix",
]
