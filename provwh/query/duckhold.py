"""A DuckDB file a server keeps open while requests keep coming, and lets go of when they stop
or when another process waits for it.

DuckDB lets one process open a file (read-write) at a time. Opening it costs 20-40 ms and
closing it drops DuckDB's cache, so a server that opened the file for every request spent
most of a request's time there; ``HeldFile`` opens it once (``warehouse.duck.pin``) and gives
each request a cursor of its own (a connection to the same database), so requests run
concurrently. It closes the file:

- after ``idle_release`` seconds without a request (the next request opens it again);
- when another process waits for the file: provwh's processes that find it locked (a loader,
  a consumer, a capture, ``provwh sql``...) write their pid into ``<file>.waiting``
  (``warehouse.duck.say_waiting``) at each try. The server sees it within
  ``POLL`` s, lets the requests in flight finish, closes the file and opens it again only once
  that process has had it (it removes the note when it opens the file) or after
  ``writer_wait`` s (it gave up): a page that polls cannot starve a writer;
- after ``max_hold`` s held without a pause (0: never), for ``pause`` s, for the processes
  outside provwh that cannot say they wait (a DuckDB shell, a notebook that retries).

Requests that arrive while the file is closed for another process wait for it (as they wait,
``lock_timeout`` s at most, while that process holds it); none is refused for it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

POLL = 0.1  # seconds between two looks at <file>.waiting while the file is held


class HeldFile:
    def __init__(
        self,
        path: str,
        opener: Callable[[float], Any],
        idle_release: float = 1.0,
        max_hold: float = 30.0,
        pause: float = 0.5,
        writer_wait: float = 10.0,
        lock_timeout: float = 10.0,
    ) -> None:
        """``opener(deadline)``: ``warehouse.duck.pin``'s cursor on the file (retrying until the
        monotonic ``deadline`` while another process holds it), locked down as the server
        needs; it raises when it cannot."""
        from provwh.warehouse.duck import WAITING_SUFFIX

        self.path = path
        self.opener = opener
        self.idle_release = max(0.0, idle_release)
        self.max_hold = max(0.0, max_hold)
        self.pause = max(0.0, pause)
        self.writer_wait = max(0.0, writer_wait)
        self.lock_timeout = lock_timeout
        self._marker = path + WAITING_SUFFIX
        self._seen = self._marker_mtime()  # notes older than the server are not waiters
        self._cv = threading.Condition()
        self._root: Any = None  # pin's cursor, while the file is held
        self._active = 0  # cursors handed out and not given back
        self._opening = False
        self._opened_at = self._last_used = 0.0
        self._draining = False  # no new cursors; close once the active ones are back
        self._drain_for_writer = False
        self._paused_until = 0.0
        self._writer_pause = False
        self._watcher: threading.Thread | None = None
        self._stopping = False
        self.opens = 0  # times the file was opened (tests, benchmarks)

    # --- requests ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        """A connection of this thread's own to the file, until the block ends."""
        cur = self._lease()
        try:
            yield cur
        finally:
            self._give_back(cur)

    def _lease(self) -> Any:
        deadline = time.monotonic() + self.lock_timeout
        with self._cv:
            while True:
                now = time.monotonic()
                closed_for_others = now < self._paused_until
                if not (self._draining or self._opening or closed_for_others):
                    if self._root is not None:
                        self._active += 1
                        return self._root.cursor()
                    self._opening = True
                    break
                # waiting for a pause (bounded by pause / writer_wait) or another's open
                # (bounded by lock_timeout), or for the requests in flight to finish
                if self._opening and now >= deadline:
                    from provwh.query.backends import DatabaseLocked

                    raise DatabaseLocked(self.path, self.lock_timeout, TimeoutError("opening"))
                wait = POLL
                if closed_for_others and not self._draining:
                    wait = min(wait, self._paused_until - now)
                self._cv.wait(max(wait, 0.001))
        try:
            root = self.opener(max(deadline, time.monotonic() + 0.5))
        except BaseException:
            with self._cv:
                self._opening = False
                self._cv.notify_all()
            raise
        with self._cv:
            self.opens += 1
            self._root, self._opening = root, False
            self._opened_at = self._last_used = time.monotonic()
            self._active += 1
            cur = root.cursor()
            self._start_watcher()
            self._cv.notify_all()
            return cur

    def _give_back(self, cur: Any) -> None:
        with self._cv:
            try:
                cur.close()
            finally:
                self._active -= 1
                self._last_used = time.monotonic()
                if self._active == 0:
                    self._cv.notify_all()

    # --- letting go ----------------------------------------------------------------------------
    def _start_watcher(self) -> None:
        self._stopping = False
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="provwh-duckdb-hold", daemon=True
            )
            self._watcher.start()

    def _watch(self) -> None:
        with self._cv:
            try:
                self._watch_held()
            finally:
                if self._watcher is threading.current_thread():
                    self._watcher = None

    def _watch_held(self) -> None:
        """Under the lock: close the file when idle or asked; return when there is nothing to
        watch."""
        while not self._stopping:
            now = time.monotonic()
            if self._root is not None:
                if not self._draining:
                    if self._writer_waits():
                        self._draining, self._drain_for_writer = True, True
                    elif self.max_hold and now - self._opened_at >= self.max_hold:
                        self._draining, self._drain_for_writer = True, False
                idle = now - self._last_used >= self.idle_release
                if self._active == 0 and (self._draining or idle):
                    if self._draining:
                        wait = self.writer_wait if self._drain_for_writer else self.pause
                        self._paused_until = time.monotonic() + wait
                        self._writer_pause = self._drain_for_writer
                    self._draining = False
                    self._unpin()
                    self._cv.notify_all()
            elif self._writer_pause and now < self._paused_until:
                if self._writer_done():  # it has the file: wait for it as for any holder
                    self._paused_until, self._writer_pause = 0.0, False
                    self._cv.notify_all()
            elif not self._opening:
                return  # closed, nothing to watch: the next open starts a watcher
            self._cv.wait(POLL)

    def _unpin(self) -> None:
        from provwh.warehouse.duck import unpin

        root, self._root = self._root, None
        unpin(self.path, root)

    def _marker_mtime(self) -> int:
        try:
            return os.stat(self._marker).st_mtime_ns
        except OSError:
            return 0

    def _writer_waits(self) -> bool:
        """Another process wrote ``<file>.waiting`` since the last look."""
        mtime = self._marker_mtime()
        if mtime <= self._seen:
            return False
        self._seen = mtime
        from provwh.warehouse.duck import waiting_pid

        pid = waiting_pid(self.path)
        return pid is not None and pid != str(os.getpid())

    def _writer_done(self) -> bool:
        """The waiting process opened the file (its note is gone) or wrote no new note."""
        return self._marker_mtime() == 0

    # --- the end -------------------------------------------------------------------------------
    def release(self, timeout: float = 5.0) -> None:
        """Close the file now (once the requests in flight end, ``timeout`` s at most); a
        later request opens it again."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._active and time.monotonic() < deadline:
                self._cv.wait(POLL)
            self._stopping = True
            if self._root is not None:
                self._unpin()
            self._cv.notify_all()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout)

    @property
    def held(self) -> bool:
        return self._root is not None
