"""Batches under a steady stream of tasks: files written and the cost against a plain call.

Usage: python benchmarks/batching.py [--n 5000] [--sleep-ms 1]

Each task sleeps ``--sleep-ms`` (a task that does some work), so records arrive while batches
are being written and fsynced. Prints the time per call of the plain function and of the
captured one (ratio to the plain call, same run), and how many batch files the run wrote and
their sizes: one per flush interval is what the settings ask for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--sleep-ms", type=float, default=1.0)
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="provwh-batching-"))
    from provwh import Flowcept, flowcept_task
    from provwh.transport import batches

    pause = args.sleep_ms / 1000

    def work(i: int) -> int:
        time.sleep(pause)
        return i

    captured = flowcept_task(work)
    t0 = time.perf_counter()
    for i in range(args.n):
        work(i)
    plain = (time.perf_counter() - t0) / args.n
    t0 = time.perf_counter()
    with Flowcept(start_persistence=False, workflow_name="batching"):
        for i in range(args.n):
            captured(i)
    total = (time.perf_counter() - t0) / args.n  # stop() included
    files = batches.list_batches(".provwh/spool")
    sizes = [len(batches.read_batch(f)) for f in files]
    print(f"N = {args.n:,} tasks of {args.sleep_ms:g} ms; folder {os.getcwd()}")
    print(f"plain call       {plain * 1e6:8.0f} us")
    print(f"captured call    {total * 1e6:8.0f} us   x {total / plain:.3f} the plain call")
    print(f"batch files      {len(files):8d}      records per file: median "
          f"{statistics.median(sizes):.0f}, min {min(sizes)}, max {max(sizes)}")  # fmt: skip


if __name__ == "__main__":
    main()
