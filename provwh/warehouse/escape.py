"""NUL characters: PostgreSQL refuses them in text and JSONB, provwh keeps them escaped.

A string holding ``\\x00`` is stored as the marker ``{"$nul": <escaped>}`` inside JSON, where
``<escaped>`` writes ``\\`` as ``\\\\`` and NUL as ``\\u0000`` (an injective escape, so the value
is recoverable with ``unescape``). In a text column the escaped string is stored and the marker
goes to the row's ``extra`` (or ``value_json`` for key/value rows). Keys holding NUL are
escaped the same way, without a marker. Both engines store the same escaped values.
"""

from __future__ import annotations

import re
from typing import Any

NUL_MARKER = "$nul"
_UNESCAPE = re.compile(r"\\(\\|u0000)")


def needs_escape(value: str) -> bool:
    """Whether a string is stored escaped."""
    return "\x00" in value


def escape_str(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\x00", "\\u0000")


def unescape_str(value: str) -> str:
    return _UNESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else "\x00", value)


def escape_nul(obj: Any) -> Any:
    """The value with every NUL-holding string replaced by its marker (copies as needed)."""
    t = type(obj)
    if t is str:
        return {NUL_MARKER: escape_str(obj)} if "\x00" in obj else obj
    if t is dict:
        return {(escape_str(k) if "\x00" in k else k): escape_nul(v) for k, v in obj.items()}
    if t is list:
        return [escape_nul(v) for v in obj]
    return obj


def is_nul_marker(obj: Any) -> bool:
    return type(obj) is dict and len(obj) == 1 and type(obj.get(NUL_MARKER)) is str


def unescape(obj: Any) -> Any:
    """Undo ``escape_nul``: markers become the original strings (keys stay escaped)."""
    if is_nul_marker(obj):
        return unescape_str(obj[NUL_MARKER])
    if type(obj) is dict:
        return {k: unescape(v) for k, v in obj.items()}
    if type(obj) is list:
        return [unescape(v) for v in obj]
    return obj
