"""Data lineage edges derived at load time: the same edges on both engines."""

from __future__ import annotations

from warehouse_helpers import T0, count, query, write_jsonl

from provwh.warehouse.loader import Loader


def t(tid, used=None, generated=None, start=0.0, end=None, **kw):
    rec = {
        "type": "task",
        "task_id": tid,
        "started_at": T0 + start,
        "ended_at": T0 + (end or start),
    }
    if used is not None:
        rec["used"] = used
    if generated is not None:
        rec["generated"] = generated
    rec.update(kw)
    return rec


def edges(loc, kind="data"):
    return query(
        loc,
        "SELECT src_task_id, dst_task_id FROM task_edges WHERE kind = %s ORDER BY 1, 2",
        [kind],
    )


def load_all(target, tmp_path, *batches):
    loader = Loader([target])
    for i, records in enumerate(batches):
        loader.load_file(write_jsonl(tmp_path / f"{i}.jsonl", records))
    loader.derive_lineage()
    loader.close()


def test_chain_diamond_and_paths(engine, tmp_path):
    kind, loc, target = engine
    load_all(
        target,
        tmp_path,
        [
            t("a", generated={"path": "/data/raw.csv"}, start=0, end=1),
            # the file generated as `path` is used as `data_path`: linked on the value
            t("b", used={"data_path": "/data/raw.csv"}, generated={"model": "m-0001"}, start=2),
            t("c", used={"data_path": "/data/raw.csv"}, generated={"score": 0.75}, start=2),
            t("d", used={"model": "m-0001", "score": 0.75}, start=3),
            # same number under another key: not linked
            t("e", used={"alpha": 0.75}, start=4),
        ],
    )
    assert edges(loc) == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    assert count(loc, "lineage_pending") == 0


def test_trivial_values_and_time_order(engine, tmp_path):
    kind, loc, target = engine
    load_all(
        target,
        tmp_path,
        [
            t("p", generated={"flag": True, "n": 1, "s": "x", "none": None, "v": 42}, end=5),
            t("early", used={"flag": True, "n": 1, "s": "x", "none": None, "v": 42}, start=1),
            t("late", used={"v": 42}, start=6),
            t("untimed", used={"v": 42}, started_at=None, ended_at=None),
        ],
    )
    assert edges(loc) == [("p", "late"), ("p", "untimed")]


def test_order_of_arrival_does_not_matter(engine, tmp_path):
    kind, loc, target = engine
    load_all(
        target,
        tmp_path,
        [t("consumer", used={"ckpt": "/ckpt/epoch-3.pt"}, start=10)],
        [t("producer", generated={"file": "/ckpt/epoch-3.pt"}, end=9)],
        [t("self", used={"k": 7}, generated={"k": 7})],
    )
    assert edges(loc) == [("producer", "consumer")]


def test_merged_task_gets_its_edges_again(engine, tmp_path):
    kind, loc, target = engine
    load_all(
        target,
        tmp_path,
        [t("p", generated={"out": "/o/1.bin"}, end=1), t("c", used={"in": "/o/1.bin"}, start=2)],
        [{"type": "task", "task_id": "c", "used": {"in": "/o/2.bin"}}],  # c read another file
        [t("p2", generated={"out": "/o/2.bin"}, end=1)],
    )
    assert edges(loc) == [("p2", "c")]
    assert query(loc, "SELECT count(*) FROM task_values WHERE task_id = 'c'") == [(1,)]


def test_explicit_dependencies_and_parents(engine, tmp_path):
    kind, loc, target = engine
    load_all(
        target,
        tmp_path,
        [
            t("root"),
            t("child", parent_task_id="root", dependencies=["root", "other"]),
            t("x", dependents=["child"]),
        ],
    )
    assert edges(loc, "parent") == [("root", "child")]
    assert edges(loc, "dependency") == [("other", "child"), ("root", "child"), ("x", "child")]
