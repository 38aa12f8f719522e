"""Transport: records from the capture to the loader.

``buffer`` (records batched in memory), ``batches`` (batch files: JSONL or Parquet, written
atomically), ``spool`` (the spool folder and its writer), ``redis_stream`` (batches through a
Redis stream), ``buffer_file`` (a run's dump). ``BatchWriter`` is what the capture hands each
batch to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from provwh.core.serialize import Lines


class BatchWriter(Protocol):
    """Writes one producer's batches (``spool.SpoolWriter``, ``redis_stream.RedisBatchWriter``).

    Whatever else it does with a batch, a copy lands in a folder (``spool_dir``, or a fallback
    when that cannot take it) under the name ``write`` returns, where the producer reads its
    batches back for its dump (``run_batches``). A writer holding a connection also has
    ``close()``.
    """

    spool_dir: str  # absolute
    run_id: str  # in every batch name of this producer (and of the children it forks)
    names: list[str]  # the batches written so far, in order

    def write(self, records: Iterable[dict[str, Any]] | Lines) -> str:
        """Write one batch (records, or their lines already serialized); returns its name."""
        ...

    def reset_after_fork(self) -> None:
        """A forked child writes its own batches: forget the parent's names."""
        ...

    def run_batches(self) -> list[tuple[str, list[str]]]:
        """(folder, batch names) of this run and of the children it forked, in capture order
        per folder: where its dump reads its records back."""
        ...
