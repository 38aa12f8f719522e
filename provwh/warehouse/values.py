"""``used`` / ``generated`` dicts -> typed key/value rows, and the value hash.

Nested dicts are walked in key order (``key_path`` joins keys with dots; ``ordinal`` numbers
the leaves of one task and direction in that order, so it does not depend on how an engine
orders a stored JSON document's keys); lists, empty dicts and dicts deeper than ``MAX_DEPTH``
are leaves kept as JSON. Markers written by capture or by ``escape`` are
leaves of their own type: ``{"$binary": ...}`` is ``bytes``, ``{"$nul": "..."}`` is a ``str``
(a user's own ``{"$nul": v}``, stored ``{"$nul": [v]}``, is a dict like any other),
``{"$float": "NaN" | "Infinity" | "-Infinity"}`` is the ``float`` it stands for (``value_num``
holds it: both engines' doubles keep NaN and the infinities).

``value_hash`` is a 60-bit integer (fits a signed BIGINT on both engines) that is equal for
equal values: ``1`` and ``1.0`` hash alike, ``True`` and ``1`` do not. Query code computes the
hash of a Python value with the same function to find the rows holding it.

Data lineage (a task generated a value another task used) joins on ``match_hash``, which
encodes how a value may link (``lineage_match``): never (None, booleans, strings of at most one
character, 0, 1, -1, empty containers: ``match_hash`` is NULL); on the value alone (strings
that look like paths, file names or identifiers, so a file generated as ``path`` and used as
``data_path`` links: ``match_hash`` is the value hash); on (leaf key, value) for the rest.
"""

from __future__ import annotations

import base64
import re
from hashlib import blake2b
from typing import Any

import orjson

from provwh.core.serialize import FLOAT_KEY, dumps_exact, float_of_marker
from provwh.warehouse.escape import NUL_MARKER, unescape_str, wrapped_dict

MAX_DEPTH = 16
# PostgreSQL indexes (key_path, value_num) for the key paths up to this many characters
# (schema.py, migration 0004): a btree row holds at most 2704 bytes, and 600 characters take at
# most 2400 in UTF-8. Longer paths load the same, unindexed (issue 17: one made its batch fail
# for ever). A query on a path up to this long adds ``KEY_PATH_INDEXED`` so the index serves it.
INDEXED_KEY_PATH_CHARS = 600
KEY_PATH_INDEXED = f"length(key_path) <= {INDEXED_KEY_PATH_CHARS}"
_BINARY = "$binary"
_SORTED = orjson.OPT_SORT_KEYS
# a file name with an extension, or an identifier of 8+ characters mixing letters and digits
_REF = re.compile(
    r"[\w.-]+\.[A-Za-z][A-Za-z0-9]{0,7}|(?=[^\s]*\d)(?=[^\s]*[A-Za-z])[A-Za-z0-9_.:-]{8,}"
)
_EXACT_INT = 2**53

NEVER, KEY_AND_VALUE, VALUE_ONLY = 0, 1, 2


