"""Wait on conditions, never on sleeps: one helper for every test.

``wait_until`` (blocking) and ``until`` (async) poll a condition until it returns
something truthy and return that; past the deadline they fail naming what was
awaited and the last value or error seen, which is what a reader of a failed CI
run needs. An exception from the condition counts as "not yet" (a server still
starting refuses connections), so a test waits on state, not on transitions.

    wait_until(lambda: port_open(host, port), 10, "etcd listening")
    await until(lambda: mapping.get_value("a"), 5, "the put reaching the cache")
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar, overload

__all__ = ["until", "wait_until"]

T = TypeVar("T")

_NotYet = Literal[False] | None


def _describe(exc: BaseException) -> str:
    # Only the text: keeping the exception would pin its frames (and their sockets).
    return f"error {type(exc).__name__}: {exc}"


def wait_until(condition: Callable[[], T | _NotYet], timeout: float, what: str,
               interval: float = 0.02) -> T:
    """Poll ``condition`` until truthy; raise ``TimeoutError`` naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = "nothing"
    while True:
        try:
            result = condition()
        except Exception as exc:
            last = _describe(exc)
        else:
            if result:
                return result
            last = repr(result)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s (last: {last[:1000]})")
        time.sleep(interval)


@overload
async def until(condition: Callable[[], Awaitable[T | _NotYet]], timeout: float, what: str,
                interval: float = 0.01) -> T: ...


@overload
async def until(condition: Callable[[], T | _NotYet], timeout: float, what: str,
                interval: float = 0.01) -> T: ...


async def until(condition: Callable[[], Any], timeout: float, what: str,
                interval: float = 0.01) -> Any:
    """The asyncio form of ``wait_until``; ``condition`` may be a plain or an async callable
    (``lambda: asyncio.to_thread(blocking)`` for one that blocks)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = "nothing"
    while True:
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            last = _describe(exc)
        else:
            if result:
                return result
            last = repr(result)
        if loop.time() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s (last: {last[:1000]})")
        await asyncio.sleep(interval)
