"""Ingest: the one way records enter the warehouse.

Every writer goes through ``Ingest``: the loader (batch files: ``provwh load``, the consumers),
``DBAPI.insert_or_update_*`` (records from Python) and DuckDB over batch files (``query.files``).
The recipe is the same for all of them:

1. normalize: records become row sets (``normalize``; ahead in a thread, ``pipeline``, or in
   worker processes, ``workers``);
2. write, in one transaction (beside other loaders': no lock), leave out the chunks whose
   hash is in the ledger, insert the new tasks / workflows / objects / agents, merge those
   already stored with their stored version (rebuilding their child rows), write child rows,
   edges, lineage marks, rejects, and one ledger row per chunk. A chunk thus loads exactly
   once, even when retried after a crash or a lost connection;
3. derive: the data edges of the tasks marked since the last derive (``lineage``), per pass
   rather than per chunk.

How a transaction is run is the caller's: once (``in_transaction``), or retried while the
database is unavailable (the loader's ``Loader._retry``).

A chunk the database refuses for its values (a data error: a value too long for an index of
the DBA's, a number out of range) is written again without the records it refuses, which
become rejects with the database's reason (``Ingest.isolate``): one record never stops its
batch, or those behind it.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

from provwh.core.model import merge_records
from provwh.core.serialize import dumps
from provwh.core.text import first_line
from provwh.warehouse import ids, lineage
from provwh.warehouse.engines import EngineTx, Target, TransactionFactory
from provwh.warehouse.normalize import (
    MAX_REJECT_RAW,
    Normalized,
    Reject,
    build_rows,
    combine,
    declared_edges,
    normalize_chunk,
    record_from_row,
    record_raw,
    workflows_of,
)
from provwh.warehouse.pipeline import normalized_chunks
from provwh.warehouse.reader import DEFAULT_MAX_RECORDS, Chunk, read_chunks
from provwh.warehouse.schema import TASK_CHILD_TABLES
from provwh.warehouse.times import to_micros

T = TypeVar("T")
Work = Callable[[EngineTx, float], T]  # work(tx, started): runs inside one transaction
Runner = Callable[[Work], Any]  # runs work in a transaction of one database; returns its result

_ENTITIES = (  # (kind, table, attribute of Normalized holding its records)
    (ids.TASK, "tasks", "tasks"),
    (ids.WORKFLOW, "workflows", "workflows"),
    (ids.OBJECT, "data_objects", "objects"),
    (ids.AGENT, "agents", "agents"),
)
_STORES = {kind: attr for kind, _table, attr in _ENTITIES}


def in_transaction(transaction: TransactionFactory) -> Runner:
    """Run work once, in a transaction that ``transaction()`` opens (committed on success)."""

    def run(work: Work) -> Any:
        started = time.perf_counter()
        with transaction() as tx:
            return work(tx, started)

    return run


class _RolledBack(Exception):
    """Ends a probe's transaction: what it wrote is rolled back."""


