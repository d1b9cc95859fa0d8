"""Running a command's event loop so that SIGTERM stops it as Ctrl-C does.

A job stopped by SIGTERM (``kill``, a CI runner's timeout, systemd) gets the same orderly
end as one stopped by SIGINT: its tasks are cancelled, every agent's process group and the
processes that left it are killed, what finished is recorded, and the command says how to
resume. Without this, Python's default for SIGTERM ends the process at once and leaves the
agents' processes running.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ("run_async",)

T = TypeVar("T")


async def _with_sigterm_as_interrupt(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()  # what asyncio.run does on SIGINT (which may be ignored here)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        return await main
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGTERM)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, with SIGTERM handled as SIGINT while it runs."""
    return asyncio.run(_with_sigterm_as_interrupt(main))
