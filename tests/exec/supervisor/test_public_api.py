"""The supervisor's public names resolve, each module imports on its own, and imports stay light."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import sidecar.exec.supervisor as supervisor

MODULES = sorted(f"{supervisor.__name__}.{info.name}"
                 for info in pkgutil.iter_modules(supervisor.__path__))


def test_all_names_exist_and_are_listed() -> None:
    assert not [n for n in supervisor.__all__ if not hasattr(supervisor, n)]
    assert len(set(supervisor.__all__)) == len(supervisor.__all__)
    for name in ("Supervisor", "SupervisorConfig", "ProgramConfig", "HookConfig",
                 "ProgramEvent", "ReloadResult", "parse_supervisor_config"):
        assert name in supervisor.__all__
    assert supervisor.Supervisor.name == "supervisor"


@pytest.mark.parametrize("name", [supervisor.__name__, "sidecar.exec.supervisorctl", *MODULES])
def test_module_imports_on_its_own(name: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("module", "heavy"), [
    # The plugin imports aiohttp and prometheus_client only when REST and metrics are on.
    ("sidecar.exec.supervisor", ("aiohttp", "prometheus_client", "aetcd", "aiokafka")),
    # ``sidecar programs`` is the standard library only.
    ("sidecar.exec.supervisorctl", ("aiohttp", "prometheus_client", "yaml",
                                    "sidecar.exec.supervisor", "sidecar.exec.processmanager")),
])
def test_imports_stay_light(module: str, heavy: tuple[str, ...]) -> None:
    code = (f"import sys, {module}\n"
            f"heavy = [m for m in {heavy!r} if m in sys.modules]\n"
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
