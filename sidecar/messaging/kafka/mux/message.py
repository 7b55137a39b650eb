"""Messages handed to watchers: key, value, previous value, topic, partition, offset.

``prev_value`` is the value this same watcher received last for the same
topic and key (while this process runs), or None: for the first message of a
key, for messages without a key, after a tombstone (None value), and once the
key has dropped out of the watcher's bounded memory of recent keys. It makes a
compacted topic read like a key-value store's change feed, as cn-infra's
``GetPrevValue`` does for etcd; Kafka itself records no previous values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..client.message import Headers
from ..errors import MessageDecodeError

if TYPE_CHECKING:
    from google.protobuf.message import Message

    M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class BytesMessage:
    """A consumed message with its value as bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    prev_value: bytes | None
    #: Milliseconds since the epoch (-1 if the broker kept none).
    timestamp: int = -1
    headers: Headers = ()
    #: The connection whose watcher received it.
    connection: str = ""
    #: From a topic watcher (in the consumer group): ``mark_offset`` commits it.
    #: False for partition watchers, whose offsets the caller keeps.
    committable: bool = False

    def get_key(self) -> str:
        """The key as text (cn-infra's GetKey); "" when there is none."""
        return self.key.decode(errors="replace") if self.key is not None else ""


@dataclass(frozen=True, slots=True)
class ProtoMessage(BytesMessage):
    """A consumed message whose value is a serialised protobuf message."""

    def get_value(self, into: type[M] | M) -> M:
        """Parse the value into ``into`` (a message class, or an instance to fill)."""
        return _parse(self.value, into, self)

    def get_prev_value(self, into: type[M] | M) -> M | None:
        """Parse ``prev_value`` likewise; None when there is no previous value."""
        if self.prev_value is None:
            return None
        return _parse(self.prev_value, into, self)


def _parse(data: bytes | None, into: type[M] | M, where: BytesMessage) -> M:
    target = into() if isinstance(into, type) else into
    try:
        target.ParseFromString(data or b"")
    except Exception as exc:
        raise MessageDecodeError(
            f"{where.topic}[{where.partition}]@{where.offset}: not a valid "
            f"{type(target).DESCRIPTOR.full_name}: {exc}") from exc
    return target
