"""NUL characters: PostgreSQL refuses them in text and JSONB, provwh keeps them escaped.

The escape ``escape_str`` writes ``\\`` as ``\\\\`` and NUL as ``\\u0000`` (injective). It is
applied to the strings that need it (``needs_escape``): those holding NUL, and those holding
the text ``\\u0000`` an escape produces, so that an escaped string is never also a string
stored as it is ("coll\\x00id" is stored ``coll\\u0000id``, the text ``coll\\u0000id`` is stored
``coll\\\\u0000id``). Every other string is stored unchanged, and a stored string holding
``\\u0000`` is always an escaped one (``unescape_text``).

Where they are stored:

- JSON values: the marker ``{"$nul": <escaped>}``;
- text columns (ids, names): the escaped string, the marker going to the row's ``extra`` (or
  ``value_json`` for key/value rows);
- keys: the escaped key, without a marker.

A user's own dict shaped like the marker (one key, ``"$nul"``) is stored wrapped:
``{"$nul": [<its value>]}`` (a marker's value is always a string, so the two cannot be
confused). Both engines store the same escaped values.
"""

from __future__ import annotations

import re
from typing import Any

NUL_MARKER = "$nul"
ESCAPED_NUL = "\\u0000"  # what NUL is escaped to; a string holding it is escaped too
_UNESCAPE = re.compile(r"\\(\\|u0000)")


def needs_escape(value: str) -> bool:
    """Whether a string is stored escaped: it holds NUL or the text of an escaped NUL."""
    return "\x00" in value or ESCAPED_NUL in value


def escape_str(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\x00", ESCAPED_NUL)


def unescape_str(value: str) -> str:
    return _UNESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else "\x00", value)


def escape_text(value: str) -> str:
    """A string as stored in a text column or as a key."""
    return escape_str(value) if needs_escape(value) else value


def unescape_text(value: str) -> str:
    """The original of a string ``escape_text`` stored."""
    return unescape_str(value) if ESCAPED_NUL in value else value


def escape_nul(obj: Any) -> Any:
    """The value as stored: strings that need it as markers, keys escaped, dicts shaped like
    a marker wrapped (copies as needed)."""
    t = type(obj)
    if t is str:
        return {NUL_MARKER: escape_str(obj)} if needs_escape(obj) else obj
    if t is dict:
        if len(obj) == 1 and NUL_MARKER in obj:  # a user's dict, not a marker
            return {NUL_MARKER: [escape_nul(obj[NUL_MARKER])]}
        return {(escape_text(k) if type(k) is str else k): escape_nul(v) for k, v in obj.items()}
    if t is list:
        return [escape_nul(v) for v in obj]
    return obj


def is_nul_marker(obj: Any) -> bool:
    return type(obj) is dict and len(obj) == 1 and type(obj.get(NUL_MARKER)) is str


def wrapped_dict(obj: Any) -> dict | None:
    """The user's dict ``{"$nul": value}`` a stored ``{"$nul": [value]}`` stands for (still
    escaped inside), else None."""
    if type(obj) is dict and len(obj) == 1:
        inner = obj.get(NUL_MARKER)
        if type(inner) is list and len(inner) == 1:
            return {NUL_MARKER: inner[0]}
    return None


def unescape(obj: Any) -> Any:
    """Undo ``escape_nul``: markers become the original strings, keys and wrapped dicts their
    originals."""
    if type(obj) is dict:
        if len(obj) == 1 and NUL_MARKER in obj:
            inner = obj[NUL_MARKER]
            if type(inner) is str:
                return unescape_str(inner)
            if type(inner) is list and len(inner) == 1:
                return {NUL_MARKER: unescape(inner[0])}
        return {(unescape_text(k) if type(k) is str else k): unescape(v) for k, v in obj.items()}
    if type(obj) is list:
        return [unescape(v) for v in obj]
    return obj