class Ingest:
    """Writes normalized chunks into one database, and derives their data edges.

    ``run`` runs a piece of work in a transaction of that database (see ``in_transaction``).
    With ``target`` (the database), a chunk it refuses for its values is written without the
    records it refuses (``isolate``).
    """

    def __init__(self, run: Runner, target: Target | None = None) -> None:
        self.run = run
        self.target = target

    def write(self, norm: Normalized) -> Written:
        """Chunk(s) in one transaction (see ``write``).

        A data error (``Target.is_data_error``) writing one chunk sets the records it comes
        from aside (``isolate``); several chunks combined raise it (the caller writes them
        one by one).
        """
        try:
            return self.run(lambda tx, started: write(tx, norm, started))
        except Exception as exc:
            if self.target is None or norm.parts or not self.target.is_data_error(exc):
                raise
            return self.isolate(norm, exc)

    def isolate(self, norm: Normalized, exc: Exception) -> Written:
        """Write one chunk that failed with the data error ``exc``, less the records at fault.

        The records are probed in transactions rolled back at once: each half of the chunk,
        then each half of a half that fails, down to single records (about 2 log2(n) probes
        per refused record). Those that fail alone become rejects with the database's reason,
        and the rest is written as any chunk, in one transaction with the chunk's ledger row
        (so it loads exactly once). ``exc`` is raised again when no record fails alone, or
        when every record of a chunk of several does: then the database, not a record, is at
        fault, and the batch is handled as a batch that cannot be loaded.
        """
        full = normalize_chunk(norm.chunk) if norm.encoded is not None else norm
        keys = [(kind, key) for kind, _table, attr in _ENTITIES for key in getattr(full, attr)]
        refused: dict[tuple[str, Any], BaseException] = {}

        def search(part: list, error: BaseException) -> None:
            if len(part) == 1:
                refused[part[0]] = error
                return
            mid = len(part) // 2
            for half in (part[:mid], part[mid:]):
                found = self._probe(_subset(full, half))
                if found is not None:
                    search(half, found)

        if keys:
            search(keys, exc)
        if not refused or (len(refused) == len(keys) > 1):
            raise exc
        name = self.target.name
        rejects = []
        for (kind, key), error in refused.items():
            lineno = full.first_line.get(key, 0)
            record = getattr(full, _STORES[kind])[key]
            reason = f"{name} refused the record: {type(error).__name__}: {first_line(error)}"
            raw = record_raw(record, full.chunk, lineno, whole=True)  # the file keeps it all
            rejects.append(Reject(lineno, reason, raw))
        clean = _subset(full, [k for k in keys if k not in refused], [*full.rejects, *rejects])
        written = self.run(lambda tx, started: write(tx, clean, started))
        return written._replace(loaded=[norm] if written.loaded else [], isolated=rejects)

    def _probe(self, norm: Normalized) -> BaseException | None:
        """The data error writing ``norm`` meets, or None; nothing it writes is kept."""

        def work(tx: EngineTx, started: float) -> None:
            write(tx, norm, started)
            raise _RolledBack

        try:
            self.run(work)
        except _RolledBack:
            return None
        except Exception as exc:
            if self.target is not None and self.target.is_data_error(exc):
                return exc
            raise
        return None

    def derive(self) -> int:
        """Data edges of the tasks written since the last call; how many tasks were pending."""
        return self.run(lambda tx, _started: derive(tx))

    def known(self, hashes: list[str]) -> dict[str, int]:
        """The chunk hashes among ``hashes`` this database's ledger holds (loaded already),
        with the lines each had rejected."""
        if not hashes:
            return {}
        rows = self.run(lambda tx, _started: tx.fetch("batches", hashes))
        return {r["batch_hash"]: int(r["rejects"]) for r in rows}

    def records(self, records: list[dict[str, Any]], source: str) -> int:
        """Records made in Python (not read from a file), written, then their data edges
        derived (a transaction each: a derivation runs on a snapshot of its own).

        Raises ValueError, writing nothing, when a record cannot be stored. Returns the rows.
        """
        norm = normalize_records(records, source)
        if norm.rejects:
            raise ValueError(f"cannot store the record: {norm.rejects[0].reason}")
        rows = self.run(lambda tx, started: write(tx, norm, started).rows)
        self.derive()
        return rows

    def files(self, paths: Iterable[str], max_records: int = DEFAULT_MAX_RECORDS) -> None:
        """Every chunk of the batch files, each in its own transaction, then the data edges.

        The first file that cannot be read raises. (The loader has its own loop over files:
        grouped transactions, worker processes, rejects files, errors per file.)
        """
        for item in normalized_chunks(list(paths), max_records, depth=0):
            if item.error is not None:
                raise item.error
            if item.norm is not None:
                self.write(item.norm)
        self.derive()


def loaded_before(
    ingests: list[Ingest],
    paths: Iterable[Any],
    max_records: int = DEFAULT_MAX_RECORDS,
    unless_rejected: bool = False,
) -> dict[str, tuple[int, int, int]]:
    """The files every database loaded already, whole: path -> (chunks, records, rejects).

    Their chunks are read and hashed (cheap: no JSON is parsed) and looked up in each ledger,
    so a file loaded again is skipped without being normalized. A file with a chunk some
    database lacks, or that cannot be read, is left to the load itself (which skips the
    chunks already loaded, in the write transaction, and reports the errors); so is one with
    rejected lines when ``unless_rejected`` (its rejects file is written again).
    """
    chunks: dict[str, list[tuple[str, int]]] = {}
    for path in map(os.fspath, paths):
        try:
            chunks[path] = [(c.hash, len(c.lines)) for c in read_chunks(path, max_records)]
        except Exception:  # unreadable: the load says why
            continue
    hashes = sorted({h for found in chunks.values() for h, _ in found})
    if not hashes:
        return {}
    rejects: dict[str, int] | None = None
    for ingest in ingests:
        known = ingest.known(hashes)
        rejects = known if rejects is None else {h: n for h, n in rejects.items() if h in known}
        if not rejects:
            return {}
    out = {}
    for path, found in chunks.items():
        if found and all(h in rejects for h, _ in found):
            rejected = sum(rejects[h] for h, _ in found)
            if not (rejected and unless_rejected):
                out[path] = (len(found), sum(n for _, n in found), rejected)
    return out


