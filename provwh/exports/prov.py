"""W3C PROV export (PROV-JSON, PROV-N) of one workflow, written without the ``prov`` package.

Mapping: a task is an activity; a used / generated leaf value, keyed by its
``value_hash``, is an entity declared once however many tasks touch it; ``used`` and
``wasGeneratedBy`` carry the key path as ``prov:role``; task edges are ``wasInformedBy``
(``provwh:kind`` = parent | dependency | data); the task's user and host are agents linked by
``wasAssociatedWith``. The output reads back with ``prov.model.ProvDocument.deserialize``.
Tasks are named by their ids as stored (``warehouse.escape``: a long id is its digest key, so
names stay short); ``provwh:task_id`` and ``prov:label`` hold the whole ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote

from provwh.exports import common
from provwh.exports.source import ExportError, Source
from provwh.warehouse.escape import stored_id

PREFIXES = {
    "provwh": "urn:provwh:ns#",
    "task": "urn:provwh:task:",
    "value": "urn:provwh:value:",
    "user": "urn:provwh:user:",
    "host": "urn:provwh:host:",
}
FORMATS = ("json", "provn")


@dataclass(frozen=True)
class Typed:
    """A literal with an XSD (or qualified name) type."""

    lexical: str
    type: str


@dataclass
class ProvCounts:
    """What an export wrote (for its summary line)."""

    activities: int = 0
    entities: int = 0
    agents: int = 0
    relations: dict[str, int] = field(default_factory=dict)

    def count(self, relation: str) -> int:
        return self.relations.get(relation, 0)


def qname(prefix: str, local: str) -> str:
    """A qualified name whose local part is valid in PROV-N whatever the id holds."""
    text = quote(str(local), safe="-_~")
    if text[:1] in ("-", "."):
        text = f"%{ord(text[0]):02X}{text[1:]}"
    if text.endswith("."):
        text = text[:-1] + "%2E"
    return f"{prefix}:{text}"


def _value_id(value_hash: int) -> str:
    return f"value:v{value_hash & 0xFFFFFFFFFFFFFFFF:016x}"


def _literal(row: dict[str, Any]) -> Any:
    kind = row["value_type"]
    if kind == "null":
        return None
    if kind == "str":
        return row["value_text"] or ""
    if kind == "bool":
        return Typed("true" if row["value_bool"] else "false", "xsd:boolean")
    if kind == "int":
        text = row["value_text"] if row["value_text"] is not None else str(int(row["value_num"]))
        return Typed(text, "xsd:long")
    if kind == "float":
        num = row["value_num"]
        text = "NaN" if num != num else "INF" if num == float("inf") else "-INF" if (
            num == float("-inf")) else repr(num)  # fmt: skip
        return Typed(text, "xsd:double")
    return row["value_json"] or row["value_text"] or ""  # list, dict, bytes: their JSON


# --- what the document holds, read a chunk at a time ----------------------------------------------

Item = tuple[str, dict[str, Any]]  # (identifier or relation fields, attributes)


def _activities(src: Source, workflow_id: str, wf: dict, agents: dict) -> Iterator[Item]:
    """One activity per task, in start order; the agents they name are collected."""
    for t in src.iter_dicts(_TASKS, [stored_id(workflow_id)]):
        ids = common.escaped_ids(src, t, ("task_id", "activity_id"))  # not digest keys
        attrs: dict[str, Any] = {"prov:label": ids["activity_id"] or ids["task_id"]}
        attrs["provwh:task_id"] = ids["task_id"]
        attrs["provwh:workflow_id"] = workflow_id
        if t["status"]:
            attrs["provwh:status"] = t["status"]
        start, end = common.iso(t["started_at"]), common.iso(t["ended_at"])
        for prefix, who, kind in _agents_of(t, wf):
            agents.setdefault(qname(prefix, who), {"prov:type": Typed(kind, "prov:QUALIFIED_NAME"),
                                                   "prov:label": who})  # fmt: skip
        yield qname("task", t["task_id"]), {"start": start, "end": end, **attrs}


def _agents_of(t: dict, wf: dict) -> Iterator[tuple[str, str, str]]:
    for prefix, who, kind in (
        ("user", t["user"] or wf.get("user"), "prov:Person"),
        ("host", t["hostname"] or wf.get("hostname"), "prov:SoftwareAgent"),
    ):
        if who:
            yield prefix, who, kind


def _associations(src: Source, workflow_id: str, wf: dict) -> Iterator[Item]:
    for t in src.iter_dicts(_TASKS, [stored_id(workflow_id)]):
        for prefix, who, _kind in _agents_of(t, wf):
            fields = {
                "prov:activity": qname("task", t["task_id"]),
                "prov:agent": qname(prefix, who),
            }
            yield fields, {"prov:role": prefix}  # type: ignore[misc]


def _entities(src: Source, workflow_id: str) -> Iterator[Item]:
    """Each value once (its first row in task, direction, key order), in hash order, read a
    range of hashes at a time: deduplicating all of them at once held every row."""
    (total,) = src.rows(
        f"SELECT count(*) FROM task_values v WHERE {_IN_WORKFLOW}", [stored_id(workflow_id)]
    )[0]
    ranges = max(1, -(-total // _ENTITY_ROWS))
    step = -(-_HASH_END // ranges)
    sql = _ENTITIES.format(json=src.json_text("v.value_json"))
    for low in range(0, _HASH_END, step):
        for row in src.iter_dicts(sql, [stored_id(workflow_id), low, low + step]):
            attrs = {"provwh:value_type": row["value_type"]}
            value = _literal(row)
            if value is not None:
                attrs["prov:value"] = value
            yield _value_id(row["value_hash"]), attrs


def _uses(src: Source, workflow_id: str, direction: str) -> Iterator[Item]:
    for row in src.iter_dicts(_VALUES, [stored_id(workflow_id), direction]):
        activity, entity = qname("task", row["task_id"]), _value_id(row["value_hash"])
        if direction == "used":
            fields = {"prov:activity": activity, "prov:entity": entity}
        else:
            fields = {"prov:entity": entity, "prov:activity": activity}
        yield fields, {"prov:role": row["key_path"]}  # type: ignore[misc]


def _informs(src: Source, workflow_id: str) -> Iterator[Item]:
    for src_id, dst_id, kind in common.task_edges(src, workflow_id):
        fields = {"prov:informed": qname("task", dst_id), "prov:informant": qname("task", src_id)}
        yield fields, {"provwh:kind": kind}  # type: ignore[misc]


_TASKS = (
    'SELECT task_id, activity_id, status, started_at, ended_at, "user", hostname FROM tasks'
    " WHERE workflow_id = %s ORDER BY started_at NULLS LAST, task_id"
)
_IN_WORKFLOW = "v.task_id IN (SELECT task_id FROM tasks WHERE workflow_id = %s)"
_ENTITIES = (
    "SELECT DISTINCT ON (v.value_hash) v.value_hash, v.value_type, v.value_text, v.value_num,"
    " v.value_bool, {json} AS value_json FROM task_values v WHERE " + _IN_WORKFLOW +
    " AND v.value_hash >= %s AND v.value_hash < %s"
    " ORDER BY v.value_hash, v.task_id, v.direction, v.ordinal"
)  # fmt: skip
_HASH_END = 2**60  # value hashes are 60-bit, never negative (values.value_hash)
_ENTITY_ROWS = 50_000  # value rows per range of hashes
_VALUES = (
    "SELECT v.task_id, v.key_path, v.value_hash FROM task_values v WHERE " + _IN_WORKFLOW +
    " AND v.direction = %s ORDER BY v.task_id, v.ordinal"
)  # fmt: skip


# --- PROV-JSON -----------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, Typed):
        return {"$": value.lexical, "type": value.type}
    return value


class _JsonOut:
    """PROV-JSON written section by section: one object per line, never the whole document."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def begin(self) -> None:
        self.out.write('{"prefix": ' + json.dumps(PREFIXES))

    def declarations(self, key: str, items: Iterable[Item]) -> int:
        n = 0
        for ident, attrs in items:
            if key == "activity":
                body = {k: _json_value(v) for k, v in attrs.items() if k not in ("start", "end")}
                if attrs["start"]:
                    body["prov:startTime"] = attrs["start"]
                if attrs["end"]:
                    body["prov:endTime"] = attrs["end"]
            else:
                body = {k: _json_value(v) for k, v in attrs.items()}
            self._item(key, n, json.dumps(ident, ensure_ascii=False), body)
            n += 1
        if n:
            self.out.write("\n }")
        return n

    def relations(self, relation: str, items: Iterable[Item]) -> int:
        n = 0
        for fields, attrs in items:
            body = {**fields, **{k: _json_value(v) for k, v in attrs.items()}}  # type: ignore[dict-item]
            self._item(relation, n, f'"_:{relation}{n + 1}"', body)
            n += 1
        if n:
            self.out.write("\n }")
        return n

    def _item(self, key: str, n: int, ident: str, body: dict) -> None:
        head = f',\n "{key}": {{\n  ' if n == 0 else ",\n  "
        self.out.write(f"{head}{ident}: {json.dumps(body, ensure_ascii=False)}")

    def end(self) -> None:
        self.out.write("\n}\n")


