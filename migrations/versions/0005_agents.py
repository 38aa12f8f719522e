"""The ``agents`` table: PROV-AGENT agents (Flowcept's ``AgentObject``), one row per agent_id.

Agent records (``"type": "agent"``) in batch files load here; ``DBAPI.insert_or_update_agent``
/ ``agent_query`` read and write it. A new, empty table: no stored data changes. The columns
are written out here (not read from ``schema.py``) so that this revision stays what it was
when later revisions change the table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# DuckDB files: the same table (JSON for JSONB, no secondary index: see ddl.py). IF NOT EXISTS:
# a file made at head and marked older (as tests of the older steps do) has it already.
duckdb_statements: list[str] = [
    "CREATE TABLE IF NOT EXISTS agents ("
    ' agent_id TEXT NOT NULL, name TEXT, "user" TEXT, workflow_id TEXT, campaign_id TEXT,'
    " registered_at TIMESTAMP WITHOUT TIME ZONE, extra_metadata JSON, extra JSON,"
    " CONSTRAINT pk_agents PRIMARY KEY (agent_id))",
]


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("user", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.Text(), nullable=True),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("registered_at", sa.DateTime(), nullable=True),
        sa.Column("extra_metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="record fields that are not columns, or did not fit one",
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agents")),
        comment="PROV-AGENT agents (Flowcept's AgentObject): one row per agent_id (0005).",
    )
    op.create_index(op.f("ix_agents_name"), "agents", ["name"], unique=False)


def downgrade() -> None:
    """Drop the table, and the view that reads it (provwh views are installed again on use)."""
    op.execute("DROP VIEW IF EXISTS v_agents")
    op.drop_index(op.f("ix_agents_name"), table_name="agents")
    op.drop_table("agents")
