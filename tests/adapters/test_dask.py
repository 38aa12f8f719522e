"""The Dask interceptor on a real LocalCluster with two worker processes.

Worker processes write their own batch files into the spool folder, so the tests read every
batch there (and the controller's dump, which lists the workers' batches too).
"""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from dask_graph_funcs import fail, inc, scale, total  # noqa: E402

from provwh import Flowcept  # noqa: E402
from provwh.adapters.dask import DaskInterceptor  # noqa: E402
from provwh.capture import controller  # noqa: E402
from provwh.transport.batches import list_batches, read_batch  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    client = distributed.Client(cluster)
    client.wait_for_workers(2)
    yield client
    client.close()
    cluster.close()


def spool_records(root):
    return [rec for path in list_batches(root / ".provwh" / "spool") for rec in read_batch(path)]


def test_map_reduce_and_error(client, isolated):
    assert controller.INTERCEPTORS["dask"] == "provwh.adapters.dask:DaskInterceptor"
    with Flowcept(interceptors=["instrumentation", "dask"], dask_client=client) as ctl:
        futures = [client.submit(inc, i) for i in range(8)]
        reduced = client.submit(total, futures)
        assert reduced.result() == sum(range(1, 9))
        bad = client.submit(fail, 3)
        with pytest.raises(ValueError):
            bad.result()
        keyed = client.submit(scale, 5, factor=3, offset=1, key="scale-one")
        assert keyed.result() == {"value": 16}

    records = spool_records(isolated)
    tasks = [r for r in records if r["type"] == "task"]
    counts = Counter(t["task_id"] for t in tasks)
    assert all(n == 1 for n in counts.values()), counts
    expected = {f.key for f in futures} | {reduced.key, bad.key, "scale-one"}
    assert set(counts) == {str(k) for k in expected}

    by_id = {t["task_id"]: t for t in tasks}
    workers = set(client.nthreads())
    for future, i in zip(futures, range(8), strict=True):
        t = by_id[str(future.key)]
        assert (t["activity_id"], t["used"], t["generated"]) == ("inc", {"x": i}, {"arg_0": i + 1})
        assert t["dependencies"] == []
    for t in tasks:
        assert t["workflow_id"] == ctl.current_workflow_id
        assert t["campaign_id"] == ctl.campaign_id
        assert t["adapter_id"] == "dask"
        assert t["address"] in workers and t["hostname"]
        assert t["started_at"] <= t["ended_at"]

    reduce_task = by_id[str(reduced.key)]
    assert reduce_task["activity_id"] == "total"
    assert set(reduce_task["dependencies"]) == {str(f.key) for f in futures}
    assert reduce_task["used"] == {"xs": list(range(1, 9))}
    assert reduce_task["generated"] == {"arg_0": 36}
    assert reduce_task["status"] == "FINISHED"

    failed = by_id[str(bad.key)]
    assert (failed["activity_id"], failed["status"]) == ("fail", "ERROR")
    assert "cannot take 3" in failed["stderr"]
    assert "generated" not in failed

    keyed_task = by_id["scale-one"]
    assert keyed_task["used"] == {"x": 5, "factor": 3, "offset": 1}
    assert keyed_task["generated"] == {"value": 16}

    (workflow,) = [r for r in Flowcept.read_buffer_file() if r["type"] == "workflow"]
    assert workflow["adapter_id"] == "dask"
    meta = workflow["custom_metadata"]
    assert meta["n_workers"] == 2 and meta["n_threads"] == 2
    assert meta["scheduler"] == client.scheduler.address
    assert sorted(meta["workers"]) == sorted(workers)
    # The controller's dump lists the workers' batches: every Dask task is in it once.
    dumped = Counter(r["task_id"] for r in Flowcept.read_buffer_file() if r["type"] == "task")
    assert dumped == counts


def test_plugin_is_removed_at_stop_and_dask_alone(client, isolated):
    def plugin_names(dask_worker):
        return sorted(dask_worker.plugins)

    with Flowcept(interceptors="dask", dask_client=client) as ctl:
        name = f"provwh-{ctl.current_workflow_id}"
        assert all(name in names for names in client.run(plugin_names).values())
        assert client.submit(inc, 100).result() == 101
    assert all(name not in names for names in client.run(plugin_names).values())
    client.submit(inc, 200).result()  # after stop: not captured
    tasks = [r for r in spool_records(isolated) if r["type"] == "task"]
    assert [(t["activity_id"], t["used"]) for t in tasks] == [("inc", {"x": 100})]


def test_needs_a_client(monkeypatch):
    class Ctl:
        kwargs: dict = {}
        current_workflow_id = "w"

    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "default_client", no_client)
    with pytest.raises(ValueError, match="dask_client"):
        DaskInterceptor(Ctl())


def test_dask_example(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVWH_")}
    env["PROVWH_DUCKDB_ENABLED"] = "false"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "dask_workflow.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    tasks = [r for r in spool_records(tmp_path) if r["type"] == "task"]
    assert Counter(t["activity_id"] for t in tasks) == {"inc": 10, "total": 1}


def test_map_reduce_lands_in_the_warehouse_with_its_lineage(client, isolated, monkeypatch):
    """Every Dask task once in the warehouse; upstream of the reduce task = the map tasks."""
    from provwh.core import config

    monkeypatch.setenv("PROVWH_DUCKDB_ENABLED", "true")
    monkeypatch.setenv("PROVWH_DUCKDB_PATH", str(isolated / "dask.duckdb"))
    config.reload_settings()
    with Flowcept(interceptors=["dask"], dask_client=client) as ctl:
        futures = [client.submit(inc, i, pure=False) for i in range(6)]
        reduced = client.submit(total, futures, pure=False)
        assert reduced.result() == sum(range(1, 7))

    db = Flowcept.db
    tasks = db.task_query({"workflow_id": ctl.current_workflow_id})
    assert sorted(t["task_id"] for t in tasks) == sorted(
        str(k) for k in [f.key for f in futures] + [reduced.key]
    )
    upstream = db.get_upstream(str(reduced.key))
    assert sorted(t["task_id"] for t in upstream) == sorted(str(f.key) for f in futures)
    assert {t["depth"] for t in upstream} == {1}
    assert db.get_downstream(str(futures[0].key))[0]["task_id"] == str(reduced.key)
