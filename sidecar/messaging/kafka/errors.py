"""Errors of the Kafka client, multiplexer and plugin.

    KafkaMessagingError
     ├── KafkaUnavailableError    no broker answered, or the client is not started yet
     ├── ClientClosedError        used after close()
     ├── PublishError             a message was not (or not provably) written
     │    ├── PublishTimeoutError the broker did not confirm in time; it may still be written
     │    └── QueueFullError      an async publisher's backlog is full; the message was dropped
     ├── SubscriptionError        a watcher that cannot be added (bad topic, partition, offset)
     └── MessageDecodeError       a consumed value is not a valid message of the type asked for

aiokafka's own exceptions never leave this package bare: they are the
``__cause__`` of one of these.
"""

from __future__ import annotations

from sidecar.agent.errors import reason


class KafkaMessagingError(Exception):
    """Root of every error raised by ``sidecar.messaging.kafka``."""


class KafkaUnavailableError(KafkaMessagingError):
    """No broker could be reached (or the client has not connected yet)."""


class ClientClosedError(KafkaMessagingError):
    """The producer, consumer or multiplexer was used after it was closed."""


class PublishError(KafkaMessagingError):
    """A message was not written to Kafka."""

    def __init__(self, message: str, *, topic: str | None = None) -> None:
        super().__init__(message)
        self.topic = topic


class PublishTimeoutError(PublishError):
    """No confirmation in time: the message may or may not have been written."""


class QueueFullError(PublishError):
    """An async producer had too many messages in flight; this one was not sent."""


class SubscriptionError(KafkaMessagingError):
    """A watcher could not be added."""


class MessageDecodeError(KafkaMessagingError):
    """A consumed value could not be parsed as the protobuf message asked for."""


def describe(exc: BaseException) -> str:
    """A one-line reason for logs and status, naming the (terse) client error's type."""
    return reason(exc, with_type=True)
