"""Data lineage edges, derived at load time from the key/value rows (``sql/data_edges.sql``).

Each batch transaction marks its tasks in ``lineage_pending``; ``derive`` then adds the
``data`` edges of every pending task, in both directions, and clears the mark, in one
transaction. Deriving per pass rather than per batch keeps DuckDB (which scans rather than
probes an index) from rescanning ``task_values`` for every batch; a crash between the two
leaves the tasks pending, so no edge is ever missed.
"""

from __future__ import annotations

from functools import cache

from provwh.core import resources


@cache
def data_edges_sql() -> str:
    return resources.sql_text(resources.LINEAGE_SQL)


def derive(tx) -> int:
    """Add the data edges of the pending tasks; returns how many tasks were pending."""
    pending = tx.scalar("SELECT count(*) FROM lineage_pending")
    if pending:
        tx.execute(data_edges_sql())
        tx.execute("DELETE FROM lineage_pending")
    return pending
