"""W3C PROV export (PROV-JSON, PROV-N) of one workflow, written without the ``prov`` package.

Mapping: a task is an activity; a used / generated leaf value, keyed by its
``value_hash``, is an entity declared once however many tasks touch it; ``used`` and
``wasGeneratedBy`` carry the key path as ``prov:role``; task edges are ``wasInformedBy``
(``provwh:kind`` = parent | dependency | data); the task's user and host are agents linked by
``wasAssociatedWith``. The output reads back with ``prov.model.ProvDocument.deserialize``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from provwh.exports import common
from provwh.exports.source import Source

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
class ProvDoc:
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (relation, {PROV-JSON field: value}, extra attributes)
    relations: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    def count(self, relation: str) -> int:
        return sum(1 for r in self.relations if r[0] == relation)


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


def build(src: Source, workflow_id: str) -> ProvDoc:
    """The PROV document of one workflow, read from the warehouse."""
    doc = ProvDoc()
    wf = common.workflow_row(src, workflow_id) or {}
    tasks = common.workflow_tasks(src, workflow_id)
    ids = {t["task_id"]: qname("task", t["task_id"]) for t in tasks}
    for t in tasks:
        attrs: dict[str, Any] = {"prov:label": t["activity_id"] or t["task_id"]}
        attrs["provwh:task_id"] = t["task_id"]
        attrs["provwh:workflow_id"] = workflow_id
        if t["status"]:
            attrs["provwh:status"] = t["status"]
        start, end = common.iso(t["started_at"]), common.iso(t["ended_at"])
        doc.activities[ids[t["task_id"]]] = {"start": start, "end": end, **attrs}
        for prefix, who, kind in (
            ("user", t["user"] or wf.get("user"), "prov:Person"),
            ("host", t["hostname"] or wf.get("hostname"), "prov:SoftwareAgent"),
        ):
            if who:
                agent = qname(prefix, who)
                doc.agents.setdefault(agent, {"prov:type": Typed(kind, "prov:QUALIFIED_NAME"),
                                              "prov:label": who})  # fmt: skip
                doc.relations.append(
                    (
                        "wasAssociatedWith",
                        {"prov:activity": ids[t["task_id"]], "prov:agent": agent},
                        {"prov:role": prefix},
                    )
                )
    for row in common.task_values(src, workflow_id):
        entity = _value_id(row["value_hash"])
        if entity not in doc.entities:
            attrs = {"provwh:value_type": row["value_type"]}
            value = _literal(row)
            if value is not None:
                attrs["prov:value"] = value
            doc.entities[entity] = attrs
        activity = ids[row["task_id"]]
        if row["direction"] == "used":
            fields = {"prov:activity": activity, "prov:entity": entity}
            doc.relations.append(("used", fields, {"prov:role": row["key_path"]}))
        else:
            fields = {"prov:entity": entity, "prov:activity": activity}
            doc.relations.append(("wasGeneratedBy", fields, {"prov:role": row["key_path"]}))
    for src_id, dst_id, kind in common.task_edges(src, workflow_id):
        fields = {"prov:informed": qname("task", dst_id), "prov:informant": qname("task", src_id)}
        doc.relations.append(("wasInformedBy", fields, {"provwh:kind": kind}))
    return doc


# --- PROV-JSON -----------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, Typed):
        return {"$": value.lexical, "type": value.type}
    return value


def to_json(doc: ProvDoc) -> dict[str, Any]:
    out: dict[str, Any] = {"prefix": dict(PREFIXES)}
    if doc.activities:
        out["activity"] = {}
        for ident, attrs in doc.activities.items():
            body = {k: _json_value(v) for k, v in attrs.items() if k not in ("start", "end")}
            if attrs["start"]:
                body["prov:startTime"] = attrs["start"]
            if attrs["end"]:
                body["prov:endTime"] = attrs["end"]
            out["activity"][ident] = body
    for key, items in (("entity", doc.entities), ("agent", doc.agents)):
        if items:
            out[key] = {i: {k: _json_value(v) for k, v in a.items()} for i, a in items.items()}
    counters: dict[str, int] = {}
    for relation, fields, attrs in doc.relations:
        counters[relation] = counters.get(relation, 0) + 1
        body = {**fields, **{k: _json_value(v) for k, v in attrs.items()}}
        out.setdefault(relation, {})[f"_:{relation}{counters[relation]}"] = body
    return out


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


def to_provn(doc: ProvDoc) -> str:
    lines = ["document"]
    lines += [f"  prefix {p} <{uri}>" for p, uri in PREFIXES.items()]
    lines.append("")
    for ident, attrs in doc.activities.items():
        rest = {k: v for k, v in attrs.items() if k not in ("start", "end")}
        lines.append(
            f"  activity({ident}, {attrs['start'] or '-'}, {attrs['end'] or '-'}, {_attrs(rest)})"
        )
    for ident, attrs in doc.entities.items():
        lines.append(f"  entity({ident}, {_attrs(attrs)})")
    for ident, attrs in doc.agents.items():
        lines.append(f"  agent({ident}, {_attrs(attrs)})")
    for relation, fields, attrs in doc.relations:
        args = [fields[k] if k else "-" for k in _ORDER[relation]]
        lines.append(f"  {relation}({', '.join(args)}, {_attrs(attrs)})")
    lines.append("endDocument")
    return "\n".join(lines) + "\n"


def export_prov(src: Source, workflow_id: str, format: str = "json") -> tuple[str, ProvDoc]:
    """The workflow as PROV-JSON or PROV-N text, and the document (for counts)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    doc = build(src, workflow_id)
    if format == "json":
        return json.dumps(to_json(doc), indent=1, ensure_ascii=False) + "\n", doc
    return to_provn(doc), doc
