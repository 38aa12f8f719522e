"""The warehouse: batch files become rows in DuckDB and PostgreSQL.

Modules, one job each: ``schema`` (the tables, one definition) and ``ddl`` (what DBAPI code
needs of it); ``reader`` (batch files -> chunks), ``normalize`` (records -> row sets, with
``ids``, ``values``, ``telemetry``, ``times``, ``escape``), ``pipeline`` (normalizing ahead),
``workers`` (normalizing in other processes, with ``copy_text``); ``ingest`` (the one way in:
a transaction's writes, the ledger, lineage), ``engines`` (the interfaces of an engine, and
those the settings enable), ``duck`` / ``pg`` (the two engines), ``loader`` (files, grouped
transactions, retries), ``lineage`` (data edges); ``consumer`` (the spool follower),
``base_consumer`` (Flowcept's consumer interface); ``migrate`` (alembic). Importing this
package imports nothing heavy.
"""
