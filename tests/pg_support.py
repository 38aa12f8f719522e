"""A PostgreSQL server for the tests: the configured one, the local one, or a throwaway cluster.

Order: ``PROVWH_TEST_POSTGRES_URL``, then 127.0.0.1:5432, then a cluster started from the
installed binaries (initdb / pg_ctl; as root they run as ``postgres`` via runuser). When none
works the tests FAIL with the reasons: PostgreSQL tests are never skipped.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEMPLATE = f"provwh_tpl_{uuid.uuid4().hex[:8]}"  # a database at the schema head, copied per test


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


@contextmanager
def admin_server(purpose: str = "the tests") -> Iterator[str]:
    """An admin URL (libpq form) with ``TEMPLATE`` created at the schema head."""
    import pytest

    from provwh.warehouse import migrate

    reasons = []
    cluster = None
    url = None
    env_url = os.environ.get("PROVWH_TEST_POSTGRES_URL")
    if env_url:
        url = env_url.replace("postgresql+psycopg://", "postgresql://", 1)
        if not can_connect(url):
            reasons.append(f"PROVWH_TEST_POSTGRES_URL={env_url} does not answer")
            url = None
    if url is None:
        if can_connect(DEFAULT_URL):
            url = DEFAULT_URL
        else:
            reasons.append(f"{DEFAULT_URL} does not answer")
            bindir = find_pg_bin()
            if bindir is None:
                reasons.append("no PostgreSQL binaries (initdb) found")
                pytest.fail(f"no PostgreSQL server for {purpose}: " + "; ".join(reasons))
            cluster = PgCluster(bindir)
            try:
                cluster.init()
                cluster.start()
            except Exception as exc:
                cluster.destroy()
                reasons.append(f"could not start a throwaway cluster from {bindir}: {exc}")
                pytest.fail(f"no PostgreSQL server for {purpose}: " + "; ".join(reasons))
            url = cluster.url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    migrate.upgrade(with_db(url, TEMPLATE))
    try:
        yield url
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        if cluster is not None:
            cluster.destroy()


class PgDatabases:
    """Databases copied from the template at head (names start with ``prefix``); ``drop_all``
    drops them."""

    def __init__(self, admin_url: str, prefix: str = "provwh_t_") -> None:
        self.admin_url = admin_url
        self.prefix = prefix
        self.names: list[str] = []

    def create(self) -> str:
        name = f"{self.prefix}{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        self.names.append(name)
        return with_db(self.admin_url, name).replace("postgresql://", "postgresql+psycopg://", 1)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.names.clear()
