"""Initial schema: workflows, tasks and their typed rows, edges, data objects, ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 15:33:18.048454
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# a new DuckDB file is created at head from the metadata (ddl.py): nothing to run here
duckdb_statements: list[str] = []


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("batch_hash", sa.Text(), nullable=False, comment="sha256 of the batch's bytes"),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
        sa.Column("workflows", sa.Integer(), nullable=False),
        sa.Column("objects", sa.Integer(), nullable=False),
        sa.Column("rejects", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(), nullable=False),
        sa.Column("load_seconds", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("batch_hash", name=op.f("pk_batches")),
        comment="The ledger: a batch whose hash is here is never loaded again.",
    )
    op.create_table(
        "data_objects",
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=True),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.Text(), nullable=True),
        sa.Column("custom_metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("prev_version", sa.Integer(), nullable=True),
        sa.Column("object_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("data_sha256", sa.Text(), nullable=True),
        sa.Column("data_hash_algo", sa.Text(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("extra", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("object_id", "version", name=op.f("pk_data_objects")),
        comment="Flowcept blob objects: one row per object version.",
    )
    op.create_index(op.f("ix_data_objects_task_id"), "data_objects", ["task_id"], unique=False)
    op.create_index(
        op.f("ix_data_objects_workflow_id"), "data_objects", ["workflow_id"], unique=False
    )
    op.create_table(
        "lineage_pending",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_lineage_pending")),
        comment="Tasks loaded since data lineage edges were last derived (lineage.py).",
    )
    op.create_table(
        "rejects",
        sa.Column("batch_hash", sa.Text(), nullable=False),
        sa.Column("lineno", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("rejected_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("batch_hash", "lineno", name=op.f("pk_rejects")),
        comment="Lines and records the loader set aside, with the reason.",
    )
    op.create_table(
        "task_edges",
        sa.Column("src_task_id", sa.Text(), nullable=False),
        sa.Column("dst_task_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False, comment="parent | dependency | data"),
        sa.PrimaryKeyConstraint("src_task_id", "dst_task_id", "kind", name=op.f("pk_task_edges")),
        comment="Lineage edges src -> dst: parent -> child, dependency -> dependent.",
    )
    op.create_index(op.f("ix_task_edges_dst_task_id"), "task_edges", ["dst_task_id"], unique=False)
    op.create_table(
        "task_tags",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "tag", name=op.f("pk_task_tags")),
    )
    op.create_index(op.f("ix_task_tags_tag"), "task_tags", ["tag"], unique=False)
    op.create_table(
        "task_telemetry",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False, comment="start | end"),
        sa.Column("task_started_at", sa.DateTime(), nullable=True),
        sa.Column("cpu_percent", sa.Double(), nullable=True),
        sa.Column("cpu_user", sa.Double(), nullable=True),
        sa.Column("cpu_system", sa.Double(), nullable=True),
        sa.Column("cpu_idle", sa.Double(), nullable=True),
        sa.Column("cpu_iowait", sa.Double(), nullable=True),
        sa.Column("mem_total", sa.BigInteger(), nullable=True),
        sa.Column("mem_used", sa.BigInteger(), nullable=True),
        sa.Column("mem_available", sa.BigInteger(), nullable=True),
        sa.Column("mem_percent", sa.Double(), nullable=True),
        sa.Column("swap_used", sa.BigInteger(), nullable=True),
        sa.Column("swap_percent", sa.Double(), nullable=True),
        sa.Column("disk_read_bytes", sa.BigInteger(), nullable=True),
        sa.Column("disk_write_bytes", sa.BigInteger(), nullable=True),
        sa.Column("disk_read_count", sa.BigInteger(), nullable=True),
        sa.Column("disk_write_count", sa.BigInteger(), nullable=True),
        sa.Column("disk_usage_percent", sa.Double(), nullable=True),
        sa.Column("net_bytes_sent", sa.BigInteger(), nullable=True),
        sa.Column("net_bytes_recv", sa.BigInteger(), nullable=True),
        sa.Column("net_packets_sent", sa.BigInteger(), nullable=True),
        sa.Column("net_packets_recv", sa.BigInteger(), nullable=True),
        sa.Column("proc_cpu_percent", sa.Double(), nullable=True),
        sa.Column("proc_memory_percent", sa.Double(), nullable=True),
        sa.Column("proc_rss", sa.BigInteger(), nullable=True),
        sa.Column("proc_vms", sa.BigInteger(), nullable=True),
        sa.Column("proc_num_threads", sa.BigInteger(), nullable=True),
        sa.Column("proc_open_fds", sa.BigInteger(), nullable=True),
        sa.Column("gpu_count", sa.BigInteger(), nullable=True),
        sa.Column("gpu_memory_used", sa.BigInteger(), nullable=True),
        sa.Column("gpu_memory_total", sa.BigInteger(), nullable=True),
        sa.Column("gpu_utilization", sa.Double(), nullable=True),
        sa.Column("gpu_temperature", sa.Double(), nullable=True),
        sa.Column("gpu_power_usage", sa.Double(), nullable=True),
        sa.Column(
            "gpu",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="the GPU section, whole",
        ),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="snapshot sections without typed columns",
        ),
        sa.PrimaryKeyConstraint("task_id", "phase", name=op.f("pk_task_telemetry")),
        comment="Typed telemetry: one row per task and phase.",
    )
    op.create_table(
        "task_values",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False, comment="used | generated"),
        sa.Column("ordinal", sa.Integer(), nullable=False, comment="leaf number, in key order"),
        sa.Column("key_path", sa.Text(), nullable=False, comment="dotted path of nested keys"),
        sa.Column("leaf_key", sa.Text(), nullable=False),
        sa.Column(
            "value_type",
            sa.Text(),
            nullable=False,
            comment="str | int | float | bool | null | list | dict | bytes",
        ),
        sa.Column(
            "value_text",
            sa.Text(),
            nullable=True,
            comment="strings (NUL escaped), and ints beyond 2**53",
        ),
        sa.Column("value_num", sa.Double(), nullable=True),
        sa.Column("value_bool", sa.Boolean(), nullable=True),
        sa.Column(
            "value_json",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="lists, dicts, bytes markers, NUL-escape markers",
        ),
        sa.Column("value_hash", sa.BigInteger(), nullable=False, comment="see values.value_hash()"),
        sa.Column(
            "match_hash",
            sa.BigInteger(),
            nullable=True,
            comment="data lineage key (values.match_hash): NULL never links; equal ones link",
        ),
        sa.Column("task_started_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "direction", "ordinal", name=op.f("pk_task_values")),
        comment="used / generated exploded: one typed row per leaf value.",
    )
    op.create_index(
        op.f("ix_task_values_match_hash_direction"),
        "task_values",
        ["match_hash", "direction"],
        unique=False,
        postgresql_where=sa.text("match_hash IS NOT NULL"),
    )
    op.create_index(op.f("ix_task_values_value_hash"), "task_values", ["value_hash"], unique=False)
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=True),
        sa.Column("workflow_name", sa.Text(), nullable=True),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("activity_id", sa.Text(), nullable=True),
        sa.Column("subtype", sa.Text(), nullable=True),
        sa.Column("parent_task_id", sa.Text(), nullable=True),
        sa.Column("agent_id", sa.Text(), nullable=True),
        sa.Column("source_agent_id", sa.Text(), nullable=True),
        sa.Column("group_id", sa.Text(), nullable=True),
        sa.Column("used", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("generated", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("custom_metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("tags", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("dependencies", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("dependents", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("registered_at", sa.DateTime(), nullable=True),
        sa.Column("utc_timestamp", sa.DateTime(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("stdout", sa.Text(), nullable=True),
        sa.Column("stderr", sa.Text(), nullable=True),
        sa.Column("telemetry_at_start", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("telemetry_at_end", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("adapter_id", sa.Text(), nullable=True),
        sa.Column("environment_id", sa.Text(), nullable=True),
        sa.Column("user", sa.Text(), nullable=True),
        sa.Column("login_name", sa.Text(), nullable=True),
        sa.Column("node_name", sa.Text(), nullable=True),
        sa.Column("hostname", sa.Text(), nullable=True),
        sa.Column("private_ip", sa.Text(), nullable=True),
        sa.Column("public_ip", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("mq_host", sa.Text(), nullable=True),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="record fields that are not columns, or did not fit one",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_tasks")),
        comment="One row per task; parts of a task merged (later non-null fields win).",
    )
    op.create_index(op.f("ix_tasks_activity_id"), "tasks", ["activity_id"], unique=False)
    op.create_index(op.f("ix_tasks_campaign_id"), "tasks", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_tasks_parent_task_id"), "tasks", ["parent_task_id"], unique=False)
    op.create_index(op.f("ix_tasks_workflow_id"), "tasks", ["workflow_id"], unique=False)
    op.create_table(
        "workflows",
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("parent_workflow_id", sa.Text(), nullable=True),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("subtype", sa.Text(), nullable=True),
        sa.Column("agent_id", sa.Text(), nullable=True),
        sa.Column("used", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("generated", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("conf", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("custom_metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("machine_info", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("code_repository", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("flowcept_settings", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("flowcept_version", sa.Text(), nullable=True),
        sa.Column("interceptor_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("adapter_id", sa.Text(), nullable=True),
        sa.Column("environment_id", sa.Text(), nullable=True),
        sa.Column("extra_metadata", sa.Text(), nullable=True),
        sa.Column("user", sa.Text(), nullable=True),
        sa.Column("sys_name", sa.Text(), nullable=True),
        sa.Column("node_name", sa.Text(), nullable=True),
        sa.Column("hostname", sa.Text(), nullable=True),
        sa.Column("private_ip", sa.Text(), nullable=True),
        sa.Column("public_ip", sa.Text(), nullable=True),
        sa.Column("utc_timestamp", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="record fields that are not columns, or did not fit one",
        ),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_workflows")),
        comment="One row per workflow; its start and end records merged.",
    )
    op.create_index(op.f("ix_workflows_campaign_id"), "workflows", ["campaign_id"], unique=False)
    op.create_index(
        op.f("ix_workflows_parent_workflow_id"), "workflows", ["parent_workflow_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_workflows_parent_workflow_id"), table_name="workflows")
    op.drop_index(op.f("ix_workflows_campaign_id"), table_name="workflows")
    op.drop_table("workflows")
    op.drop_index(op.f("ix_tasks_workflow_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_parent_task_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_campaign_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_activity_id"), table_name="tasks")
    op.drop_table("tasks")
    op.drop_index(op.f("ix_task_values_value_hash"), table_name="task_values")
    op.drop_index(
        op.f("ix_task_values_match_hash_direction"),
        table_name="task_values",
        postgresql_where=sa.text("match_hash IS NOT NULL"),
    )
    op.drop_table("task_values")
    op.drop_table("task_telemetry")
    op.drop_index(op.f("ix_task_tags_tag"), table_name="task_tags")
    op.drop_table("task_tags")
    op.drop_index(op.f("ix_task_edges_dst_task_id"), table_name="task_edges")
    op.drop_table("task_edges")
    op.drop_table("rejects")
    op.drop_table("lineage_pending")
    op.drop_index(op.f("ix_data_objects_workflow_id"), table_name="data_objects")
    op.drop_index(op.f("ix_data_objects_task_id"), table_name="data_objects")
    op.drop_table("data_objects")
    op.drop_table("batches")
