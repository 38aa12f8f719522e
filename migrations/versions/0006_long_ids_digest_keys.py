"""Ids longer than 1,000 bytes: their digest keys in the id columns, the ids in ``extra``.

provwh now stores an id over 1,000 bytes (UTF-8, as escaped) as its digest key,
``\\u0000\\#sha256:<hex of the sha256 of the stored text>`` (``warehouse.escape``), so that any
id loads on PostgreSQL (a btree row holds at most 2,704 bytes) and both engines store the same.
Ids stored whole before (a DuckDB file takes any length, PostgreSQL up to about 2.7 KB) are
rewritten alike, so that they are found, and merged into, as new ones are: in every id column
of every table, the whole id going to the row's ``extra`` where the table has one (unless a NUL
marker holds it already). The statements write ``\\`` as ``chr(92)``, whatever the server's
string settings.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the id columns (schema.ID_COLUMNS, plus the tables without extra): (table, column, how the
# whole id goes to extra: "extra" unless a NUL marker is there, "marker" as a marker when
# escaped (object ids keep no marker), None: no extra column)
_COLUMNS = (
    ("tasks", "task_id", "extra"),
    ("tasks", "workflow_id", "extra"),
    ("tasks", "campaign_id", "extra"),
    ("tasks", "activity_id", "extra"),
    ("tasks", "parent_task_id", "extra"),
    ("workflows", "workflow_id", "extra"),
    ("workflows", "campaign_id", "extra"),
    ("workflows", "parent_workflow_id", "extra"),
    ("data_objects", "object_id", "marker"),
    ("data_objects", "task_id", "extra"),
    ("data_objects", "workflow_id", "extra"),
    ("task_values", "task_id", None),
    ("task_telemetry", "task_id", None),
    ("task_tags", "task_id", None),
    ("task_tags", "tag", None),
    ("task_edges", "src_task_id", None),
    ("task_edges", "dst_task_id", None),
    ("lineage_pending", "task_id", None),
    ("agents", "agent_id", "extra"),
    ("agents", "name", "extra"),
)

# The same for DuckDB files, written out (revisions.py reads them without importing this).
duckdb_statements: list[str] = [
    "UPDATE tasks SET extra = CASE WHEN contains(task_id, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'), json_object('task_id', task_id)) END,"
    " task_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(task_id)"
    " WHERE strlen(task_id) > 1000",
    "UPDATE tasks SET extra = CASE WHEN contains(workflow_id, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'), json_object('workflow_id', workflow_id)) END,"
    " workflow_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(workflow_id)"
    " WHERE strlen(workflow_id) > 1000",
    "UPDATE tasks SET extra = CASE WHEN contains(campaign_id, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'), json_object('campaign_id', campaign_id)) END,"
    " campaign_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(campaign_id)"
    " WHERE strlen(campaign_id) > 1000",
    "UPDATE tasks SET extra = CASE WHEN contains(activity_id, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'), json_object('activity_id', activity_id)) END,"
    " activity_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(activity_id)"
    " WHERE strlen(activity_id) > 1000",
    "UPDATE tasks SET extra = CASE WHEN contains(parent_task_id, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'),"
    " json_object('parent_task_id', parent_task_id)) END,"
    " parent_task_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(parent_task_id)"
    " WHERE strlen(parent_task_id) > 1000",
    "UPDATE workflows SET extra = CASE WHEN contains(workflow_id, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'), json_object('workflow_id', workflow_id)) END,"
    " workflow_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(workflow_id)"
    " WHERE strlen(workflow_id) > 1000",
    "UPDATE workflows SET extra = CASE WHEN contains(campaign_id, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'), json_object('campaign_id', campaign_id)) END,"
    " campaign_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(campaign_id)"
    " WHERE strlen(campaign_id) > 1000",
    "UPDATE workflows SET extra = CASE WHEN contains(parent_workflow_id, chr(92) || 'u0000')"
    " THEN extra ELSE json_merge_patch(coalesce(extra, '{}'),"
    " json_object('parent_workflow_id', parent_workflow_id)) END,"
    " parent_workflow_id = chr(92) || 'u0000' || chr(92) || '#sha256:'"
    " || sha256(parent_workflow_id) WHERE strlen(parent_workflow_id) > 1000",
    "UPDATE data_objects SET extra = json_merge_patch(coalesce(extra, '{}'),"
    " json_object('object_id', CASE WHEN contains(object_id, chr(92) || 'u0000')"
    " THEN json_object('$nul', object_id) ELSE to_json(object_id) END)),"
    " object_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(object_id)"
    " WHERE strlen(object_id) > 1000",
    "UPDATE data_objects SET extra = CASE WHEN contains(task_id, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'), json_object('task_id', task_id)) END,"
    " task_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(task_id)"
    " WHERE strlen(task_id) > 1000",
    "UPDATE data_objects SET extra = CASE WHEN contains(workflow_id, chr(92) || 'u0000')"
    " THEN extra ELSE json_merge_patch(coalesce(extra, '{}'),"
    " json_object('workflow_id', workflow_id)) END,"
    " workflow_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(workflow_id)"
    " WHERE strlen(workflow_id) > 1000",
    "UPDATE task_values SET task_id = chr(92) || 'u0000' || chr(92) || '#sha256:'"
    " || sha256(task_id) WHERE strlen(task_id) > 1000",
    "UPDATE task_telemetry SET task_id = chr(92) || 'u0000' || chr(92) || '#sha256:'"
    " || sha256(task_id) WHERE strlen(task_id) > 1000",
    "UPDATE task_tags SET task_id = chr(92) || 'u0000' || chr(92) || '#sha256:'"
    " || sha256(task_id) WHERE strlen(task_id) > 1000",
    "UPDATE task_tags SET tag = chr(92) || 'u0000' || chr(92) || '#sha256:'"
    " || sha256(tag) WHERE strlen(tag) > 1000",
    "UPDATE task_edges SET src_task_id = chr(92) || 'u0000' || chr(92) || '#sha256:'"
    " || sha256(src_task_id) WHERE strlen(src_task_id) > 1000",
    "UPDATE task_edges SET dst_task_id = chr(92) || 'u0000' || chr(92) || '#sha256:'"
    " || sha256(dst_task_id) WHERE strlen(dst_task_id) > 1000",
    "UPDATE lineage_pending SET task_id = chr(92) || 'u0000' || chr(92) || '#sha256:'"
    " || sha256(task_id) WHERE strlen(task_id) > 1000",
    "UPDATE agents SET extra = CASE WHEN contains(agent_id, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'), json_object('agent_id', agent_id)) END,"
    " agent_id = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(agent_id)"
    " WHERE strlen(agent_id) > 1000",
    "UPDATE agents SET extra = CASE WHEN contains(name, chr(92) || 'u0000') THEN extra"
    " ELSE json_merge_patch(coalesce(extra, '{}'), json_object('name', name)) END,"
    " name = chr(92) || 'u0000' || chr(92) || '#sha256:' || sha256(name)"
    " WHERE strlen(name) > 1000",
]


def _pg_statement(table: str, column: str, how: str | None) -> str:
    key = f"chr(92) || 'u0000' || chr(92) || '#sha256:' || encode(sha256(convert_to({column},"
    key += " 'UTF8')), 'hex')"
    escaped = f"strpos({column}, chr(92) || 'u0000') > 0"
    extra = "coalesce(extra, CAST('{}' AS jsonb))"
    sets = []
    if how == "extra":
        sets.append(
            f"extra = CASE WHEN {escaped} THEN extra"
            f" ELSE {extra} || jsonb_build_object('{column}', {column}) END"
        )
    elif how == "marker":
        sets.append(
            f"extra = {extra} || jsonb_build_object('{column}', CASE WHEN {escaped}"
            f" THEN jsonb_build_object('$nul', {column}) ELSE to_jsonb({column}) END)"
        )
    sets.append(f"{column} = {key}")
    return f"UPDATE {table} SET {', '.join(sets)} WHERE octet_length({column}) > 1000"


def upgrade() -> None:
    for table, column, how in _COLUMNS:
        op.execute(_pg_statement(table, column, how))


def downgrade() -> None:
    """The digest keys stay (the ids are in ``extra``): an older provwh reads them as ids."""
