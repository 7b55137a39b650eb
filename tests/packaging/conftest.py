"""Fixtures of the packaging tests: a real kube-apiserver for the server-side checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.kube import KubeApiServer


@pytest.fixture(scope="session")
def kube_apiserver() -> Iterator[KubeApiServer]:
    """One kube-apiserver (with its own etcd) for the session; tests keep
    apart by using namespaces of their own."""
    api = KubeApiServer()
    try:
        api.start()  # inside try: a failed start still removes the temp dir
        yield api
    finally:
        api.close()
