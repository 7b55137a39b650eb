"""An apiserver of the operator tests' own: the webhook configuration they install would
otherwise be called for every Pod the rest of the suite creates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.kube import KubeApiServer


@pytest.fixture(scope="module")
def webhook_api() -> Iterator[KubeApiServer]:
    with KubeApiServer() as api:
        yield api
