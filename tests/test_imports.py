"""Every module imports on its own (no hidden import-order dependency or cycle), and every
public package's ``__all__`` names things that exist."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import sidecar
from sidecar.builder import example_config_dir


def all_modules() -> list[str]:
    names = ["sidecar"]
    for info in pkgutil.walk_packages(sidecar.__path__, "sidecar."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


# One interpreter per module: minutes on a loaded 2-core machine, not the 120 s default.
@pytest.mark.timeout(900)
def test_every_module_imports_on_its_own() -> None:
    def try_import(name: str) -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                              text=True, timeout=60, check=False)
        return name, done.stderr.strip().splitlines()[-1] if done.returncode else ""

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {name: err for name, err in pool.map(try_import, all_modules()) if err}
    assert failures == {}


PUBLIC = [n for n in all_modules() if not n.rsplit(".", 1)[-1].startswith("_")]


@pytest.mark.parametrize("name", PUBLIC)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", ()))
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names {member!r}, which is missing"
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"


def test_plain_sidecar_does_not_load_heavy_clients() -> None:
    code = ("import sys; from sidecar.builder import build, Options; "
            f"build(Options(config_dir={str(example_config_dir())!r}, env={{}})); "
            "print(sorted(m for m in ('aetcd', 'grpc', 'aiokafka', 'kopf', 'kubernetes', "
            "'google.protobuf', 'sidecar.k8s', 'sidecar.exec', 'sidecar.messaging', "
            "'sidecar.fleet', 'sidecar.idxmap', 'psutil') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"
