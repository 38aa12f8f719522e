"""Records -> row sets: the one place that decides what a record becomes in the warehouse.

``normalize_chunk`` parses a chunk's lines, sets aside what cannot be loaded (with the reason),
infers kinds and ids, merges the parts of one task or workflow found in the batch (later
non-null fields win, nested dicts merge: ``model.merge_records``), and builds the rows of every
table. ``build_rows`` does the last step for any set of records, so the loader can rebuild the
rows of a task merged with the version already in a database. ``record_from_row`` goes back
from a stored row to the record.

Rows are tuples in table column order; times are integer microseconds (see ``times``), JSON
documents are JSON text. Ids are as their columns hold them (``escape.id_key``: a long one is its
digest key, the original in ``extra``), and so are the keys of ``Normalized``'s records. A task
or workflow row ends with ``loaded_at`` left None: the engine writing the row sets it to its
transaction's time (``schema.LOADED_AT``).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from provwh.core.ids import agent_id_for
from provwh.core.model import merge_records
from provwh.core.serialize import dumps_exact, loads_exact, loads_nonfinite
from provwh.core.text import first_line
from provwh.warehouse import ids
from provwh.warehouse.escape import (
    NUL_MARKER,
    SHORT_ID,
    escape_nul,
    escaped_marker,
    id_key,
    is_nul_marker,
)
from provwh.warehouse.reader import Chunk
from provwh.warehouse.schema import (
    AGENT_COLUMNS,
    ID_COLUMNS,
    JSONDOC,
    LOADED_AT,
    OBJECT_FIELDS,
    TASK_CHILD_TABLES,
    TASK_COLUMNS,
    TEXT,
    TIME,
    WORKFLOW_COLUMNS,
    agents,
    tasks,
    workflows,
)
from provwh.warehouse.telemetry import telemetry_values
from provwh.warehouse.times import datetime_to_epoch, to_micros
from provwh.warehouse.values import explode

_dumps = orjson.dumps
_NUL_ESCAPE = b"\\u0000"  # in the JSON of a NUL, and of the text an escaped NUL is
_NUL_KEY = b'"$nul"'  # a user's dict shaped like the NUL marker
MAX_REJECT_RAW = 10_000  # characters of a rejected line kept in the rejects table


def _json(value: Any) -> str:
    try:
        return _dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits: written exactly
        return dumps_exact(value).decode()


@dataclass
class RowSet:
    """Rows per table, in each table's column order."""

    tasks: list[tuple] = field(default_factory=list)
    task_values: list[tuple] = field(default_factory=list)
    task_telemetry: list[tuple] = field(default_factory=list)
    task_tags: list[tuple] = field(default_factory=list)
    task_edges: list[tuple] = field(default_factory=list)
    workflows: list[tuple] = field(default_factory=list)
    data_objects: list[tuple] = field(default_factory=list)
    agents: list[tuple] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(rows) for rows in vars(self).values())


@dataclass
class Reject:
    lineno: int
    reason: str
    raw: str


@dataclass
class Normalized:
    """A chunk ready to load: merged records by id, their rows, and the rejects."""

    chunk: Chunk
    records: int = 0
    tasks: dict[str, dict] = field(default_factory=dict)
    workflows: dict[str, dict] = field(default_factory=dict)
    objects: dict[tuple[str, int], dict] = field(default_factory=dict)
    agents: dict[str, dict] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    rows: RowSet = field(default_factory=RowSet)
    first_line: dict[Any, int] = field(default_factory=dict)  # record key -> its first line
    parts: list[Normalized] = field(default_factory=list)  # the chunks of a combined write
    # set by ``workers``: the task tables' rows encoded for the engine, {table: (rows, COPY
    # text or Arrow table)}; the task records are then left out (``tasks`` maps ids to None)
    # and ``chunk.lines`` kept, to parse again where a task must be merged
    encoded: dict[str, tuple[int, Any]] | None = None
    # the workflow ids of the encoded tasks (their rows are bytes then): set with ``encoded``
    task_workflows: set[str] = field(default_factory=set)

    def members(self) -> list[Normalized]:
        """The chunks this write stands for (itself, or the chunks it combines)."""
        return self.parts or [self]

    def row_count(self) -> int:
        encoded = sum(n for n, _ in self.encoded.values()) if self.encoded else 0
        return self.rows.count() + encoded


