"""Cost of the Flow system, next to a plain function call measured in the same run.

Usage: python benchmarks/flows.py [--n 100000]

Prints microseconds per trivial ``@task`` call inside a flow (not recorded; recorded inside an
open ``Flowcept`` session, where "total" includes the flush of every record at ``stop()``), per
orphan task call, per empty flow run, and the memory each task call keeps.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
import tracemalloc


def plain(x):
    return x + 1


def best_of(fn, n, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        best = min(best, fn(n))
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    n = parser.parse_args().n
    os.chdir(tempfile.mkdtemp(prefix="provwh-bench-flows-"))
    os.environ["PROVWH_DUCKDB_ENABLED"] = "false"
    os.environ["PROVWH_DUMP_BUFFER_ENABLED"] = "false"

    from provwh import Flowcept, flowcept_task
    from provwh.flows import Flow, flow, task

    @task
    def step(x):
        return x + 1

    @flowcept_task
    def captured(x):
        return x + 1

    def loop(fn):
        def run(k):
            t0 = time.perf_counter()
            for i in range(k):
                fn(i)
            return time.perf_counter() - t0

        return run

    @flow(flow_config={"log_to_console": False})
    def many(k, flow_data):
        flow_data["s"] = loop(step)(k)

    def in_flow(k):
        return many(k).execute().flow_data["s"]

    base = best_of(loop(plain), n)
    print(f"N = {n:,}; plain function call {base:.3f} us\n")
    row("@task call in a flow (no provenance)", best_of(in_flow, n), base)
    row("@task call outside any flow", best_of(loop(step), n), base)

    def recorded(fn):
        """us per call as seen by the caller, and including stop()'s flush of the records."""
        gc.collect()
        ctl = Flowcept(workflow_name="bench", start_persistence=False).start()
        t0 = time.perf_counter()
        call_s = fn(n)
        ctl.stop()
        return call_s / n * 1e6, (time.perf_counter() - t0) / n * 1e6

    for label, fn in (
        ("@task call in a flow, recorded", in_flow),
        ("@flowcept_task call (reference)", loop(captured)),
    ):
        call, total = recorded(fn)
        row(label, call, base, total)

    @flow(flow_config={"log_to_console": False})
    def empty():
        return None

    class Empty(Flow):
        def main(self):
            return None

    def flows(make):
        def run(k):
            t0 = time.perf_counter()
            for _ in range(k):
                make().execute()
            return time.perf_counter() - t0

        return run

    m = max(n // 10, 1000)
    print()
    row("empty @flow run (no provenance)", best_of(flows(empty), m, 3), base)
    row("empty Flow subclass setup+execute", best_of(flows(lambda: Empty().setup()), m, 3), base)
    call, total = (0.0, 0.0)
    gc.collect()
    ctl = Flowcept(workflow_name="bench", start_persistence=False).start()
    t0 = time.perf_counter()
    call = flows(empty)(m) / m * 1e6
    ctl.stop()
    total = (time.perf_counter() - t0) / m * 1e6
    row("empty @flow run, recorded", call, base, total)

    memory(step, n)


def row(label, us, base, total=None):
    extra = f"   total {total:6.2f} us" if total is not None else ""
    print(f"{label:38s} {us:7.2f} us   x{us / base:6.1f} plain{extra}")


def memory(step, n):
    """Bytes kept per task call while the run is alive (its compact record), and after."""
    print()
    for label, recorded in (("not recorded", False), ("recorded", True)):
        during, after, peak = memory_of(step, n, recorded)
        print(
            f"memory per task call, {label:13s}: {during / n:6.0f} bytes kept while "
            f"the run is alive; {after / n:5.1f} after; peak {peak / 1e6:.1f} MB"
        )


def memory_of(step, n, recorded):
    from provwh import Flowcept
    from provwh.flows import Flow

    ctl = Flowcept(workflow_name="bench", start_persistence=False).start() if recorded else None
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = {}

    def body(k):
        for i in range(k):
            step(i)
        if ctl is not None:
            ctl._flush()  # records leave memory once written to batch files
        gc.collect()
        kept["during"] = tracemalloc.get_traced_memory()[0] - before

    run = Flow(flow_config={"log_to_console": False}).setup(body, n).execute()
    del run
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] - before
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    if ctl is not None:
        ctl.stop()
    return kept["during"], after, peak


if __name__ == "__main__":
    main()
