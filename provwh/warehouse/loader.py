"""The loader: batch files -> transactions in each database, every batch exactly once.

A batch (a chunk of a file, see ``reader``) is always written in one transaction; for DuckDB
consecutive batches share one (``DUCKDB_GROUP_RECORDS``). What a transaction writes, and how a
batch loads exactly once, is ``ingest``'s; the loader reads the files (normalizing ahead, or in
worker processes), groups batches, and retries transient errors (database down, file locked)
with exponential backoff: nothing is lost while waiting, since the batch file stays where it
is until the commit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

from provwh.core.text import first_line, plural
from provwh.transport.batches import write_atomic
from provwh.warehouse import ids, lineage
from provwh.warehouse.engines import Target
from provwh.warehouse.errors import Aborted, LoadError, WarehouseError
from provwh.warehouse.ingest import Ingest, Work, Written, loaded_before
from provwh.warehouse.normalize import Normalized, combine
from provwh.warehouse.pipeline import normalized_chunks
from provwh.warehouse.reader import DEFAULT_MAX_RECORDS, MAX_CHUNK_BYTES
from provwh.warehouse.schema import TASK_CHILD_TABLES
from provwh.warehouse.workers import WorkerPool, default_workers

log = logging.getLogger("provwh.warehouse")


@dataclass
class LoadStats:
    """What a load did: batches loaded and skipped (already in the ledger), rows, rejects."""

    files: int = 0
    batches: int = 0
    skipped: int = 0
    records: int = 0
    tasks: int = 0
    workflows: int = 0
    objects: int = 0
    merged: int = 0  # records merged into stored ones (a task or workflow arriving in parts)
    rows: int = 0
    rejects: int = 0
    seconds: float = 0.0

    def add(self, other: LoadStats) -> LoadStats:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def summary(self) -> str:
        """One line: ``loaded 3 batches: 1,234 rows (100 tasks, 1 workflow), 0 rejects in 1 s``.

        Tasks, workflows and objects count those created; a part of one already stored is
        counted as merged.
        """
        skipped = f" ({self.skipped} already loaded)" if self.skipped else ""
        parts = [plural(self.tasks, "task"), plural(self.workflows, "workflow")]
        if self.objects:
            parts.append(plural(self.objects, "object"))
        merged = f"; {plural(self.merged, 'record')} merged into stored ones" if self.merged else ""
        return (
            f"loaded {plural(self.batches, 'batch')}{skipped}: {plural(self.rows, 'row')} "
            f"({', '.join(parts)}{merged}), {plural(self.rejects, 'reject')} in "
            f"{self.seconds:.2f} s"
        )


# Tries of a transaction that met another writer's (``Target.is_conflict``: another loader
# inserted the same key between our probe and insert, a deadlock), each retried at once; a
# unique violation still there after them is the data's (a DBA's own unique index, a batch
# holding a duplicate), handled as such (``Ingest.isolate``).
CONFLICT_RETRIES = 20


@dataclass
class RetryPolicy:
    """Exponential backoff for transient errors; ``timeout`` None retries forever."""

    initial: float = 0.2
    maximum: float = 10.0
    timeout: float | None = None


def _stats(norm: Normalized, written: Written, isolated: int = 0) -> LoadStats:
    """Tasks, workflows and objects as created (each once, however many parts it came in);
    ``isolated``: records a database refused, set aside as rejects."""
    done = {id(m) for m in written.loaded}
    created = written.created
    s = LoadStats(rows=written.rows, merged=sum(written.merged.values()), rejects=isolated)
    s.tasks, s.workflows = created.get(ids.TASK, 0), created.get(ids.WORKFLOW, 0)
    s.objects = created.get(ids.OBJECT, 0)
    for m in norm.members():
        s.records += m.records
        s.rejects += len(m.rejects)
        if id(m) in done:
            s.batches += 1
        else:
            s.skipped += 1
    return s


# --- files -------------------------------------------------------------------------------------


# Tables whose statistics the planner leans on (lineage_pending is emptied by every derive)
ANALYZED_TABLES = ("tasks", *TASK_CHILD_TABLES, "task_edges", "workflows", "data_objects")

# A worker process takes ~0.3 s to start (imports): worth it from a few batches of tasks on.
WORKER_MIN_BYTES = 4 << 20

# DuckDB writes small transactions twice (WAL, then checkpoint) and larger ones straight to
# the file: sharing a transaction between batches up to this many records cuts its commit cost
# by 40% (measured) while keeping the records in memory at once bounded. PostgreSQL commits
# cheaply and overlaps better with normalizing one batch at a time.
DUCKDB_GROUP_RECORDS = 5_000


@dataclass
class _FileState:
    ended: bool = False  # its last chunk was read
    pending: int = 0  # its chunks read but not committed yet
    rejected: list[bytes] = field(default_factory=list)


class Loader:
    """Loads batch files into one or more targets (``duck.DuckTarget``, ``pg.PgTarget``)."""

    def __init__(
        self,
        targets: list[Target],
        retry: RetryPolicy | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
        abort: threading.Event | None = None,
        group_records: int | None = None,
        workers: int | None = None,
    ) -> None:
        if not targets:
            raise LoadError("no database to load into: enable DuckDB or PostgreSQL")
        lineage.data_edges_sql()  # a broken installation fails here, before any commit
        self.targets = targets
        # one way into each database; its transactions retried while it is unavailable
        self.ingests = [Ingest(partial(self._retry, target), target) for target in targets]
        # normalize ahead in a thread only where it pays: see pipeline.py
        self.prefetch = 2 if any(getattr(t, "prefetch", False) for t in targets) else 0
        self.retry = retry or RetryPolicy()
        self.max_records = max_records
        if group_records is None:  # see DUCKDB_GROUP_RECORDS and pipeline.py
            group_records = 1 if self.prefetch else DUCKDB_GROUP_RECORDS
        self.group_records = group_records
        # set: stop loading at the next transaction, and stop waiting for a database
        self.abort = abort
        # (target name, error) while a database is being waited for, None once it answers
        self.waiting: tuple[str, BaseException] | None = None
        # worker processes normalize, and encode rows for the engine, when all targets are
        # of one engine (see workers.py); ``workers=0`` keeps it all in this process
        if workers is None:
            workers = default_workers()
        elif workers < 0:
            raise LoadError(f"workers must be 0 or more, got {workers}")
        encodings = {getattr(t, "encoding", None) for t in targets}
        self.encoding = encodings.pop() if len(encodings) == 1 else None
        self.workers = workers if self.encoding else 0
        self._pool: WorkerPool | None = None
        # rows written per table of each target since its statistics were last refreshed
        self._changed: list[dict[str, int]] = [{} for _ in targets]

    def load_file(
        self,
        path: str | os.PathLike,
        rejects_path: str | os.PathLike | None = None,
        on_chunk: Any = None,
    ) -> LoadStats:
        """Load every chunk of one file; rejects also go to ``rejects_path`` (JSONL)."""
        return self.load_files(
            [path], rejects_for=None if rejects_path is None else lambda _p: rejects_path,
            on_chunk=on_chunk,
        )  # fmt: skip

    def load_files(
        self,
        paths: list[str | os.PathLike],
        rejects_for: Any = None,
        on_chunk: Any = None,
        on_done: Any = None,
        on_error: Any = None,
    ) -> LoadStats:
        """Load files in order: each chunk in one transaction, normalized ahead.

        Consecutive chunks share a transaction up to ``group_records`` records (a chunk is
        never split): fewer, larger commits, and the ledger still keys every chunk.
        ``rejects_for(path)`` names the file the rejected lines of ``path`` go to (JSONL, in
        addition to the rejects table); ``on_chunk(chunk, total_stats)`` follows progress;
        ``on_done(path)`` runs once every chunk of a file is committed. A file that cannot be
        read, or that a database refuses (a non-transient error), is passed to
        ``on_error(path, exc)`` and skipped; without ``on_error`` the error is raised.
        Transient errors are retried; ``WarehouseError`` (schema, stop) always propagates.
        Once ``abort`` is set, the transaction in hand ends (committed, or rolled back when it
        was waiting for a database) and ``Aborted`` is raised: files not finished are left
        where they are, their committed chunks known to the ledger.
        """
        with self.hold():  # each database opened once (a DuckDB file checkpoints at close)
            return self._load_files(paths, rejects_for, on_chunk, on_done, on_error)

    def _load_files(
        self,
        paths: list[str | os.PathLike],
        rejects_for: Any,
        on_chunk: Any,
        on_done: Any,
        on_error: Any,
    ) -> LoadStats:
        t0 = time.perf_counter()
        total = LoadStats()
        files: dict[str, _FileState] = {}
        failed: set[str] = set()
        group: list[tuple[str, Normalized]] = []

        def fail(path: str, exc: BaseException) -> None:
            failed.add(path)
            files.pop(path, None)
            self._fail(path, exc, on_error)

        def finish_ready() -> None:
            for path, state in list(files.items()):
                if state.ended and state.pending == 0:
                    del files[path]
                    total.files += 1
                    if state.rejected and rejects_for is not None:
                        write_atomic(rejects_for(path), b"".join(state.rejected), fsync=True)
                    if on_done is not None:
                        on_done(path)

        def flush() -> None:
            parts = [(p, n) for p, n in group if p not in failed]
            group.clear()
            if not parts:
                return
            try:
                done = [(parts, *self._write(combine([n for _, n in parts])))]
            except (WarehouseError, OSError):
                raise
            except Exception as exc:
                if len(parts) == 1:
                    fail(parts[0][0], exc)
                    return
                done = []  # find the culprit: one transaction per chunk
                for path, norm in parts:
                    if path in failed:
                        continue
                    try:
                        done.append(([(path, norm)], *self._write(norm)))
                    except (WarehouseError, OSError):
                        raise
                    except Exception as exc2:
                        fail(path, exc2)
            for members, stats, isolated in done:
                total.add(stats)
                for path, norm in members:
                    if path in files:
                        files[path].pending -= 1
                        files[path].rejected.extend(
                            _reject_line(norm.chunk.source, r) for r in isolated
                        )
                    if on_chunk is not None:
                        on_chunk(norm.chunk, total)

        paths = list(paths)
        # files loaded whole already: skipped unparsed
        before = loaded_before(self.ingests, paths, self.max_records, rejects_for is not None)
        paths = [p for p in paths if os.fspath(p) not in before]
        for path, (chunks, records, rejects) in before.items():
            total.add(LoadStats(files=1, skipped=chunks, records=records, rejects=rejects))
            if on_done is not None:
                on_done(path)
        items = self._items(list(paths))
        records = size = 0
        try:
            with contextlib.closing(items):
                for item in items:
                    if item.norm is not None or item.error is not None:  # ends still count
                        self._check_abort()
                    path = item.path
                    if path in failed:
                        continue
                    state = files.setdefault(path, _FileState())
                    if item.error is not None:
                        fail(path, item.error)
                    elif item.norm is None:
                        state.ended = True
                    else:
                        norm = item.norm
                        state.pending += 1
                        state.rejected.extend(
                            _reject_line(norm.chunk.source, r) for r in norm.rejects
                        )
                        group.append((path, norm))
                        records += norm.records
                        size += norm.chunk.size
                        if records < self.group_records and size < MAX_CHUNK_BYTES:
                            continue
                        flush()
                        records = size = 0
                    finish_ready()
                self._check_abort()
                flush()
                finish_ready()
            if total.batches:
                self.refresh_statistics()
        except Aborted as exc:
            exc.stats = total  # what was committed before the stop
            raise
        finally:
            total.seconds = time.perf_counter() - t0
        return total

    def _items(self, paths: list) -> Any:
        """Normalized chunks: from worker processes when they pay for their start."""
        if self.workers and self._pool is None and _size(paths) >= WORKER_MIN_BYTES:
            pool = WorkerPool(self.workers, self.encoding)
            try:
                pool.start()
                self._pool = pool
            except OSError as exc:
                log.warning("provwh: cannot start worker processes (%s): normalizing here", exc)
                pool.close(kill=True)
                self.workers = 0
        if self._pool is not None:
            return self._pool.chunks(paths, self.max_records)
        return normalized_chunks(paths, self.max_records, depth=self.prefetch)

    def _check_abort(self) -> None:
        if self.abort is not None and self.abort.is_set():
            raise Aborted("loading stopped")

    @staticmethod
    def _fail(path: str, exc: BaseException, on_error: Any) -> None:
        if on_error is None:
            raise exc
        on_error(path, exc)

    def hold(self) -> contextlib.ExitStack:
        """Keep the targets open across several batches (one pass, one command)."""
        stack = contextlib.ExitStack()
        for target in self.targets:
            stack.enter_context(target.hold())
        return stack

    def load_normalized(self, norm: Normalized) -> LoadStats:
        """Chunk(s) into every target, each in its own transaction (retried when transient).

        Counted as loaded when some target loaded it (each target has its own ledger).
        """
        return self._write(norm)[0]

    def _write(self, norm: Normalized) -> tuple[LoadStats, list[Any]]:
        """``load_normalized``, and the rejects of the records a target refused (one chunk:
        ``Ingest.isolate``), each target's, its name in the reason."""
        results = [ingest.write(norm) for ingest in self.ingests]
        isolated = [rej for written in results for rej in written.isolated]
        for changed, written in zip(self._changed, results, strict=True):
            for table, rows in written.tables.items():
                changed[table] = changed.get(table, 0) + rows
        for target, written in zip(self.targets, results, strict=True):
            if written.isolated:
                log.warning(
                    "provwh: %s refused %s of %s (%s): set aside as rejects, the rest loaded",
                    target.name,
                    plural(len(written.isolated), "record"),
                    norm.chunk.source,
                    ", ".join(f"line {r.lineno}" for r in written.isolated[:10]),
                )
        best = max(results, key=lambda r: (len(r.loaded), r.rows))
        return _stats(norm, best, len({r.lineno for r in isolated})), isolated

    def refresh_statistics(self) -> list[tuple[str, list[str]]]:
        """At the end of a pass: ANALYZE the tables this loader changed enough (PostgreSQL).

        A consumer's small passes add up until a table is due (``pg.analyze_due``), so they
        do not pay for it each time. A failure is logged and left for the next pass.
        Returns ``(target name, tables analyzed)`` for the targets that analyzed some.
        """
        done = []
        for target, changed in zip(self.targets, self._changed, strict=True):
            tables = {t: n for t, n in changed.items() if t in ANALYZED_TABLES}
            if not tables:
                continue
            try:
                with target.transaction() as tx:
                    analyzed = tx.analyze(tables)
            except Exception as exc:
                if target.is_transient(exc):
                    target.reset()
                log.warning(
                    "provwh: %s: statistics not refreshed (%s)", target.name, first_line(exc)
                )
                continue
            for table in analyzed:
                changed.pop(table, None)
            if analyzed:
                log.info("provwh: %s: analyzed %s", target.name, ", ".join(analyzed))
                done.append((target.name, analyzed))
        return done

    def _retry(self, target: Target, work: Work) -> Any:
        """``work(tx, started)`` in a transaction of ``target``, retried when transient."""
        delay = self.retry.initial
        deadline = None if self.retry.timeout is None else time.monotonic() + self.retry.timeout
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                with target.transaction() as tx:
                    result = work(tx, started)
                self.waiting = None
                return result
            except Exception as exc:
                if self.abort is not None and self.abort.is_set():
                    # stopping: a cancelled statement, or an error the next start meets again
                    raise Aborted(f"stopped while writing to {target.name}") from exc
                if not target.is_transient(exc) or (
                    attempt >= CONFLICT_RETRIES and target.is_data_error(exc)
                ):  # a unique violation: a race with another writer, or the data itself
                    self.waiting = None  # it answered
                    raise
                reason = first_line(exc) or type(exc).__name__
                if target.is_conflict(exc) and attempt <= CONFLICT_RETRIES:
                    # another loader's transaction: this one, rolled back, is retried now on
                    # the same connection (nothing is wrong with it)
                    log.info("provwh: %s: met another writer (%s); retrying", target.name, reason)
                    time.sleep(random.uniform(0.0, 0.05 * attempt))
                    continue
                target.reset()
                self.waiting = (target.name, exc)
                if deadline is not None and time.monotonic() >= deadline:
                    raise LoadError(
                        f"{target.name} unavailable for {self.retry.timeout:g} s "
                        f"({type(exc).__name__}: {reason})"
                    ) from exc
                log.warning(
                    "provwh: %s unavailable (%s), retry %d in %.1f s",
                    target.name,
                    reason,
                    attempt,
                    delay,
                )
                if self.abort is not None:
                    if self.abort.wait(delay):
                        raise Aborted(f"stopped while waiting for {target.name}") from exc
                else:
                    time.sleep(delay)
                delay = min(delay * 2, self.retry.maximum) * random.uniform(0.8, 1.0)

    def interrupt(self) -> None:
        """Stop now: ``abort`` set (it must be given), and every target's statement in progress
        cancelled, its transaction rolled back."""
        self.abort.set()
        for target in self.targets:
            target.interrupt()

    def derive_lineage(self) -> int:
        """Derive the data edges of the tasks loaded since the last call (every target); the
        edges table's statistics are refreshed when due, as after a load pass."""
        pending = 0
        for ingest, changed in zip(self.ingests, self._changed, strict=True):
            derived = ingest.derive()
            if derived:  # their data edges changed: as many rows, give or take
                changed["task_edges"] = changed.get("task_edges", 0) + derived
            pending = max(pending, derived)
        if pending:
            self.refresh_statistics()
        return pending

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for target in self.targets:
            target.close()


def _size(paths: list) -> int:
    total = 0
    for path in paths:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass  # reported when it is read
    return total


def _reject_line(source: str, rej: Any) -> bytes:
    import orjson

    return (
        orjson.dumps({"source": source, "lineno": rej.lineno, "reason": rej.reason, "raw": rej.raw})
        + b"\n"
    )
