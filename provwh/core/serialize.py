"""Turning captured values into JSON without ever failing a capture.

Rules for values JSON cannot hold (Flowcept's, when ``project.replace_non_json_serializable``
is on): ``to_flowcept_dict()`` or ``to_dict()`` when the object has one; ``__dict__`` for
registered classes (``argparse.Namespace`` and what ``register_dict_class`` adds); otherwise the
placeholder ``"<ClassName>_instance_id_<id>"``. With the setting off, such values are stored as
their ``repr()``. Bytes become MongoDB Extended JSON ``{"$binary": {"base64": ..., "subType":
"00"}}`` and are turned back into bytes when batch or buffer files are read.

JSON has no NaN or infinity, and orjson writes them as ``null``: a non-finite float is stored
as ``{"$float": "NaN"}`` (``"Infinity"``, ``"-Infinity"``) and read back as the float. A record
without one costs what it did: only a line holding ``null`` is looked at again.
"""

from __future__ import annotations

import base64
import enum
import io
import os
import sys
from collections.abc import Iterable
from operator import countOf
from typing import Any

import orjson

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
# Non-string dict keys are rare and OPT_NON_STR_KEYS doubles orjson's cost: try without it.
_OPTS_FAST_LINE = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_APPEND_NEWLINE
_BINARY_KEY = "$binary"
_BINARY_MARK = b'"$binary"'
FLOAT_KEY = "$float"
_FLOAT_MARK = b'"$float"'
_NULL = b"null"
_FLOAT_NAMES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_MAX_DEPTH = 64  # as deep as _sanitize goes: cycles and shared subtrees stay bounded
_SMALL_ARRAY = 100  # numpy arrays up to this many elements are stored as lists

# orjson reads an integer beyond 64 bits as a float: a line with a run of 20 digits (or a
# minus and 19) is read again with Python's json, which keeps them exact. Digits become "0",
# "-" stays, the rest " ": two substring searches then find the runs (regex: 10x the cost).
_RUNS = bytes(0x30 if 0x30 <= c <= 0x39 else 0x2D if c == 0x2D else 0x20 for c in range(256))
_LONG_RUN = b"0" * 20
_LONG_NEGATIVE = b"-" + b"0" * 19

_dict_classes: set[type] = set()  # argparse.Namespace is added when argparse is loaded
_replace = True


def register_dict_class(cls: type) -> None:
    """Store instances of ``cls`` through their ``__dict__``."""
    _dict_classes.add(cls)


def configure(replace_non_json_serializable: bool) -> None:
    global _replace
    _replace = bool(replace_non_json_serializable)


def placeholder(obj: Any) -> str:
    return f"{type(obj).__name__}_instance_id_{id(obj)}"


def encode_bytes(value: bytes | bytearray | memoryview) -> dict[str, Any]:
    return {
        _BINARY_KEY: {"base64": base64.b64encode(bytes(value)).decode("ascii"), "subType": "00"}
    }


def encode_float(value: float) -> dict[str, str]:
    """The marker of a non-finite float: ``{"$float": "NaN" | "Infinity" | "-Infinity"}``."""
    if value != value:
        return {FLOAT_KEY: "NaN"}
    return {FLOAT_KEY: "Infinity" if value > 0 else "-Infinity"}


def float_of_marker(obj: Any) -> float | None:
    """The float a ``{"$float": ...}`` marker stands for; None if ``obj`` is not one."""
    if type(obj) is dict and len(obj) == 1:
        name = obj.get(FLOAT_KEY)
        if type(name) is str:
            return _FLOAT_NAMES.get(name)
    return None