def _raw_text(raw: bytes, whole: bool = False) -> str:
    text = raw.decode("utf-8", "backslashreplace")
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    return text if whole else text[:MAX_REJECT_RAW]


# --- one chunk -----------------------------------------------------------------------------


def normalize_chunk(chunk: Chunk) -> Normalized:
    """A chunk's records, merged and as rows. Never raises for a record: whatever one record
    cannot become (invalid JSON, nested too deep, a value no column takes) is a reject with
    its line and the reason, and the rest of the chunk loads."""
    out = Normalized(chunk)
    maker = ids.IdMaker()
    loads = loads_exact
    for lineno, raw in chunk.lines:
        out.records += 1
        try:
            rec = loads(raw)  # integers beyond 64 bits exact
        except orjson.JSONDecodeError as exc:
            rec = loads_nonfinite(raw)  # NaN / Infinity literals (Python's json writes them)
            if rec is None:
                out.rejects.append(Reject(lineno, f"invalid JSON: {exc}", _raw_text(raw)))
                continue
        if type(rec) is not dict:
            reason = f"not a JSON object: {type(rec).__name__}"
            out.rejects.append(Reject(lineno, reason, _raw_text(raw)))
            continue
        try:
            if _NUL_ESCAPE in raw or _NUL_KEY in raw:
                rec = escape_nul(rec)
            reason = _place(rec, raw, lineno, maker, out)
        except Exception as exc:  # e.g. a record too deep to merge: it alone is set aside
            reason = failure_reason(exc)
        if reason:
            out.rejects.append(Reject(lineno, reason, _raw_text(raw)))
    _build_all(out)
    return out


# orjson writes documents up to this many levels deep (its dumps raises beyond)
MAX_JSON_DEPTH = 254


def failure_reason(exc: BaseException) -> str:
    """A reject's reason for a record normalizing raised on."""
    text = first_line(exc)
    if isinstance(exc, RecursionError) or (
        isinstance(exc, TypeError) and text == "Recursion limit reached"
    ):
        return (
            f"record nested too deep: more than {MAX_JSON_DEPTH} levels of dicts and lists"
            " cannot be stored"
        )
    return f"cannot normalize record: {type(exc).__name__}: {text}"


def _key_text(value: Any) -> str | None:
    """An id as text: strings as they are, numbers as written; None if unusable."""
    t = type(value)
    if t is str:
        return value if value else None
    if t is int or t is float:
        return repr(value) if t is float else str(value)
    if is_nul_marker(value):
        return value[NUL_MARKER]
    return None


def _place(rec: dict, raw: bytes, lineno: int, maker: ids.IdMaker, out: Normalized) -> str | None:
    """File the record under its kind and id (merging parts); returns a reject reason."""
    kind = ids.record_kind(rec)
    if kind is None:
        declared = rec.get("type")
        if declared is not None:
            return f"unsupported record type {declared!r}"
        return "cannot tell the record type: no 'type' and no task or workflow fields"
    if kind == ids.TASK:
        key_field, store = "task_id", out.tasks
    elif kind == ids.WORKFLOW:
        key_field, store = "workflow_id", out.workflows
    elif kind == ids.AGENT:
        key_field, store = "agent_id", out.agents
        if rec.get("agent_id") is None and type(rec.get("name")) is str:
            rec["agent_id"] = agent_id_for(rec["name"])  # as Flowcept(agent_name=...) names it
    else:
        return _place_object(rec, raw, lineno, maker, out)
    value = rec.get(key_field)
    if value is None:
        key = maker.make(kind, raw)
        rec[key_field] = key
    else:
        key = _key_text(value)
        if key is None:
            return f"{key_field} must be a non-empty string, got {type(value).__name__}"
        if type(value) is not str and not is_nul_marker(value):
            rec[key_field] = key
        key = id_key(key)  # as the id column holds it
    prev = store.get(key)
    if prev is None:
        store[key] = rec
        out.first_line[key] = lineno
    else:
        merge_records(prev, rec)
    return None


