"""Batch files: the unit of durability between capture and the warehouse.

A batch is written under a hidden temporary name, fsynced, then atomically renamed, so a reader
never sees half a batch. Two formats:

- JSONL (default): one record per line, exactly what ``serialize.dumps`` produced.
- Parquet: one row per record. The column ``record`` holds the record's JSON (lossless); the
  columns ``type, task_id, workflow_id, campaign_id, activity_id, status, started_at, ended_at``
  repeat the common fields typed, so DuckDB can filter the files without parsing JSON.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

from provwh.core.serialize import Lines, dumps_lines, loads_line

JSONL, PARQUET = "jsonl", "parquet"
SUFFIXES = {JSONL: ".jsonl", PARQUET: ".parquet"}
_PARQUET_TEXT = ("type", "task_id", "workflow_id", "campaign_id", "activity_id", "status")
_PARQUET_TIME = ("started_at", "ended_at")


class BadLine:
    """A line or row that could not be parsed: where it was and why."""

    __slots__ = ("lineno", "raw", "reason")

    def __init__(self, lineno: int, raw: bytes, reason: str) -> None:
        self.lineno, self.raw, self.reason = lineno, raw, reason

    def __repr__(self) -> str:
        return f"BadLine(lineno={self.lineno}, reason={self.reason!r})"


def format_of(path: str | os.PathLike) -> str:
    name = os.fspath(path)
    if name.endswith(".parquet"):
        return PARQUET
    return JSONL


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see all of it or nothing."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk keeps no partial file
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(directory or ".")


def encode_jsonl(records: Iterable[Any] | Lines) -> bytes:
    if type(records) is Lines:
        return records.data
    return dumps_lines(records)


def encode_parquet(records: Iterable[dict[str, Any]] | Lines) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = records.build() if type(records) is Lines else list(records)
    columns: dict[str, list] = {name: [] for name in _PARQUET_TEXT + _PARQUET_TIME}
    columns["record"] = dumps_lines(recs).decode("utf-8").split("\n")[:-1]  # one per record
    for rec in recs:
        for name in _PARQUET_TEXT:
            value = rec.get(name)
            columns[name].append(value if isinstance(value, str) or value is None else str(value))
        for name in _PARQUET_TIME:
            value = rec.get(name)
            columns[name].append(float(value) if isinstance(value, (int, float)) else None)
    schema = pa.schema(
        [(n, pa.string()) for n in _PARQUET_TEXT]
        + [(n, pa.float64()) for n in _PARQUET_TIME]
        + [("record", pa.string())]
    )
    table = pa.table(columns, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_batch(
    path: str | os.PathLike,
    records: Iterable[dict[str, Any]] | Lines,
    fmt: str = JSONL,
    fsync: bool = True,
) -> None:
    data = encode_parquet(records) if fmt == PARQUET else encode_jsonl(records)
    write_atomic(path, data, fsync=fsync)


def iter_batch(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    """Yield ``(line number, record)`` for each line/row; unparsable ones as ``BadLine``.

    Line numbers start at 1; empty lines are skipped. A JSON value that is not an object is a
    bad line too (a record is always an object).
    """
    if format_of(path) == PARQUET:
        yield from _iter_parquet(path)
        return
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if line:
                yield lineno, _parse(lineno, line)


def _parse(lineno: int, raw: bytes) -> dict[str, Any] | BadLine:
    try:
        value = loads_line(raw)
    except ValueError as exc:
        return BadLine(lineno, raw, f"invalid JSON: {exc}")
    if not isinstance(value, dict):
        return BadLine(lineno, raw, f"not a JSON object: {type(value).__name__}")
    return value


def _iter_parquet(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["record"])
    for rowno, text in enumerate(table.column("record").to_pylist(), 1):
        yield rowno, _parse(rowno, (text or "").encode("utf-8"))


def count_records(path: str | os.PathLike) -> int:
    """How many records a batch file holds (its non-empty lines, its rows), without parsing."""
    if format_of(path) == PARQUET:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            n += not line.isspace()
    return n


def read_batch(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a batch file; raises ``ValueError`` on the first bad line."""
    out = []
    for lineno, rec in iter_batch(path):
        if isinstance(rec, BadLine):
            raise ValueError(f"{path}:{lineno}: {rec.reason}")
        out.append(rec)
    return out


def is_batch_name(name: str) -> bool:
    return not name.startswith(".") and (name.endswith(".jsonl") or name.endswith(".parquet"))


def list_batches(directory: str | os.PathLike) -> list[Path]:
    """Complete batch files in ``directory`` (temporary files excluded), oldest name first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    from pathlib import Path  # lazy: keeps `import provwh` light

    return [Path(directory, n) for n in sorted(names) if is_batch_name(n)]
