"""DuckDB over batch files: an offline run queried in place, with the warehouse's views.

The files (JSONL or Parquet batches, a spool folder, a Flowcept buffer dump) are read by the
loader's own reader and normalizer into an in-memory DuckDB database with the warehouse
schema, data lineage is derived the same way, and the views are installed: every query, view
and lineage call then gives what it would give on the DuckDB file or on PostgreSQL after
``provwh load``. Nothing is written anywhere. Loading into memory rather than scanning the
files at each query is deliberate: lineage views over file scans are slow (WAREHOUSE.md), and
records arriving in parts must be merged before they are queried.
"""

from __future__ import annotations

import time
from typing import Any

from provwh.warehouse.reader import DEFAULT_MAX_RECORDS


def expand(paths: Any) -> list[str]:
    """Files named by ``paths``: files, folders (a spool folder with what it loaded), globs."""
    from provwh.transport.spool import expand_paths

    return expand_paths(paths, loaded=True)


def load_into_memory(paths: list[str], max_records: int = DEFAULT_MAX_RECORDS) -> Any:
    """An in-memory DuckDB connection holding the records of ``paths`` (and the views)."""
    import duckdb

    from provwh.query import views
    from provwh.warehouse import ddl, lineage
    from provwh.warehouse.duck import DuckTx
    from provwh.warehouse.loader import write_batch
    from provwh.warehouse.pipeline import normalized_chunks

    conn = duckdb.connect(":memory:")
    try:
        for statement in ddl.duckdb_create_statements():
            conn.execute(statement)
        tx = DuckTx(conn)
        for item in normalized_chunks(paths, max_records, depth=0):
            if item.error is not None:
                raise item.error
            if item.norm is None:
                continue
            conn.begin()
            write_batch(tx, item.norm, time.perf_counter())
            conn.commit()
        conn.begin()
        lineage.derive(tx)
        conn.commit()
        views.install_duckdb(conn)
    except BaseException:
        conn.close()
        raise
    return conn
