"""The docs site's reference pages are generated from the code (scripts/docs-reference.py):
they are fresh, and a config key added to a dataclass shows on the config page."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest

from sidecar.builder import CONFIG_FILES, ConfigFile
from sidecar.config import DURATION

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "docs-reference.py"


def load_script() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_pages_are_what_the_code_says() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


@dataclass(frozen=True)
class GrownStatusCheck:
    """statuscheck.conf with one key more, as a new release would have it."""

    #: How often pull probes are called.
    probe_interval: Annotated[float, DURATION] = 5.0
    #: Give up on a plugin after this long.
    brand_new_grace: Annotated[float, DURATION] = 90.0


def test_a_new_config_key_shows_on_the_config_page(monkeypatch: pytest.MonkeyPatch) -> None:
    script = load_script()
    module = types.ModuleType("grown_statuscheck")
    module.GrownStatusCheck = GrownStatusCheck  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "grown_statuscheck", module)
    grown = tuple(ConfigFile(f.name, "grown_statuscheck:GrownStatusCheck", f.summary, f.without)
                  if f.name == "statuscheck" else f for f in CONFIG_FILES)
    page = script.config_page(grown)
    assert page != (REPO / "docs" / "reference" / "config.md").read_text(encoding="utf-8")
    assert ("| `brand-new-grace` | duration | `90s` | Give up on a plugin after this long. |"
            in page)
    assert "`non-fatal`" not in page.split("## statuscheck.conf")[1].split("## ")[0]


def test_every_config_key_has_a_row_and_a_meaning() -> None:
    page = (REPO / "docs" / "reference" / "config.md").read_text(encoding="utf-8")
    from sidecar.config.schema import fields_of

    for file in CONFIG_FILES:
        section = page.split(f"\n## {file.filename}\n")[1].split("\n## ")[0]
        for row in fields_of(file.model_class()):
            assert f"| `{row.key}` |" in section, (file.filename, row.key)
            assert row.doc, f"{file.filename}: {row.key} has no #: comment to show"
