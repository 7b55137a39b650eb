"""Fixtures of the Kubernetes tests (the shared ``kube_apiserver`` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.kube import KubeApiServer


@pytest.fixture
def own_kube_apiserver() -> Iterator[KubeApiServer]:
    """A kube-apiserver of this test's own, for tests that stop and restart it."""
    api = KubeApiServer()
    try:
        api.start()
        yield api
    finally:
        api.close()
