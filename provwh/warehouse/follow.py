"""What every loading consumer shares: a thread that runs passes until stopped.

A consumer (spool folder, Redis stream) checks its databases when it starts (a schema problem
raises there, a database that is down is retried later), runs one pass after another in a
background thread (backing off while passes fail), and on ``stop(drain=True)`` loads what is
left before it closes. Subclasses say what a pass, a drain and closing are.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from provwh.core.threads import leave_signals_to_main
from provwh.warehouse.engines import Target
from provwh.warehouse.errors import Aborted, SchemaError
from provwh.warehouse.loader import Loader, LoadStats, RetryPolicy

log = logging.getLogger("provwh.warehouse")

MAX_IDLE_BACKOFF = 5.0


class Follower:
    thread_name = "provwh-consumer"
    poll_interval: float

    def _init_follower(
        self,
        targets: list[Target],
        retry: RetryPolicy | None,
        max_records: int,
        group_records: int | None,
        poll_interval: float,
        lineage_interval: float,
        workers: int | None = None,
    ) -> None:
        self.poll_interval = poll_interval
        self.lineage_interval = lineage_interval
        self._abort = threading.Event()
        self._stopping = threading.Event()
        self.loader = Loader(
            targets,
            retry=retry,
            max_records=max_records,
            abort=self._abort,
            group_records=group_records,
            workers=workers,
        )
        self.stats = LoadStats()
        self.errors = 0
        self.last_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._last_derive = 0.0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Any:
        """Check now (a schema problem raises here), then run passes in a thread."""
        if self._thread is not None:
            return self
        self.check()
        self._stopping.clear()
        self._abort.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def check(self) -> None:
        self.check_databases()

    def check_databases(self) -> None:
        """Open every database once: raises ``SchemaError``; an unreachable one is logged."""
        for target in self.loader.targets:
            try:
                with target.transaction():
                    pass
            except SchemaError:
                raise
            except Exception as exc:
                if not target.is_transient(exc):
                    raise
                target.reset()
                log.warning("provwh: %s not reachable yet (%s); will retry", target.name, exc)

    def stop(self, drain: bool = True) -> LoadStats:
        """Stop the passes; with ``drain``, load what is left first. Returns the stats.

        Returns once the batches are committed (waiting for a database that is down: nothing
        is dropped). Without ``drain``, a batch being retried is left for the next start.
        """
        if not drain:
            self._abort.set()
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        try:
            if drain:
                self._drain()
        finally:
            self._close()
        return self.stats

    def run_foreground(
        self, once: bool = False, stop_event: threading.Event | None = None, on_start: Any = None
    ) -> LoadStats:
        """Run until SIGINT/SIGTERM (or ``stop_event``), then drain; ``once``: one pass.

        Returns the stats of everything loaded. Signal handlers are installed only on the main
        thread, and the previous ones are put back.
        """
        if once:
            self.check()
            stats = self.load_pending()
            self.stop(drain=False)
            return stats
        stop_event = stop_event or threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: stop_event.set())
        try:
            self.start()
            log.info("provwh: %s started", self.thread_name)
            if on_start is not None:
                on_start(self)
            while not stop_event.wait(0.5):
                pass
            return self.stop(drain=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def load_pending(self) -> LoadStats:
        raise NotImplementedError

    def _derive_due(self) -> bool:
        return time.monotonic() - self._last_derive >= self.lineage_interval

    def _run(self) -> None:
        leave_signals_to_main()
        idle = self.poll_interval
        while not self._stopping.is_set():
            try:
                idle = self._follow_pass()
            except Aborted:
                return
            except Exception as exc:  # keep following: what failed is retried next pass
                self.errors += 1
                self.last_error = exc
                self._pass_failed(exc)
                idle = min(max(idle * 2, 0.5), MAX_IDLE_BACKOFF)
            if idle:
                self._stopping.wait(idle)

    # -- what subclasses say ----------------------------------------------------------------
    def _follow_pass(self) -> float:
        """One background pass; returns how long to wait before the next."""
        raise NotImplementedError

    def _drain(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        self.loader.close()

    def _pass_failed(self, exc: BaseException) -> None:
        log.error("provwh: a loading pass failed: %s", exc)
