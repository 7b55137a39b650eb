"""The Kafka client (aiokafka underneath): sync and async producers, a group consumer
and a partition consumer, with TLS, SASL, required acks and partitioners.

aiokafka is imported when a producer or consumer starts, not on import.
"""

from .async_producer import AsyncProducer
from .config import (
    ClientConfig,
    InitialOffset,
    PartitionerName,
    RequiredAcks,
    SASLConfig,
    SASLMechanism,
    TLSConfig,
)
from .consumer import Consumer, PartitionConsumer
from .message import (
    OFFSET_NEWEST,
    OFFSET_OLDEST,
    ConsumerMessage,
    ErrorCallback,
    Headers,
    MessageHandler,
    ProducerError,
    ProducerMessage,
    SuccessCallback,
)
from .producer import SyncProducer

__all__ = [
    "OFFSET_NEWEST",
    "OFFSET_OLDEST",
    "AsyncProducer",
    "ClientConfig",
    "Consumer",
    "ConsumerMessage",
    "ErrorCallback",
    "Headers",
    "InitialOffset",
    "MessageHandler",
    "PartitionConsumer",
    "PartitionerName",
    "ProducerError",
    "ProducerMessage",
    "RequiredAcks",
    "SASLConfig",
    "SASLMechanism",
    "SuccessCallback",
    "SyncProducer",
    "TLSConfig",
]
