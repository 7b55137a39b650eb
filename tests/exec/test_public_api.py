"""The process manager's public names resolve, and each of its modules imports on its own."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import sidecar.exec.processmanager as processmanager

MODULES = sorted(f"{processmanager.__name__}.{info.name}"
                 for info in pkgutil.iter_modules(processmanager.__path__))


def test_all_names_exist_and_are_listed() -> None:
    missing = [n for n in processmanager.__all__ if not hasattr(processmanager, n)]
    assert not missing
    assert len(set(processmanager.__all__)) == len(processmanager.__all__)
    for name in ("ProcessManager", "Process", "Template", "ProcessState", "ProcessEvent",
                 "ProcessManagerPlugin"):
        assert name in processmanager.__all__


@pytest.mark.parametrize("name", [processmanager.__name__, *MODULES])
def test_module_imports_on_its_own(name: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_the_package_needs_no_server_libraries() -> None:
    code = ("import sys, sidecar.exec.processmanager\n"
            "heavy = [m for m in ('aiohttp', 'prometheus_client', 'aetcd', 'aiokafka')"
            " if m in sys.modules]\n"
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert importlib.import_module("sidecar.exec.processmanager.metrics").ProcessCollector
