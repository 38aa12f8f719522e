"""Running an async flow from synchronous code, in a fresh event loop.

``asyncio.run`` refuses to start inside a running loop, so from async code (a notebook, an
async test, another flow) the fresh loop runs in a helper thread, in a copy of the caller's
context: the outer flow and ``Flowcept`` session stay visible to the inner run.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any


def run_in_new_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    ctx = contextvars.copy_context()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = ctx.run(asyncio.run, coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="provwh-flow-loop", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")