def normalize_records(records: list[dict[str, Any]], source: str) -> Normalized:
    """Records as one chunk, normalized as if read from a batch file named ``source``."""
    lines = [(i + 1, dumps(r)) for i, r in enumerate(records)]
    digest = hashlib.sha256(uuid.uuid4().bytes + b"".join(raw for _, raw in lines))
    return normalize_chunk(Chunk(source, 0, digest.hexdigest(), lines))


# --- one transaction ---------------------------------------------------------------------------


class Written(NamedTuple):
    """What one transaction wrote: rows, the chunks loaded (those not in the ledger yet), per
    kind the records it created and those it merged into stored ones, the rows written per
    table (the loader's cue to refresh the planner's statistics), and the rejects of records
    the database refused (also in the chunk's ledger row and the rejects table)."""

    rows: int
    loaded: list[Normalized]
    created: dict[str, int]
    merged: dict[str, int]
    tables: dict[str, int] = {}  # never mutated
    isolated: list[Reject] = []  # records the database refused, set aside (``Ingest.isolate``)


def write(tx: EngineTx, norm: Normalized, started: float) -> Written:
    """Write ``norm`` (one chunk, or several combined) in the open transaction ``tx``.

    Chunks already in the ledger are left out. Loaders write beside each other (no lock):
    two transactions inserting one key meet at its unique index, where the second waits for
    the first and, if it committed, fails with a unique violation; the loader retries it, and
    the retry finds the stored record and merges into it (``_Write._merge``). The ledger's key
    makes a chunk loaded twice at once fail the same way, and the retry skips it.
    """
    members = norm.members()
    known = tx.ledger_known([m.chunk.hash for m in members])
    if known:
        members = [m for m in members if m.chunk.hash not in known]
        if not members:
            return Written(0, [], {}, {})
        norm = combine(members)
    if norm.encoded is not None and tx.stored_keys("tasks", list(norm.tasks)):
        # merging needs the task records, which a worker does not send: parse them here
        norm = combine([normalize_chunk(m.chunk) for m in members])
    written = norm.members()
    rows = _Write(tx, norm)
    for kind, table, attr in _ENTITIES:
        if norm.encoded is not None and kind == ids.TASK:
            rows.encoded_tasks()
        else:
            rows.records(kind, table, getattr(norm, attr))
    rows.task_rows()
    if rows.tables.get("tasks") or rows.tables.get("workflows"):
        tx.announce(rows.workflow_ids)
    _write_ledger(tx, written, started)
    return Written(rows.rows, members, rows.created, rows.merged, rows.tables)


def derive(tx: EngineTx) -> int:
    """Add the data edges of the pending tasks in ``tx``; returns how many were pending."""
    tx.lock()
    return lineage.derive(tx)


