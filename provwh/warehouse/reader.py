"""Batch files -> chunks of raw records, each with the content hash the ledger keys on.

A chunk is what one transaction loads. A spool batch is one chunk (its hash is the sha256 of
the file); a big file (a Flowcept buffer of a long run) is cut into chunks of ``max_records``
lines or ``MAX_CHUNK_BYTES``, so memory stays bounded and a replay skips the chunks already
loaded. Lines are kept
as bytes: parsing happens in ``normalize``, and generated ids hash the exact bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from provwh.transport.batches import PARQUET, format_of

DEFAULT_MAX_RECORDS = 20_000
# A chunk also ends at this many bytes of records: a batch of big values (20 KB arguments...)
# is held several times over while it is normalized and written, so records alone do not bound
# the memory of a load.
MAX_CHUNK_BYTES = 8 << 20


class BatchFileError(Exception):
    """A whole batch file cannot be read (truncated Parquet, unreadable file...)."""


@dataclass
class Chunk:
    source: str
    index: int
    hash: str
    lines: list[tuple[int, bytes]] = field(default_factory=list)  # (line number, raw record)
    size: int = 0  # bytes of the file this chunk covers


def read_chunks(path: str | os.PathLike, max_records: int = DEFAULT_MAX_RECORDS) -> Iterator[Chunk]:
    """The chunks of a JSONL or Parquet batch file, in order."""
    path = os.fspath(path)
    if format_of(path) == PARQUET:
        yield from _parquet_chunks(path, max_records)
    else:
        yield from _jsonl_chunks(path, max_records)


def _jsonl_chunks(path: str, max_records: int) -> Iterator[Chunk]:
    source = os.path.basename(path)
    with open(path, "rb") as fh:
        index = 0
        digest = hashlib.sha256()
        lines: list[tuple[int, bytes]] = []
        size = 0
        for lineno, line in enumerate(fh, 1):
            digest.update(line)
            size += len(line)
            stripped = line.strip()
            if stripped:
                lines.append((lineno, stripped))
            if len(lines) >= max_records or size >= MAX_CHUNK_BYTES:
                yield Chunk(source, index, digest.hexdigest(), lines, size)
                index += 1
                digest, lines, size = hashlib.sha256(), [], 0
        if lines or index == 0:
            yield Chunk(source, index, digest.hexdigest(), lines, size)


def _parquet_chunks(path: str, max_records: int) -> Iterator[Chunk]:
    import orjson
    import pyarrow.parquet as pq

    source = os.path.basename(path)
    try:
        pf = pq.ParquetFile(path)
        ours = "record" in pf.schema_arrow.names
        batches = pf.iter_batches(batch_size=max_records, columns=["record"] if ours else None)
        total = os.path.getsize(path)
        rows = max(pf.metadata.num_rows, 1)
        lineno = 0
        for index, batch in enumerate(batches):
            if ours:
                raws = [(t or "").encode("utf-8") for t in batch.column(0).to_pylist()]
            else:  # a foreign Parquet file: one record per row
                raws = [orjson.dumps(r, default=str) for r in batch.to_pylist()]
            digest = hashlib.sha256(b"parquet\n")
            lines = []
            for raw in raws:
                lineno += 1
                digest.update(raw)
                digest.update(b"\n")
                lines.append((lineno, raw))
            yield Chunk(source, index, digest.hexdigest(), lines, total * len(raws) // rows)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise BatchFileError(f"{path}: not a readable Parquet file: {exc}") from exc
