"""Provenance record types with Flowcept's names: ``Status``, ``TaskObject``, ``WorkflowObject``,
``AgentObject``.

On the wire a record is a plain dict (``"type": "task" | "workflow" | "agent"``, times as float
epoch seconds). The object classes are thin views over such a dict, so wrapping a record costs
nothing and attribute writes land in the record that is published.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson

from provwh.core.serialize import dumps


class Status(StrEnum):
    """Execution status of a task or workflow (stored as its name)."""

    SUBMITTED = "SUBMITTED"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    UNKNOWN = "UNKNOWN"

    @staticmethod
    def get_finished_statuses() -> list[Status]:
        return [Status.FINISHED, Status.ERROR]


TASK_FIELDS: tuple[str, ...] = (
    "task_id",
    "workflow_id",
    "workflow_name",
    "campaign_id",
    "activity_id",
    "subtype",
    "parent_task_id",
    "agent_id",
    "source_agent_id",
    "group_id",
    "used",
    "generated",
    "data",
    "custom_metadata",
    "tags",
    "dependencies",
    "dependents",
    "submitted_at",
    "started_at",
    "ended_at",
    "registered_at",
    "utc_timestamp",
    "status",
    "stdout",
    "stderr",
    "telemetry_at_start",
    "telemetry_at_end",
    "adapter_id",
    "environment_id",
    "user",
    "login_name",
    "node_name",
    "hostname",
    "private_ip",
    "public_ip",
    "address",
    "mq_host",
)

WORKFLOW_FIELDS: tuple[str, ...] = (
    "workflow_id",
    "parent_workflow_id",
    "campaign_id",
    "name",
    "subtype",
    "agent_id",
    "used",
    "generated",
    "conf",
    "custom_metadata",
    "machine_info",
    "code_repository",
    "flowcept_settings",
    "flowcept_version",
    "interceptor_ids",
    "adapter_id",
    "environment_id",
    "extra_metadata",
    "user",
    "sys_name",
    "node_name",
    "hostname",
    "private_ip",
    "public_ip",
    "utc_timestamp",
    "started_at",
    "ended_at",
    "status",
)

# PROV-AGENT: an agent (an AI agent, a service acting for someone) that tasks and workflows
# name in their ``agent_id``. Flowcept's ``AgentObject`` fields.
AGENT_FIELDS: tuple[str, ...] = (
    "agent_id",
    "name",
    "user",
    "workflow_id",
    "campaign_id",
    "registered_at",
    "extra_metadata",
)
AGENT_TIME_FIELDS = ("registered_at",)

TASK_TIME_FIELDS = ("submitted_at", "started_at", "ended_at", "registered_at", "utc_timestamp")
WORKFLOW_TIME_FIELDS = ("utc_timestamp", "started_at", "ended_at")
TASK_DICT_FIELDS = (
    "used",
    "generated",
    "custom_metadata",
    "telemetry_at_start",
    "telemetry_at_end",
)


# -- what a record is ----------------------------------------------------------------------------


def task_record(
    task_id: Any, workflow_id: Any, campaign_id: Any, activity_id: Any, used: Any
) -> dict[str, Any]:
    """A new task record: every producer starts its records here, callers add the rest.

    ``type`` comes first, as readers find a line's kind from its first bytes
    (``transport.spool.iter_raw_lines``). Positional on purpose: this is on the capture path.
    """
    return {
        "type": "task",
        "task_id": task_id,
        "workflow_id": workflow_id,
        "campaign_id": campaign_id,
        "activity_id": activity_id,
        "used": used,
    }


TASK, WORKFLOW, OBJECT, AGENT = "task", "workflow", "object", "agent"

_WORKFLOW_ONLY = frozenset(
    (
        "name",
        "parent_workflow_id",
        "conf",
        "machine_info",
        "code_repository",
        "flowcept_settings",
        "flowcept_version",
        "interceptor_ids",
        "extra_metadata",
        "sys_name",
    )
)
_TASK_ONLY = frozenset(
    (
        "task_id",
        "activity_id",
        "parent_task_id",
        "telemetry_at_start",
        "telemetry_at_end",
        "submitted_at",
        "registered_at",
        "dependencies",
        "dependents",
        "stdout",
        "stderr",
        "group_id",
        "workflow_name",
    )
)
_ANY_TASK_FIELD = frozenset(TASK_FIELDS)
_TYPES = {TASK: TASK, WORKFLOW: WORKFLOW, OBJECT: OBJECT, "blob": OBJECT, AGENT: AGENT}


def record_kind(rec: dict[str, Any]) -> str | None:
    """``task``, ``workflow``, ``object`` or ``agent``; None when the record cannot be placed.

    An agent record always says ``"type": "agent"`` (Flowcept's ``AgentObject.to_dict``).
    """
    declared = rec.get("type")
    if type(declared) is str and declared in _TYPES:
        return _TYPES[declared]
    if "object_id" in rec:
        return OBJECT  # Flowcept's blob objects use ``type`` for their own category
    if declared is not None:
        return None
    keys = rec.keys()
    if not _TASK_ONLY.isdisjoint(keys):
        return TASK
    if not _WORKFLOW_ONLY.isdisjoint(keys):
        return WORKFLOW
    if not _ANY_TASK_FIELD.isdisjoint(keys):  # a Flowcept record of task fields alone
        return TASK
    return None


def merge_records(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Merge two parts of one record in place: later non-null fields win, dicts merge.

    Used wherever a task or workflow arrives in parts (a workflow's start record and its end
    update, a retried batch), so that each id yields one complete record.
    """
    for key, value in new.items():
        if value is None:
            continue
        prev = old.get(key)
        if isinstance(prev, dict) and isinstance(value, dict):
            merged = dict(prev)
            merged.update(value)
            old[key] = merged
        else:
            old[key] = value
    return old


class _Field:
    """Attribute stored in the record dict; reads as None when absent (also on the class)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return None
        return obj._record.get(self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        if value is None:
            obj._record.pop(self.name, None)
        else:
            if isinstance(value, Status):
                value = value.value
            obj._record[self.name] = value


class _RecordView:
    __slots__ = ("_record",)
    type: str = ""
    _fields: tuple[str, ...] = ()

    def __init__(self, **fields: Any) -> None:
        unknown = set(fields) - set(self._fields)
        if unknown:
            raise TypeError(f"unknown {self.type} field(s): {', '.join(sorted(unknown))}")
        rec: dict[str, Any] = {"type": self.type}
        for key, value in fields.items():
            if value is not None:
                rec[key] = value.value if isinstance(value, Status) else value
        object.__setattr__(self, "_record", rec)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for name in cls._fields:
            setattr(cls, name, _Field(name))

    @classmethod
    def _wrap(cls, record: dict[str, Any]):
        """A view over ``record`` itself (no copy): writes go to the record."""
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_record", record)
        return obj

    @classmethod
    def from_dict(cls, dict_obj: dict[str, Any]):
        rec = {k: v for k, v in dict_obj.items() if v is not None}
        rec["type"] = cls.type
        return cls._wrap(rec)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._record)

    def serialize(self) -> bytes:
        return dumps(self._record)

    @classmethod
    def deserialize(cls, serialized_data: bytes | str):
        return cls.from_dict(orjson.loads(serialized_data))

    def enrich(self, adapter_key: str | None = None) -> None:
        """Add the host identity fields (user, hostname, ...) that are missing."""
        from provwh.core.host import host_identity

        if adapter_key is not None and "adapter_id" not in self._record:
            self._record["adapter_id"] = adapter_key
        for key, value in host_identity().items():
            if key in self._fields and value is not None:
                self._record.setdefault(key, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other._record == self._record

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._record.items() if k != "type")
        return f"{type(self).__name__}({inner})"

    def __str__(self) -> str:
        return self.__repr__()


class TaskObject(_RecordView):
    """One provenance task (Flowcept's ``TaskObject`` fields)."""

    __slots__ = ()
    type = "task"
    _fields = TASK_FIELDS

    @staticmethod
    def task_id_field() -> str:
        return "task_id"

    @staticmethod
    def workflow_id_field() -> str:
        return "workflow_id"

    @staticmethod
    def get_time_field_names() -> list[str]:
        return list(TASK_TIME_FIELDS)

    @staticmethod
    def get_dict_field_names() -> list[str]:
        return list(TASK_DICT_FIELDS)

    @staticmethod
    def enrich_task_dict(task_dict: dict[str, Any]) -> dict[str, Any]:
        """Fill missing host identity fields of a task record in place."""
        TaskObject._wrap(task_dict).enrich()
        return task_dict

    @staticmethod
    def from_dict(task_obj_dict: dict[str, Any]) -> TaskObject:  # noqa: D102
        return _RecordView.from_dict.__func__(TaskObject, task_obj_dict)


class WorkflowObject(_RecordView):
    """One provenance workflow (Flowcept's ``WorkflowObject`` fields)."""

    __slots__ = ()
    type = "workflow"
    _fields = WORKFLOW_FIELDS
    # Flowcept's agent schema snapshot: a field of the record (kept in the table's ``extra``)
    workflow_domain_data_schema = _Field("workflow_domain_data_schema")

    def __init__(self, workflow_id=None, name=None, used=None, generated=None, **fields: Any):
        super().__init__(
            workflow_id=workflow_id, name=name, used=used, generated=generated, **fields
        )

    @staticmethod
    def workflow_id_field() -> str:
        return "workflow_id"

    def workflow_is_finished(self) -> bool:
        """Whether the workflow has ended: status FINISHED or ERROR (without a status, an
        ``ended_at``)."""
        status = self._record.get("status")
        if status is None:
            return self._record.get("ended_at") is not None
        return status in (Status.FINISHED.value, Status.ERROR.value)

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict, secrets in ``flowcept_settings`` (passwords, tokens, URL
        passwords) hidden."""
        out = dict(self._record)
        if out.get("flowcept_settings") is not None:
            from provwh.core.redact import redact

            out["flowcept_settings"] = redact(out["flowcept_settings"])
        return out

    @staticmethod
    def from_dict(dict_obj: dict[str, Any]) -> WorkflowObject:  # noqa: D102
        return _RecordView.from_dict.__func__(WorkflowObject, dict_obj)


class AgentObject(_RecordView):
    """One agent (PROV-AGENT): Flowcept's ``AgentObject`` fields.

    ``AgentObject(agent_id, name)``; ``registered_at`` is set when it is made (float epoch
    seconds, as every provwh time). Tasks and workflows name their agent in ``agent_id``.
    """

    __slots__ = ()
    type = "agent"
    _fields = AGENT_FIELDS

    def __init__(
        self,
        agent_id: Any = None,
        name: Any = None,
        workflow_id: Any = None,
        campaign_id: Any = None,
        **fields: Any,
    ) -> None:
        if "registered_at" not in fields:
            from time import time

            fields["registered_at"] = time()
        super().__init__(
            agent_id=None if agent_id is None else str(agent_id),
            name=name,
            workflow_id=workflow_id,
            campaign_id=campaign_id,
            **fields,
        )

    @staticmethod
    def agent_id_field() -> str:
        return "agent_id"

    def enrich(self, adapter_key: str | None = None) -> None:
        """Set ``user`` (the login name) when missing."""
        if self._record.get("user") is None:
            from provwh.core.host import host_identity

            user = host_identity().get("user")
            if user is not None:
                self._record["user"] = user

    @staticmethod
    def from_dict(dict_obj: dict[str, Any]) -> AgentObject:  # noqa: D102
        return _RecordView.from_dict.__func__(AgentObject, dict_obj)
