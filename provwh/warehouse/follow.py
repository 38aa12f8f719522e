"""What every loading consumer shares: a thread that runs passes until stopped.

A consumer (spool folder, Redis stream) checks its databases when it starts (a schema problem
raises there, a database that is down is retried later), runs one pass after another in a
background thread (backing off while passes fail), and on ``stop(drain=True)`` loads what is
left before it closes. Subclasses say what a pass, a drain and closing are.

Stopping never cuts a transaction: ``stop(drain=False)`` (and a drain given up: Ctrl+C, or a
database still unreachable when the stop timeout ends) lets the transaction in hand end, then
leaves the rest where it is (the spool folder's ``claimed/`` or ready batches, the stream's
unacknowledged entries) for the next start or ``provwh load``. The thread that loads is the
consumer's own; the caller of ``stop`` only waits for it, so Ctrl+C reaches the caller (the
main thread) at once, and no connection is in use by another thread when ``stop`` returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any

from provwh.core.text import first_line
from provwh.core.threads import handling_keyboard_interrupt, leave_signals_to_main
from provwh.warehouse.engines import Target
from provwh.warehouse.errors import Aborted, SchemaError, Unavailable
from provwh.warehouse.loader import Loader, LoadStats, RetryPolicy

log = logging.getLogger("provwh.warehouse")

MAX_IDLE_BACKOFF = 5.0
NOTICE_AFTER = 1.0  # seconds of draining at stop before saying what is being loaded
KEEP_OPEN = 1.0  # seconds a database stays open after the last pass that loaded something


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
        self._drain_on_stop = False
        self._drain_error: BaseException | None = None
        self._gave_up: tuple[str, BaseException] | None = None  # the database stop gave up on

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Any:
        """Check now (a schema problem raises here), then run passes in a thread."""
        if self._thread is not None:
            return self
        self.check()
        self._stopping.clear()
        self._abort.clear()
        self._drain_on_stop = False
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

    def stop(self, drain: bool = True, timeout: float | None = None) -> LoadStats:
        """Stop the passes; with ``drain``, load what is left first. Returns the stats.

        With ``drain`` it returns once the batches are committed. ``timeout``: the seconds to
        wait for a database that cannot be reached (locked, down; None: until it answers);
        then loading stops and ``Unavailable`` is raised, what is not loaded left where it is.
        Without ``drain``, the transaction in hand ends and the rest is left for the next start.
        In the main thread, Ctrl+C while draining stops the same way, then raises
        ``KeyboardInterrupt``; a drain that takes over a second says what it loads and how to
        leave it. Whatever happens, no thread uses the databases once it returns.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        thread, self._thread = self._thread, None
        self._drain_on_stop = drain
        self._drain_error = self._gave_up = None
        if not drain:
            self._abort.set()
        self._stopping.set()
        interrupted = None
        try:
            if thread is threading.current_thread():  # stopped from a pass: drain right here
                if drain:
                    self._drain()
            else:
                if thread is None and drain:  # never started: the drain gets a thread
                    thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                    thread.start()
                if thread is not None:
                    interrupted = self._wait(thread, drain, timeout, deadline)
        finally:
            self._close()
        if interrupted is not None:
            raise interrupted
        if self._gave_up is not None:
            name, exc = self._gave_up
            raise Unavailable(
                f"gave up waiting for {name} after {timeout:g} s at stop "
                f"({first_line(exc) or type(exc).__name__})",
                at_stop=True,
            ) from exc
        if self._drain_error is not None:
            raise self._drain_error
        return self.stats

    def _wait(
        self, thread: threading.Thread, drain: bool, timeout: float | None, deadline: float | None
    ) -> KeyboardInterrupt | None:
        """Wait for the loading thread to end: give up on an unreachable database at
        ``deadline``, stop at Ctrl+C (returned), say what a long drain loads."""
        t0 = time.monotonic()
        noticed = not drain
        interrupted = None
        while True:
            try:
                while thread.is_alive():
                    time.sleep(0.05)  # a sleep, not a join: Ctrl+C interrupts it cleanly
                    now = time.monotonic()
                    waiting = self.loader.waiting
                    if (deadline is not None and waiting is not None and now >= deadline
                            and not self._abort.is_set()):  # fmt: skip
                        self._gave_up = waiting
                        self._abort.set()
                    if not noticed and now - t0 >= NOTICE_AFTER and not self._abort.is_set():
                        noticed = True
                        self._notice(waiting, timeout)
                thread.join()
                return interrupted
            except KeyboardInterrupt as exc:  # stop now: the transaction in hand rolls back
                if interrupted is None:
                    interrupted = exc
                    self.loader.interrupt()

    def _notice(self, waiting: tuple[str, BaseException] | None, timeout: float | None) -> None:
        """One line: what the drain loads, into what, and (Ctrl+C can stop it) how to leave."""
        what = self._backlog() or "the batches left"
        hint = ""
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):  # fmt: skip
            again = " again" if handling_keyboard_interrupt() else ""
            hint = f"; press Ctrl+C{again} to leave them in {self._leave_where()}"
        if waiting is not None:
            limit = "" if timeout is None else f" up to {timeout:g} s"
            log.warning(
                "provwh: %s cannot be reached: waiting%s to load %s%s",
                waiting[0], limit, what, hint,
            )  # fmt: skip
        else:
            into = ", ".join(t.name for t in self.loader.targets)
            log.warning("provwh: loading %s into %s%s", what, into, hint)

    def _backlog(self) -> str | None:
        """What is left to load, in words ("12 batches"), when the consumer can tell."""
        return None

    def _leave_where(self) -> str:
        """Where the batches not loaded stay, in words."""
        return "the spool folder"

    def run_foreground(
        self, once: bool = False, stop_event: threading.Event | None = None, on_start: Any = None
    ) -> LoadStats:
        """Run until SIGINT/SIGTERM (or ``stop_event``), then stop; ``once``: one pass.

        A signal stops it as ``stop(drain=False)`` does: the transaction in hand commits, the
        rest stays for the next start. A second signal ends the process at once (exit status
        128 + the signal's number): the transaction in hand is rolled back and its batch, not
        acknowledged or moved to ``done/``, loads at the next start. Returns the stats of
        everything loaded. Signal handlers are installed only on the main thread, and the
        previous ones are put back.
        """
        if once:
            self.check()
            stats = self.load_pending()
            self.stop(drain=False)
            return stats
        stop_event = stop_event or threading.Event()
        received: list[int] = []

        def on_signal(signum: int, _frame: Any) -> None:
            if received:  # the second one: leave now, without waiting for the transaction
                os.write(2, b"provwh: stopped at once; the batch in hand loads at the next start\n")
                os._exit(128 + signum)
            received.append(signum)
            stop_event.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            log.info("provwh: %s started", self.thread_name)
            if on_start is not None:
                on_start(self)
            while not stop_event.wait(0.5):
                pass
            if received:
                log.warning(
                    "provwh: stopping after the batch in hand (%s again: at once)",
                    signal.Signals(received[0]).name,
                )
            return self.stop(drain=False)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def load_pending(self) -> LoadStats:
        raise NotImplementedError

    def _derive_due(self) -> bool:
        return time.monotonic() - self._last_derive >= self.lineage_interval

    def _pass_opened(self, loads: bool, derive: bool) -> contextlib.AbstractContextManager:
        """Each database opened once for a pass's load and its derivation (a DuckDB file
        checkpoints each time it closes); nothing opened for a pass with neither."""
        if loads or (derive and self._underived and not self._abort.is_set()):
            return self.loader.hold()
        return contextlib.nullcontext()

    def _derive_after(self, stats: LoadStats, derive: bool) -> None:
        """After a pass's load: its tasks' data edges are due; derived now with ``derive``
        (``_underived``: the subclass's flag, set at start for what a previous run left)."""
        if stats.batches:
            self._underived = True
        if derive and self._underived and not self._abort.is_set():
            self.loader.derive_lineage()
            self._underived = False
            self._last_derive = time.monotonic()

    def _run(self) -> None:
        leave_signals_to_main()
        idle = self.poll_interval
        last_work = 0.0
        while not self._stopping.is_set():
            try:
                loaded = self.stats.batches
                idle = self._follow_pass()
                last_work = self._keep_open(self.stats.batches > loaded, last_work)
            except Aborted as exc:
                self._aborted(exc)
                return
            except Exception as exc:  # keep following: what failed is retried next pass
                self.errors += 1
                self.last_error = exc
                self._pass_failed(exc)
                idle = min(max(idle * 2, 0.5), MAX_IDLE_BACKOFF)
            if idle:
                self._stopping.wait(idle)
        if self._drain_on_stop and not self._abort.is_set():
            try:
                self._drain()
            except Aborted as exc:
                self._aborted(exc)
            except BaseException as exc:  # raised by stop(), in the caller's thread
                self._drain_error = exc

    def _keep_open(self, worked: bool, last_work: float) -> float:
        """Keep the databases open from pass to pass while batches keep coming (a DuckDB file
        checkpoints each time it closes, and checks its schema each time it opens), until
        ``KEEP_OPEN`` s pass without one or another process waits for a file. Returns when
        the last pass with work ended."""
        now = time.monotonic()
        targets = self.loader.targets
        waited = any(t.waited_for() for t in targets)
        if worked and not waited:
            for target in targets:
                target.keep()
            return now
        if waited or now - last_work > KEEP_OPEN:
            for target in targets:
                target.let_go()
        return last_work

    def _aborted(self, exc: Aborted) -> None:
        """A pass stopped midway: count what it committed."""
        if exc.stats is not None:
            self.stats.add(exc.stats)

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
