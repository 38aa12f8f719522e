"""DuckDB over batch files: an offline run queried in place, with the warehouse's views.

The files (JSONL or Parquet batches, a spool folder, a Flowcept buffer dump) are read by the
loader's own reader and normalizer into an in-memory DuckDB database with the warehouse
schema, data lineage is derived the same way, and the views are installed: every query, view
and lineage call then gives what it would give on the DuckDB file or on PostgreSQL after
``provwh load``. Nothing is written anywhere. Loading into memory rather than scanning the
files at each query is deliberate: lineage views over file scans are slow, and
records arriving in parts must be merged before they are queried.
"""

from __future__ import annotations

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
    from provwh.warehouse import ddl, duck
    from provwh.warehouse.ingest import Ingest, in_transaction

    conn = duckdb.connect(":memory:")
    try:
        for statement in ddl.duckdb_create_statements():
            conn.execute(statement)
        Ingest(in_transaction(lambda: duck.transaction(conn))).files(paths, max_records)
        views.install_duckdb(conn)
    except BaseException:
        conn.close()
        raise
    return conn
