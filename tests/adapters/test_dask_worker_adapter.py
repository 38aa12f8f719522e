"""Flowcept 1.0.3's way to capture Dask: the user registers ``FlowceptDaskWorkerAdapter`` on the
client, then starts ``Flowcept("dask", dask_client=client)``. Real LocalClusters, worker
processes and worker threads; the tasks are read back from the run's buffer file (its dump).
"""

from collections import Counter

import pytest

distributed = pytest.importorskip("distributed")

from dask_graph_funcs import add, inc, multiply, sum_list  # noqa: E402

from provwh import Flowcept  # noqa: E402
from provwh.adapters.dask import ADAPTER_NAME  # noqa: E402


def dumped_tasks():
    return [r for r in Flowcept.read_buffer_file() if r["type"] == "task"]


def plugin_names(dask_worker):
    return sorted(dask_worker.plugins)


def attached_workflows(dask_worker):
    return [p.workflow_id for p in dask_worker.plugins.values() if hasattr(p, "run_tag")]


@pytest.mark.parametrize("processes", [True, False], ids=["processes", "threads"])
def test_flowcept_example_closing_the_cluster_inside_the_with_block(isolated, processes):
    """Flowcept's own Dask example, with the import changed: the cluster is closed before the
    controller stops, and every task is still in the run."""
    from provwh import FlowceptDaskWorkerAdapter

    cluster = distributed.LocalCluster(
        n_workers=2, processes=processes, threads_per_worker=1, dashboard_address=None
    )
    scheduler = cluster.scheduler
    client = distributed.Client(scheduler.address)
    client.register_plugin(FlowceptDaskWorkerAdapter())
    with Flowcept("dask", dask_client=client) as flowcept:
        t1 = client.submit(add, 1, 2)
        t2 = client.submit(multiply, 3, 4)
        t3 = client.submit(add, t1.result(), t2.result())
        t4 = client.submit(sum_list, [t1, t2, t3])
        assert t4.result() == 30
        client.close()
        cluster.close()

    tasks = dumped_tasks()
    assert len(tasks) == 4
    by_key = {t["task_id"]: t for t in tasks}
    assert set(by_key) == {str(t.key) for t in (t1, t2, t3, t4)}
    assert {t["workflow_id"] for t in tasks} == {flowcept.current_workflow_id}
    assert {t["campaign_id"] for t in tasks} == {flowcept.campaign_id}
    assert [
        (by_key[str(t.key)]["activity_id"], by_key[str(t.key)]["used"]) for t in (t1, t2, t3, t4)
    ] == [
        ("add", {"x": 1, "y": 2}),
        ("multiply", {"x": 3, "y": 4}),
        ("add", {"x": 3, "y": 12}),
        ("sum_list", {"values": [3, 12, 15]}),
    ]
    assert by_key[str(t4.key)]["generated"] == {"arg_0": 30}
    assert sorted(by_key[str(t4.key)]["dependencies"]) == sorted(str(t.key) for t in (t1, t2, t3))
    assert {t["adapter_id"] for t in tasks} == {"dask"}
    (workflow,) = [r for r in Flowcept.read_buffer_file() if r["type"] == "workflow"]
    assert (workflow["workflow_id"], workflow["adapter_id"]) == (
        flowcept.current_workflow_id,
        "dask",
    )
    assert workflow["custom_metadata"]["n_workers"] == 2


@pytest.fixture(scope="module")
def registered_client():
    """A cluster of two worker processes with the adapter registered, as a Flowcept user does."""
    from provwh.adapters.dask import FlowceptDaskWorkerAdapter

    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    client = distributed.Client(cluster.scheduler.address)
    client.wait_for_workers(2)
    client.register_plugin(FlowceptDaskWorkerAdapter())
    yield client
    client.close()
    cluster.close()


def test_runs_attach_the_registered_adapter_once_each(registered_client, isolated):
    client = registered_client
    assert all(ADAPTER_NAME in names for names in client.run(plugin_names).values())
    before = client.submit(inc, 1000, pure=False)
    assert before.result() == 1001  # no run: not captured

    ids = []
    for n in (2, 3):
        with Flowcept(interceptors=["dask"], dask_client=client) as flowcept:
            # the adapter is attached (no plugin of provwh's own beside it: tasks come once)
            names = client.run(plugin_names).values()
            assert all(ADAPTER_NAME in ns and not any(x.startswith("provwh-") for x in ns)
                       for ns in names)  # fmt: skip
            assert set(sum(client.run(attached_workflows).values(), [])) == {
                flowcept.current_workflow_id
            }
            futures = client.map(inc, range(n), pure=False)
            assert client.gather(futures) == list(range(1, n + 1))
        ids.append(flowcept.current_workflow_id)
        tasks = dumped_tasks()
        assert Counter(t["task_id"] for t in tasks) == {str(f.key): 1 for f in futures}
        assert {t["workflow_id"] for t in tasks} == {flowcept.current_workflow_id}
        assert [t["used"] for t in sorted(tasks, key=lambda t: t["used"]["x"])] == [
            {"x": i} for i in range(n)
        ]
    assert ids[0] != ids[1]

    # after the runs the plain adapter is back on every worker, capturing nothing
    assert set(sum(client.run(attached_workflows).values(), [])) == {None}
    assert client.submit(inc, 2000, pure=False).result() == 2001


def test_importable_where_flowcept_users_find_it():
    import provwh
    from provwh.adapters import dask as dask_adapter

    assert provwh.FlowceptDaskWorkerAdapter is dask_adapter.FlowceptDaskWorkerAdapter
    plugin = provwh.FlowceptDaskWorkerAdapter()
    assert isinstance(plugin, distributed.WorkerPlugin)
    assert (plugin.name, plugin.spool_dir, plugin.workflow_id) == (ADAPTER_NAME, None, None)
