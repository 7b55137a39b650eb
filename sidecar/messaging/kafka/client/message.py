"""What producers report and consumers deliver; plain data, no aiokafka types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import PublishError

#: Kafka headers: ``(name, value)`` pairs, names may repeat.
Headers = tuple[tuple[str, bytes], ...]

#: Offsets with a special meaning for partition consumers (sarama's values).
OFFSET_NEWEST = -1
OFFSET_OLDEST = -2


@dataclass(slots=True)
class ProducerMessage:
    """A message as written: where it landed (``partition``, ``offset``) and the
    caller's ``metadata``, handed back untouched to async callbacks.

    Not frozen, only because the async producer fills ``partition``, ``offset``
    and ``timestamp`` in when the brokers confirm (one object per message on
    the hot path); treat it as read-only.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = -1
    offset: int = -1
    #: Milliseconds since the epoch, as stored by the broker (-1 if unknown).
    timestamp: int = -1
    metadata: Any = None
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class ProducerError:
    """Given to an async publisher's error callback: the message and why it failed."""

    message: ProducerMessage
    error: PublishError

    @property
    def metadata(self) -> Any:
        return self.message.metadata


@dataclass(frozen=True, slots=True)
class ConsumerMessage:
    """A message read from a partition."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = -1
    headers: Headers = ()


SuccessCallback = Callable[[ProducerMessage], None]
ErrorCallback = Callable[[ProducerError], None]
#: A consumer's handler; a coroutine function is awaited before the next message.
MessageHandler = Callable[[ConsumerMessage], Awaitable[None] | None]


def as_bytes(data: object, what: str) -> bytes | None:
    """Keys and values may be given as text (UTF-8) or bytes."""
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"a message {what} must be bytes or str, not {type(data).__name__}")
