"""A Dask map + reduce whose every task, on every worker, is a provenance task.

``Flowcept(interceptors=["instrumentation", "dask"], dask_client=client)`` installs a Dask
worker plugin; each worker process writes its tasks' records into the spool folder. Run with
``pip install "dask[distributed]"``.
"""

from distributed import Client, LocalCluster

from provwh import Flowcept


def inc(x):
    return x + 1


def total(xs):
    return sum(xs)


if __name__ == "__main__":  # worker processes re-import this file
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            with Flowcept(
                workflow_name="dask_map_reduce",
                interceptors=["instrumentation", "dask"],
                dask_client=client,
            ):
                futures = client.map(inc, range(10))
                result = client.submit(total, futures).result()
            print("total:", result)

    tasks = [m for m in Flowcept.read_buffer_file() if m["type"] == "task"]
    reduce_task = next(t for t in tasks if t["activity_id"] == "total")
    print("tasks:", len(tasks), "reduce depends on:", len(reduce_task["dependencies"]))
