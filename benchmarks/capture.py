"""Capture overhead per API, as a ratio to a plain function call measured in the same run.

Usage: python benchmarks/capture.py [--n 200000]

For each API it prints, over N calls, the microseconds per call paid by the calling thread with
records queued ("call"), and per call end to end: capture, background serialization and the
batch files written by stop() ("end-to-end"), each with its ratio to a plain call. In CPython
the background writer shares the GIL, so end-to-end is what a busy single thread sees. It also
prints the memory held by the buffer per pending task, the memory growth over N tasks once
batches are flushed, and the import time of the package.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc


def plain(x):
    return x + 1


def measure(label, run, n, base):
    """Print the call-side and end-to-end cost per call of ``run(m)`` (m calls)."""
    from provwh import Flowcept

    # Call side: what the calling thread pays, records queued (drained every 1000 unwritten).
    gc.collect()
    ctl = Flowcept(workflow_name=label, start_persistence=False).start()
    buf = ctl.batch_buffer
    buf.max_pending = buf._threshold = 10**12
    t0 = time.perf_counter()
    for _ in range(n // 1000):
        run(1000)
        buf._queue.clear()
    call_us = (time.perf_counter() - t0) / n * 1e6
    ctl.stop()

    # End to end: the same calls with the background flush, and stop() writing the rest.
    gc.collect()
    ctl = Flowcept(workflow_name=label, start_persistence=False).start()
    t0 = time.perf_counter()
    run(n)
    ctl.stop()
    total_us = (time.perf_counter() - t0) / n * 1e6
    print(
        f"{label:34s} call {call_us:5.2f} us (x{call_us / base:4.0f})   "
        f"end-to-end {total_us:5.2f} us (x{total_us / base:4.0f})"
    )
    return total_us


def loop_body(f):
    def run(n):
        for i in range(n):
            f(i)

    return run


def bench_plain(n):
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(n):
            plain(i)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    n = parser.parse_args().n
    os.chdir(tempfile.mkdtemp(prefix="provwh-bench-"))
    os.environ["PROVWH_DUCKDB_ENABLED"] = "false"
    os.environ["PROVWH_DUMP_BUFFER_ENABLED"] = "false"

    from provwh import (
        FlowceptLightweightLoop,
        FlowceptLoop,
        FlowceptTask,
        flowcept_task,
        lightweight_flowcept_task,
    )

    @flowcept_task
    def task(x):
        return x + 1

    @lightweight_flowcept_task
    def light(x):
        return x + 1

    @flowcept_task
    def task_none(x, opt=None):  # None in `used`: its line is checked for non-finite floats
        return x + 1

    @flowcept_task
    def task_nan(x):  # a non-finite float: its record is written again with a marker
        return float("nan")

    base = bench_plain(n)
    print(f"N = {n:,} calls; plain function call {base:.3f} us\n")
    measure("@flowcept_task", loop_body(task), n, base)
    measure("@flowcept_task, a None argument", loop_body(task_none), n, base)
    measure("@flowcept_task returning NaN", loop_body(task_nan), n, base)
    measure("@lightweight_flowcept_task", loop_body(light), n, base)

    def send(n):
        for i in range(n):
            FlowceptTask(activity_id="custom", used={"i": i}).send()

    measure("FlowceptTask(...).send()", send, n, base)

    def flowcept_loop(n):
        loop = FlowceptLoop(range(n))
        for i in loop:
            loop.end_iter({"v": i})

    measure("FlowceptLoop per iteration", flowcept_loop, n, base)

    def light_loop(n):
        loop = FlowceptLightweightLoop(range(n))
        for i in loop:
            loop.end_iter({"v": i})

    measure("FlowceptLightweightLoop per it.", light_loop, n, base)

    from provwh.capture.telemetry import TelemetryCapture

    tel = TelemetryCapture()
    tel.snapshot()
    m = 5000
    t0 = time.perf_counter()
    for _ in range(m):
        tel.snapshot()
    snap = (time.perf_counter() - t0) / m * 1e6
    print(f"{'default telemetry snapshot':32s} {snap:6.1f} us   x{snap / base:5.0f} plain")

    memory(task, n)
    imports()


def memory(task, n):
    from provwh import Flowcept

    # Bytes held per pending task: capture with a buffer that never flushes.
    os.environ["PROVWH_FLUSH_SIZE"] = str(10**9)
    os.environ["PROVWH_FLUSH_INTERVAL"] = "3600"
    from provwh.core import config

    config.reload_settings()
    k = 20_000
    ctl = Flowcept(start_persistence=False).start()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(k):
        task(i)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    ctl.stop()
    print(f"\nmemory per buffered task: {held / k:,.0f} bytes")

    # Growth with flushing on: memory after N tasks vs after N/10.
    for key in ("PROVWH_FLUSH_SIZE", "PROVWH_FLUSH_INTERVAL"):
        del os.environ[key]
    config.reload_settings()
    ctl = Flowcept(start_persistence=False).start()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    marks = []
    for i in range(n):
        task(i)
        if i + 1 in (n // 10, n):
            marks.append(tracemalloc.get_traced_memory()[0] - base)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    ctl.stop()
    print(
        f"memory held after {n // 10:,} tasks: {marks[0] / 1e6:.2f} MB; after {n:,}: "
        f"{marks[1] / 1e6:.2f} MB; peak {peak / 1e6:.2f} MB"
    )


def imports():
    code = (
        "import time; t=time.perf_counter(); {stmt}; print(round((time.perf_counter()-t)*1000, 1))"
    )
    # As installed packages run: bytecode cached (the first run writes the cache).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for stmt in ("import provwh", "from provwh import Flowcept, flowcept_task"):
        runs = []
        for _ in range(6):
            out = subprocess.run(
                [sys.executable, "-c", code.format(stmt=stmt)],
                capture_output=True,
                text=True,
                env=env,
            )
            runs.append(float(out.stdout.strip()))
        heavy = subprocess.run(
            [
                sys.executable,
                "-c",
                f"{stmt}; import sys; print(sorted(m for m in "
                "('sqlalchemy','duckdb','pyarrow','pandas','psycopg','psutil','yaml') "
                "if m in sys.modules))",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"{stmt:45s} {min(runs):5.1f} ms (best of 6); heavy modules loaded: {heavy}")


if __name__ == "__main__":
    main()
