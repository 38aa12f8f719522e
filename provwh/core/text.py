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
