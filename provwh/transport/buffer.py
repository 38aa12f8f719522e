"""In-memory buffer that hands records to an exporter in batches.

Modelled on OpenTelemetry's batch processor: the capture path only appends to a deque (atomic,
no lock); a worker thread flushes a batch when ``flush_size`` records wait or every
``flush_interval`` seconds, and ``flush()`` / ``close()`` drain everything on demand. If capture
outruns the worker and ``max_pending`` records pile up, the capturing thread flushes itself:
memory stays bounded whatever the number of tasks.

An entry is either a record dict or a tuple whose first item builds the record
(``entry[0](entry) -> dict``): the lightweight capture paths defer that work to the flush. A
builder with a ``lines(entries, host)`` method serializes a whole batch of its entries in one
call (see ``batch_lines``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from provwh.core.serialize import Lines, dumps_lines
from provwh.core.text import first_line
from provwh.core.threads import leave_signals_to_main, signals_held

log = logging.getLogger("provwh")
HELD_PER_PENDING = 5  # records held in memory while nothing can be written, per max_pending
RETRY_SECONDS = 1.0  # the capturing thread's pause between retries of a failed write

Exporter = Callable[[list[Any]], Any]  # receives entries; see materialize()

_live: weakref.WeakSet[BatchBuffer] = weakref.WeakSet()


def build_entry(entry: tuple) -> dict[str, Any] | None:
    """The record of a deferred entry; None (logged) if its builder fails."""
    try:
        return entry[0](entry)
    except Exception as exc:  # a builder bug must not lose the rest of the batch
        log.error("provwh: could not build a deferred record: %r", exc)
        return None


def materialize(entries: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """The records of buffer entries, building deferred ones (lazily: nothing is retained)."""
    for entry in entries:
        if type(entry) is tuple:
            entry = build_entry(entry)
            if entry is None:
                continue
        yield entry


def batch_lines(
    entries: list[Any],
    host: dict[str, Any] | None,
    prepare: Callable[[list[Any]], list[dict[str, Any]]],
) -> Lines | None:
    """A batch holding deferred entries as JSON lines, in order: each run of entries deferred by
    one builder with ``lines`` serialized by it in one call (the lightweight task's path: no
    per-record frames), ``host``'s fields in each; the other entries made records by
    ``prepare`` (a run at a time), then serialized. None if a builder fails (then the caller
    builds them one at a time)."""
    runs: list[list[Any]] = []
    last = _NO_BUILDER
    for entry in entries:  # runs of entries with the same builder (None: a record)
        builder = entry[0] if type(entry) is tuple else None
        if builder is not last:
            runs.append([])
            last = builder
        runs[-1].append(entry)
    parts: list[Lines | list[dict[str, Any]]] = []
    try:
        for run in runs:
            first = run[0]
            lines = getattr(first[0], "lines", None) if type(first) is tuple else None
            parts.append(lines(run, host) if lines is not None else prepare(run))
    except Exception as exc:
        log.error("provwh: could not write a batch of deferred records at once: %r", exc)
        return None
    data = b"".join(p.data if type(p) is Lines else dumps_lines(p) for p in parts)

    def records() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for p in parts:
            out += p.build() if type(p) is Lines else p
        return out

    return Lines(data, len(entries), records)


_NO_BUILDER = object()


class BatchBuffer:
    def __init__(
        self,
        exporter: Exporter,
        flush_size: int = 1000,
        flush_interval: float = 0.25,
        max_pending: int = 20000,
    ) -> None:
        self._export = exporter
        self.flush_size = flush_size
        self.flush_interval = flush_interval
        self.max_pending = max(max_pending, flush_size)
        # while nothing can be written, at most this many records wait in memory (the
        # oldest are dropped beyond it, counted in ``dropped``)
        self.max_held = HELD_PER_PENDING * self.max_pending
        self.queue: deque = deque()
        # put() signals the worker once the queue reaches this; raised to max_pending after a
        # signal so a backlog costs the capture path one comparison, not a signal per call.
        self.threshold = flush_size
        self._closed = False
        self.exported = 0
        self.errors = 0
        self.dropped = 0
        self.last_error: BaseException | None = None
        self._retry_at = 0.0  # the capturing thread does not retry a failed write before
        self._init_sync()
        _live.add(self)

    def _init_sync(self) -> None:
        self._wake = threading.Event()
        self._drain_lock = threading.RLock()
        self._thread = threading.Thread(target=self._run, name="provwh-flush", daemon=True)
        self._thread.start()

    # -- capture side -------------------------------------------------------------------------
    def put(self, entry: Any) -> None:
        """Queue one entry. Call paths may inline this: append to ``queue``, then call
        ``signal()`` once its length reaches ``threshold``."""
        queue = self.queue
        queue.append(entry)
        if len(queue) >= self.threshold:
            self.signal()

    def put_many(self, entries: Iterable[Any]) -> None:
        self.queue.extend(entries)
        if len(self.queue) >= self.threshold:
            self.signal()

    def signal(self) -> None:
        if len(self.queue) >= self.max_pending and time.monotonic() >= self._retry_at:
            try:
                self.flush()  # the worker is behind: this thread writes, memory stays bounded
            except Exception as exc:  # a storage problem never reaches the user's call
                self.record_failure(exc)
        else:
            self.threshold = self.max_pending
            self._wake.set()
            if len(self.queue) > self.max_held:
                self._drop_oldest()

    def record_failure(self, exc: BaseException) -> None:
        """A write failed (its records are queued again): warn once, back off, stay bounded."""
        if self.last_error is None:
            log.warning(
                "provwh: could not write a batch (%s: %s); records wait in memory (at most "
                "%d) and the write is retried",
                type(exc).__name__,
                first_line(exc),
                self.max_held,
            )
        self.last_error = exc
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if len(self.queue) > self.max_held:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        with self._drain_lock:
            excess = len(self.queue) - self.max_held
            if excess <= 0:
                return
            if not self.dropped:
                log.error(
                    "provwh: nothing could be written for a while; dropping the oldest records "
                    "beyond %d held in memory (the count is reported at stop)",
                    self.max_held,
                )
            for _ in range(excess):
                self.queue.popleft()
            self.dropped += excess

    def held(self) -> list[dict[str, Any]]:
        """The records still queued (after a failed close: those never written)."""
        return list(materialize(list(self.queue)))

    def __len__(self) -> int:
        return len(self.queue)

    # -- flushing -----------------------------------------------------------------------------
    def _run(self) -> None:
        leave_signals_to_main()
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.threshold = self.flush_size
            if self.queue:
                try:
                    self.flush()
                except Exception as exc:
                    self.record_failure(exc)

    def flush(self) -> None:
        """Export everything queued now, in batches of ``flush_size``; returns when written.

        Only what was queued when the call began: records captured while a batch is being
        written wait for the next flush, so batches stay as large as the size and interval say
        (draining until empty wrote a batch per record under a steady stream of tasks).
        """
        with self._drain_lock, signals_held():
            queue = self.queue
            remaining = len(queue)
            while remaining > 0 and queue:
                n = min(remaining, len(queue), self.flush_size)
                remaining -= n
                entries = [queue.popleft() for _ in range(n)]
                try:
                    self._export(entries)
                except BaseException:
                    self.errors += 1
                    kept = [e for e in entries if e is not None]
                    queue.extendleft(reversed(kept))  # keep them for the next attempt
                    raise
                self.exported += len(entries)
            self.threshold = self.flush_size

    def close(self) -> None:
        """Stop the worker and flush what is left."""
        self._closed = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.flush()

    def _after_fork_in_child(self) -> None:
        self.queue.clear()  # the parent flushes what it captured
        self.exported = 0
        if not self._closed:
            self._init_sync()


def _reinit_after_fork() -> None:
    for buf in list(_live):
        buf._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