def mark_floats(obj: Any, depth: int = 0) -> Any:
    """``obj`` with its non-finite floats as markers; ``obj`` itself when it holds none.

    Walks dicts, lists and tuples (a tuple holding one becomes a list, as JSON writes it) down
    to ``_MAX_DEPTH``; other objects are left to ``_default``, which marks what it converts.
    """
    t = type(obj)
    if t is float:
        return obj if obj - obj == 0.0 else encode_float(obj)
    if depth > _MAX_DEPTH:
        return obj
    if t is dict:
        out = None
        for k, v in obj.items():
            tv = type(v)
            if tv is str or tv is int or v is None or tv is bool:
                continue
            m = mark_floats(v, depth + 1)
            if m is not v:
                if out is None:
                    out = dict(obj)
                out[k] = m
        return obj if out is None else out
    if t is list or t is tuple:
        items = None
        for i, v in enumerate(obj):
            tv = type(v)
            if tv is str or tv is int or v is None or tv is bool:
                continue
            m = mark_floats(v, depth + 1)
            if m is not v:
                if items is None:
                    items = list(obj)
                items[i] = m
        return obj if items is None else items
    if isinstance(obj, float):  # a float subclass (numpy.float64...)
        f = float(obj)
        return obj if f - f == 0.0 else encode_float(f)
    return obj


def _is_namespace(obj: Any) -> bool:
    argparse = sys.modules.get("argparse")
    return argparse is not None and type(obj) is argparse.Namespace


def _numpy_value(obj: Any) -> Any:
    mod = type(obj).__module__
    if not mod.startswith("numpy"):
        return _NOT_HANDLED
    if hasattr(obj, "ndim") and getattr(obj, "ndim", 0) == 0 and hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist") and getattr(obj, "size", _SMALL_ARRAY + 1) <= _SMALL_ARRAY:
        return obj.tolist()
    return _NOT_HANDLED


_NOT_HANDLED = object()


def _default(obj: Any) -> Any:
    """What orjson writes for a value it cannot (its non-finite floats marked)."""
    return mark_floats(_convert(obj))