class _Write:
    """The rows of one transaction: new records inserted, stored ones merged, then children."""

    def __init__(self, tx: EngineTx, norm: Normalized) -> None:
        self.tx, self.norm = tx, norm
        self.children = {name: getattr(norm.rows, name) for name in TASK_CHILD_TABLES}
        self.edges = set(norm.rows.task_edges)
        self.stale_edges: set[tuple[str, str, str]] = set()
        self.new_tasks: set = set()
        self.merged_tasks: list = []
        self.rows = 0
        self.tables: dict[str, int] = {}  # table -> rows written
        self.created: dict[str, int] = {}  # kind -> records inserted
        self.merged: dict[str, int] = {}  # kind -> records merged into stored ones
        # the workflows of the tasks and workflows written (``announce``); merged ones add theirs
        self.workflow_ids: set[str] = workflows_of(norm.rows) | norm.task_workflows

    def _count(self, table: str, rows: int) -> None:
        self.rows += rows
        if rows:
            self.tables[table] = self.tables.get(table, 0) + rows

    def encoded_tasks(self) -> None:
        """Tasks a worker encoded, none of them stored yet (``write_batch`` checked)."""
        self.new_tasks = set(self.norm.tasks)
        self.created[ids.TASK] = len(self.new_tasks)
        entry = self.norm.encoded.get("tasks")
        if entry is None:  # a chunk of workflows or objects only: no task rows to write
            return
        count, payload = entry
        self.tx.insert_encoded("tasks", payload)
        self._count("tasks", count)

    def records(self, kind: str, table: str, records: dict) -> None:
        """Insert the new records of a kind; merge those already stored with theirs."""
        new_rows = getattr(self.norm.rows, table)
        if not new_rows:
            return
        inserted = self.tx.insert_new(table, new_rows)
        conflicts = [key for key in records if key not in inserted]
        self._count(table, len(new_rows))
        self.created[kind], self.merged[kind] = len(inserted), len(conflicts)
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
        self.workflow_ids |= workflows_of(merged_rows)
        if kind != ids.TASK:
            return
        gone = set(conflicts)
        for name in TASK_CHILD_TABLES:  # a merged task's rows are rebuilt whole
            self.tx.delete_keys(name, "task_id", conflicts)
            kept = [r for r in self.children[name] if r[0] not in gone]
            self.children[name] = kept + getattr(merged_rows, name)
        # their data edges, both ways, are derived again (lineage_pending; sql/data_edges.sql)

    def task_rows(self) -> None:
        """Key/value, telemetry and tag rows, declared edges, and the lineage marks."""
        tx = self.tx
        encoded = self.norm.encoded or {}
        for name in TASK_CHILD_TABLES:
            if name in encoded:
                count, payload = encoded[name]
                tx.insert_encoded(name, payload)
                self._count(name, count)
            else:
                tx.insert(name, self.children[name])
                self._count(name, len(self.children[name]))
        stale = self.stale_edges - self.edges
        if stale:
            tx.delete_edges(sorted(stale))
        if self.edges:
            tx.insert_ignore("task_edges", sorted(self.edges))
            self._count("task_edges", len(self.edges))
        if self.norm.tasks:  # new tasks cannot be pending yet; merged ones may be
            tx.insert("lineage_pending", [(t,) for t in self.norm.tasks if t in self.new_tasks])
            tx.insert_ignore("lineage_pending", [(t,) for t in self.merged_tasks])


def _write_ledger(tx: EngineTx, members: list[Normalized], started: float) -> None:
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


def _subset(
    full: Normalized, keys: list[tuple[str, Any]], rejects: list[Reject] | None = None
) -> Normalized:
    """The chunk ``full`` with only the records ``keys`` ((kind, key) pairs), rows rebuilt;
    its rejects are ``rejects`` (none for a probe)."""
    wanted = set(keys)
    out = Normalized(full.chunk, records=full.records, rejects=list(rejects or ()))
    out.first_line = full.first_line
    for kind, _table, attr in _ENTITIES:
        store = {k: r for k, r in getattr(full, attr).items() if (kind, k) in wanted}
        setattr(out, attr, store)
        for name, rows in vars(build_rows(kind, list(store.values()))).items():
            getattr(out.rows, name).extend(rows)
    return out


def _key(kind: str, row: dict) -> Any:
    if kind == ids.TASK:
        return row["task_id"]
    if kind == ids.WORKFLOW:
        return row["workflow_id"]
    if kind == ids.AGENT:
        return row["agent_id"]
    return (row["object_id"], row["version"])


def _reject_rows(norm: Normalized, now: int) -> list[tuple]:
    out, seen = [], set()
    for rej in norm.rejects:
        lineno = rej.lineno
        while lineno in seen:  # two records of one line failed: keep both, apart
            lineno = -abs(lineno) - 1
        seen.add(lineno)
        raw = rej.raw[:MAX_REJECT_RAW]
        out.append((norm.chunk.hash, lineno, norm.chunk.source, rej.reason, raw, now))
    return out
