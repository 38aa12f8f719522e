"""A full or read-only spool disk never costs the user's program its run or its records
(issue 17 item 3): real small file systems (tmpfs, mounted by the test), real subprocesses."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from provwh.transport.batches import write_atomic

SCRIPT = textwrap.dedent(
    """
    import sys
    from provwh import Flowcept, flowcept_task

    @flowcept_task
    def f(i):
        return {"y": i * 2, "pad": "x" * 60}

    n = int(sys.argv[1])
    with Flowcept(workflow_name="full-disk"):
        for i in range(n):
            f(i)
    print("calls done", n)
    """
)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, read_only: bool = False):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _capture(tmp_path: Path, n: int, spool: Path, tmpdir: Path, **env: str):
    script = tmp_path / "capture.py"
    script.write_text(SCRIPT)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    run_env.update(PROVWH_DUCKDB_ENABLED="false", PROVWH_SPOOL_DIR=str(spool), TMPDIR=str(tmpdir))
    run_env.update(env)
    return subprocess.run(
        [sys.executable, str(script), str(n)], cwd=tmp_path, env=run_env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _load_tasks(tmp_path: Path, *folders: Path) -> int:
    """Load the folders into a fresh DuckDB file; the number of distinct tasks there."""
    import duckdb

    db = tmp_path / "check.duckdb"
    folders = [f for f in folders if any(f.glob("*.jsonl"))]  # a full spool may hold none
    cmd = [sys.executable, "-m", "provwh.cli", "load", *map(str, folders), "--duckdb", str(db)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute("SELECT count(DISTINCT task_id) FROM tasks").fetchone()[0]


def test_a_full_spool_falls_back_and_loses_nothing(tmp_path):
    with _tmpfs(tmp_path / "small", "1m") as small:
        spool, fallback_tmp = small / "spool", tmp_path / "tmp"
        fallback_tmp.mkdir()
        out = _capture(tmp_path, 30_000, spool, fallback_tmp)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "calls done 30000\n"
        fallback = fallback_tmp / f"provwh-{os.geteuid()}" / "spool"
        assert (
            f"provwh: the spool folder {spool} cannot take batches (No space left on device); "
            f"this run's batches go to {fallback} from now on (load them with `provwh load "
            f"{fallback}`)"
        ) in out.stderr
        assert "Traceback" not in out.stderr
        dump = _lines(tmp_path / "flowcept_buffer.jsonl")
        assert len(dump) == 30_001  # the workflow and every task
        assert not [p for p in small.rglob("*.tmp")]  # no partial file left on the full disk
        assert _load_tasks(tmp_path, spool, fallback) == 30_000


def test_nothing_writable_keeps_records_in_memory_bounded_and_in_the_dump(tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("buffer:\n  flush_size: 500\n  max_pending: 2000\n")
    with _tmpfs(tmp_path / "a", "512k") as a, _tmpfs(tmp_path / "b", "256k") as b:
        out = _capture(tmp_path, 40_000, a / "spool", b, PROVWH_SETTINGS_PATH=str(settings))
        assert out.returncode == 0, out.stderr
        assert out.stdout == "calls done 40000\n"  # every call returned: nothing raised into it
        assert "Traceback" not in out.stderr
        lines = [ln for ln in out.stderr.splitlines() if "could not be written" in ln]
        assert len(lines) == 1, out.stderr
        found = re.fullmatch(
            r"provwh: (\d+) records of this run could not be written as batches \(OSError: "
            r"\[Errno 28\] No space left on device\): (\d+) are in the buffer file "
            r"flowcept_buffer.jsonl, (\d+) were dropped to keep memory bounded",
            lines[0],
        )
        assert found, lines[0]
        unwritten, held, dropped = map(int, found.groups())
        assert unwritten == held + dropped
        assert held <= 5 * 2000  # at most 5 x max_pending held in memory
        tasks = [ln for ln in _lines(tmp_path / "flowcept_buffer.jsonl") if '"task"' in ln]
        # the dump: the batches written before the disks filled, then every record held
        assert len(tasks) == 40_000 - dropped
        assert 40_000 - unwritten > 0 and dropped > 0


def test_a_read_only_spool_loses_nothing(tmp_path):
    with _tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        fallback_tmp = tmp_path / "tmp"
        fallback_tmp.mkdir()
        out = _capture(tmp_path, 20_000, ro / "spool", fallback_tmp)
        assert out.returncode == 0, out.stderr
        assert "(Read-only file system); this run's batches go to" in out.stderr
        assert len(_lines(tmp_path / "flowcept_buffer.jsonl")) == 20_001
        fallback = fallback_tmp / f"provwh-{os.geteuid()}" / "spool"
        assert _load_tasks(tmp_path, fallback) == 20_000


def test_a_failed_atomic_write_leaves_no_partial_file(tmp_path):
    with _tmpfs(tmp_path / "tiny", "64k") as tiny:
        with pytest.raises(OSError, match="No space left on device"):
            write_atomic(tiny / "batch.jsonl", b"x" * 1_000_000, fsync=False)
        assert os.listdir(tiny) == []


def test_partial_files_a_killed_writer_left_are_removed_at_the_next_start(tmp_path):
    from provwh.transport.spool import SpoolWriter

    spool = tmp_path / "spool"
    spool.mkdir()
    old, fresh = spool / ".0001-h-1-r-000001.jsonl.1.tmp", spool / ".0002-h-2-r-000001.jsonl.2.tmp"
    old.write_bytes(b"{partial")
    fresh.write_bytes(b"{partial")
    os.utime(old, (1_000_000_000, 1_000_000_000))  # long ago: its writer is gone
    SpoolWriter(spool, "r", "jsonl", fsync=False)
    assert sorted(os.listdir(spool)) == [fresh.name]  # a live writer may still be on this one


def test_the_embedded_default_loads_the_fallen_back_batches_at_stop(tmp_path):
    """The loader beside the capture follows the spool folder; at stop it also loads this
    run's batches that went to the fallback folder, and leaves other runs' there alone."""
    import duckdb

    with _tmpfs(tmp_path / "small", "512k") as small:
        fallback_tmp = tmp_path / "tmp"
        fallback = fallback_tmp / f"provwh-{os.geteuid()}" / "spool"
        fallback.mkdir(parents=True)
        other = fallback / "1700000000000-otherhost-1-otherrun-000001.jsonl"
        write_atomic(other, b'{"type": "task", "task_id": "someone-else"}\n')
        db = tmp_path / "provwh.duckdb"
        out = _capture(tmp_path, 20_000, small / "spool", fallback_tmp,
                       PROVWH_DUCKDB_ENABLED="true", PROVWH_DUCKDB_PATH=str(db))  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "of this run are in" not in out.stderr  # nothing left to load by hand
        assert f"this run's batches go to {fallback} from now on" in out.stderr
        with duckdb.connect(str(db), read_only=True) as conn:
            assert conn.execute("SELECT count(DISTINCT task_id) FROM tasks").fetchone() == (20_000,)
            assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (20_000,)
        assert [p.name for p in fallback.glob("*.jsonl")] == [other.name]  # not this run's
        assert len(list((fallback / "done").iterdir())) > 0  # this run's, loaded
        assert not list((fallback / "claimed").iterdir())
