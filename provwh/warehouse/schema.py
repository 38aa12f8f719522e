"""The warehouse tables: the one definition used by alembic (PostgreSQL) and by DuckDB.

Design rules: every Flowcept field of a task or workflow is a column; nested
dicts are kept whole as JSON (JSONB in PostgreSQL) *and* exploded into typed rows
(``task_values``, ``task_telemetry``); fields a record carries that are not columns (or whose
value does not fit its column) are kept in ``extra``, so nothing is lost. There are no foreign
keys: parts of a task may arrive before its workflow, and loading never waits for a parent.
Times are naive ``TIMESTAMP`` values in UTC, so BI tools read them as timestamps. Child tables
carry the task's start time, the natural partition key for archiving by month. ``tasks`` and
``workflows`` also carry ``loaded_at``, when the loader last wrote the row (not a record field:
the query layer leaves it out of records), so that readers can follow what loads, in the
order it commits (the server's live streams), whatever the capture times say.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from provwh.core.model import (
    AGENT_FIELDS,
    AGENT_TIME_FIELDS,
    TASK_FIELDS,
    TASK_TIME_FIELDS,
    WORKFLOW_FIELDS,
    WORKFLOW_TIME_FIELDS,
)
from provwh.warehouse.telemetry import GPU_COLUMNS, INT, TELEMETRY_COLUMNS
from provwh.warehouse.values import KEY_PATH_INDEXED

# The alembic revision this metadata corresponds to (a test keeps them equal). DuckDB files
# record it in their own ``alembic_version`` table.
SCHEMA_REVISION = "0009"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

JsonDoc = JSON().with_variant(JSONB(), "postgresql")

# How a record field is stored: text, a JSON document, or a timestamp.
TEXT, JSONDOC, TIME = "text", "json", "time"

TASK_JSON_FIELDS = frozenset(
    (
        "used",
        "generated",
        "data",
        "custom_metadata",
        "tags",
        "dependencies",
        "dependents",
        "telemetry_at_start",
        "telemetry_at_end",
    )
)
WORKFLOW_JSON_FIELDS = frozenset(
    (
        "used",
        "generated",
        "conf",
        "custom_metadata",
        "machine_info",
        "code_repository",
        "flowcept_settings",
        "interceptor_ids",
    )
)

AGENT_JSON_FIELDS = frozenset(("extra_metadata",))

OBJECT_FIELDS: tuple[str, ...] = (
    "object_id",
    "version",
    "object_type",
    "task_id",
    "workflow_id",
    "custom_metadata",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "prev_version",
    "object_size_bytes",
    "data_sha256",
    "data_hash_algo",
    "data",
)


def _kinds(fields, json_fields, time_fields) -> tuple[tuple[str, str], ...]:
    return tuple(
        (f, JSONDOC if f in json_fields else TIME if f in time_fields else TEXT) for f in fields
    )


TASK_COLUMNS = _kinds(TASK_FIELDS, TASK_JSON_FIELDS, TASK_TIME_FIELDS)
WORKFLOW_COLUMNS = _kinds(WORKFLOW_FIELDS, WORKFLOW_JSON_FIELDS, WORKFLOW_TIME_FIELDS)
AGENT_COLUMNS = _kinds(AGENT_FIELDS, AGENT_JSON_FIELDS, AGENT_TIME_FIELDS)

_SQL_TYPES = {TEXT: Text, JSONDOC: lambda: JsonDoc, TIME: DateTime}


def _record_columns(spec: tuple[tuple[str, str], ...], key: str) -> list[Column]:
    return [
        Column(name, _SQL_TYPES[kind](), nullable=name != key, primary_key=name == key)
        for name, kind in spec
    ]


# When the loader last wrote a task or workflow row (inserted or merged): the time of its
# write transaction's first write, in UTC. PostgreSQL loaders write beside each other, so a
# reader following these times stops at the oldest loader transaction still open
# (``query.loads``). Rows loaded before revision 0007 have none (NULL). The last column of
# both tables.
LOADED_AT = "loaded_at"
LOADED_TABLES = ("tasks", "workflows")


def _loaded_at() -> Column:
    return Column(
        LOADED_AT,
        DateTime,
        comment="when the loader last wrote the row (its transaction's time, UTC; 0007)",
    )


workflows = Table(
    "workflows",
    metadata,
    *_record_columns(WORKFLOW_COLUMNS, "workflow_id"),
    Column("extra", JsonDoc, comment="record fields that are not columns, or did not fit one"),
    _loaded_at(),
    Index(None, "campaign_id"),
    Index(None, "parent_workflow_id"),
    comment="One row per workflow; its start and end records merged.",
)

tasks = Table(
    "tasks",
    metadata,
    *_record_columns(TASK_COLUMNS, "task_id"),
    Column("extra", JsonDoc, comment="record fields that are not columns, or did not fit one"),
    _loaded_at(),
    # a workflow's task pages, oldest and newest first (0009)
    Index("ix_tasks_workflow_started", "workflow_id", "started_at", text('task_id COLLATE "C"')),
    Index(
        "ix_tasks_workflow_started_desc",
        "workflow_id",
        text("started_at DESC NULLS LAST"),
        text('task_id COLLATE "C"'),
    ),
    Index(None, "campaign_id"),
    Index(None, "activity_id"),
    Index(None, "parent_task_id"),
    Index(None, LOADED_AT),  # the live streams' reads (0008)
    comment="One row per task; parts of a task merged (later non-null fields win).",
)

task_values = Table(
    "task_values",
    metadata,
    Column("task_id", Text, nullable=False),
    Column("direction", Text, nullable=False, comment="used | generated"),
    Column("ordinal", Integer, nullable=False, comment="leaf number, in key order"),
    Column("key_path", Text, nullable=False, comment="dotted path of nested keys"),
    Column("leaf_key", Text, nullable=False),
    Column(
        "value_type",
        Text,
        nullable=False,
        comment="str | int | float | bool | null | list | dict | bytes",
    ),
    Column("value_text", Text, comment="strings (NUL escaped), and ints beyond 2**53"),
    Column("value_num", Double),
    Column("value_bool", Boolean),
    Column("value_json", JsonDoc, comment="lists, dicts, bytes markers, NUL-escape markers"),
    Column("value_hash", BigInteger, nullable=False, comment="see values.value_hash()"),
    Column(
        "match_hash",
        BigInteger,
        comment="data lineage key (values.match_hash): NULL never links; equal ones link",
    ),
    Column("task_started_at", DateTime),
    PrimaryKeyConstraint("task_id", "direction", "ordinal"),
    Index(None, "value_hash"),
    Index(None, "match_hash", "direction", postgresql_where=text("match_hash IS NOT NULL")),
    # ranges and sorts on used.x / generated.y (0002), paths up to 600 characters (0004)
    Index(None, "key_path", "value_num", postgresql_where=text(KEY_PATH_INDEXED)),
    comment="used / generated exploded: one typed row per leaf value.",
)

_TELEMETRY_TYPES = {INT: BigInteger, "float": Double}

task_telemetry = Table(
    "task_telemetry",
    metadata,
    Column("task_id", Text, nullable=False),
    Column("phase", Text, nullable=False, comment="start | end"),
    Column("task_started_at", DateTime),
    *[Column(name, _TELEMETRY_TYPES[kind]) for name, (kind, _) in TELEMETRY_COLUMNS.items()],
    *[Column(name, _TELEMETRY_TYPES[kind]) for name, kind in GPU_COLUMNS.items()],
    Column("gpu", JsonDoc, comment="the GPU section, whole"),
    Column("extra", JsonDoc, comment="snapshot sections without typed columns"),
    PrimaryKeyConstraint("task_id", "phase"),
    comment="Typed telemetry: one row per task and phase.",
)

task_tags = Table(
    "task_tags",
    metadata,
    Column("task_id", Text, nullable=False),
    Column("tag", Text, nullable=False),
    PrimaryKeyConstraint("task_id", "tag"),
    Index(None, "tag"),
)

task_edges = Table(
    "task_edges",
    metadata,
    Column("src_task_id", Text, nullable=False),
    Column("dst_task_id", Text, nullable=False),
    Column("kind", Text, nullable=False, comment="parent | dependency | data"),
    PrimaryKeyConstraint("src_task_id", "dst_task_id", "kind"),
    Index(None, "dst_task_id"),
    comment="Lineage edges src -> dst: parent -> child, dependency -> dependent.",
)

data_objects = Table(
    "data_objects",
    metadata,
    Column("object_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("object_type", Text),
    Column("task_id", Text),
    Column("workflow_id", Text),
    Column("custom_metadata", JsonDoc),
    Column("created_at", DateTime),
    Column("created_by", Text),
    Column("updated_at", DateTime),
    Column("updated_by", Text),
    Column("prev_version", Integer),
    Column("object_size_bytes", BigInteger),
    Column("data_sha256", Text),
    Column("data_hash_algo", Text),
    Column("data", LargeBinary),
    Column("extra", JsonDoc),
    PrimaryKeyConstraint("object_id", "version"),
    Index(None, "task_id"),
    Index(None, "workflow_id"),
    comment="Flowcept blob objects: one row per object version.",
)

agents = Table(
    "agents",
    metadata,
    *_record_columns(AGENT_COLUMNS, "agent_id"),
    Column("extra", JsonDoc, comment="record fields that are not columns, or did not fit one"),
    Index(None, "name"),
    comment="PROV-AGENT agents (Flowcept's AgentObject): one row per agent_id (0005).",
)

batches = Table(
    "batches",
    metadata,
    Column("batch_hash", Text, primary_key=True, comment="sha256 of the batch's bytes"),
    Column("source", Text),
    Column("chunk", Integer, nullable=False),
    Column("records", Integer, nullable=False),
    Column("tasks", Integer, nullable=False),
    Column("workflows", Integer, nullable=False),
    Column("objects", Integer, nullable=False),
    Column("rejects", Integer, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("loaded_at", DateTime, nullable=False),
    Column("load_seconds", Double),
    comment="The ledger: a batch whose hash is here is never loaded again.",
)

rejects = Table(
    "rejects",
    metadata,
    Column("batch_hash", Text, nullable=False),
    Column("lineno", Integer, nullable=False),
    Column("source", Text),
    Column("reason", Text, nullable=False),
    Column("raw", Text),
    Column("rejected_at", DateTime, nullable=False),
    PrimaryKeyConstraint("batch_hash", "lineno"),
    comment="Lines and records the loader set aside, with the reason.",
)

lineage_pending = Table(
    "lineage_pending",
    metadata,
    Column("task_id", Text, primary_key=True),
    comment="Tasks loaded since data lineage edges were last derived (lineage.py).",
)

# The id columns of the record tables: their indexed text columns (a test keeps the two in
# step). An id longer than a btree row takes is stored as its digest key, the original in the
# row's ``extra`` (``escape.stored_id``); so are the ids of task_edges and task_tags (edge ends,
# tags) and the task ids of the child tables, which hold the same values. An agent's name is
# one too: it is indexed (agents are looked up by name), as a task's activity_id is.
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "tasks": ("task_id", "workflow_id", "campaign_id", "activity_id", "parent_task_id"),
    "workflows": ("workflow_id", "campaign_id", "parent_workflow_id"),
    "data_objects": ("object_id", "task_id", "workflow_id"),
    "agents": ("agent_id", "name"),
}

# tables written per task, replaced when the task is merged again
TASK_CHILD_TABLES = ("task_values", "task_telemetry", "task_tags")
