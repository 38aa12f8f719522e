"""Exports and archives: Parquet (hive-partitioned), W3C PROV, OpenLineage; imports.

Each module reads the warehouse tables with plain SQL through ``source.open_source`` and keeps
its heavy imports (duckdb, pyarrow, psycopg) inside functions, so ``import provwh.cli`` stays
light.
"""
