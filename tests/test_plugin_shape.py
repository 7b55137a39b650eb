"""Every plugin package has the same shape: ``api.py`` (its contract) imports nothing else
of its package, and ``plugin.py`` holds a class named ``...Plugin`` (README, Development).

The layers between packages are import-linter's job (``.importlinter``, run by ``make lint``).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import sidecar

ROOT = Path(sidecar.__file__).parent


def package_of(path: Path) -> str:
    return ".".join(("sidecar", *path.parent.relative_to(ROOT).parts))


def own_imports(path: Path) -> list[str]:
    """The modules of its own package that ``path`` imports (relative or absolute)."""
    package = package_of(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            target = f"{package}.{node.module or ''}" if node.level else node.module or ""
            if node.level or target == package or target.startswith(package + "."):
                found.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith(package + ".")]
    return found


APIS = sorted(ROOT.rglob("api.py"))
PLUGINS = sorted(ROOT.rglob("plugin.py"))


@pytest.mark.parametrize("path", APIS, ids=[package_of(p) for p in APIS])
def test_a_contract_module_imports_nothing_else_of_its_package(path: Path) -> None:
    assert own_imports(path) == []


@pytest.mark.parametrize("path", PLUGINS, ids=[package_of(p) for p in PLUGINS])
def test_a_plugin_module_holds_a_class_named_plugin(path: Path) -> None:
    module = importlib.import_module(package_of(path) + ".plugin")
    plugins = [name for name, value in vars(module).items()
               if isinstance(value, type) and name.endswith("Plugin")
               and value.__module__ == module.__name__
               and isinstance(getattr(value, "name", None), str)]
    assert plugins, f"{module.__name__} defines no class named ...Plugin with a name"


def test_the_shape_is_there() -> None:
    # The parametrised tests above cannot pass by finding nothing.
    assert len(APIS) >= 10
    assert len(PLUGINS) >= 13
