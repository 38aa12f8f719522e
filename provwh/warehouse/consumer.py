"""The spool consumer: follows a spool folder and loads each batch exactly once.

A pass loads, oldest name first, what is left in ``claimed/`` (a consumer killed mid-batch),
then every ready batch: claimed by ``os.rename`` into ``claimed/`` (atomic; the loser of a race
skips it) and locked (``flock``) while it loads, so another consumer of the folder takes only
the claimed batches no live consumer holds; loaded into every configured database, then moved
to ``done/`` after the commits.
The ledger makes a batch loaded twice (a crash between commit and move) a no-op. A batch that
cannot be read or loaded for a reason retrying will not fix is moved to ``rejected/`` with a
``.error.txt`` next to it; lines set aside go to ``rejected/<batch>.rejects.jsonl``. Files in
``done/`` are pruned after ``buffer.done_retention`` seconds (producers read them to write their
dumps), and the oldest first whenever ``done/`` holds more than ``buffer.done_max_mb``.

``SpoolConsumer`` runs in a thread of the capturing process (``Flowcept(start_persistence=
True)``); ``run_consumer`` / ``start_consumption_services`` / ``provwh consume`` run the same in
the foreground of a process of its own until SIGINT or SIGTERM.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from provwh.core.config import SCHEMA, Settings, get_settings
from provwh.core.text import plural
from provwh.transport.batches import list_batches, write_atomic
from provwh.transport.spool import CLAIMED, DONE, REJECTED, prune_done
from provwh.warehouse.engines import Target, targets_from_settings
from provwh.warehouse.follow import Follower
from provwh.warehouse.loader import LoadStats, RetryPolicy
from provwh.warehouse.reader import DEFAULT_MAX_RECORDS, BatchFileError

log = logging.getLogger("provwh.warehouse")

_PRUNE_EVERY = 30.0  # seconds between two prunings of done/ by age (by size: when due)
MAX_FAILURES = 3  # passes a batch may fail (non-transient errors) before it is set aside
MAX_PER_PASS = 500  # batches claimed per pass, so lineage and pruning run between passes


class SpoolConsumer(Follower):
    """Loads the batches of ``spool_dir`` into the databases ``settings`` enable."""

    def __init__(
        self,
        spool_dir: str | os.PathLike,
        settings: Settings,
        poll_interval: float = 0.2,
        retention: float | None = None,
        retry: RetryPolicy | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
        targets: list[Target] | None = None,
        lineage_interval: float = 2.0,
        group_records: int | None = None,
        workers: int | None = None,
        done_max_mb: int | None = None,
        keep: Any = None,
        only: Any = None,
    ) -> None:
        """``retention`` (seconds) and ``done_max_mb`` bound ``done/`` (default: the settings'
        ``buffer.done_retention`` and ``buffer.done_max_mb``); ``keep(name)``: a loaded batch
        to keep past the retention (not past the size bound): the in-process loader keeps its
        own run's, which the dump at stop reads. ``only(name)``: the batches to load (default:
        all); a run loading its own batches from a shared fallback folder leaves the rest."""
        self.only = only
        self.spool_dir = Path(os.path.abspath(os.fspath(spool_dir)))
        for sub in ("", CLAIMED, DONE, REJECTED):
            (self.spool_dir / sub).mkdir(parents=True, exist_ok=True)
        self.settings = settings
        if retention is None:
            retention = _setting(settings, "buffer.done_retention")
        if done_max_mb is None:
            done_max_mb = _setting(settings, "buffer.done_max_mb")
        self.retention = retention
        self.done_max_bytes = done_max_mb << 20
        self.keep = keep
        self._done_bytes: int | None = None  # in done/ at the last pruning, and moved since
        self._init_follower(
            targets if targets is not None else targets_from_settings(settings),
            retry,
            max_records,
            group_records,
            poll_interval,
            lineage_interval,
            workers,
        )
        self._last_prune = 0.0
        self._last_claimed = 0  # batches the last pass took
        self._held: dict[str, int] = {}  # claimed batch -> the descriptor holding its lock
        _consumers.add(self)
        self._underived = True  # a previous run may have left tasks pending

    # -- Follower hooks -------------------------------------------------------------------
    def _follow_pass(self) -> float:
        self.load_pending(derive=self._derive_due())
        # batches written while a pass loads are due at once, not a poll later (a steady
        # stream waited pass + poll_interval for each; as the Redis consumer does)
        return 0.0 if self._last_claimed else self.poll_interval

    def _drain(self) -> None:
        """Every batch ready now, in passes (a pass claims ``MAX_PER_PASS`` at most)."""
        while True:
            self.load_pending()
            if self._last_claimed < MAX_PER_PASS or self._abort.is_set():
                return

    def _backlog(self) -> str | None:
        only = self.only or (lambda _name: True)
        n = sum(
            1 for sub in ("", CLAIMED) for p in list_batches(self.spool_dir / sub) if only(p.name)
        )
        return plural(n, "batch")

    def _pass_failed(self, exc: BaseException) -> None:
        log.error("provwh: loading the spool %s failed: %s", self.spool_dir, exc)

    # -- passes -----------------------------------------------------------------------------
    def load_pending(self, derive: bool = True) -> LoadStats:
        """One pass: leftovers in ``claimed/``, then every ready batch. Returns its stats.

        With ``derive``, the data lineage edges of the tasks loaded so far are derived too
        (the background thread does that at most every ``lineage_interval`` seconds).
        """
        with self._pass_lock:
            t0 = time.perf_counter()
            # leftovers of a consumer that died (a live one holds the lock of each it took)
            only = self.only or (lambda _name: True)
            paths = [
                p for p in list_batches(self.spool_dir / CLAIMED) if only(p.name) and self._own(p)
            ]
            ready = [p for p in list_batches(self.spool_dir) if only(p.name)]
            for path in ready[: max(0, MAX_PER_PASS - len(paths))]:
                claimed = self._claim(path)
                if claimed is not None:
                    paths.append(claimed)
            self._last_claimed = len(paths)
            with self._pass_opened(bool(paths), derive):
                stats = self._load(paths, derive)
            self._prune()
            stats.seconds = time.perf_counter() - t0
            self.stats.add(stats)
            return stats

    def _load(self, paths: list[Path], derive: bool) -> LoadStats:
        stats = LoadStats()
        try:
            if paths:
                stats = self.loader.load_files(
                    paths,
                    rejects_for=lambda p: (
                        self.spool_dir / REJECTED / f"{Path(p).name}.rejects.jsonl"
                    ),
                    on_done=self._done,
                    on_error=self._error,
                )
        finally:
            self._release_all()
        self._derive_after(stats, derive)
        return stats

    def _claim(self, path: Path) -> Path | None:
        target = self.spool_dir / CLAIMED / path.name
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None  # another consumer took it
        return target if self._own(target) else None

    def _own(self, path: Path) -> bool:
        """Lock a claimed batch for this consumer (released when loaded, or by the system if
        this process dies); False when another consumer holds it, or it is gone."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False  # a live consumer is loading it
        if not os.path.exists(path):  # moved on by its owner between our look and our lock
            os.close(fd)
            return False
        self._held[path.name] = fd
        return True

    def _release(self, name: str) -> None:
        fd = self._held.pop(name, None)
        if fd is not None:
            os.close(fd)

    def _release_all(self) -> None:
        for name in list(self._held):
            self._release(name)

    def _done(self, path: str) -> None:
        name = Path(path).name
        self._failures.pop(name, None)
        try:
            size = os.path.getsize(path)
            os.rename(path, self.spool_dir / DONE / name)
        except FileNotFoundError:
            return  # finished by another consumer of this folder meanwhile
        finally:
            self._release(name)
        if self._done_bytes is not None:
            self._done_bytes += size

    def _error(self, path: str, exc: BaseException) -> None:
        """A batch that failed: skip, set aside, or (to retry next pass) raise."""
        path = Path(path)
        if isinstance(exc, FileNotFoundError):
            return  # finished by another consumer of this folder meanwhile
        if isinstance(exc, BatchFileError):
            self._reject(path, exc)
            return
        if isinstance(exc, OSError):
            raise exc
        failures = self._failures.get(path.name, 0) + 1
        if failures < MAX_FAILURES:  # the database refused it: retry a few passes
            self._failures[path.name] = failures
            raise exc
        self._failures.pop(path.name, None)
        self._reject(path, exc)

    def _reject(self, path: Path, exc: BaseException) -> None:
        """A batch that retrying cannot load: set it aside with the reason, go on."""
        self.errors += 1
        self.last_error = exc
        log.error("provwh: batch %s set aside in %s: %s", path.name, REJECTED, exc)
        dest = self.spool_dir / REJECTED / path.name
        reason = f"{type(exc).__name__}: {exc}\n".encode()
        write_atomic(dest.with_name(dest.name + ".error.txt"), reason, fsync=True)
        try:
            os.rename(path, dest)
        except FileNotFoundError:
            pass

    def _prune(self) -> None:
        """Loaded batches past ``retention`` (every ``_PRUNE_EVERY`` seconds at most), and
        the oldest ones while ``done/`` holds more than ``done_max_bytes`` (checked as soon as
        the batches this consumer moved there may have taken it past)."""
        now = time.time()
        over = self._done_bytes is not None and self._done_bytes > self.done_max_bytes
        if not over and now - self._last_prune < min(_PRUNE_EVERY, self.retention):
            return
        self._last_prune = now
        removed, self._done_bytes = prune_done(
            self.spool_dir / DONE, self.retention, self.done_max_bytes, self.keep
        )
        if removed:
            log.info("provwh: pruned %s from %s", plural(removed, "loaded batch"), DONE)


