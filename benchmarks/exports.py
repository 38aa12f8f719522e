"""Export and report benchmark: the cost of each way out of the warehouse for one workflow.

    python benchmarks/exports.py              # 200,000 tasks
    python benchmarks/exports.py --n 50000    # the size issue 19 measured
    python benchmarks/exports.py --duckdb FILE --workflow ID   # an existing file

The tasks are ``benchmarks/load.py``'s (4 used and 2 generated keys, telemetry at start and
end), loaded into a DuckDB file. Each command then runs as users run it (``provwh ...`` in a
child process) and is timed with its peak memory (RSS of the child). The baseline, measured
in the same run, is DuckDB's own ``COPY (SELECT * FROM tasks ...) TO 'x.json'``: writing the
workflow's rows out as they are stored, with no shaping at all. An export whose memory does
not grow with the workflow shows the same peak at 50k and 200k tasks.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

COMMANDS = {
    "OpenLineage": ["export", "openlineage", "--out", "{out}/ol.jsonl"],
    "PROV-JSON": ["export", "prov", "--out", "{out}/run.prov.json"],
    "PROV-N": ["export", "prov", "--format", "provn", "--out", "{out}/run.provn"],
    "Parquet archive": ["export", "parquet", "--out", "{out}/archive"],
    "Markdown card": ["report", "--out", "{out}/card.md"],
    "PDF report": ["report", "--type", "provenance_report", "--out", "{out}/report.pdf"],
}


def _timed(cmd: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (MB) of one command, run under a wrapper process of its own (a
    process's RUSAGE_CHILDREN peak covers every child it ever waited for)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", *cmd], capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return seconds, int(out.stdout.split()[-1]) // 1024


def _baseline(duckdb_path: str, workflow: str, out: str) -> list[str]:
    code = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True);"
        ' c.execute("COPY (SELECT * FROM tasks WHERE workflow_id = \'" + sys.argv[2]'
        ' + "\') TO \'" + sys.argv[3] + "\' (FORMAT json)")'
    )
    return [sys.executable, "-c", code, duckdb_path, workflow, out]


def _load(n: int, work: Path) -> str:
    from load import generate

    from provwh.warehouse.duck import DuckTarget
    from provwh.warehouse.loader import Loader

    files = generate(work / "batches", n, 1000)
    path = str(work / "bench.duckdb")
    loader = Loader([DuckTarget(path)])
    loader.load_files(files)
    loader.derive_lineage()
    loader.close()
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000, help="tasks (default 200,000)")
    p.add_argument("--duckdb", help="an existing DuckDB file (skips generating and loading)")
    p.add_argument("--workflow", default="wf-bench", help="its workflow (default wf-bench)")
    p.add_argument("--only", help="comma list of the commands to run (names as printed)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="provwh-bench-exports-") as tmp:
        work = Path(tmp)
        path = args.duckdb
        if path is None:
            t0 = time.perf_counter()
            path = _load(args.n, work)
            print(f"{args.n:,} tasks loaded into DuckDB in {time.perf_counter() - t0:.1f} s")
        base_s, base_mb = _timed(_baseline(path, args.workflow, str(work / "raw.json")))
        print(f"\n{'':22}{'seconds':>9}{'x COPY':>8}{'peak RSS':>11}")
        print(f"{'DuckDB COPY TO json':22}{base_s:9.1f}{1:8.1f}{base_mb:8,} MB")
        wanted = set(args.only.split(",")) if args.only else set(COMMANDS)
        # every command reads the settings' database: this file
        os.environ.update(PROVWH_DUCKDB_ENABLED="true", PROVWH_DUCKDB_PATH=path)
        provwh = [sys.executable, "-m", "provwh.cli"]
        for name, tail in COMMANDS.items():
            if name not in wanted:
                continue
            cmd = [*provwh, *(a.format(out=tmp) for a in tail), "--workflow", args.workflow]
            seconds, mb = _timed(cmd)
            print(f"{name:22}{seconds:9.1f}{seconds / base_s:8.1f}{mb:8,} MB")


def _child() -> None:
    """Run one command; print its peak RSS in KB."""
    out = subprocess.run(sys.argv[2:], capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(out.returncode)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child()
    else:
        main()
