"""Index a workflow's tasks in page order: (workflow_id, started_at, task_id), both ways.

The task list (``GET /api/v1/tasks?workflow_id=W``, ``Flowcept.db.task_query`` with a sort
and a limit, the workflow page) reads a workflow's tasks in the default order (``started_at
ASC NULLS LAST, task_id COLLATE "C"``) or newest first (``started_at DESC NULLS LAST``, then
the default order). With only ``tasks (workflow_id)`` each page read every task of the
workflow and sorted them; these two indexes give the rows in order and a page stops after its
rows. Measured on 30,000 tasks: first page 57 -> 3.0 ms, an offset of 15,000 149 -> 15.5 ms
(docs/performance.md). They begin with ``workflow_id``, so the index on it alone goes.

Built ``CONCURRENTLY``: on a populated database, loaders and readers go on while it builds.
An index a failed build left invalid is dropped and built again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# DuckDB files carry no secondary indexes (ddl.py; its ART indexes do not serve an ORDER BY)
duckdb_statements: list[str] = []

TASK_ID = sa.text('task_id COLLATE "C"')
PAGE_INDEXES = {
    "ix_tasks_workflow_started": ["workflow_id", "started_at", TASK_ID],
    "ix_tasks_workflow_started_desc": [
        "workflow_id",
        sa.text("started_at DESC NULLS LAST"),
        TASK_ID,
    ],
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in PAGE_INDEXES.items():
            _drop_if_invalid(name)
            op.create_index(
                op.f(name), "tasks", columns, postgresql_concurrently=True, if_not_exists=True
            )
        op.drop_index(
            op.f("ix_tasks_workflow_id"), table_name="tasks", postgresql_concurrently=True,
            if_exists=True,
        )  # fmt: skip


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            op.f("ix_tasks_workflow_id"), "tasks", ["workflow_id"],
            postgresql_concurrently=True, if_not_exists=True,
        )  # fmt: skip
        for name in PAGE_INDEXES:
            op.drop_index(
                op.f(name), table_name="tasks", postgresql_concurrently=True, if_exists=True
            )


def _drop_if_invalid(name: str) -> None:
    invalid = op.get_bind().execute(
        sa.text(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = :name AND NOT i.indisvalid"
        ),
        {"name": name},
    )
    if invalid.first() is not None:
        op.drop_index(op.f(name), table_name="tasks", postgresql_concurrently=True)
