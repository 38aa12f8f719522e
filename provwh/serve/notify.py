"""What wakes the live streams: the loader's ``NOTIFY`` on PostgreSQL, a timer on DuckDB.

A loader transaction that writes tasks or workflows raises ``pg_notify('provwh_loaded',
{"workflows": [...]})``, delivered when it commits (``warehouse.pg.LOADED_CHANNEL``). The
server LISTENs on one connection of its own (psycopg's async connection, in the server's
event loop: no thread) and wakes the streams the notification concerns, so that a task
reaches a browser as soon as it is committed rather than at the next poll. While that
connection is down (the server restarting, a network cut) the streams poll at their own
interval; once it is back every stream is woken, for what loaded meanwhile. DuckDB has no
notifications: its streams poll (``interval``), and loads of the server's own receiver wake
them (``wake``).

The hub also ends the streams when the server stops (``stop_soon``, from the signal handler):
uvicorn's graceful shutdown waits for every response to finish, and a stream never would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import orjson

log = logging.getLogger("provwh.serve")

# With notifications flowing, a stream still reads every this many seconds (or its own
# poll_interval, if longer): rows written by something that does not notify show up too.
PUSH_FALLBACK_S = 15.0
_RETRY_S = (1.0, 30.0)  # the listener's reconnection delays: first, longest


class Waiter:
    """One stream's wake-up: set by a notification for its workflow (or any, ``workflows``
    None), by ``wake``, and when the server stops."""

    def __init__(self, workflows: frozenset[str] | None) -> None:
        self.workflows = workflows
        self.event = asyncio.Event()


class Hub:
    """The streams' wake-ups over one database; ``conninfo`` (libpq) LISTENs on PostgreSQL,
    None polls (DuckDB)."""

    def __init__(self, conninfo: str | None = None) -> None:
        self.conninfo = conninfo
        self.listening = False  # a LISTEN connection is open now
        self.stopped = False
        self._waiters: set[Waiter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    # --- the server's life ------------------------------------------------------------------
    async def start(self) -> None:
        """In the server's event loop, at startup: begin listening (PostgreSQL)."""
        self._loop = asyncio.get_running_loop()
        if self.conninfo is not None:
            self._task = asyncio.create_task(self._listen(), name="provwh-listen")

    def stop_soon(self) -> None:
        """End every stream now and refuse new ones; safe from a signal handler or a thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.stopped = True
            return
        loop.call_soon_threadsafe(self._stop)

    def _stop(self) -> None:
        self.stopped = True
        for waiter in self._waiters:
            waiter.event.set()

    async def close(self) -> None:
        """At shutdown: the streams end, the listening connection closes."""
        self._stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- streams ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def subscribe(self, workflows: frozenset[str] | None = None) -> Iterator[Waiter]:
        """A waiter for the notifications about ``workflows`` (stored ids; None: any)."""
        waiter = Waiter(workflows)
        if self.stopped:
            waiter.event.set()
        self._waiters.add(waiter)
        try:
            yield waiter
        finally:
            self._waiters.discard(waiter)

    def interval(self, poll_interval: float) -> float:
        """How long a stream waits for a wake-up before it reads anyway."""
        return max(poll_interval, PUSH_FALLBACK_S) if self.listening else poll_interval

    async def wait(self, waiter: Waiter, timeout: float) -> bool:
        """Until ``waiter`` is woken (True) or ``timeout`` seconds pass (False)."""
        try:
            await asyncio.wait_for(waiter.event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def wake(self, workflows: set[str] | None = None) -> None:
        """Wake the streams concerned by a load of ``workflows`` (stored ids; None: all).
        In the event loop's thread (see ``wake_threadsafe``)."""
        for waiter in self._waiters:
            if workflows is None or waiter.workflows is None or waiter.workflows & workflows:
                waiter.event.set()

    def wake_threadsafe(self, workflows: set[str] | None = None) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake, workflows)

    # --- PostgreSQL ---------------------------------------------------------------------------
    async def _listen(self) -> None:
        import psycopg

        from provwh.warehouse.pg import LOADED_CHANNEL

        delay = _RETRY_S[0]
        while not self.stopped:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, connect_timeout=5
                )
            except Exception as exc:  # psycopg's errors, a DNS failure...
                log.warning("provwh serve: cannot LISTEN (streams poll meanwhile): %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_S[1])
                continue
            try:
                async with conn:  # closed when it fails, or when close() cancels this task
                    await conn.execute(f"LISTEN {LOADED_CHANNEL}")
                    self.listening, delay = True, _RETRY_S[0]
                    self.wake()  # what loaded while nobody listened
                    async for note in conn.notifies():
                        self.wake(_workflows_of(note.payload))
            except Exception as exc:  # the server went, the network: listen again later
                if not self.stopped:
                    log.warning("provwh serve: the LISTEN connection failed: %s", exc)
                    await asyncio.sleep(delay)
            finally:
                self.listening = False


def _workflows_of(payload: str) -> set[str] | None:
    """The workflow ids a notification names (None: any, or a payload not understood)."""
    try:
        found: Any = orjson.loads(payload).get("workflows")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(found, list):
        return None
    return {w for w in found if isinstance(w, str)}
