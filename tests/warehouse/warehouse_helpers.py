"""Helpers for the warehouse tests: a throwaway PostgreSQL cluster, records, queries."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import duckdb
import psycopg

from provwh.transport.batches import write_batch


def find_pg_bin() -> str | None:
    """The bin folder of an installed PostgreSQL server (initdb, pg_ctl)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    for path in candidates:
        if os.path.exists(os.path.join(path, "initdb")):
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A PostgreSQL cluster in a temporary folder, on a free port, trust auth.

    As root, initdb refuses to run: the commands then run as the ``postgres`` user (or
    ``nobody``) through ``runuser``.
    """

    def __init__(self, bindir: str, port: int | None = None) -> None:
        self.bindir = bindir
        self.port = port or free_port()
        self.root = tempfile.mkdtemp(prefix="provwh-pg-")
        self.data = os.path.join(self.root, "data")
        self.user = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(name)
                except KeyError:
                    continue
                self.user = name
                os.chown(self.root, pw.pw_uid, pw.pw_gid)
                break
        os.chmod(self.root, 0o755)

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)

    def init(self) -> PgCluster:
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c synchronous_commit=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            self.data,
            "-o",
            opts,
            "-l",
            os.path.join(self.root, "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")
        except subprocess.CalledProcessError:
            pass

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"


def can_connect(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def with_db(url: str, db: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{db}"


# --- records --------------------------------------------------------------------------------

T0 = 1_700_000_000.0


def telemetry(i: int) -> dict[str, Any]:
    return {
        "cpu": {"times_avg": {"user": 10.0 + i, "system": 2.5, "idle": 100.0}, "percent_all": 50.0},
        "memory": {
            "virtual": {"total": 8_000, "used": 3_000 + i, "available": 5_000, "percent": 37.5},
            "swap": {"total": 0, "used": 0, "percent": 0.0},
        },
        "process": {
            "memory": {"rss": 1_000 + i, "vms": 9_000},
            "cpu_percent": 99.5,
            "num_threads": 4,
        },
        "disk": {"disk_usage": {"percent": 40.0}, "io_sum": {"read_bytes": 10, "write_bytes": 20}},
        "network": {"netio_sum": {"bytes_sent": 7, "bytes_recv": 8}},
    }


def task(i: int, wf: str = "wf-1", **extra: Any) -> dict[str, Any]:
    rec = {
        "type": "task",
        "task_id": f"{i:016x}-{i}",
        "workflow_id": wf,
        "campaign_id": "camp-1",
        "activity_id": "step" if i % 2 else "train",
        "status": "FINISHED",
        "used": {"x": i, "lr": 0.5, "path": f"/data/in_{i}.csv", "opts": {"epochs": 3}},
        "generated": {"y": i * 2, "out": f"/data/out_{i}.bin"},
        "started_at": T0 + i,
        "ended_at": T0 + i + 0.25,
        "hostname": "node-1",
        "telemetry_at_start": telemetry(i),
        "telemetry_at_end": telemetry(i + 1),
    }
    rec.update(extra)
    return rec


def workflow(wf: str = "wf-1", **extra: Any) -> dict[str, Any]:
    rec = {
        "type": "workflow",
        "workflow_id": wf,
        "name": "demo",
        "campaign_id": "camp-1",
        "started_at": T0,
        "user": "alice",
    }
    rec.update(extra)
    return rec


def write_jsonl(path: Any, records: list[dict[str, Any]]) -> str:
    write_batch(str(path), records, "jsonl", fsync=False)
    return str(path)


def write_lines(path: Any, lines: list[bytes]) -> str:
    with open(path, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    return str(path)


# --- queries ------------------------------------------------------------------------------------


def query(target: Any, sql: str, params: Any = None) -> list[tuple]:
    """Rows of ``sql`` from a DuckDB path or a PostgreSQL URL (either URL form)."""
    if isinstance(target, str) and target.startswith("postgresql"):
        url = target.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(url) as conn:
            return conn.execute(sql, params).fetchall()
    with duckdb.connect(str(target), read_only=True) as conn:
        return conn.execute(sql.replace("%s", "?"), params).fetchall()


def count(target: Any, table: str) -> int:
    return query(target, f"SELECT count(*) FROM {table}")[0][0]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
