"""``records_for(..., telemetry_columns=...)``: snapshots rebuilt from the typed columns.

The report reads its figures this way instead of decoding every snapshot; these tests pin that
the rebuilt snapshots give exactly the figures the full ones give, on both engines, and that
the card written from the database is the card written from the same records in memory.
"""

from __future__ import annotations

import pytest
from query_helpers import T0, telemetry, write_batches

from provwh.query.api import records_for
from provwh.report.resources import TELEMETRY_COLUMNS_READ, snapshot_values

GPU = {
    "gpu_0": {"used": 1_000, "total": 8_000, "utilization": {"gpu": 40.0}, "temperature": 60},
    "gpu_1": {"used": 3_000, "total": 8_000, "utilization": {"gpu": 80.0}, "temperature": 70},
}


def _task(tid: str, start: float, **fields) -> dict:
    return {
        "type": "task", "task_id": tid, "workflow_id": "wf-t", "campaign_id": "c-t",
        "activity_id": "step", "status": "FINISHED", "started_at": T0 + start,
        "ended_at": T0 + start + 1, "used": {"x": start}, **fields,
    }  # fmt: skip


RECORDS = [
    {
        "type": "workflow",
        "workflow_id": "wf-t",
        "campaign_id": "c-t",
        "name": "typed",
        "started_at": T0,
        "ended_at": T0 + 10,
        "status": "FINISHED",
    },  # fmt: skip
    _task("t1", 0, telemetry_at_start=telemetry(1), telemetry_at_end=telemetry(2)),
    _task("t2", 1, telemetry_at_start={**telemetry(3), "gpu": GPU}, telemetry_at_end=telemetry(4)),
    _task("t3", 2),  # no telemetry
    _task("t4", 3, telemetry_at_end={"sensors": {"fan": 1200}}),  # no typed figure at all
    _task("t5", 4, telemetry_at_start={"cpu": {"percent_all": float("nan")}}),
]


@pytest.fixture(params=("duckdb", "postgres"))
def db_env(request, make_db, set_env, tmp_path):
    db = make_db(request.param, write_batches(tmp_path / "spool", [RECORDS]))
    if request.param == "duckdb":
        set_env(PROVWH_DUCKDB_ENABLED="true", PROVWH_DUCKDB_PATH=db.backend.path)
    else:
        set_env(PROVWH_DUCKDB_ENABLED="false", PROVWH_POSTGRES_URL=db.backend.target.url)
    return db


def _figures(snapshot):
    return None if snapshot is None else snapshot_values(snapshot)


def test_rebuilt_snapshots_give_the_figures_of_the_full_ones(db_env):
    full = records_for(workflow_id="wf-t")
    typed = records_for(workflow_id="wf-t", telemetry_columns=TELEMETRY_COLUMNS_READ)
    assert [r.get("task_id") for r in typed] == [None, "t1", "t2", "t3", "t4", "t5"]
    for f, t in zip(full, typed, strict=True):
        rest = {k: v for k, v in f.items() if not k.startswith("telemetry_at_")}
        assert {k: v for k, v in t.items() if not k.startswith("telemetry_at_")} == rest
        for phase in ("telemetry_at_start", "telemetry_at_end"):
            assert (phase in t) == (phase in f), (f.get("task_id"), phase)
            if phase in f:
                assert _figures(t[phase]) == _figures(f[phase]), (f["task_id"], phase)
    by_id = {r.get("task_id"): r for r in typed}
    assert by_id["t1"]["telemetry_at_start"] == {
        "cpu": {"percent_all": 51.0},
        "process": {"cpu_percent": 99.5, "memory": {"rss": 1_001}},
        "memory": {"virtual": {"used": 3_001, "percent": 37.5}},
    }
    assert snapshot_values(by_id["t2"]["telemetry_at_start"])["gpu_util"] == 60.0
    assert snapshot_values(by_id["t2"]["telemetry_at_start"])["gpu_used"] == 4_000.0
    assert by_id["t4"]["telemetry_at_end"]  # a snapshot without typed figures is still one
    assert set(snapshot_values(by_id["t4"]["telemetry_at_end"]).values()) == {None}
    # a NaN reading is no reading: the typed column holds NULL (the full snapshot keeps NaN)
    assert by_id["t5"]["telemetry_at_start"]["cpu"] == {"percent_all": None}


def test_unknown_telemetry_columns_are_refused(db_env):
    with pytest.raises(ValueError, match=r"unknown telemetry column\(s\) \['cpu'\]"):
        records_for(workflow_id="wf-t", telemetry_columns=["cpu"])


def test_the_card_from_the_database_is_the_card_from_the_records(db_env, tmp_path):
    from provwh.report.service import generate_report

    full = records_for(workflow_id="wf-t")
    from_db = generate_report(workflow_id="wf-t", output_path=tmp_path / "db.md")
    in_memory = generate_report(records=full, output_path=tmp_path / "mem.md")
    assert (from_db["tasks"], in_memory["tasks"]) == (5, 5)
    text = (tmp_path / "db.md").read_text()
    assert text == (tmp_path / "mem.md").read_text()
    assert "Telemetry was captured for 4 of 5 tasks." in text


def test_an_excluded_snapshot_column_is_not_read(db_env):
    """``{"telemetry_at_start": 0}``: the column is left out of the SELECT, the rest is whole."""
    from provwh.query import find, paths
    from provwh.query.results import projection_spec

    full = db_env.task_query({"workflow_id": "wf-t"})
    slim = db_env.task_query({"workflow_id": "wf-t"}, projection={"telemetry_at_start": 0})
    assert slim == [{k: v for k, v in r.items() if k != "telemetry_at_start"} for r in full]
    cols = find.columns_for(
        paths.collection("tasks"),
        projection_spec({"telemetry_at_start": 0, "task_id": 0}),
        db_env.backend.dialect,
    )
    assert not any("telemetry_at_start" in c for c in cols)
    assert any(c == 't."telemetry_at_end"' for c in cols) and 't."task_id"' in cols
