"""Public names resolve, modules import on their own, and the CLI's modules stay light."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import sidecar.logging
import sidecar.metrics

PACKAGES = ["sidecar.logging", "sidecar.logging.logmanager", "sidecar.logging.measure",
            "sidecar.metrics"]
MODULES = sorted({
    f"{pkg.__name__}.{info.name}"
    for pkg in (sidecar.logging, sidecar.metrics,
                importlib.import_module("sidecar.logging.logmanager"),
                importlib.import_module("sidecar.logging.measure"))
    for info in pkgutil.iter_modules(pkg.__path__)
})


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist(name: str) -> None:
    package = importlib.import_module(name)
    missing = [n for n in package.__all__ if not hasattr(package, n)]
    assert not missing


@pytest.mark.parametrize("name", PACKAGES + MODULES)
def test_module_imports_on_its_own(name: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_log_commands_and_the_tracer_need_no_server_libraries() -> None:
    code = ("import sys, sidecar.cli, sidecar.logging.remote, sidecar.logging.measure, "
            "sidecar.agent\n"
            "heavy = [m for m in ('aiohttp', 'prometheus_client', 'yaml') if m in sys.modules]\n"
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