def _convert(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return encode_bytes(obj)
    if not _replace:
        return repr(obj)
    if not isinstance(obj, type):
        for name in ("to_flowcept_dict", "to_dict"):
            method = getattr(obj, name, None)
            if callable(method):
                try:
                    return method()
                except Exception:
                    break
    if type(obj) in _dict_classes or _is_namespace(obj):
        return vars(obj)
    fields = getattr(type(obj), "__dataclass_fields__", None)
    if fields is not None and not isinstance(obj, type):
        return {
            name: getattr(obj, name) for name, f in fields.items() if f._field_type.name == "_FIELD"
        }
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    value = _numpy_value(obj)
    if value is not _NOT_HANDLED:
        return value
    return placeholder(obj)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return orjson.dumps(key).decode()
    return str(key)


def _sanitize(obj: Any, depth: int = 0) -> Any:
    """Slow path for values orjson refuses even with ``default`` (huge ints, cycles...)."""
    if depth > 64:
        return placeholder(obj)
    if isinstance(obj, float):
        f = float(obj)
        return f if f - f == 0.0 else encode_float(f)
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj if -(2**63) <= obj < 2**64 else str(obj)
    if isinstance(obj, dict):
        return {_key(k): _sanitize(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v, depth + 1) for v in obj]
    try:
        converted = _default(obj)
    except Exception:
        return placeholder(obj)
    if converted is obj or isinstance(converted, str):
        return converted if isinstance(converted, str) else placeholder(obj)
    return _sanitize(converted, depth + 1)


def dumps(record: Any) -> bytes:
    """Serialize one record to JSON bytes; never raises for odd values."""
    try:
        out = orjson.dumps(record, default=_default, option=_OPTS)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(_sanitize(record), default=_default, option=_OPTS)
    nulls = out.count(_NULL)  # None, or a non-finite float orjson wrote as null
    if nulls and not _nulls_are_nones(record, nulls):
        marked = mark_floats(record)
        if marked is not record:
            return orjson.dumps(marked, default=_default, option=_OPTS)
    return out


# For producers that write a record's line themselves (``capture.deferred``): orjson's options
# and fallback as ``dumps_lines`` uses them; then ``mark_lines`` on the batch.
FAST_LINE_OPTS = _OPTS_FAST_LINE


fast_default = _default


class Lines:
    """A batch serialized already (JSON lines, ``count`` of them), and how to build its
    records should a reader need them as dicts (the Parquet format)."""

    __slots__ = ("data", "count", "build")

    def __init__(self, data: bytes, count: int, build: Any) -> None:
        self.data, self.count, self.build = data, count, build

    def __len__(self) -> int:
        return self.count


def mark_lines(records: Any, data: bytes) -> bytes:
    """``data`` (one JSON line per record of ``records``, a sequence) with the lines of records
    holding non-finite floats written again, marked; ``data`` itself when none can."""
    return _mark_lines(records, data) if _NULL in data else data


def dumps_lines(records: Iterable[Any]) -> bytes:
    """Serialize records as JSON lines in one pass.

    Each line goes straight into one buffer and is dropped: keeping a list of per-record
    results costs ~5 us a record (allocator churn) against ~0.7 us this way.
    """
    if type(records) is not list:
        records = list(records)
    buf = io.BytesIO()
    write, fast, default, opts = buf.write, orjson.dumps, _default, _OPTS_FAST_LINE
    for rec in records:
        try:
            write(fast(rec, default=default, option=opts))
        except (TypeError, orjson.JSONEncodeError):
            write(dumps(rec) + b"\n")
    # None, or a non-finite float orjson wrote as null: one search of the whole batch costs
    # less than one per line (a bytes needle goes through a failed int conversion each time)
    return mark_lines(records, buf.getvalue())


_FEW_NULL_LINES = 16  # beyond this many lines holding a null, split the batch once


def _mark_lines(records: list, data: bytes) -> bytes:
    """``data`` with the lines of records holding non-finite floats written again, marked.

    The lines holding a null are found by searching for it, so a batch where one record has
    nulls (its workflow's) costs the others nothing; with many such lines, the batch is split.
    """
    spans = []  # (start, end) of each line holding a null
    at = data.find(_NULL)
    while at != -1:
        if len(spans) == _FEW_NULL_LINES:
            return _mark_split_lines(records, data)
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        spans.append((start, end))
        at = data.find(_NULL, end)
    replaced, index, last = [], 0, 0  # (start, end, marked line)
    for start, end in spans:
        index += data.count(b"\n", last, start)  # the record of the line
        last = start
        if index >= len(records):
            return b"".join(dumps(rec) + b"\n" for rec in records)
        rec = records[index]
        if not _nulls_are_nones(rec, data.count(_NULL, start, end)):
            marked = mark_floats(rec)
            if marked is not rec:
                replaced.append((start, end, dumps(marked)))
    if not replaced:
        return data
    parts, pos = [], 0
    for start, end, line in replaced:
        parts += (data[pos:start], line)
        pos = end
    parts.append(data[pos:])
    return b"".join(parts)


def _mark_split_lines(records: list, data: bytes) -> bytes:
    lines = data.split(b"\n")  # a JSON line holds no raw newline: one per record, then b""
    if len(lines) != len(records) + 1:
        return b"".join(dumps(rec) + b"\n" for rec in records)
    changed = False
    for i, rec in enumerate(records):
        nulls = lines[i].count(_NULL)
        if nulls and not _nulls_are_nones(rec, nulls):
            marked = mark_floats(rec)
            if marked is not rec:
                lines[i] = dumps(marked)
                changed = True
    return b"\n".join(lines) if changed else data


def _nulls_are_nones(rec: Any, nulls: int) -> bool:
    """Whether ``None`` values account for all ``nulls`` of the record's line, counting those
    of its ``used`` and ``generated`` dicts, where they usually are (in C: no walk).

    Each None and each non-finite float is one ``null`` in the line (a string may add more):
    as many Nones found as nulls leaves none for a non-finite float.
    """
    if type(rec) is not dict:
        return False
    found = 0
    d = rec.get("used")
    if type(d) is dict:
        found = countOf(d.values(), None)
    d = rec.get("generated")
    if type(d) is dict:
        found += countOf(d.values(), None)
    return found == nulls


def may_hold_big_ints(raw: bytes | str) -> bool:
    """Whether JSON text may hold an integer beyond 64 bits (orjson would read a float)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    runs = raw.translate(_RUNS)
    return _LONG_RUN in runs or _LONG_NEGATIVE in runs


def loads_exact(raw: bytes | str) -> Any:
    """``orjson.loads``, integers beyond 64 bits kept exact (read again by Python's json; one
    beyond the doubles, which orjson refuses, too). NaN / Infinity literals in such a line
    become ``{"$float": ...}`` markers, as ``loads_nonfinite`` makes them."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if not may_hold_big_ints(raw):
            raise
        try:
            return _python_loads(raw)
        except (ValueError, RecursionError):
            pass
        raise
    if may_hold_big_ints(raw):
        value = _python_loads(raw)
    return value


def _python_loads(raw: bytes | str) -> Any:
    import json

    return json.loads(raw, parse_constant=lambda name: {FLOAT_KEY: name})


def dumps_exact(value: Any, sort_keys: bool = False) -> bytes:
    """``orjson.dumps`` (``sort_keys``: ordered keys), integers beyond 64 bits written exactly
    (by Python's json, which orjson refuses them to)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits
        import json

        text = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys, allow_nan=False
        )
        return text.encode("utf-8")


def to_jsonable(value: Any) -> Any:
    """The value as it will read back from a batch file (for in-memory views)."""
    return loads_line(dumps(value))


def decode_markers(obj: Any) -> Any:
    """Turn ``{"$binary": ...}`` markers back into bytes and ``{"$float": ...}`` into floats,
    in place where possible."""
    if isinstance(obj, dict):
        if len(obj) == 1:
            if _BINARY_KEY in obj:
                inner = obj[_BINARY_KEY]
                if isinstance(inner, dict) and "base64" in inner:
                    return base64.b64decode(inner["base64"])
            else:
                f = float_of_marker(obj)
                if f is not None:
                    return f
        for key, value in obj.items():
            if isinstance(value, (dict, list)):
                obj[key] = decode_markers(value)
        return obj
    if isinstance(obj, list):
        for i, value in enumerate(obj):
            if isinstance(value, (dict, list)):
                obj[i] = decode_markers(value)
    return obj


def loads_line(line: bytes) -> Any:
    """Parse one JSON line written by ``dumps`` (bytes and float markers decoded).

    A line with ``NaN`` / ``Infinity`` / ``-Infinity`` literals (what Python's ``json`` module
    writes, and Flowcept with it) reads too: the values come back as floats.
    """
    try:
        value = loads_exact(line)
    except orjson.JSONDecodeError:
        value = loads_nonfinite(line)
        if value is None:
            raise
        return decode_markers(value)
    if _BINARY_MARK in line or _FLOAT_MARK in line:
        value = decode_markers(value)
    return value


_LITERALS = (b"NaN", b"Infinity")


def loads_nonfinite(line: bytes | str) -> Any:
    """A JSON line with NaN / Infinity literals, those as ``{"$float": ...}`` markers.

    None when the line has no such literal or is not valid JSON with them: the caller reports
    orjson's error. Only what orjson would accept once the literals are markers is accepted
    (checked by writing the value back with orjson), so nothing else invalid slips through.
    """
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else bytes(line)
    if not any(lit in raw for lit in _LITERALS):
        return None
    import json

    try:
        value = json.loads(raw, parse_constant=lambda name: {FLOAT_KEY: name})
        orjson.loads(orjson.dumps(value))
    except (ValueError, TypeError, RecursionError, orjson.JSONEncodeError):
        return None
    return value