def _place_object(
    rec: dict, raw: bytes, lineno: int, maker: ids.IdMaker, out: Normalized
) -> str | None:
    rec = dict(rec)
    category = rec.pop("type", None)
    if category not in (None, "object", "blob"):
        rec.setdefault("object_type", category)
    oid = rec.get("object_id")
    if oid is None:
        oid = rec["object_id"] = maker.make(ids.OBJECT, raw)
    else:
        oid = _key_text(oid)
        if oid is None:
            return "object_id must be a non-empty string"
        rec["object_id"] = oid
    version = rec.get("version", 0)
    if type(version) is str and version.strip().lstrip("-").isdigit():
        version = int(version)
    if type(version) is not int or not -(2**31) <= version < 2**31:
        return f"object version must be an integer, got {version!r}"
    rec["version"] = version
    key = (id_key(oid), version)  # as the table's key holds it
    prev = out.objects.get(key)
    if prev is None:
        out.objects[key] = rec
        out.first_line[key] = lineno
    else:
        merge_records(prev, rec)
    return None


def _build_all(out: Normalized) -> None:
    """Rows for every record; a record whose rows cannot be built is rejected instead."""
    lists = list(vars(out.rows).values())
    for store, builder in (
        (out.tasks, task_rows),
        (out.workflows, workflow_rows),
        (out.objects, object_rows),
        (out.agents, agent_rows),
    ):
        bad = []
        for key, rec in store.items():
            marks = [len(rows) for rows in lists]
            try:
                builder(rec, out.rows)
            except Exception as exc:  # a record we cannot represent must not stop the batch
                for rows, mark in zip(lists, marks, strict=True):
                    del rows[mark:]
                bad.append(key)
                lineno = out.first_line.get(key, 0)
                raw = record_raw(rec, out.chunk, lineno)
                out.rejects.append(Reject(lineno, failure_reason(exc), raw))
        for key in bad:
            del store[key]


def record_raw(rec: dict, chunk: Chunk, lineno: int, whole: bool = False) -> str:
    """A reject's ``raw`` for a record (merged from its parts): its JSON, or when it cannot be
    written (nested too deep), the line it was first found on. Cut to ``MAX_REJECT_RAW``
    characters unless ``whole`` (the rejects table cuts it then; a rejects file keeps it)."""
    try:
        text = _dumps(rec, default=str).decode()
    except (TypeError, ValueError, RecursionError):
        text = next((_raw_text(raw, whole) for n, raw in chunk.lines if n == lineno), "")
    return text if whole else text[:MAX_REJECT_RAW]


def combine(parts: list[Normalized]) -> Normalized:
    """Several chunks written as one: records merged across them in order, rows joined.

    Rows of records found in more than one chunk are rebuilt from the merged record, and the
    declared edges from all records, as if the chunks had been one batch.
    """
    if len(parts) == 1:
        return parts[0]
    if any(p.encoded is not None for p in parts) and not _encoded_apart(parts):
        # a task in two chunks must be merged, from its records: parse those chunks here
        parts = [normalize_chunk(p.chunk) if p.encoded is not None else p for p in parts]
    out = Normalized(parts[0].chunk, parts=list(parts))
    dups: dict[str, set] = {"tasks": set(), "workflows": set(), "objects": set(), "agents": set()}
    for part in parts:
        out.records += part.records
        for attr, keys in dups.items():
            store, mine = getattr(out, attr), getattr(part, attr)
            for key, rec in mine.items():
                prev = store.get(key)
                if prev is None:
                    store[key] = rec
                else:
                    store[key] = merge_records(dict(prev), rec)
                    keys.add(key)
        for name, rows in vars(part.rows).items():
            getattr(out.rows, name).extend(rows)
    rows = out.rows
    if dups["tasks"]:
        gone = dups["tasks"]
        for name in ("tasks", *TASK_CHILD_TABLES):
            setattr(rows, name, [r for r in getattr(rows, name) if r[0] not in gone])
        rebuilt = build_rows(ids.TASK, [out.tasks[k] for k in gone])
        for name in ("tasks", *TASK_CHILD_TABLES):
            getattr(rows, name).extend(getattr(rebuilt, name))
        edges: set[tuple[str, str, str]] = set()
        for rec in out.tasks.values():
            edges |= declared_edges(rec)
        rows.task_edges = sorted(edges)
    if dups["workflows"]:
        rows.workflows = [r for r in rows.workflows if r[0] not in dups["workflows"]]
        rows.workflows += build_rows(
            ids.WORKFLOW, [out.workflows[k] for k in dups["workflows"]]
        ).workflows
    if dups["objects"]:
        rows.data_objects = [r for r in rows.data_objects if (r[0], r[1]) not in dups["objects"]]
        rows.data_objects += build_rows(
            ids.OBJECT, [out.objects[k] for k in dups["objects"]]
        ).data_objects
    if dups["agents"]:
        rows.agents = [r for r in rows.agents if r[0] not in dups["agents"]]
        rows.agents += build_rows(ids.AGENT, [out.agents[k] for k in dups["agents"]]).agents
    if parts[0].encoded is not None:
        out.encoded = _join_encoded([p.encoded for p in parts])
        out.task_workflows = set().union(*(p.task_workflows for p in parts))
    return out


