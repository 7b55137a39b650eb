"""Every file in examples/config is read by the builder and is valid, so they cannot drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.builder import Options, build, example_config_dir
from sidecar.config import ConfigSources

EXAMPLES = example_config_dir()


def test_every_example_config_is_read_and_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(p.stem for p in EXAMPLES.glob("*.conf"))
    assert files, f"no example configs in {EXAMPLES}"
    read: list[str] = []
    original = ConfigSources.read

    def recording(self: ConfigSources, name: str) -> tuple[Path | None, Any]:
        path, data = original(self, name)
        if path is not None:
            read.append(name)
        return path, data

    monkeypatch.setattr(ConfigSources, "read", recording)
    sidecar = build(Options(config_dir=str(EXAMPLES), env={}))
    unread = sorted(set(files) - set(read))
    assert not unread, f"example configs that no plugin reads: {unread}"
    assert sidecar.plugins