# --- PROV-N --------------------------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _provn_value(value: Any) -> str:
    if isinstance(value, Typed):
        if value.type == "prov:QUALIFIED_NAME":
            return f"'{value.lexical}'"
        return f'"{_escape(value.lexical)}" %% {value.type}'
    return f'"{_escape(str(value))}"'


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in text)


def _attrs(attrs: dict[str, Any]) -> str:
    return "[" + ", ".join(f"{k}={_provn_value(v)}" for k, v in attrs.items()) + "]"


_ORDER = {
    "used": ("prov:activity", "prov:entity", None),
    "wasGeneratedBy": ("prov:entity", "prov:activity", None),
    "wasInformedBy": ("prov:informed", "prov:informant"),
    "wasAssociatedWith": ("prov:activity", "prov:agent", None),
}


class _ProvnOut:
    """PROV-N, a line per statement."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def begin(self) -> None:
        lines = ["document", *(f"  prefix {p} <{uri}>" for p, uri in PREFIXES.items()), ""]
        self.out.write("\n".join(lines) + "\n")

    def declarations(self, key: str, items: Iterable[Item]) -> int:
        n = 0
        for ident, attrs in items:
            if key == "activity":
                rest = {k: v for k, v in attrs.items() if k not in ("start", "end")}
                start, end = attrs["start"] or "-", attrs["end"] or "-"
                self.out.write(f"  activity({ident}, {start}, {end}, {_attrs(rest)})\n")
            else:
                self.out.write(f"  {key}({ident}, {_attrs(attrs)})\n")
            n += 1
        return n

    def relations(self, relation: str, items: Iterable[Item]) -> int:
        n = 0
        for fields, attrs in items:
            args = [fields[k] if k else "-" for k in _ORDER[relation]]  # type: ignore[index]
            self.out.write(f"  {relation}({', '.join(args)}, {_attrs(attrs)})\n")
            n += 1
        return n

    def end(self) -> None:
        self.out.write("endDocument\n")


def export_prov(src: Source, workflow_id: str, out: TextIO, format: str = "json") -> ProvCounts:
    """Write the workflow as PROV-JSON or PROV-N to ``out``, section by section (the rows
    are read as they are written: memory does not grow with the workflow); the counts."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    key = stored_id(workflow_id)  # as stored, like common's queries
    wf = common.workflow_row(src, workflow_id)
    if wf is None and not src.rows("SELECT 1 FROM tasks WHERE workflow_id = %s LIMIT 1", [key]):
        raise ExportError(f"{src.name}: no workflow {workflow_id!r}")
    wf = wf or {}
    writer = _JsonOut(out) if format == "json" else _ProvnOut(out)
    counts, agents = ProvCounts(), {}
    writer.begin()
    counts.activities = writer.declarations("activity", _activities(src, workflow_id, wf, agents))
    counts.entities = writer.declarations("entity", _entities(src, workflow_id))
    counts.agents = writer.declarations("agent", iter(agents.items()))
    for relation, items in (
        ("wasAssociatedWith", _associations(src, workflow_id, wf)),
        ("used", _uses(src, workflow_id, "used")),
        ("wasGeneratedBy", _uses(src, workflow_id, "generated")),
        ("wasInformedBy", _informs(src, workflow_id)),
    ):
        counts.relations[relation] = writer.relations(relation, items)
    writer.end()
    return counts
