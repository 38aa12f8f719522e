"""Read-only SQL: refuse anything but one query, before it reaches a database.

The check here gives a clear message early; it is not the only line of defence, nor the one
that holds. PostgreSQL runs user SQL as a prepared statement (one command only) in a ``READ
ONLY`` transaction that is always rolled back, then releases any advisory lock it took.
DuckDB's own parser classifies the statement (and the one an ``EXPLAIN`` runs), which then runs
in a ``READ ONLY`` transaction, rolled back, on a database whose external access (files,
network, extensions) is disabled and whose configuration is locked (``backends.py``).
"""

from __future__ import annotations

import re


class ReadOnlyError(ValueError):
    """The SQL would change something (or is not a single query): refused."""


_READ_KEYWORDS = frozenset(
    ("select", "with", "values", "table", "explain", "show", "describe", "summarize", "from")
)
# statements that change something (or the session): refused as such; any other first word
# is not SQL at all, most likely a typo, and is reported as one
_WRITE_KEYWORDS = frozenset(
    ("insert", "update", "delete", "merge", "upsert", "create", "drop", "alter", "truncate",
     "copy", "grant", "revoke", "set", "reset", "install", "load", "attach", "detach", "use",
     "pragma", "checkpoint", "vacuum", "analyze", "analyse", "call", "do", "begin", "start",
     "commit", "rollback", "abort", "end", "savepoint", "release", "prepare", "execute",
     "deallocate", "lock", "listen", "notify", "unlisten", "discard", "cluster", "reindex",
     "refresh", "comment", "security", "import", "export", "force", "declare", "fetch", "move",
     "close", "pivot", "unpivot")
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z_]+")


def split_statements(text: str) -> list[str]:
    """The statements of ``text`` (quotes, dollar quotes and comments respected)."""
    out, start, i, n = [], 0, 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            i = _skip_quoted(text, i, c, escapes=c == "'" and _is_e_string(text, i))
            continue
        if c == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c == "/" and text.startswith("/*", i):
            i = _skip_block_comment(text, i)
            continue
        if c == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", text[i:])
            if m:
                tag = m.group(0)
                j = text.find(tag, i + len(tag))
                i = n if j < 0 else j + len(tag)
                continue
        if c == ";":
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return [s for s in out if strip_comments(s).strip()]


def _is_e_string(text: str, i: int) -> bool:
    return (
        i > 0
        and text[i - 1] in "eE"
        and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_"))
    )


def _skip_quoted(text: str, i: int, quote: str, escapes: bool) -> int:
    j, n = i + 1, len(text)
    while j < n:
        c = text[j]
        if escapes and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and text[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip_block_comment(text: str, i: int) -> int:
    depth, j, n = 0, i, len(text)
    while j < n:
        if text.startswith("/*", j):
            depth += 1
            j += 2
        elif text.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    return n


def strip_comments(text: str) -> str:
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            out.append(" ")
        elif text.startswith("/*", i):
            i = _skip_block_comment(text, i)
            out.append(" ")
        elif text[i] in "'\"":
            j = _skip_quoted(text, i, text[i], escapes=False)
            out.append(text[i:j])
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def first_keyword(statement: str) -> str:
    m = _WORD.search(strip_comments(statement).lstrip(" \t\r\n("))
    return m.group(0).lower() if m else ""


def check_read_only(text: str) -> str:
    """The one read-only statement of ``text`` (a trailing ``;`` allowed), or ReadOnlyError."""
    if not isinstance(text, str):
        raise ValueError(f"SQL must be a string, got {type(text).__name__}")
    statements = split_statements(text)
    if not statements:
        raise ValueError("no SQL statement given")
    if len(statements) > 1:
        raise ReadOnlyError(
            f"one statement at a time: got {len(statements)} (sql() runs read-only queries)"
        )
    statement = statements[0]
    word = first_keyword(statement)
    if word and word not in _READ_KEYWORDS | _WRITE_KEYWORDS:
        import difflib

        close = difflib.get_close_matches(word, sorted(_READ_KEYWORDS | _WRITE_KEYWORDS), n=1)
        hint = f": did you mean {close[0].upper()}?" if close else ""
        raise ValueError(f"syntax error at {word.upper()!r}, not an SQL statement{hint}")
    if word not in _READ_KEYWORDS:
        raise ReadOnlyError(
            f"read-only: {word.upper() or 'this'} statements are refused; "
            "sql() runs queries (SELECT, WITH, VALUES, EXPLAIN...) only"
        )
    if word == "explain":
        inner = first_keyword(explained(statement))
        if inner not in _READ_KEYWORDS - {"explain"}:
            raise ReadOnlyError(
                f"read-only: EXPLAIN of {inner.upper() or 'this'} statements is refused "
                "(EXPLAIN ANALYZE runs its statement); sql() explains queries only"
            )
    return statement


# EXPLAIN's options: a parenthesized list (``EXPLAIN (ANALYZE, FORMAT JSON)``) or bare words
_EXPLAIN = re.compile(r"(?is)^[\s(]*explain\b\s*")
_EXPLAIN_WORDS = re.compile(r"(?is)(?:\b(?:analy[sz]e|verbose)\b\s*)*")
_EXPLAIN_LIST = re.compile(r"""(?s)\((?:[^()'"]|'[^']*'|"[^"]*")*\)\s*""")


def explained(statement: str) -> str:
    """The statement an ``EXPLAIN`` statement explains (its options taken off)."""
    text = strip_comments(statement)
    m = _EXPLAIN.match(text)
    if m is None:
        return text
    rest = text[m.end() :]
    options = _EXPLAIN_LIST.match(rest)
    if options and first_keyword(rest[1:]) not in _READ_KEYWORDS:  # not ``EXPLAIN (SELECT``
        return rest[options.end() :]
    return rest[_EXPLAIN_WORDS.match(rest).end() :]
