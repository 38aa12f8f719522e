"""The loader: batch files -> transactions in each database, every batch exactly once.

A batch (a chunk of a file, see ``reader``) is always written in one transaction; for DuckDB
consecutive batches share one (``DUCKDB_GROUP_RECORDS``). In each transaction: take the loader
lock, leave out the batches whose hash is in the ledger, insert the new tasks / workflows /
objects, merge those already stored with their stored version (rebuilding their child rows),
write child rows, edges, lineage marks, rejects, and one ledger row per batch. A batch thus
loads exactly once even when retried after a crash or a lost connection. Transient errors
(database down, file locked) are retried with exponential backoff; nothing is lost while
waiting, since the batch file stays where it is until the commit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

from provwh.core.model import merge_records
from provwh.transport.batches import write_atomic
from provwh.warehouse import ids, lineage
from provwh.warehouse.errors import Aborted, LoadError, WarehouseError
from provwh.warehouse.normalize import (
    Normalized,
    build_rows,
    combine,
    declared_edges,
    normalize_chunk,
    record_from_row,
)
from provwh.warehouse.pipeline import normalized_chunks
from provwh.warehouse.reader import DEFAULT_MAX_RECORDS
from provwh.warehouse.schema import TASK_CHILD_TABLES
from provwh.warehouse.times import to_micros
from provwh.warehouse.workers import WorkerPool, default_workers

log = logging.getLogger("provwh.warehouse")

_ENTITIES = (  # (kind, table, attribute of Normalized holding its records)
    (ids.TASK, "tasks", "tasks"),
    (ids.WORKFLOW, "workflows", "workflows"),
    (ids.OBJECT, "data_objects", "objects"),
)


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
    rows: int = 0
    rejects: int = 0
    seconds: float = 0.0

    def add(self, other: LoadStats) -> LoadStats:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def summary(self) -> str:
        """One line: ``loaded 3 batches: 1,234 rows (100 tasks, 1 workflow), 0 rejects in 1 s``."""
        skipped = f" ({self.skipped} already loaded)" if self.skipped else ""
        parts = [_plural(self.tasks, "task"), _plural(self.workflows, "workflow")]
        if self.objects:
            parts.append(_plural(self.objects, "object"))
        return (
            f"loaded {_plural(self.batches, 'batch')}{skipped}: {_plural(self.rows, 'row')} "
            f"({', '.join(parts)}), {_plural(self.rejects, 'reject')} in {self.seconds:.2f} s"
        )


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n:,} {word}es" if word.endswith("ch") else f"{n:,} {word}s"


@dataclass
class RetryPolicy:
    """Exponential backoff for transient errors; ``timeout`` None retries forever."""

    initial: float = 0.2
    maximum: float = 10.0
    timeout: float | None = None


# --- one batch, one transaction ----------------------------------------------------------------


def write_batch(tx: Any, norm: Normalized, started: float) -> tuple[int, list[Normalized]]:
    """Write ``norm`` (one chunk, or several combined) in the open transaction ``tx``.

    Returns the rows written and the chunks loaded; chunks already in the ledger are left out.
    """
    tx.lock()
    members = norm.members()
    known = tx.ledger_known([m.chunk.hash for m in members])
    if known:
        members = [m for m in members if m.chunk.hash not in known]
        if not members:
            return 0, []
        norm = combine(members)
    if norm.encoded is not None and tx.stored_keys("tasks", list(norm.tasks)):
        # merging needs the task records, which a worker does not send: parse them here
        norm = combine([normalize_chunk(m.chunk) for m in members])
    written = norm.members()
    write = _Write(tx, norm)
    for kind, table, attr in _ENTITIES:
        if norm.encoded is not None and kind == ids.TASK:
            write.encoded_tasks()
        else:
            write.records(kind, table, getattr(norm, attr))
    write.task_rows()
    _write_ledger(tx, written, started)
    return write.rows, members


class _Write:
    """The rows of one transaction: new records inserted, stored ones merged, then children."""

    def __init__(self, tx: Any, norm: Normalized) -> None:
        self.tx, self.norm = tx, norm
        self.children = {name: getattr(norm.rows, name) for name in TASK_CHILD_TABLES}
        self.edges = set(norm.rows.task_edges)
        self.stale_edges: set[tuple[str, str, str]] = set()
        self.new_tasks: set = set()
        self.merged_tasks: list = []
        self.rows = 0

    def encoded_tasks(self) -> None:
        """Tasks a worker encoded, none of them stored yet (``write_batch`` checked)."""
        self.new_tasks = set(self.norm.tasks)
        entry = self.norm.encoded.get("tasks")
        if entry is None:  # a chunk of workflows or objects only: no task rows to write
            return
        count, payload = entry
        self.tx.insert_encoded("tasks", payload)
        self.rows += count

    def records(self, kind: str, table: str, records: dict) -> None:
        """Insert the new records of a kind; merge those already stored with theirs."""
        new_rows = getattr(self.norm.rows, table)
        if not new_rows:
            return
        inserted = self.tx.insert_new(table, new_rows)
        conflicts = [key for key in records if key not in inserted]
        self.rows += len(new_rows)
        if kind == ids.TASK:
            self.new_tasks, self.merged_tasks = inserted, conflicts
        if conflicts:
            self._merge(kind, table, records, conflicts)

    def _merge(self, kind: str, table: str, records: dict, conflicts: list) -> None:
        merged = []
        for row in self.tx.fetch(table, conflicts):
            old = record_from_row(kind, row)
            old_declared = declared_edges(old) if kind == ids.TASK else set()
            merged.append(merge_records(old, records[_key(kind, row)]))  # merges into old
            if kind == ids.TASK:
                new_declared = declared_edges(merged[-1])
                self.stale_edges |= old_declared - new_declared
                self.edges |= new_declared
        merged_rows = build_rows(kind, merged)
        self.tx.replace(table, getattr(merged_rows, table))
        if kind != ids.TASK:
            return
        gone = set(conflicts)
        for name in TASK_CHILD_TABLES:  # a merged task's rows are rebuilt whole
            self.tx.delete_keys(name, "task_id", conflicts)
            kept = [r for r in self.children[name] if r[0] not in gone]
            self.children[name] = kept + getattr(merged_rows, name)
        for column in ("src_task_id", "dst_task_id"):  # derived again (lineage_pending)
            self.tx.delete_keys("task_edges", column, conflicts, "kind = 'data'")

    def task_rows(self) -> None:
        """Key/value, telemetry and tag rows, declared edges, and the lineage marks."""
        tx = self.tx
        encoded = self.norm.encoded or {}
        for name in TASK_CHILD_TABLES:
            if name in encoded:
                count, payload = encoded[name]
                tx.insert_encoded(name, payload)
                self.rows += count
            else:
                tx.insert(name, self.children[name])
                self.rows += len(self.children[name])
        stale = self.stale_edges - self.edges
        if stale:
            tx.delete_edges(sorted(stale))
        if self.edges:
            tx.insert_ignore("task_edges", sorted(self.edges))
            self.rows += len(self.edges)
        if self.norm.tasks:  # new tasks cannot be pending yet; merged ones may be
            tx.insert("lineage_pending", [(t,) for t in self.norm.tasks if t in self.new_tasks])
            tx.insert_ignore("lineage_pending", [(t,) for t in self.merged_tasks])


def _write_ledger(tx: Any, members: list[Normalized], started: float) -> None:
    """One ledger row per chunk (and its rejects): the chunk is never loaded again."""
    now = to_micros(time.time())
    ledger, reject_rows = [], []
    seconds = time.perf_counter() - started
    for m in members:
        rejected = _reject_rows(m, now)
        reject_rows += rejected
        chunk = m.chunk
        ledger.append(
            (chunk.hash, chunk.source, chunk.index, m.records, len(m.tasks), len(m.workflows),
             len(m.objects), len(rejected), m.row_count(), now, seconds)
        )  # fmt: skip
    tx.insert("rejects", reject_rows)
    tx.insert("batches", ledger)


def _derive(tx: Any) -> int:
    tx.lock()
    return lineage.derive(tx)


def _key(kind: str, row: dict) -> Any:
    if kind == ids.TASK:
        return row["task_id"]
    if kind == ids.WORKFLOW:
        return row["workflow_id"]
    return (row["object_id"], row["version"])


def _reject_rows(norm: Normalized, now: int) -> list[tuple]:
    out, seen = [], set()
    for rej in norm.rejects:
        lineno = rej.lineno
        while lineno in seen:  # two records of one line failed: keep both, apart
            lineno = -abs(lineno) - 1
        seen.add(lineno)
        out.append((norm.chunk.hash, lineno, norm.chunk.source, rej.reason, rej.raw, now))
    return out


def _stats(norm: Normalized, written: int, loaded: list[Normalized]) -> LoadStats:
    done = {id(m) for m in loaded}
    s = LoadStats(rows=written)
    for m in norm.members():
        s.records += m.records
        s.rejects += len(m.rejects)
        if id(m) in done:
            s.batches += 1
            s.tasks += len(m.tasks)
            s.workflows += len(m.workflows)
            s.objects += len(m.objects)
        else:
            s.skipped += 1
    return s


# --- files -------------------------------------------------------------------------------------


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
        targets: list[Any],
        retry: RetryPolicy | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
        abort: threading.Event | None = None,
        group_records: int | None = None,
        workers: int | None = None,
    ) -> None:
        if not targets:
            raise LoadError("no database to load into: enable DuckDB or PostgreSQL")
        self.targets = targets
        # normalize ahead in a thread only where it pays: see pipeline.py
        self.prefetch = 2 if any(getattr(t, "prefetch", False) for t in targets) else 0
        self.retry = retry or RetryPolicy()
        self.max_records = max_records
        if group_records is None:  # see DUCKDB_GROUP_RECORDS and pipeline.py
            group_records = 1 if self.prefetch else DUCKDB_GROUP_RECORDS
        self.group_records = group_records
        self.abort = abort
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
        """
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
                done = [(parts, self.load_normalized(combine([n for _, n in parts])))]
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
                        done.append(([(path, norm)], self.load_normalized(norm)))
                    except (WarehouseError, OSError):
                        raise
                    except Exception as exc2:
                        fail(path, exc2)
            for members, stats in done:
                total.add(stats)
                for path, norm in members:
                    if path in files:
                        files[path].pending -= 1
                    if on_chunk is not None:
                        on_chunk(norm.chunk, total)

        items = self._items(list(paths))
        records = 0
        with self.hold(), contextlib.closing(items):
            for item in items:
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
                    state.rejected.extend(_reject_line(norm.chunk.source, r) for r in norm.rejects)
                    group.append((path, norm))
                    records += norm.records
                    if records < self.group_records:
                        continue
                    flush()
                    records = 0
                finish_ready()
            flush()
            finish_ready()
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
        results = [self._with_retry(target, norm) for target in self.targets]
        written, loaded = max(results, key=lambda r: (len(r[1]), r[0]))
        return _stats(norm, written, loaded)

    def _with_retry(self, target: Any, norm: Normalized) -> int | None:
        return self._retry(target, lambda tx, t0: write_batch(tx, norm, t0))

    def _retry(self, target: Any, work: Any) -> Any:
        """``work(tx, started)`` in a transaction of ``target``, retried when transient."""
        delay = self.retry.initial
        deadline = None if self.retry.timeout is None else time.monotonic() + self.retry.timeout
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                with target.transaction() as tx:
                    return work(tx, started)
            except Exception as exc:
                if not target.is_transient(exc):
                    raise
                target.reset()
                if deadline is not None and time.monotonic() >= deadline:
                    raise LoadError(
                        f"{target.name} unavailable for {self.retry.timeout:g} s "
                        f"({type(exc).__name__}: {_first_line(exc)})"
                    ) from exc
                log.warning(
                    "provwh: %s unavailable (%s), retry %d in %.1f s",
                    target.name,
                    _first_line(exc),
                    attempt,
                    delay,
                )
                if self.abort is not None:
                    if self.abort.wait(delay):
                        raise Aborted(f"stopped while waiting for {target.name}") from exc
                else:
                    time.sleep(delay)
                delay = min(delay * 2, self.retry.maximum) * random.uniform(0.8, 1.0)

    def derive_lineage(self) -> int:
        """Derive the data edges of the tasks loaded since the last call (every target)."""
        pending = 0
        for target in self.targets:
            pending = max(pending, self._retry(target, lambda tx, _t0: _derive(tx)))
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _reject_line(source: str, rej: Any) -> bytes:
    import orjson

    return (
        orjson.dumps({"source": source, "lineno": rej.lineno, "reason": rej.reason, "raw": rej.raw})
        + b"\n"
    )
