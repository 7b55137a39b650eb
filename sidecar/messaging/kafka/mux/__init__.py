"""The multiplexer: named connections sharing one sync producer, one async producer and
one consumer group; bytes and protobuf publishers and watchers."""

from .connection import BytesConnection, Callback, ProtoConnection
from .message import BytesMessage, ProtoMessage
from .multiplexer import Multiplexer
from .publisher import (
    BytesAsyncPublisher,
    BytesSyncPublisher,
    ProtoAsyncPublisher,
    ProtoSyncPublisher,
)

__all__ = [
    "BytesAsyncPublisher",
    "BytesConnection",
    "BytesMessage",
    "BytesSyncPublisher",
    "Callback",
    "Multiplexer",
    "ProtoAsyncPublisher",
    "ProtoConnection",
    "ProtoMessage",
    "ProtoSyncPublisher",
]
