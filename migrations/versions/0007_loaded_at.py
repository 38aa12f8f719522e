"""``loaded_at`` on tasks and workflows: when the loader last wrote the row.

Capture times say when a task ran, not when its record reached the warehouse: a task captured
early may load late (a spool folder drained after a crash, a consumer that was down). The
server's live streams (``/api/v1/stream/tasks``, ``/stream/workflows``) follow what loads, in
commit order, by this column: each loader transaction sets it on every row it inserts or
merges, to the time it took the loader lock (``schema.LOADED_AT``).

Rows stored before this revision get NULL, not a guess: their capture times are no load time
(a stream that took them for one could send old rows as new), and filling a column of every
row would rewrite both tables, where adding a nullable column only changes the catalog. They
get a time the next time a record of theirs is merged. A nullable timestamp, last in both
tables (where a table made at this revision has it too).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-14 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# DuckDB files: the same columns. IF NOT EXISTS: a file made at head and marked older (as tests
# of the older steps do) has them already.
duckdb_statements: list[str] = [
    "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS loaded_at TIMESTAMP WITHOUT TIME ZONE",
    "ALTER TABLE workflows ADD COLUMN IF NOT EXISTS loaded_at TIMESTAMP WITHOUT TIME ZONE",
]

_COMMENT = "when the loader last wrote the row (its transaction's time, UTC; 0007)"


def upgrade() -> None:
    for table in ("tasks", "workflows"):
        op.add_column(table, sa.Column("loaded_at", sa.DateTime(), nullable=True, comment=_COMMENT))


def downgrade() -> None:
    """Drop the columns (no view reads them)."""
    for table in ("workflows", "tasks"):
        op.drop_column(table, "loaded_at")
