"""Words for counts in messages, summaries and reports."""

from __future__ import annotations


def plural(n: int, word: str) -> str:
    """``1 task``, ``1,234 tasks``, ``2 batches``, ``3 activities``: count and noun agreeing."""
    if n == 1:
        return f"1 {word}"
    if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
        return f"{n:,} {word[:-1]}ies"  # activity -> activities
    suffix = "es" if word.endswith(("ch", "sh", "s", "x")) else "s"
    return f"{n:,} {word}{suffix}"


def error_text(exc: BaseException) -> str:
    """An exception's message for a record: never raises (a broken ``__str__`` must not turn
    the user's exception into another), and names the type when the message is empty."""
    try:
        text = str(exc)
    except Exception as inner:  # any failure of user code
        return f"{type(exc).__name__} (its message could not be read: {type(inner).__name__})"
    return text or type(exc).__name__


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, "" when it has none (never raises)."""
    try:
        text = str(exc).strip()
    except Exception:  # a broken __str__: say so, as error_text does
        return error_text(exc)
    return text.splitlines()[0] if text else ""
