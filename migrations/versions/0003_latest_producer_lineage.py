"""Data lineage: one edge per use, to its latest producer (issue 19: edges grew as the square).

Drops the data edges derived by the old rule (every producer of an equal value, across all
workflows) and derives them again by the new one (docs/query-guide.md, Lineage). Declared and parent edges
are kept. PostgreSQL derives them in this migration; a DuckDB file right after its upgrade
(``duck.ensure_schema``), both with the statements of ``sql/data_edges.sql``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
duckdb_statements: list[str] = [
    "DELETE FROM task_edges WHERE kind = 'data'",
    "INSERT INTO lineage_pending (task_id) SELECT task_id FROM tasks ON CONFLICT DO NOTHING",
]


def upgrade() -> None:
    from provwh.warehouse import lineage

    for sql in duckdb_statements:
        op.execute(sql)
    for sql in lineage.data_edges_sql():
        op.execute(sql)
    op.execute("DELETE FROM lineage_pending")


def downgrade() -> None:
    """The old rule's edges are not rebuilt: the new ones stay (a subset of the old)."""
