"""Words for counts in messages, summaries and reports."""

from __future__ import annotations


def plural(n: int, word: str) -> str:
    """``1 task``, ``1,234 tasks``, ``2 batches``: the count with its noun agreeing."""
    if n == 1:
        return f"1 {word}"
    suffix = "es" if word.endswith(("ch", "sh", "s", "x")) else "s"
    return f"{n:,} {word}{suffix}"
