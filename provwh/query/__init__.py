"""The query layer: Flowcept's DB API over the warehouse, SQL views, DuckDB over batch files.

``provwh.query.api`` holds ``DBAPI`` (``Flowcept.db``), ``get_db()`` and ``records_for()``;
``filters`` / ``paths`` turn Mongo-style filters into SQL with bound parameters; ``lineage``
walks task edges; ``views`` installs ``sql/views``; ``files`` loads batch files into an
in-memory DuckDB database; ``objects`` stores versioned data objects (the ``provwh sql``
command is ``provwh.cli.sql``). Importing this package imports no database driver.
"""