def _encoded_apart(parts: list[Normalized]) -> bool:
    """Every part encoded, and no task in two of them: the encoded rows can just be joined."""
    if any(p.encoded is None for p in parts):
        return False
    return len(set().union(*(p.tasks for p in parts))) == sum(len(p.tasks) for p in parts)


def _join_encoded(encoded: list[dict[str, tuple[int, Any]]]) -> dict[str, tuple[int, Any]]:
    out: dict[str, tuple[int, Any]] = {}
    for table in dict.fromkeys(t for e in encoded for t in e):
        pieces = [e[table] for e in encoded if table in e]
        payloads = [p for _, p in pieces]
        if isinstance(payloads[0], bytes):
            joined = b"".join(payloads)
        else:  # Arrow tables
            import pyarrow as pa

            joined = pa.concat_tables(payloads)
        out[table] = (sum(n for n, _ in pieces), joined)
    return out


def build_rows(kind: str, records: list[dict]) -> RowSet:
    """Rows for already-merged records of one kind (``task``, ``workflow``, ``object``,
    ``agent``)."""
    rows = RowSet()
    builder = {
        ids.TASK: task_rows,
        ids.WORKFLOW: workflow_rows,
        ids.OBJECT: object_rows,
        ids.AGENT: agent_rows,
    }[kind]
    for rec in records:
        builder(rec, rows)
    return rows


# --- record -> row ---------------------------------------------------------------------------


ID = "id"  # a text column holding ids (schema.ID_COLUMNS): a long one is its digest key


def _index(spec: tuple[tuple[str, str], ...], ids: tuple[str, ...]) -> dict[str, tuple[int, str]]:
    index = {name: (i, ID if name in ids else kind) for i, (name, kind) in enumerate(spec)}
    assert all(dict(spec)[name] is TEXT for name in ids), ids
    return index


_TASK_INDEX = _index(TASK_COLUMNS, ID_COLUMNS["tasks"])
_WORKFLOW_INDEX = _index(WORKFLOW_COLUMNS, ID_COLUMNS["workflows"])
_AGENT_INDEX = _index(AGENT_COLUMNS, ID_COLUMNS["agents"])


def _record_row(rec: dict, index: dict[str, tuple[int, str]], width: int, length: int) -> list:
    """Columns for the known fields, then ``extra`` (JSON of the rest; None if empty), then
    None up to ``length`` (``loaded_at``: the engine's to set)."""
    row: list[Any] = [None] * length
    extra: dict | None = None
    for k, v in rec.items():
        spec = index.get(k)
        if spec is None:
            if k != "type":
                if extra is None:
                    extra = {}
                extra[k] = v
            continue
        if v is None:
            continue
        i, kind = spec
        if kind is JSONDOC:
            row[i] = _json(v)
            continue
        if kind is TEXT or kind is ID:
            t = type(v)
            if t is str:
                if kind is TEXT or len(v) <= SHORT_ID:
                    row[i] = v
                    continue
                row[i] = key = id_key(v)
                if key is v:
                    continue
                # a long id: its digest key, the id in extra
            elif t is int or t is float:
                text = repr(v) if t is float else str(v)
                row[i] = key = text if kind is TEXT else id_key(text)
                if key is text:
                    continue
                v = text  # extra keeps the text the column would have held
            elif is_nul_marker(v):
                text = v[NUL_MARKER]  # escaped text; the marker in extra says so
                row[i] = text if kind is TEXT else id_key(text)
        elif kind is TIME:
            us = to_micros(v)
            if us is not None:
                row[i] = us
                continue
        if extra is None:
            extra = {}
        extra[k] = v
    if extra:
        row[width] = _json(extra)
    return row


