"""Index tasks (loaded_at): the live streams read what loaded after a point.

A stream (``/api/v1/stream/tasks``) reads the tasks loaded after its cursor each time it is
woken or polls, and starts after the newest load (``max(loaded_at)``). Without the index both
scan the table: on 500,000 tasks, a stream's read with nothing new took 46 ms (by campaign)
to 85 ms (unfiltered), and the newest load 74 ms; with it 0.3 ms, 13 ms for a read of 4 new
loads, 0.15 ms (docs/performance.md). Rows loaded in one transaction share their time, and
PostgreSQL's btree deduplication keeps such an index small.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# DuckDB files carry no secondary indexes (ddl.py; its zone maps serve these reads): nothing
duckdb_statements: list[str] = []


def upgrade() -> None:
    op.create_index(op.f("ix_tasks_loaded_at"), "tasks", ["loaded_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_loaded_at"), table_name="tasks")