_consumers: weakref.WeakSet[SpoolConsumer] = weakref.WeakSet()


def _forget_locks_in_child() -> None:
    """A forked child shares its parent's claim locks: it closes its copies, so a batch its
    parent loaded is not held for as long as the child lives."""
    for consumer in list(_consumers):
        for fd in consumer._held.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        consumer._held = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


def _setting(settings: Settings | None, key: str) -> Any:
    """A setting's value; its default without settings (a consumer given only targets)."""
    return SCHEMA[key].default if settings is None else settings.get(key)


# --- a consumer process ------------------------------------------------------------------------


def run_consumer(
    spool_dir: str | os.PathLike,
    settings: Settings,
    poll_interval: float = 0.2,
    once: bool = False,
    targets: list[Target] | None = None,
    stop_event: threading.Event | None = None,
    on_start: Any = None,
    group_records: int | None = None,
    workers: int | None = None,
) -> LoadStats:
    """Follow ``spool_dir`` in the foreground until SIGINT/SIGTERM (or one pass: ``once``).

    Returns the stats of everything loaded. A signal stops it after the transaction in hand,
    the rest left for the next start; a second one ends the process (``run_foreground``).
    """
    consumer = SpoolConsumer(
        spool_dir, settings, poll_interval=poll_interval, targets=targets,
        group_records=group_records, workers=workers,
    )  # fmt: skip
    return consumer.run_foreground(once=once, stop_event=stop_event, on_start=on_start)


def start_consumption_services(
    bundle_exec_id: str | None = None,
    check_safe_stops: bool = False,
    consumers: list | None = None,
) -> LoadStats:
    """Flowcept's persistence process: load the configured spool folder until stopped.

    ``bundle_exec_id`` and ``check_safe_stops`` are accepted for compatibility (batches carry
    their own identity, and stopping is by signal). One consumer type only.
    """
    if consumers is not None and len(consumers) > 1:
        raise NotImplementedError("only one consumer type is supported")
    settings = get_settings()
    return run_consumer(settings.get("buffer.spool_dir"), settings)