_WORKFLOW_OF_TASK = _TASK_INDEX["workflow_id"][0]


def workflows_of(rows: RowSet) -> set[str]:
    """The workflow ids (as stored) of the task and workflow rows of ``rows``."""
    found = {r[_WORKFLOW_OF_TASK] for r in rows.tasks}
    found.update(r[0] for r in rows.workflows)
    found.discard(None)
    return found


_N_TASK = len(TASK_COLUMNS)
_N_WORKFLOW = len(WORKFLOW_COLUMNS)
_N_AGENT = len(AGENT_COLUMNS)


def _row_length(table: Any, width: int) -> int:
    """A record table's columns: the record's, ``extra``, and ``loaded_at`` where it has it."""
    names = [c.name for c in table.columns][width:]
    assert names in (["extra"], ["extra", LOADED_AT]), names
    return len(table.columns)


_TASK_ROW = _row_length(tasks, _N_TASK)
_WORKFLOW_ROW = _row_length(workflows, _N_WORKFLOW)
_AGENT_ROW = _row_length(agents, _N_AGENT)
_STARTED = _TASK_INDEX["started_at"][0]
_PHASES = (("start", "telemetry_at_start"), ("end", "telemetry_at_end"))


def task_rows(rec: dict, rows: RowSet) -> None:
    row = _record_row(rec, _TASK_INDEX, _N_TASK, _TASK_ROW)
    tid = row[0]
    started = row[_STARTED]
    rows.tasks.append(tuple(row))
    for direction in ("used", "generated"):
        d = rec.get(direction)
        if type(d) is dict and d:
            explode(tid, direction, d, started, rows.task_values)
    for phase, name in _PHASES:
        snap = rec.get(name)
        if type(snap) is dict and snap:
            values, gpu, extra = telemetry_values(snap)
            rows.task_telemetry.append(
                (
                    tid,
                    phase,
                    started,
                    *values,
                    None if gpu is None else _json(gpu),
                    None if extra is None else _json(extra),
                )
            )
    tags = rec.get("tags")
    if tags is not None:
        for tag in sorted(_texts(tags)):
            rows.task_tags.append((tid, id_key(tag)))
    for src, dst, kind in declared_edges(rec):
        rows.task_edges.append((src, dst, kind))


def _texts(value: Any) -> set[str]:
    """A list (or a single value) of ids or tags as a set of strings."""
    items = value if type(value) is list else [value]
    out = set()
    for item in items:
        if item is None:
            continue
        text = _key_text(item)
        out.add(text if text is not None else _json(item))
    return out


def declared_edges(rec: dict) -> set[tuple[str, str, str]]:
    """Edges a task record declares: parent -> task, dependency -> task, task -> dependent
    (ends as the id columns hold them)."""
    tid = _key_text(rec.get("task_id"))
    edges: set[tuple[str, str, str]] = set()
    if tid is None:
        return edges
    tid = id_key(tid)
    parent = rec.get("parent_task_id")
    if parent is not None:
        p = _key_text(parent)
        if p is not None and id_key(p) != tid:
            edges.add((id_key(p), tid, "parent"))
    deps = rec.get("dependencies")
    if deps is not None:
        ends = {id_key(d) for d in _texts(deps)}
        edges.update((d, tid, "dependency") for d in ends if d != tid)
    dependents = rec.get("dependents")
    if dependents is not None:
        ends = {id_key(d) for d in _texts(dependents)}
        edges.update((tid, d, "dependency") for d in ends if d != tid)
    return edges


def workflow_rows(rec: dict, rows: RowSet) -> None:
    rows.workflows.append(tuple(_record_row(rec, _WORKFLOW_INDEX, _N_WORKFLOW, _WORKFLOW_ROW)))


