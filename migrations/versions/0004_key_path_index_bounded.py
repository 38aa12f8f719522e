"""Index task_values (key_path, value_num) only for key paths up to 600 characters.

A PostgreSQL btree row holds at most 2704 bytes: a ``used`` / ``generated`` key longer than
that made every insert of its task fail, and the loader retried the batch forever (issue 17).
Longer paths now load like any other, unindexed; queries on a path up to 600 characters say so
(``length(key_path) <= 600``, as ``query.filters`` writes it) and use the index as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# DuckDB files carry no secondary indexes (ddl.py): nothing to run there
duckdb_statements: list[str] = []


def upgrade() -> None:
    op.drop_index(op.f("ix_task_values_key_path_value_num"), table_name="task_values")
    op.create_index(
        op.f("ix_task_values_key_path_value_num"),
        "task_values",
        ["key_path", "value_num"],
        unique=False,
        postgresql_where=sa.text("length(key_path) <= 600"),
    )


def downgrade() -> None:
    """The index on every key path again (fails if a stored path is too long to index)."""
    op.drop_index(op.f("ix_task_values_key_path_value_num"), table_name="task_values")
    op.create_index(
        op.f("ix_task_values_key_path_value_num"),
        "task_values",
        ["key_path", "value_num"],
        unique=False,
    )
