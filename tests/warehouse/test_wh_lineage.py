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


def test_a_use_links_to_the_latest_producer_before_it(engine, tmp_path):
    kind, loc, target = engine
    load_all(
        target,
        tmp_path,
        [
            t("v1", generated={"ckpt": "/c/model.pt"}, start=0, end=1),
            t("v2", generated={"ckpt": "/c/model.pt"}, start=2, end=3),
            t("read2", used={"ckpt": "/c/model.pt"}, start=4),
            t("v3", generated={"ckpt": "/c/model.pt"}, start=5, end=6),
            t("read3", used={"ckpt": "/c/model.pt"}, start=7),
            # ties on the end time break on the task id
            t("tie-a", generated={"lr": 0.5}, end=1),
            t("tie-b", generated={"lr": 0.5}, end=1),
            t("lr-user", used={"lr": 0.5}, start=2),
        ],
    )
    assert edges(loc) == [("tie-b", "lr-user"), ("v2", "read2"), ("v3", "read3")]


def test_a_late_producer_takes_over_and_a_merged_one_lets_go(engine, tmp_path):
    kind, loc, target = engine
    load_all(
        target,
        tmp_path,
        [
            t("old", generated={"f": "/d/x.csv"}, end=1),
            t("reader", used={"f": "/d/x.csv"}, start=5),
        ],
        [t("newer", generated={"f": "/d/x.csv"}, start=2, end=3)],  # loaded late
    )
    assert edges(loc) == [("newer", "reader")]
    loader = Loader([target])
    # `newer` turns out to have ended after `reader` started: `reader` falls back to `old`
    loader.load_file(
        write_jsonl(
            tmp_path / "m.jsonl", [{"type": "task", "task_id": "newer", "ended_at": T0 + 8}]
        )
    )
    loader.derive_lineage()
    loader.close()
    assert edges(loc) == [("old", "reader")]


def test_passed_through_values_and_scopes(engine, tmp_path):
    kind, loc, target = engine
    load_all(
        target,
        tmp_path,
        [
            t("init", generated={"dtype": "float32"}, end=1, campaign_id="c1"),
            # forward calls use and return the dtype: they pass it on, they do not produce it
            *(
                t(
                    f"fwd{i}",
                    used={"dtype": "float32"},
                    generated={"dtype": "float32"},
                    start=2 + i,
                    end=2.5 + i,
                    campaign_id="c1",
                )  # fmt: skip
                for i in range(4)
            ),
            # a path passed on is produced again (the file may have been rewritten)
            t("touch", used={"p": "/x/a.bin"}, generated={"p": "/x/a.bin"}, start=1, end=2),
            t("after", used={"p": "/x/a.bin"}, start=3, campaign_id="c2"),
            # a plain value links inside its campaign only; a path links across campaigns
            t("other", used={"dtype": "float32"}, start=9, campaign_id="c2"),
            t("wf-only", generated={"epochs": 12}, end=1, workflow_id="w1"),
            t("wf-user", used={"epochs": 12}, start=2, workflow_id="w1"),
            t("wf-stranger", used={"epochs": 12}, start=2, workflow_id="w2"),
        ],
    )
    assert edges(loc) == [
        ("init", "fwd0"),
        ("init", "fwd1"),
        ("init", "fwd2"),
        ("init", "fwd3"),
        ("touch", "after"),
        ("wf-only", "wf-user"),
    ]


def test_duckdb_derivations_leave_the_marks_table_as_created(tmp_path):
    """DuckDB empties ``lineage_pending`` by creating it again: each derivation leaves the
    table a new file has (its key among it), and marks made after it derive as before."""
    import duckdb

    from provwh.warehouse.duck import DuckTarget, session

    def table_facts(path):
        with duckdb.connect(str(path), read_only=True) as con:
            sql = con.execute(
                "SELECT sql FROM duckdb_tables() WHERE table_name = 'lineage_pending'"
            ).fetchall()
            keys = con.execute(
                "SELECT constraint_type, constraint_column_names FROM duckdb_constraints()"
                " WHERE table_name = 'lineage_pending' ORDER BY 1"
            ).fetchall()
            return sql, keys

    fresh = tmp_path / "fresh.duckdb"
    with session(fresh):  # a new file: its schema created
        pass
    path = tmp_path / "w.duckdb"
    target = DuckTarget(path)
    load_all(
        target,
        tmp_path,
        [t("p", generated={"out": "/o/1.bin"}, end=1), t("c", used={"in": "/o/1.bin"}, start=2)],
    )
    assert table_facts(path) == table_facts(fresh)
    assert table_facts(path)[1] == [("NOT NULL", ["task_id"]), ("PRIMARY KEY", ["task_id"])]
    # a merged task (marked again: its key ignores a second mark) and a new one, derived
    (tmp_path / "again").mkdir()
    load_all(
        target,
        tmp_path / "again",
        [{"type": "task", "task_id": "c", "used": {"in": "/o/2.bin"}}],
        [t("p2", generated={"out": "/o/2.bin"}, end=1), t("d", used={"in": "/o/2.bin"}, start=3)],
    )
    assert edges(path) == [("p2", "c"), ("p2", "d")]
    assert count(path, "lineage_pending") == 0
    assert table_facts(path) == table_facts(fresh)
