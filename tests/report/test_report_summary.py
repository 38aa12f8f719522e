"""The helpers behind the numbers: formatting, path detection, lineage on odd graphs."""

from __future__ import annotations

import pytest

from provwh.report import fmt
from provwh.report import summary as sm


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0, "0 s"),
        (4e-7, "<1 µs"),
        (2.4e-5, "24 µs"),
        (0.0123, "12.3 ms"),
        (1.5, "1.50 s"),
        (125, "2 min 5 s"),
        (7322, "2 h 2 min"),
    ],
)
def test_seconds(seconds, text):
    assert fmt.seconds(seconds) == text


def test_bytes_and_times():
    assert fmt.nbytes(0) == "0 B"
    assert fmt.nbytes(3 * 1024**2) == "3.0 MiB"
    assert fmt.nbytes(-2048, signed=True) == "-2.0 KiB"
    assert fmt.nbytes(2048, signed=True) == "+2.0 KiB"
    assert fmt.iso_utc(1700000000.25) == "2023-11-14T22:13:20.250Z"
    assert sm.to_epoch("2023-11-14T22:13:20Z") == 1700000000.0
    assert sm.to_epoch("not a time") is None


@pytest.mark.parametrize(
    "value",
    [
        "/data/in.csv",
        "./out",
        "~/x/y",
        "C:\\runs\\a.txt",
        "s3://bucket/key",
        "model.pt",
        "out/model.pt",
    ],
)
def test_looks_like_path(value):
    assert sm.looks_like_path(value)


@pytest.mark.parametrize(
    "value", ["1.5", "torch.float32", "and/or this is a sentence", "x", 12, None, "ok"]
)
def test_does_not_look_like_path(value):
    assert not sm.looks_like_path(value)


def task(tid, **fields):
    return {"type": "task", "task_id": tid, "workflow_id": "w", "activity_id": "a", **fields}


def test_lineage_survives_cycles_and_counts_layers():
    records = [
        task("a"),
        task("b", parent_task_id="a"),
        task("c", dependencies=["b"]),
        task("d", dependencies="c"),  # a single id, not a list
        task("x", parent_task_id="y"),
        task("y", parent_task_id="x"),  # a parent cycle
    ]
    (wf,) = sm.load(records).workflows
    lin = sm.lineage(wf.tasks)
    assert set(lin.parent_edges) == {("a", "b"), ("x", "y"), ("y", "x")}
    assert set(lin.dependency_edges) == {("b", "c"), ("c", "d")}
    assert lin.longest_chain == 4
    assert [lin.layer[k] for k in "abcd"] == [0, 1, 2, 3]
    assert lin.roots == ["a"]
    assert lin.dangling == 0
