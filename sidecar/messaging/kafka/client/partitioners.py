"""Key placement shared with other Kafka clients on the same topic.

Per-key ordering holds across a fleet only when every producer puts a key on
the same partition, so each placement here reproduces another client's exactly:

- ``hash``: sarama's default hash partitioner, which cn-infra's Go agents use.
  FNV-1a (32 bit) of the key, read as a signed 32-bit integer, remainder by the
  partition count with the dividend's sign (Go's ``%``), then negated if negative.
- ``murmur2``: the Java client's key hashing, murmur2 of the key with its sign
  bit cleared (``Utils.toPositive``), remainder by the partition count.

Both hash over every partition of the topic, even those without a leader now
(a key must not move while a broker restarts), and index the partitions sorted
by id. A message without a key goes to a random partition that has a leader.
Pure Python and no aiokafka import: the placement is a unit of its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

__all__ = [
    "Partitioner",
    "fnv1a_32",
    "sarama_hash_index",
    "sarama_hash_partition",
    "unkeyed_partition",
]

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv1a_32(data: bytes) -> int:
    """FNV-1a, 32 bit, as Go's ``hash/fnv.New32a`` sums it (unsigned)."""
    value = _FNV32_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return value


def sarama_hash_index(key: bytes, count: int) -> int:
    """The index sarama's ``NewHashPartitioner`` picks among ``count`` partitions."""
    signed = fnv1a_32(key)
    if signed & 0x80000000:
        signed -= 1 << 32
    # Go's remainder takes the dividend's sign and sarama then drops it: that is
    # |h| mod n, not the Java client's (h & 0x7fffffff) mod n (sarama's
    # NewReferenceHashPartitioner, which cn-infra does not use).
    return abs(signed) % count


def unkeyed_partition(all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """Where a message without a key goes: any partition with a leader."""
    return random.choice(available or all_partitions)  # spreading load, not secrets


def sarama_hash_partition(key: bytes | None, all_partitions: Sequence[int],
                          available: Sequence[int]) -> int:
    """``hash``: the partition a cn-infra (sarama) producer writes ``key`` to."""
    if key is None:
        return unkeyed_partition(all_partitions, available)
    ordered = sorted(all_partitions)
    return ordered[sarama_hash_index(key, len(ordered))]


#: ``partitioner(key, all_partitions, available_partitions) -> partition``, aiokafka's shape.
Partitioner = Callable[[bytes | None, Sequence[int], Sequence[int]], int]