def agent_rows(rec: dict, rows: RowSet) -> None:
    rows.agents.append(tuple(_record_row(rec, _AGENT_INDEX, _N_AGENT, _AGENT_ROW)))


_OBJECT_TEXT = ("object_type", "task_id", "workflow_id", "created_by", "updated_by")
_OBJECT_IDS = frozenset(ID_COLUMNS["data_objects"])
_OBJECT_TIME = ("created_at", "updated_at")
_OBJECT_INT = ("prev_version", "object_size_bytes")
_OBJECT_KNOWN = frozenset(OBJECT_FIELDS)


def object_rows(rec: dict, rows: RowSet) -> None:
    extra = {k: v for k, v in rec.items() if k not in _OBJECT_KNOWN and v is not None}
    oid = _key_text(rec["object_id"])  # escaped (placed objects hold the escaped text)
    values: dict[str, Any] = {"object_id": id_key(oid), "version": rec["version"]}
    if values["object_id"] is not oid:  # a long id: its digest key, the id in extra
        extra["object_id"] = escaped_marker(oid)
    for name in _OBJECT_TEXT + ("data_sha256", "data_hash_algo"):
        v = rec.get(name)
        if v is None:
            continue
        text = _key_text(v)
        if text is None or type(v) is not str:
            extra[name] = v
        if text is not None and name in _OBJECT_IDS:
            key = id_key(text)
            if key is not text:
                extra[name], text = v, key
        values[name] = text
    for name in _OBJECT_TIME:
        v = rec.get(name)
        if v is not None:
            us = to_micros(v)
            if us is None:
                extra[name] = v
            values[name] = us
    for name in _OBJECT_INT:
        v = rec.get(name)
        if v is not None:
            if type(v) is int and -(2**63) <= v < 2**63:
                values[name] = v
            else:
                extra[name] = v
    if rec.get("custom_metadata") is not None:
        values["custom_metadata"] = _json(rec["custom_metadata"])
    data = rec.get("data")
    if data is not None:
        payload = _binary(data)
        if payload is None:
            extra["data"] = data
        else:
            values["data"] = payload
            values.setdefault("data_sha256", hashlib.sha256(payload).hexdigest())
            values.setdefault("data_hash_algo", "sha256")
            values.setdefault("object_size_bytes", len(payload))
    row = [values.get(name) for name in OBJECT_FIELDS]
    row.append(_json(extra) if extra else None)
    rows.data_objects.append(tuple(row))


def _binary(value: Any) -> bytes | None:
    if type(value) in (bytes, bytearray):
        return bytes(value)
    if type(value) is dict and len(value) == 1 and type(value.get("$binary")) is dict:
        try:
            return base64.b64decode(value["$binary"].get("base64", ""), validate=True)
        except (ValueError, TypeError):
            return None
    return None


# --- row -> record ---------------------------------------------------------------------------


def _load_json(value: Any) -> Any:
    return loads_exact(value) if type(value) in (str, bytes) else value


def record_from_row(kind: str, row: dict[str, Any]) -> dict:
    """The record a stored ``tasks`` / ``workflows`` / ``agents`` / ``data_objects`` row
    stands for."""
    if kind == ids.OBJECT:
        rec = {k: row[k] for k in OBJECT_FIELDS if row.get(k) is not None}
        if "custom_metadata" in rec:
            rec["custom_metadata"] = _load_json(rec["custom_metadata"])
        for name in _OBJECT_TIME:
            if name in rec:
                rec[name] = datetime_to_epoch(rec[name])
        if "data" in rec:
            data = bytes(rec["data"])
            rec["data"] = {"$binary": {"base64": base64.b64encode(data).decode(), "subType": "00"}}
    else:
        spec = {ids.TASK: TASK_COLUMNS, ids.AGENT: AGENT_COLUMNS}.get(kind, WORKFLOW_COLUMNS)
        rec = {"type": kind}
        for name, col_kind in spec:
            v = row.get(name)
            if v is None:
                continue
            if col_kind is JSONDOC:
                v = _load_json(v)
            elif col_kind is TIME:
                v = datetime_to_epoch(v)
            rec[name] = v
    extra = row.get("extra")
    if extra is not None:
        rec.update(_load_json(extra))
    return rec
