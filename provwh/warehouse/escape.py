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

Long ids: a PostgreSQL btree row holds at most 2,704 bytes, so an id column (``ID_COLUMNS``
in ``schema``: the indexed text columns; edge ends, tags and the task ids of the child tables
too) cannot hold a 10 KB id. An id whose escaped text is longer than ``ID_BYTES`` bytes of
UTF-8 is stored in its column as its *digest key* (``id_key``): ``\\u0000\\#sha256:`` and
the 64 hex digits of the sha256 of that text. The original goes to the row's ``extra``, as a
NUL marker does (a plain string, or the marker when it holds NUL); tables without ``extra``
(``task_edges``, ``task_tags``, ``task_values``) hold the key alone, the id being in the
record naming it (its task's ``extra``, a child's ``parent_task_id``, the ``tags`` and
``dependencies`` documents). 1,000 bytes keeps the widest keys, two ids (``task_edges``' src,
dst and kind, ``task_tags``' task id and tag), well under 2,704 bytes, and ids up to it
readable. Both engines store the digest keys; ``used`` / ``generated`` keys are not ids and are
stored whole.

No stored string equals a digest key. A string stored as it is never holds the text
``\\u0000`` (``needs_escape``). ``escape_str``'s output reads uniquely, from its start, as a
sequence of ``\\\\``, ``\\u0000`` and characters other than ``\\`` (every backslash it
writes belongs to one of those two tokens); a digest key reads as ``\\u0000`` and then a lone
backslash followed by ``#``, which escape_str never writes. So ``stored_id`` is injective (two
ids up to ``ID_BYTES`` are stored as escape_text stores them, two longer ones alike only for
equal texts, short of a sha256 collision, and never a short one like a long one): the query
layer looks an id up by its ``stored_id`` (index lookups stay exact) and takes the original
from ``extra``.
"""

from __future__ import annotations

import hashlib
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


# An id column holds at most this many bytes (UTF-8) of an id; longer ones: their digest key.
ID_BYTES = 1000
SHORT_ID = ID_BYTES // 4  # characters that always fit (4 bytes a character at most)
DIGEST_PREFIX = "\\u0000\\#sha256:"  # see the module's docstring


def id_key(text: str) -> str:
    """An id as escaped (``escape_text``) -> as stored in an id column: itself, or its digest
    key when longer than ``ID_BYTES`` bytes (returns ``text`` itself when it fits)."""
    if len(text) <= SHORT_ID:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= ID_BYTES:
        return text
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def stored_id(value: str) -> str:
    """An id as its id column holds it: escaped, and a digest key when long (``id_key``)."""
    return id_key(escape_text(value))


def is_digest_key(text: Any) -> bool:
    return type(text) is str and text.startswith(DIGEST_PREFIX)


def escaped_marker(text: str) -> Any:
    """The JSON value (for ``extra``) of a string ``escape_text`` stored as ``text``: itself,
    or its NUL marker when it is escaped."""
    return {NUL_MARKER: text} if ESCAPED_NUL in text else text


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
