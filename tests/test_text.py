"""Counts and nouns agree wherever provwh prints them (core.text.plural)."""

from provwh.core.text import plural


def test_plural():
    assert [plural(n, "task") for n in (0, 1, 2, 1234)] == [
        "0 tasks", "1 task", "2 tasks", "1,234 tasks"
    ]  # fmt: skip
    assert [plural(2, w) for w in ("batch", "box", "activity", "entity", "key", "workflow")] == [
        "2 batches", "2 boxes", "2 activities", "2 entities", "2 keys", "2 workflows"
    ]  # fmt: skip
    assert plural(1, "activity") == "1 activity"


def test_first_line_of_an_error():
    from provwh.core.text import first_line

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert first_line(ValueError("  bad value\nmore detail")) == "bad value"
    assert first_line(ValueError()) == ""
    assert first_line(Unprintable()) == "Unprintable (its message could not be read: RuntimeError)"
