"""The live streams: ``GET /api/v1/stream/tasks`` and ``/stream/workflows`` (Server-Sent
Events), Flowcept 1.0.3's contract: events ``tasks`` / ``workflows`` with data
``{"tasks": [...], "cursor": <epoch seconds>, "truncated": <bool>}``.

A stream follows the load order (``query.loads``), not capture times: it sends each task or
workflow the loader writes after ``since`` (default: after the newest load when the stream
opens) once, and again when a later record of it is merged, as it then is. ``cursor`` is the
load time of the newest record sent (epoch seconds): reconnecting with ``since=<cursor>`` (or
the ``Last-Event-ID`` an ``EventSource`` sends, which wins over ``since``) loses nothing, and
may send the records loaded at exactly that time again. An event holds ``limit`` records at
most; ``truncated`` says
more are waiting, and the next event follows at once. Within one connection the cursor also
keeps the key of the last record sent, so records loaded in one transaction (one time) are
sent once each, however the events cut them.

The first event comes at once (its records may be none: its cursor is where the stream
starts). Then the stream reads when woken (``notify``: PostgreSQL's ``NOTIFY`` from the
loader's commit) or every ``poll_interval`` seconds (DuckDB; PostgreSQL while not listening,
else every 15 s at least, as a fallback). A comment line every ``HEARTBEAT_S`` keeps proxies
from closing a quiet stream. A stream ends when the client goes (Starlette cancels it) or
the server stops (``Hub.stop_soon``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from provwh.query.loads import LoadCursor
from provwh.serve.api import db_of
from provwh.serve.notify import Hub
from provwh.serve.records import MAX_LIMIT, BadRequest, json_bytes, with_fields
from provwh.warehouse.escape import stored_id
from provwh.warehouse.times import to_micros

log = logging.getLogger("provwh.serve")
router = APIRouter(prefix="/api/v1")

HEARTBEAT_S = 15.0  # a comment line when nothing was sent for this long
RETRY_MS = 3000  # how long an EventSource waits before it reconnects

SINCE = Query(
    None,
    description="send what loaded at or after this time (epoch seconds; default: what loads"
    " from now on)",
)
POLL = Query(
    1.0,
    ge=0.1,
    le=60,
    description="seconds between reads (0.1..60); on PostgreSQL the loader's NOTIFY wakes the"
    " stream, which then reads at least every 15 s",
)
EVENT_LIMIT = Query(MAX_LIMIT, ge=1, le=MAX_LIMIT, description="records per event (1..1000)")


def hub_of(request: Request) -> Hub:
    return request.app.state.hub


class _Stream:
    """The parameters both streams take (where to start, how often to read, how many per
    event) and what they read with, as one dependency."""

    def __init__(
        self,
        since: float | None = SINCE,
        poll_interval: float = POLL,
        limit: int = EVENT_LIMIT,
        last_event_id: str | None = Header(None, include_in_schema=False),
        db: Any = Depends(db_of),
        hub: Hub = Depends(hub_of),
    ) -> None:
        self.start = _start(since, last_event_id)
        self.poll_interval, self.limit, self.db, self.hub = poll_interval, limit, db, hub

    def follow(self, name: str, flt: dict[str, Any], workflows: frozenset[str] | None) -> Any:
        follow = _Follow(self.db, self.hub, name, flt, workflows, self.start,
                         self.poll_interval, self.limit)  # fmt: skip
        return _response(follow.events())


@router.get("/stream/tasks", tags=["streams"], response_class=StreamingResponse)
async def stream_tasks(
    workflow_id: str | None = None,
    campaign_id: str | None = None,
    agent_id: str | None = None,
    stream: _Stream = Depends(),
) -> StreamingResponse:
    """Tasks as they load (Server-Sent Events ``tasks``): ``{"tasks": [...records as /tasks
    returns them...], "cursor": <load time of the newest sent>, "truncated": <more waiting>}``."""
    flt = with_fields({}, workflow_id=workflow_id, campaign_id=campaign_id, agent_id=agent_id)
    workflows = None if workflow_id is None else frozenset((stored_id(workflow_id),))
    return stream.follow("tasks", flt, workflows)


@router.get("/stream/workflows", tags=["streams"], response_class=StreamingResponse)
async def stream_workflows(
    campaign_id: str | None = None, stream: _Stream = Depends()
) -> StreamingResponse:
    """Workflows as they load (Server-Sent Events ``workflows``): ``{"workflows": [...],
    "cursor": ..., "truncated": ...}``."""
    return stream.follow("workflows", with_fields({}, campaign_id=campaign_id), None)


def _start(since: float | None, last_event_id: str | None) -> LoadCursor | None:
    """Where a stream starts: the ``Last-Event-ID`` of a reconnecting EventSource (the last
    cursor it got: it goes on from there, not from the ``since`` of its URL), else ``since``
    (inclusive), else None (after the newest load)."""
    if last_event_id:
        try:
            since = float(last_event_id)
        except ValueError:
            raise BadRequest(f"Last-Event-ID: not a cursor: {last_event_id!r}") from None
    if since is None:
        return None
    us = to_micros(since)
    if us is None:
        raise BadRequest(f"since: not a time in epoch seconds: {since!r}")
    return LoadCursor(us, "")


def _response(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _Follow:
    """One stream: reads what loaded after its cursor, sends it, waits to be woken."""

    def __init__(
        self,
        db: Any,
        hub: Hub,
        name: str,
        flt: dict[str, Any],
        workflows: frozenset[str] | None,
        start: LoadCursor | None,
        poll_interval: float,
        limit: int,
    ) -> None:
        self.db, self.hub, self.name, self.flt = db, hub, name, flt
        self.workflows, self.cursor = workflows, start
        self.poll_interval, self.limit = poll_interval, limit
        self.failing = False

    async def events(self) -> AsyncIterator[bytes]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        with self.hub.subscribe(self.workflows) as waiter:
            first = True
            sent = time.monotonic()
            while not self.hub.stopped:
                waiter.event.clear()
                found = await self._read()
                if found is not None:
                    records, truncated = found
                    if records or first:
                        yield self._event(records, truncated)
                        sent, first = time.monotonic(), False
                    if truncated:
                        continue  # the rest at once
                deadline = time.monotonic() + self.hub.interval(self.poll_interval)
                while not self.hub.stopped:
                    now = time.monotonic()
                    if now >= deadline:
                        break
                    if await self.hub.wait(waiter, min(deadline, sent + HEARTBEAT_S) - now):
                        break
                    if time.monotonic() >= sent + HEARTBEAT_S:
                        yield b": keep-alive\n\n"
                        sent = time.monotonic()

    async def _read(self) -> tuple[list[dict[str, Any]], bool] | None:
        """The records loaded after the cursor (``limit`` at most) and whether more wait;
        None when the database cannot answer now (the stream tries again later)."""
        try:
            if self.cursor is None:
                self.cursor = await run_in_threadpool(self.db.newest_load, self.name)
            found = await run_in_threadpool(
                self.db.loaded_after, self.cursor, self.flt, self.limit + 1, self.name
            )
        except Exception as exc:  # a database restarting, a DuckDB file held by a loader
            if not self.failing:
                log.warning("provwh serve: a %s stream cannot read: %s", self.name, exc)
            self.failing = True
            return None
        self.failing = False
        truncated = len(found) > self.limit
        found = found[: self.limit]
        if found:
            self.cursor = found[-1][1]
        return [rec for rec, _ in found], truncated

    def _event(self, records: list[dict[str, Any]], truncated: bool) -> bytes:
        cursor = self.cursor.seconds if self.cursor is not None else None
        data = json_bytes({self.name: records, "cursor": cursor, "truncated": truncated})
        head = f"id: {cursor!r}\n" if cursor is not None else ""
        return f"{head}event: {self.name}\ndata: ".encode() + data + b"\n\n"
