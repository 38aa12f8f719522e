"""Data lineage edges, derived at load time from the key/value rows (``sql/data_edges.sql``).

Each batch transaction marks its tasks in ``lineage_pending``; ``derive`` then (re)derives the
``data`` edges into every pending task (and into stored tasks a late producer may now feed),
one edge per value used, and clears the marks, in one transaction (the rule: docs/query-guide.md).
Deriving per pass rather than per batch keeps DuckDB (which scans rather than probes an index)
from rescanning ``task_values`` for every batch; a crash between the two leaves the tasks
pending, so no edge is ever missed.
"""

from __future__ import annotations

from functools import cache

from provwh.core import resources


@cache
def data_edges_sql() -> tuple[str, ...]:
    """The statements of ``sql/data_edges.sql``, in order."""
    text = resources.sql_text(resources.LINEAGE_SQL)
    return tuple(s.strip() for s in text.split(";\n") if _code(s))


def _code(statement: str) -> bool:
    return any(
        line.strip() and not line.lstrip().startswith("--") for line in statement.splitlines()
    )


def derive(tx) -> int:
    """Derive the data edges of the pending tasks; returns how many tasks were pending."""
    pending = tx.scalar("SELECT count(*) FROM lineage_pending")
    if pending:
        for statement in data_edges_sql():
            tx.execute(statement)
        tx.clear("lineage_pending")
    return pending
