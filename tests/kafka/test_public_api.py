"""The Kafka package's public names resolve, and each module imports on its own without
aiokafka or protobuf being loaded (they come in when a client starts)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import sidecar.messaging.kafka as kafka

MODULES = sorted(info.name for info in pkgutil.walk_packages(kafka.__path__, f"{kafka.__name__}.")
                 if not info.name.endswith("._aio"))


def test_all_names_exist_and_are_listed() -> None:
    missing = [n for n in kafka.__all__ if not hasattr(kafka, n)]
    assert not missing
    assert len(set(kafka.__all__)) == len(kafka.__all__)
    for name in ("Multiplexer", "BytesConnection", "ProtoConnection", "BytesSyncPublisher",
                 "BytesAsyncPublisher", "ProtoSyncPublisher", "ProtoAsyncPublisher",
                 "KafkaPlugin", "KafkaConfig"):
        assert name in kafka.__all__


@pytest.mark.parametrize("name", [kafka.__name__, *MODULES])
def test_module_imports_on_its_own_without_aiokafka(name: str) -> None:
    code = (f"import sys, {name}\n"
            "heavy = [m for m in ('aiokafka', 'google.protobuf') if m in sys.modules]\n"
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
