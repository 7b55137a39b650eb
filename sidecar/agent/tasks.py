"""Background tasks that are named, watched and stopped the same way everywhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("sidecar.agent.tasks")

T = TypeVar("T")


def spawn(
    coro: Coroutine[Any, Any, T],
    name: str,
    *,
    on_crash: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[T]:
    """Start ``coro`` as a named task; if it dies of an exception, log it and call ``on_crash``.

    Background loops are meant to run until cancelled, so any other ending is a bug
    worth a log line with a traceback, not a silently missing feature.
    """
    task = asyncio.create_task(coro, name=name)

    def finished(done: asyncio.Task[T]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is None:
            return
        log.error("background task %s died: %s", name, error, exc_info=error)
        if on_crash is not None:
            try:
                on_crash(error)
            except Exception:
                log.exception("crash handler of task %s failed", name)

    task.add_done_callback(finished)
    return task


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has unwound; a no-op for None or a finished task."""
    if task is None:
        return
    current = asyncio.current_task()
    before = current.cancelling() if current is not None else 0
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        # The task's own cancellation ends here; ours (a close timeout) must not.
        if current is not None and current.cancelling() > before:
            raise
