"""Archive the normalized tables as hive-partitioned Parquet files, optionally deleting them.

Layout: ``OUT/<table>/workflow_id=<id>/part-<stamp>-<n>.parquet`` (every table, the child
tables carrying their task's workflow id as an extra column). Read back with DuckDB::

    read_parquet('OUT/tasks/*/*.parquet', hive_partitioning=true, hive_types_autocast=false)

(``hive_types_autocast=false`` keeps ids such as ``123`` text). Files are written to a staging
folder, read back and counted, and only then moved into place; ``delete`` removes exactly the
exported rows from PostgreSQL in one transaction, refusing (and keeping everything) when a
count differs, e.g. because a loader changed the rows meanwhile.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from provwh.core.text import plural
from provwh.exports.select import Selection, in_list, select
from provwh.exports.source import ExportError, Source

# (table, how its rows are chosen: by task id, by edge end, by workflow id, or objects)
TABLES: tuple[tuple[str, str], ...] = (
    ("workflows", "workflow"),
    ("tasks", "task"),
    ("task_values", "task"),
    ("task_telemetry", "task"),
    ("task_tags", "task"),
    ("task_edges", "edge"),
    ("data_objects", "object"),
)
PARTITION = "workflow_id"
CHUNK_ROWS = 10_000  # rows fetched, converted and written at a time (a file each)
_EXISTING = ("error", "overwrite", "append")


@dataclass
class ArchiveResult:
    out: str
    label: str
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    deleted: dict[str, int] | None = None

    def summary(self) -> str:
        total = sum(self.rows.values())
        text = (
            f"exported {self.label}: {plural(total, 'row')} "
            f"({plural(self.rows.get('tasks', 0), 'task')}, "
            f"{plural(self.rows.get('workflows', 0), 'workflow')}) "
            f"in {plural(self.files, 'file')} to {self.out}"
        )
        if self.deleted is not None:
            text += f"; deleted {sum(self.deleted.values())} rows from PostgreSQL"
        return text


def _where(src: Source, how: str) -> tuple[str, int]:
    """SQL condition for a table's rows and how many list parameters it takes."""
    if how == "workflow":
        return in_list(src, "workflow_id"), 1
    if how == "task":
        return in_list(src, "task_id"), 1
    if how == "edge":
        return f"({in_list(src, 'src_task_id')} OR {in_list(src, 'dst_task_id')})", 2
    return f"({in_list(src, 'task_id')} OR {in_list(src, 'workflow_id')})", 2


def _params(sel: Selection, how: str) -> list[Any]:
    if how == "workflow":
        return [sel.workflows]
    if how == "task":
        return [sel.task_ids]
    if how == "edge":
        return [sel.task_ids, sel.task_ids]
    return [sel.task_ids, sel.workflows]


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {
        "text": pa.string(),
        "json": pa.string(),
        "time": pa.timestamp("us"),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "bytes": pa.binary(),
    }[kind]


def _chunks(src: Source, sel: Selection, table: str, how: str) -> Iterator[Any]:
    """The selected rows of ``table`` as Arrow tables of ``CHUNK_ROWS`` rows at most (JSON as
    text, plus workflow_id): an archive's memory does not grow with what it archives."""
    import pyarrow as pa

    from provwh.warehouse import ddl

    names, kinds = ddl.columns(table), ddl.column_kinds(table)
    exprs = [
        src.json_text(ddl.quote(n)) if k == "json" else ddl.quote(n)
        for n, k in zip(names, kinds, strict=True)
    ]
    where, _ = _where(src, how)
    sql = f"SELECT {', '.join(exprs)} FROM {table} WHERE {where}"
    for rows in src.iter_chunks(sql, _params(sel, how), CHUNK_ROWS):
        cols = list(zip(*rows, strict=True))
        arrays = [pa.array(list(c), type=_arrow_type(k)) for c, k in zip(cols, kinds, strict=True)]
        fields = list(names)
        if PARTITION not in names:
            key = names.index("src_task_id" if how == "edge" else "task_id")
            wf = [sel.tasks.get(r[key]) for r in rows]
            if how == "edge":  # an edge from outside the selection: its destination's workflow
                wf = [
                    w if r[key] in sel.tasks else sel.tasks.get(r[1])
                    for w, r in zip(wf, rows, strict=True)
                ]
            arrays.append(pa.array(wf, type=pa.string()))
            fields.append(PARTITION)
        yield pa.Table.from_arrays(arrays, names=fields)


def _partitions(folder: str) -> list[str]:
    return sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))