def _h(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big") >> 4


def _num_bytes(v: int | float) -> bytes:
    if type(v) is float:
        if v.is_integer() and -(2**63) <= v < 2**63:
            return b"n" + str(int(v)).encode()
        return b"n" + repr(v).encode()
    return b"n" + str(v).encode()


def _value_bytes(value: Any) -> bytes:
    """The tagged bytes a value hashes as (``value_hash`` is their hash)."""
    t = type(value)
    if t is str:
        return b"s" + value.encode("utf-8", "surrogatepass")
    if t is bool:
        return b"b1" if value else b"b0"
    if t is int or t is float:
        return _num_bytes(value)
    if value is None:
        return b"z"
    if t in (bytes, bytearray, memoryview):
        return b"x" + base64.b64encode(bytes(value))
    if t is dict and len(value) == 1:
        inner = value.get(_BINARY)
        if type(inner) is dict and "base64" in inner:
            return b"x" + str(inner["base64"]).encode()
        if type(value.get(NUL_MARKER)) is str:
            return _value_bytes(unescape_str(value[NUL_MARKER]))
        f = float_of_marker(value)
        if f is not None:
            return _num_bytes(f)
    try:
        return b"j" + orjson.dumps(value, option=_SORTED)
    except TypeError:  # an integer beyond 64 bits
        return b"j" + dumps_exact(value, sort_keys=True)


def value_hash(value: Any) -> int:
    """The hash stored in ``task_values.value_hash`` for a Python (JSON-like) value."""
    return _h(_value_bytes(value))


def lineage_match(value: Any) -> int:
    """How ``value`` may link tasks: ``NEVER``, ``KEY_AND_VALUE`` or ``VALUE_ONLY``."""
    t = type(value)
    if t is str:
        return string_match(value)
    if t is dict and len(value) == 1 and type(value.get(NUL_MARKER)) is str:
        return string_match(unescape_str(value[NUL_MARKER]))
    if t is dict and float_of_marker(value) is not None:
        return KEY_AND_VALUE
    if value is None or t is bool:
        return NEVER
    if t is int or t is float:
        return NEVER if value in (0, 1, -1) else KEY_AND_VALUE
    if t in (list, dict):
        return KEY_AND_VALUE if value else NEVER
    return KEY_AND_VALUE


def match_hash(leaf_key: str, value: Any) -> int | None:
    """``task_values.match_hash``: equal for a generated and a used value that link."""
    match = lineage_match(value)
    if match == NEVER:
        return None
    vb = _value_bytes(value)
    if match == VALUE_ONLY:
        return _h(vb)
    return _h(b"k" + leaf_key.encode("utf-8", "surrogatepass") + b"\x00" + vb)


def string_match(s: str) -> int:
    """``lineage_match`` of a string value."""
    if len(s) <= 1:
        return NEVER
    if "/" in s or "\\" in s:
        return VALUE_ONLY if "\n" not in s else KEY_AND_VALUE
    if len(s) < 3 or " " in s:
        return KEY_AND_VALUE
    if _REF.fullmatch(s):
        return VALUE_ONLY
    return KEY_AND_VALUE


def explode(task_id: str, direction: str, d: dict, started: int | None, out: list) -> None:
    """Append one row per leaf of ``d`` to ``out`` (``task_values`` column order)."""
    _walk(task_id, direction, wrapped_dict(d) or d, started, out, "", 0, [0])


def _key_match(k: str, vb: bytes) -> int:
    return _h(b"k" + k.encode("utf-8", "surrogatepass") + b"\x00" + vb)


def _walk(tid, direction, d, started, out, prefix, depth, counter) -> None:
    append = out.append
    h = _h
    for k in sorted(d) if len(d) > 1 else d:
        v = d[k]
        path = prefix + k
        t = type(v)
        n = counter[0]
        if t is str:
            vb = b"s" + v.encode("utf-8", "surrogatepass")
            vh = h(vb)
            match = string_match(v)
            mh = None if match == NEVER else vh if match == VALUE_ONLY else _key_match(k, vb)
            append((tid, direction, n, path, k, "str", v, None, None, None, vh, mh, started))
        elif t is float or t is int:
            vb = _num_bytes(v) if t is float else b"n%d" % v
            mh = None if v in (0, 1, -1) else _key_match(k, vb)
            big = t is int and not -_EXACT_INT <= v <= _EXACT_INT  # exact as text
            append(
                (tid, direction, n, path, k, "float" if t is float else "int",
                 str(v) if big else None, _float(v) if big else float(v), None, None, h(vb), mh,
                 started)
            )  # fmt: skip
        elif t is bool:
            vh = h(b"b1" if v else b"b0")
            append((tid, direction, n, path, k, "bool", None, None, v, None, vh, None, started))
        elif v is None:
            append((tid, direction, n, path, k, "null", None, None, None, None, h(b"z"), None,
                    started))  # fmt: skip
        elif t is dict and v and depth < MAX_DEPTH and not _is_marker(v):
            v = wrapped_dict(v) or v  # a user's {"$nul": ...}: its key is a key like others
            _walk(tid, direction, v, started, out, path + ".", depth + 1, counter)
            continue
        elif t is dict and (f := float_of_marker(v)) is not None:  # NaN or an infinity
            vb = _num_bytes(f)
            append((tid, direction, n, path, k, "float", None, f, None, None, h(vb),
                    _key_match(k, vb), started))  # fmt: skip
        else:
            marker_str = t is dict and type(v.get(NUL_MARKER)) is str and len(v) == 1
            if marker_str:
                kind, text = "str", v[NUL_MARKER]
            elif t is dict and len(v) == 1 and type(v.get(_BINARY)) is dict:
                kind, text = "bytes", None
            else:
                kind, text = ("list" if t is list else "dict"), None
            append((tid, direction, n, path, k, kind, text, None, None, _json(v),
                    value_hash(v), match_hash(k, v), started))  # fmt: skip
        counter[0] = n + 1


def _float(v: int) -> float:
    """An integer as a double (±inf beyond the doubles: the exact value is in ``value_text``)."""
    try:
        return float(v)
    except OverflowError:
        return float("inf") if v > 0 else float("-inf")


def _json(v: Any) -> str:
    try:
        return orjson.dumps(v).decode()
    except TypeError:  # an integer beyond 64 bits
        return dumps_exact(v).decode()


def _is_marker(v: dict) -> bool:
    return len(v) == 1 and (
        type(v.get(NUL_MARKER)) is str
        or type(v.get(_BINARY)) is dict
        or type(v.get(FLOAT_KEY)) is str
    )
