"""Key placement against tables computed by sarama and by the Java client (no broker)."""

from __future__ import annotations

import pytest

from sidecar.messaging.kafka.client import _aio
from sidecar.messaging.kafka.client.partitioners import fnv1a_32, sarama_hash_partition
from tests.kafka.placement_table import COUNTS, PLACEMENT


@pytest.mark.parametrize("key", list(PLACEMENT), ids=lambda key: key[:12].hex() or "empty")
def test_hash_places_every_key_where_sarama_does(key: bytes) -> None:
    hashed = _aio.partitioner("hash")
    got = tuple(hashed(key, list(range(count)), list(range(count))) for count in COUNTS)
    assert got == PLACEMENT[key][0]


@pytest.mark.parametrize("key", list(PLACEMENT), ids=lambda key: key[:12].hex() or "empty")
def test_murmur2_places_every_key_where_the_java_client_does(key: bytes) -> None:
    hashed = _aio.partitioner("murmur2")
    got = tuple(hashed(key, list(range(count)), list(range(count))) for count in COUNTS)
    assert got == PLACEMENT[key][1]


def test_the_tables_exercise_the_sign_handling_that_sets_sarama_apart() -> None:
    # sarama negates a negative remainder; masking the sign bit (Java's way, and
    # sarama's NewReferenceHashPartitioner) gives other partitions for these keys.
    masked = {key for key in PLACEMENT if any(
        (fnv1a_32(key) & 0x7FFFFFFF) % count != want
        for count, want in zip(COUNTS, PLACEMENT[key][0], strict=True))}
    assert len(masked) > len(PLACEMENT) // 4
    assert sum(PLACEMENT[key][0] != PLACEMENT[key][1] for key in PLACEMENT) > 60


@pytest.mark.parametrize("name", ["hash", "murmur2"])
def test_a_key_stays_on_its_partition_while_that_partition_has_no_leader(name: str) -> None:
    place = _aio.partitioner(name)
    key = b"agent-7"
    want = place(key, list(range(12)), list(range(12)))
    # Partitions arrive in any order, and the key's own may be leaderless for now.
    shuffled = [5, 11, 0, 3, 9, 1, 7, 2, 10, 4, 8, 6]
    assert place(key, shuffled, [p for p in shuffled if p != want]) == want


@pytest.mark.parametrize("name", ["hash", "murmur2", "random"])
def test_a_message_without_a_key_goes_to_a_partition_with_a_leader(name: str) -> None:
    place = _aio.partitioner(name)
    assert {place(None, list(range(8)), [2, 5]) for _ in range(50)} <= {2, 5}


def test_sarama_hash_is_fnv1a_32() -> None:
    # FNV-1a's published check values (the empty input is the offset basis).
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968
    assert sarama_hash_partition(b"", [0, 1, 2], [0, 1, 2]) == PLACEMENT[b""][0][1]