def export_parquet(
    src: Source,
    out: str,
    workflow_id: str | None = None,
    campaign_id: str | None = None,
    before: str | None = None,
    existing: str = "error",
    delete: bool = False,
) -> ArchiveResult:
    """Write the selected rows of every table under ``out``; ``delete`` them afterwards.

    ``existing`` says what to do with a partition already under ``out``: ``error``,
    ``overwrite`` (replace it) or ``append`` (add files beside it).
    """
    import duckdb

    if existing not in _EXISTING:
        raise ValueError(f"existing must be one of {_EXISTING}")
    if delete and src.kind != "postgres":
        raise ExportError("--delete archives from PostgreSQL only: pass --postgres URL")
    sel = select(src, workflow_id, campaign_id, before)
    out = os.path.abspath(out)
    stamp = uuid.uuid4().hex[:12]
    staging = os.path.join(out, f".staging-{stamp}")
    result = ArchiveResult(out, sel.label)
    os.makedirs(staging, exist_ok=True)
    written_ids: set[str] = set()
    try:
        with duckdb.connect() as conn:
            for table, how in TABLES:
                result.rows[table] = 0
                for n, arrow in enumerate(_chunks(src, sel, table, how)):
                    result.rows[table] += arrow.num_rows
                    if table == "tasks":
                        written_ids.update(arrow.column("task_id").to_pylist())
                    conn.register("rows_to_write", arrow)
                    conn.execute(
                        f"COPY rows_to_write TO '{_sql_path(os.path.join(staging, table))}'"
                        f" (FORMAT parquet, PARTITION_BY ({PARTITION}), WRITE_PARTITION_COLUMNS"
                        f" true, FILENAME_PATTERN 'part-{stamp}-{n}-{{i}}', OVERWRITE_OR_IGNORE)"
                    )
                    conn.unregister("rows_to_write")
            if src.kind == "postgres":
                src.conn.commit()  # end the read transaction before any delete
            _verify(conn, staging, result.rows, written_ids)
        result.files = _publish(staging, out, existing)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if delete:
        result.deleted = _delete(src, sel, result.rows)
    return result


def _sql_path(path: str) -> str:
    return path.replace("'", "''")


def _verify(conn: Any, staging: str, rows: dict[str, int], task_ids: set[str]) -> None:
    """Read the written files back: each table's row count (and task ids) must match."""
    for table, count in rows.items():
        if not count:
            continue
        glob = _sql_path(os.path.join(staging, table, "*", "*.parquet"))
        read = f"read_parquet('{glob}', hive_partitioning=true, hive_types_autocast=false)"
        n = conn.execute(f"SELECT count(*) FROM {read}").fetchone()[0]
        if n != count:
            raise ExportError(f"{table}: wrote {count} rows but read back {n}")
        if table == "tasks":
            ids = {r[0] for r in conn.execute(f"SELECT task_id FROM {read}").fetchall()}
            if ids != task_ids:
                raise ExportError("tasks: the task ids read back differ from those written")


def _publish(staging: str, out: str, existing: str) -> int:
    """Move the verified partitions from staging into ``out``; returns the files moved."""
    moves = []
    for table in sorted(os.listdir(staging)):
        for part in _partitions(os.path.join(staging, table)):
            target = os.path.join(out, table, part)
            if os.path.exists(target) and existing == "error":
                raise ExportError(
                    f"{target} exists: pass --overwrite to replace it or --append to add to it"
                )
            moves.append((os.path.join(staging, table, part), target))
    files = 0
    for source, target in moves:
        if os.path.exists(target) and existing == "overwrite":
            shutil.rmtree(target)
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(source):
            os.replace(os.path.join(source, name), os.path.join(target, name))
            files += 1
    return files


def _delete(src: Source, sel: Selection, counts: dict[str, int]) -> dict[str, int]:
    """Delete the archived rows in one transaction; roll back if any count differs."""
    deleted: dict[str, int] = {}
    with src.conn.transaction(), src.conn.cursor() as cur:
        # loaders write beside each other: keep them out of these tables until the delete ends
        names = ", ".join([table for table, _how in TABLES] + ["lineage_pending"])
        cur.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
        for table, how in reversed(TABLES):
            where, _ = _where(src, how)
            cur.execute(f"DELETE FROM {table} WHERE {where}", _params(sel, how))
            deleted[table] = cur.rowcount
            if cur.rowcount != counts[table]:
                raise ExportError(
                    f"{table}: {cur.rowcount} rows to delete but {counts[table]} archived (the"
                    " rows changed since the export): nothing deleted, the files are kept"
                )
        cur.execute(f"DELETE FROM lineage_pending WHERE {in_list(src, 'task_id')}", [sel.task_ids])
    return deleted


def attach_sql(out: str) -> list[str]:
    """``CREATE VIEW`` statements naming each archived table after itself, for DuckDB."""
    statements = []
    for table, _ in TABLES:
        folder = os.path.join(os.path.abspath(out), table)
        if os.path.isdir(folder):
            glob = _sql_path(os.path.join(folder, "*", "*.parquet"))
            statements.append(
                f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{glob}',"
                " hive_partitioning=true, hive_types_autocast=false)"
            )
    return statements
