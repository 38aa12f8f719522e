"""Rows -> Flowcept-shaped records; projections; MongoDB's order of mixed values.

A record is a plain dict with Flowcept's field names, ``type`` first (tasks, workflows and agents),
nested ``used`` / ``generated`` / telemetry restored from their JSON documents, fields that
were not columns merged back from ``extra``, times as float epoch seconds, bytes as bytes and
NUL-holding strings unescaped, non-finite floats as floats, exactly as a buffer file reads
back.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from provwh.core.serialize import encode_float, float_of_marker, loads_exact
from provwh.query.paths import BYTES, JSON, TIME, Collection
from provwh.warehouse.escape import NUL_MARKER, unescape_str, unescape_text, wrapped_dict
from provwh.warehouse.times import datetime_to_epoch

_MARKS_B = (b'"$binary"', b'"$nul"', b'"$float"', b"\\\\u0000")  # the last: an escaped key
_MARKS_S = ('"$binary"', '"$nul"', '"$float"', "\\\\u0000")
_TYPE_FIELD = {"tasks": "task", "workflows": "workflow", "agents": "agent"}


def loads_json(data: str | bytes | bytearray | memoryview) -> Any:
    """A stored JSON document as Python values (bytes, NUL and float markers restored)."""
    if isinstance(data, memoryview):
        data = bytes(data)
    value = loads_exact(data)
    marks = _MARKS_S if isinstance(data, str) else _MARKS_B
    if any(m in data for m in marks):
        value = restore(value)
    return value


def restore(obj: Any) -> Any:
    """``{"$binary": ...}`` -> bytes, ``{"$nul": ...}`` -> the original string (a user's dict
    ``{"$nul": [...]}`` -> that dict), escaped keys -> the original keys, and
    ``{"$float": ...}`` -> NaN or an infinity."""
    if isinstance(obj, dict):
        if len(obj) == 1:
            f = float_of_marker(obj)
            if f is not None:
                return f
            inner = obj.get("$binary")
            if isinstance(inner, dict) and "base64" in inner:
                try:
                    return base64.b64decode(inner["base64"])
                except (ValueError, TypeError):
                    return obj
            text = obj.get(NUL_MARKER)
            if isinstance(text, str):
                return unescape_str(text)
            user = wrapped_dict(obj)
            if user is not None:
                return {NUL_MARKER: restore(user[NUL_MARKER])}
        return {unescape_text(k): restore(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [restore(v) for v in obj]
    return obj


def to_record(coll: Collection, names: list[str], row: tuple) -> dict[str, Any]:
    """The record a stored row stands for (``names``: the selected columns)."""
    rec: dict[str, Any] = {}
    kind = _TYPE_FIELD.get(coll.name)
    if kind is not None:
        rec["type"] = kind
    extra = None
    columns = coll.columns
    for name, value in zip(names, row, strict=True):
        if value is None:
            continue
        if name == "extra":
            extra = value if not isinstance(value, (str, bytes)) else loads_json(value)
            continue
        col_kind = columns.get(name)
        if col_kind == JSON:
            if isinstance(value, (str, bytes)):
                value = loads_json(value)
        elif col_kind == TIME:
            value = value / 1_000_000 if isinstance(value, int) else datetime_to_epoch(value)
        elif col_kind == BYTES:
            value = bytes(value)
        elif type(value) is str:  # a text column: ids, names (escaped ones restored)
            value = unescape_text(value)
        rec[name] = value
    if extra:
        rec.update(extra)
    return rec


def to_json_safe(obj: Any) -> Any:
    """Bytes as ``{"$binary": ...}`` and NaN / infinities as ``{"$float": ...}`` (as batch
    files write them), for JSON exports."""
    if isinstance(obj, float):
        return obj if obj - obj == 0.0 else encode_float(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$binary": {"base64": base64.b64encode(bytes(obj)).decode(), "subType": "00"}}
    if isinstance(obj, dict):
        return {k: to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_json_safe(v) for v in obj]
    return obj


# --- projections --------------------------------------------------------------------------------


def projection_spec(projection: Any) -> tuple[list[str], bool] | None:
    """``(fields, include)`` for a list of fields or a ``{field: 1 | 0}`` dict; None: all."""
    if projection is None:
        return None
    if isinstance(projection, str):
        projection = [projection]
    if isinstance(projection, Mapping):
        if not projection:
            return None
        flags = {bool(v) for k, v in projection.items() if k != "_id"}
        if len(flags) > 1:
            raise ValueError("a projection dict must either include (1) or exclude (0) fields")
        fields = [k for k in projection if k != "_id"]
        include = flags.pop() if flags else True
    elif isinstance(projection, (list, tuple)):
        if not projection:
            return None
        fields = list(projection)
        include = True
    else:
        raise ValueError(f"projection must be a list of fields, got {projection!r}")
    for f in fields:
        if not isinstance(f, str) or not f:
            raise ValueError(f"a projected field must be a non-empty string, got {f!r}")
    return fields, include


def _parts(path: str) -> list[str]:
    """Path keys (records hold the original keys: escaped ones are restored)."""
    return path.split(".")


def get_path(rec: Mapping, path: str) -> tuple[bool, Any]:
    node: Any = rec
    for part in _parts(path):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def project(rec: dict, fields: list[str], include: bool) -> dict:
    """The record reduced to ``fields`` (nested structure kept), or without them."""
    if include:
        out: dict[str, Any] = {}
        for path in fields:
            found, value = get_path(rec, path)
            if not found:
                continue
            node = out
            *parents, leaf = _parts(path)
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return out
    out = dict(rec)
    for path in fields:
        *parents, leaf = _parts(path)
        node: Any = out
        for part in parents:  # copy the dicts on the way, so the record is not changed
            child = node.get(part)
            if not isinstance(child, dict):
                node = None
                break
            node[part] = child = dict(child)
            node = child
        if node is not None:
            node.pop(leaf, None)
    return out


# --- MongoDB's order of values ------------------------------------------------------------------


def mongo_key(value: Any) -> tuple:
    """A sort key ordering mixed values as MongoDB does: null, numbers, strings, objects..."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value.encode("utf-8", "surrogatepass"))
    if isinstance(value, dict):
        return (3, orjson.dumps(value, default=str))
    if isinstance(value, (list, tuple)):
        return (4, orjson.dumps(list(value), default=str))
    if isinstance(value, (bytes, bytearray)):
        return (4.5, bytes(value))
    return (6, str(value))
