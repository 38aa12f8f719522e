"""Capture, end to end, beside Flowcept 1.0.3 in the same run: what a user's process pays.

    python benchmarks/capture_e2e.py                  # N = 50,000, 3 runs of each
    python benchmarks/capture_e2e.py --n 20000 --runs 5
    python benchmarks/capture_e2e.py --flowcept-python /path/to/venv/bin/python
    python benchmarks/capture_e2e.py --instructions   # valgrind: instructions per call

Each run is a fresh process that enters ``with Flowcept(...)``, makes N calls of one API and
leaves the block, in offline mode with the dump file on and telemetry off (as a Flowcept user
runs offline). The figure is the process's CPU time from entering the block to leaving it, per
call: the call itself, the background serialization and batch writes (they share the GIL) and
the work at ``stop()`` (the dump file). Wall time is printed beside it.

Flowcept runs from its own virtual environment (``--flowcept-python``; by default one made
under ``~/.cache/provwh-bench`` with ``pip install flowcept==1.0.3``, if pip can reach an
index), with its default offline settings (``FLOWCEPT_USE_DEFAULT``: no broker, no database,
dump on). Without it, provwh's figures are printed alone. The plain-call baseline is measured
in each provwh run.

``--instructions`` counts instead of timing: each process runs under valgrind's callgrind,
with 2,000 and with 6,000 calls, and the difference of the two totals over 4,000 is the
instructions one call costs end to end (start-up and imports cancel out). The counts repeat
within a few percent whatever else the machine is doing, where CPU time on a shared VM varies
several-fold from one second to the next.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APIS = {
    "@flowcept_task": "task",
    "@lightweight_flowcept_task": "light",
    "FlowceptLoop, per iteration": "loop",
    "FlowceptLightweightLoop, per it.": "lightloop",
    "FlowceptTask(...).send()": "send",
}
# Not an API: the least a Python wrapper that keeps a call's times, arguments and result can
# cost (two clock reads, a tuple appended to a deque, nothing written), inside the same
# ``with Flowcept(...)`` block: the floor under any lightweight capture written in Python.
FLOOR = ("minimal wrapper (the floor)", "floor")

WORKLOAD = textwrap.dedent(
    """
    import json, sys, time
    {imports}
    api, n = sys.argv[1], int(sys.argv[2])

    def plain(x):
        return x + 1

    @flowcept_task
    def task(x):
        return x + 1

    @lightweight_flowcept_task
    def light(x):
        return x + 1

    from collections import deque
    _kept = deque()

    def floor_wrap(f):
        def wrapper(*args, **kwargs):
            t0 = time.time()
            r = f(*args, **kwargs)
            _kept.append((t0, time.time(), args, kwargs, r))
            return r
        return wrapper

    floor = floor_wrap(plain)

    def run():
        if api == "task":
            for i in range(n):
                task(i)
        elif api == "light":
            for i in range(n):
                light(i)
        elif api == "loop":
            loop = FlowceptLoop(range(n))
            for i in loop:
                loop.end_iter({{"v": i}})
        elif api == "lightloop":
            loop = FlowceptLightweightLoop(range(n))
            for i in loop:
                loop.end_iter({{"v": i}})
        elif api == "floor":
            for i in range(n):
                floor(i)
        elif api == "send":
            for i in range(n):
                FlowceptTask(activity_id="custom", used={{"i": i}}).send()

    t0 = time.perf_counter()
    for i in range(n):
        plain(i)
    base = time.perf_counter() - t0
    c0, w0 = time.process_time(), time.perf_counter()
    with Flowcept(workflow_name="e2e"):
        run()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    lines = sum(1 for _ in open("flowcept_buffer.jsonl", "rb"))
    print(json.dumps({{"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6,
                      "plain_us": base / n * 1e6, "lines": lines}}))
    """
)
PROVWH_IMPORTS = (
    "from provwh import Flowcept, FlowceptLightweightLoop, FlowceptLoop, FlowceptTask, "
    "flowcept_task, lightweight_flowcept_task"
)
FLOWCEPT_IMPORTS = (
    "from flowcept import Flowcept, FlowceptLightweightLoop, FlowceptLoop, FlowceptTask\n"
    "from flowcept.instrumentation.flowcept_task import flowcept_task, lightweight_flowcept_task"
)


def flowcept_python(given: str | None) -> str | None:
    """A Python with Flowcept 1.0.3 importable, or None (said why)."""
    if given:
        return given
    venv = Path.home() / ".cache" / "provwh-bench" / "flowcept-1.0.3"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"making a virtual environment with flowcept 1.0.3 in {venv} ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "flowcept==1.0.3"],
                check=True,
                capture_output=True,
                timeout=600,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"no Flowcept to compare with ({exc}); provwh's figures only")
            return None
    return str(python)


def one_run(
    python: str, imports: str, api: str, n: int, env: dict[str, str], counted: bool = False
) -> dict:
    with tempfile.TemporaryDirectory(prefix="provwh-e2e-") as tmp:
        script = Path(tmp) / "workload.py"
        script.write_text(WORKLOAD.format(imports=imports))
        tool = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] if counted else []
        out = subprocess.run(
            [*tool, python, str(script), api, str(n)],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if out.returncode != 0:
            raise SystemExit(f"{python} {api} failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if counted:
            found = re.search(r"Collected : (\d+)", out.stderr)
            result["instructions"] = int(found.group(1)) if found else 0
    if result["lines"] < n and api != "floor":
        raise SystemExit(f"{api}: the dump holds {result['lines']} lines for {n} calls")
    return result


def span(values: list[float]) -> str:
    return f"{min(values):5.2f}–{max(values):5.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--flowcept-python", help="a Python where flowcept 1.0.3 is importable")
    p.add_argument("--only", help="comma list of APIs (task, light, loop, lightloop, send, floor)")
    p.add_argument("--instructions", action="store_true", help="count with valgrind instead")
    args = p.parse_args()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    ours = {
        **base_env,
        "PROVWH_DB_FLUSH_MODE": "offline",
        "PROVWH_DUCKDB_ENABLED": "false",
        "PROVWH_DUMP_BUFFER_ENABLED": "true",
        "PROVWH_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(REPO),
    }
    theirs = {**base_env, "FLOWCEPT_USE_DEFAULT": "true"}
    fc = flowcept_python(args.flowcept_python)
    wanted = set(args.only.split(",")) if args.only else {*APIS.values(), FLOOR[1]}
    if args.instructions:
        count_instructions(fc, ours, theirs, wanted)
        return
    print(f"N = {args.n:,} calls, {args.runs} runs each; µs per call, range over the runs\n")
    print(f"{'API':34}{'provwh CPU':>14}{'Flowcept CPU':>15}{'ratio':>7}{'provwh wall':>14}")
    plain = []
    for label, api in [*APIS.items(), FLOOR]:
        if api not in wanted:
            continue
        mine, other = [], []
        for _ in range(args.runs):  # interleaved, so a busy moment hits both
            r = one_run(sys.executable, PROVWH_IMPORTS, api, args.n, ours)
            mine.append(r)
            plain.append(r["plain_us"])
            if fc and api != FLOOR[1]:
                other.append(one_run(fc, FLOWCEPT_IMPORTS, api, args.n, theirs))
        cpu = [r["cpu_us"] for r in mine]
        fc_cpu = [r["cpu_us"] for r in other]
        ratio = (
            f"{sorted(cpu)[len(cpu) // 2] / sorted(fc_cpu)[len(fc_cpu) // 2]:6.2f}"
            if fc_cpu
            else "     -"
        )
        print(
            f"{label:34}{span(cpu):>14}{span(fc_cpu) if fc_cpu else '-':>15}{ratio:>7}"
            f"{span([r['wall_us'] for r in mine]):>14}"
        )
    print(f"\nplain function call: {min(plain):.3f} µs; ratio: median provwh / median Flowcept")


def count_instructions(fc: str | None, ours: dict, theirs: dict, wanted: set[str]) -> None:
    def per_call(python: str, imports: str, api: str, env: dict) -> int:
        low, high = (
            one_run(python, imports, api, n, env, counted=True)["instructions"]
            for n in (2000, 6000)
        )
        return (high - low) // 4000

    print("instructions per call, end to end (valgrind callgrind; 6,000 minus 2,000 calls)\n")
    print(f"{'API':34}{'provwh':>10}{'Flowcept':>10}{'ratio':>7}")
    for label, api in [*APIS.items(), FLOOR]:
        if api not in wanted:
            continue
        mine = per_call(sys.executable, PROVWH_IMPORTS, api, ours)
        theirs_n = per_call(fc, FLOWCEPT_IMPORTS, api, theirs) if fc and api != FLOOR[1] else 0
        ratio = f"{mine / theirs_n:7.2f}" if theirs_n else "      -"
        theirs_text = f"{theirs_n:,}" if theirs_n else "-"
        print(f"{label:34}{mine:>10,}{theirs_text:>10}{ratio}")


if __name__ == "__main__":
    main()
