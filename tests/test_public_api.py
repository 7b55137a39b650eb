"""What the public packages promise their users: the names they import are exported,
the plugins keep their names, and importing a package loads none of the libraries it
defers until a client starts (so that the CLI and a plain sidecar stay light).

That every module imports on its own and that every ``__all__`` names things that exist,
once, is tests/test_imports.py's job, for all packages at once.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

#: Names each package's users import (examples, README, other plugins).
EXPORTED = {
    "sidecar.exec.processmanager": ("ProcessManager", "Process", "Template", "ProcessState",
                                    "ProcessEvent", "ProcessManagerPlugin"),
    "sidecar.exec.processmanager.metrics": ("ProcessCollector",),
    "sidecar.exec.supervisor": ("Supervisor", "SupervisorConfig", "ProgramConfig", "HookConfig",
                                "ProgramEvent", "ReloadResult", "parse_supervisor_config"),
    "sidecar.messaging.kafka": ("Multiplexer", "BytesConnection", "ProtoConnection",
                                "BytesSyncPublisher", "BytesAsyncPublisher", "ProtoSyncPublisher",
                                "ProtoAsyncPublisher", "KafkaPlugin", "KafkaConfig"),
}

#: Plugin names are what config files, status keys and the probes' JSON call them.
PLUGIN_NAMES = [
    ("sidecar.exec.supervisor", "Supervisor", "supervisor"),
    ("sidecar.exec.processmanager", "ProcessManagerPlugin", "process-manager"),
    ("sidecar.messaging.kafka", "KafkaPlugin", "kafka"),
]

SERVER_LIBS = ("aiohttp", "prometheus_client", "aetcd", "aiokafka")


def modules_of(package: str, *, skip: str | None = None) -> tuple[str, ...]:
    """The package and every module below it (but those ending in ``skip``)."""
    path = importlib.import_module(package).__path__
    return (package, *sorted(info.name for info in pkgutil.walk_packages(path, f"{package}.")
                             if skip is None or not info.name.endswith(skip)))


#: Modules that must import without loading the libraries named after them.
LIGHT = {
    # The plugins import aiohttp and prometheus_client only when REST and metrics are on.
    "processmanager": (("sidecar.exec.processmanager",), SERVER_LIBS),
    "supervisor": (("sidecar.exec.supervisor",), SERVER_LIBS),
    # ``sidecar programs`` is the standard library only.
    "supervisorctl": (("sidecar.cli.programs",),
                      ("aiohttp", "prometheus_client", "yaml", "sidecar.exec.supervisor",
                       "sidecar.exec.processmanager")),
    # The log commands and the tracer.
    "log-cli": (("sidecar.cli", "sidecar.cli.log", "sidecar.logging.measure",
                 "sidecar.agent"), ("aiohttp", "prometheus_client", "yaml")),
    # aiokafka and protobuf come in when a client starts (in client._aio).
    "kafka": (modules_of("sidecar.messaging.kafka", skip="._aio"),
              ("aiokafka", "google.protobuf")),
    # kopf and the Kubernetes client only when the operator starts.
    "k8s": (modules_of("sidecar.k8s"), ("kopf", "kubernetes")),
}


@pytest.mark.parametrize(("package", "names"), list(EXPORTED.items()), ids=list(EXPORTED))
def test_the_names_users_import_are_exported(package: str, names: tuple[str, ...]) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    missing = [n for n in names if not hasattr(module, n)
               or (exported is not None and n not in exported)]
    assert not missing, f"{package} does not export {missing}"


@pytest.mark.parametrize(("package", "cls", "name"), PLUGIN_NAMES,
                         ids=[name for _, _, name in PLUGIN_NAMES])
def test_plugins_keep_their_names(package: str, cls: str, name: str) -> None:
    assert getattr(importlib.import_module(package), cls).name == name


@pytest.mark.parametrize(("modules", "heavy"), list(LIGHT.values()), ids=list(LIGHT))
def test_imports_stay_light(modules: tuple[str, ...], heavy: tuple[str, ...]) -> None:
    # One interpreter for the group, checked after each import, so that the failure
    # names the module that pulled a library in.
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            f"    loaded = [m for m in {heavy!r} if m in sys.modules]\n"
            "    assert not loaded, f'importing {name} loaded {loaded}'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
