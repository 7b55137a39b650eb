"""Kafka messaging (cn-infra's messaging/kafka): a client over aiokafka, a multiplexer
that shares it among named connections, and the plugin configured by ``kafka.conf``.

aiokafka is imported only when a producer or consumer starts, so importing
this package costs little; protobuf only when a proto message is handled.
"""

from .client import (
    OFFSET_NEWEST,
    OFFSET_OLDEST,
    AsyncProducer,
    ClientConfig,
    Consumer,
    ConsumerMessage,
    PartitionConsumer,
    ProducerError,
    ProducerMessage,
    SASLConfig,
    SyncProducer,
    TLSConfig,
)
from .config import KafkaConfig
from .errors import (
    ClientClosedError,
    KafkaMessagingError,
    KafkaUnavailableError,
    MessageDecodeError,
    PublishError,
    PublishTimeoutError,
    QueueFullError,
    SubscriptionError,
)
from .events import StatusEvents
from .mux import (
    BytesAsyncPublisher,
    BytesConnection,
    BytesMessage,
    BytesSyncPublisher,
    Multiplexer,
    ProtoAsyncPublisher,
    ProtoConnection,
    ProtoMessage,
    ProtoSyncPublisher,
)
from .plugin import KafkaPlugin

__all__ = [
    "OFFSET_NEWEST",
    "OFFSET_OLDEST",
    "AsyncProducer",
    "BytesAsyncPublisher",
    "BytesConnection",
    "BytesMessage",
    "BytesSyncPublisher",
    "ClientClosedError",
    "ClientConfig",
    "Consumer",
    "ConsumerMessage",
    "KafkaConfig",
    "KafkaMessagingError",
    "KafkaPlugin",
    "KafkaUnavailableError",
    "MessageDecodeError",
    "Multiplexer",
    "PartitionConsumer",
    "ProducerError",
    "ProducerMessage",
    "ProtoAsyncPublisher",
    "ProtoConnection",
    "ProtoMessage",
    "ProtoSyncPublisher",
    "PublishError",
    "PublishTimeoutError",
    "QueueFullError",
    "SASLConfig",
    "StatusEvents",
    "SubscriptionError",
    "SyncProducer",
    "TLSConfig",
]
