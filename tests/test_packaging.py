"""provwh as users install it: a wheel built from the sdist, in a fresh virtual environment.

The wheel is installed with no source tree on ``sys.path`` and driven from a folder outside the
checkout: the README's first capture snippet, then ``provwh db upgrade``, ``provwh load``,
``provwh sql`` against PostgreSQL and ``provwh check``, with exact results. Before the
``postgres`` extra is installed, ``provwh db upgrade`` must name it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tomllib
import uuid
from pathlib import Path

import psycopg
import pytest
from pg_support import with_db

ROOT = Path(__file__).resolve().parent.parent

README = (ROOT / "README.md").read_text()


def readme_blocks(lang: str) -> list[str]:
    """The README's fenced code blocks of one language, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.S | re.M)


def opening_commands() -> list[str]:
    """The README's first commands, after the pip installs (done here from the wheel)."""
    lines = [ln.split("#")[0].strip() for ln in readme_blocks("bash")[0].splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("pip ")]


def test_every_package_of_the_source_tree_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])  # fmt: skip
    found = {
        ".".join(p.relative_to(ROOT).parts)
        for p in (ROOT / "provwh").rglob("*")
        if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))
    } | {"provwh", "provwh.sql", "provwh.sql.views", "provwh.migrations",
         "provwh.migrations.versions"}  # fmt: skip
    assert listed == found


def _serve_and_get(cmd: list[str], cwd: Path, env: dict[str, str], paths: list[str]) -> list[str]:
    """Start ``cmd`` (``provwh serve``) on a free port, GET each path, stop it with SIGINT
    (it must exit 0); the bodies."""
    import signal
    import urllib.request

    proc = subprocess.Popen(
        [*cmd, "--port", "0"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        base = f"http://127.0.0.1:{found.group(1)}"
        bodies = []
        for path in paths:
            with urllib.request.urlopen(base + path, timeout=60) as resp:
                assert resp.status == 200, path
                bodies.append(resp.read().decode())
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return bodies


def _run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True):
    # newline="": CRLF kept as such, so that an exact comparison sees it
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=900)
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    if check:
        assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sdist, and the wheel built from it (as pip builds an sdist from PyPI)."""
    out = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = f"from setuptools import build_meta as b; print(b.build_sdist({str(out)!r}))"
    sdist = out / _run([sys.executable, "-c", code], ROOT, env).stdout.strip().splitlines()[-1]
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", str(out), str(sdist)], out, env)  # fmt: skip
    (wheel,) = out.glob("provwh-*.whl")
    return sdist, wheel


def test_the_sdist_carries_the_sql_and_the_migrations(built):
    sdist, _wheel = built
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"sql/data_edges.sql", "sql/views/v_tasks.sql", "migrations/env.py",
            "migrations/script.py.mako", "migrations/versions/0001_initial_schema.py",
            "pyproject.toml", "README.md"} <= names  # fmt: skip


@pytest.fixture
def fresh_db(pg_server):
    name = f"provwh_wheel_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_db(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_wheel_works_where_users_install_it(built, tmp_path, fresh_db):
    _sdist, wheel = built
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, dict(os.environ))
    py, provwh = str(venv / "bin" / "python"), str(venv / "bin" / "provwh")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("PROVWH_", "FLOWCEPT_"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "work"
    work.mkdir()
    _run([py, "-m", "pip", "install", "-q", str(wheel)], work, env)

    # provwh is the wheel's, not the checkout's
    where = _run([py, "-c", "import provwh; print(provwh.__file__)"], work, env).stdout.strip()
    assert where == str(venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
                        / "site-packages" / "provwh" / "__init__.py")  # fmt: skip

    # without the postgres extra, the command says which extra to install
    no_extra = _run([provwh, "db", "upgrade", "--url", fresh_db], work, env, check=False)
    assert (no_extra.returncode, no_extra.stdout) == (1, "")
    assert no_extra.stderr == (
        "provwh db upgrade needs the 'postgres' extra: pip install 'provwh[postgres]'\n"
    )

    # the README's opening commands, its first snippet saved as first.py, as a new user runs them
    snippet = readme_blocks("python")[0]
    assert 'with Flowcept(workflow_name="my_workflow"):' in snippet
    (work / "first.py").write_text(
        snippet + "\nprint(len(msgs), sorted(m['type'] for m in msgs))\n"
    )
    commands = opening_commands()
    assert [c.split()[:2] for c in commands] == [
        ["python", "first.py"], ["provwh", "sql"], ["provwh", "serve"], ["provwh", "check"]
    ]  # fmt: skip
    serve_cmd = commands.pop(2)
    first, sql, check = (_run(shlex.split(c), work, env) for c in commands)
    assert (first.stdout, first.stderr) == ("2 ['task', 'workflow']\n", "")
    assert (work / "flowcept_buffer.jsonl").is_file() and (work / "provwh.duckdb").is_file()
    assert sql.stdout == (
        "activity_id | status\n------------+---------\nadd_one     | FINISHED\n(1 row)\n"
    )
    site = Path(where).parent
    assert f"  SQL: ok ({site / 'sql'}: data_edges.sql, 10 views)\n" in check.stdout
    revisions = len(list((ROOT / "migrations" / "versions").glob("0*.py")))
    assert f"  migrations: ok ({site / 'migrations'}: {revisions} revisions)\n" in check.stdout
    tasks = _run([provwh, "sql", "--duckdb", "provwh.duckdb", "--csv",
                  "SELECT activity_id, status FROM v_tasks"], work, env)  # fmt: skip
    assert tasks.stdout == "activity_id,status\nadd_one,FINISHED\n"

    # `provwh serve`: names its extra until it is installed, then serves the run just made
    no_serve = _run([provwh, "serve", "--port", "0"], work, env, check=False)
    assert (no_serve.returncode, no_serve.stderr) == (
        1, "provwh serve needs the 'serve' extra: pip install 'provwh[serve]'\n"
    )  # fmt: skip
    _run([py, "-m", "pip", "install", "-q", f"{wheel}[serve]"], work, env)
    overview, workflows, echarts, script, docs, swagger, swagger_css, licence = _serve_and_get(
        [str(venv / "bin" / a) if a == "provwh" else a for a in shlex.split(serve_cmd)],
        work, env, ["/", "/api/v1/workflows", "/static/vendor/echarts/echarts.min.js",
                    "/static/charts.js", "/docs", "/static/vendor/swagger-ui/swagger-ui-bundle.js",
                    "/static/vendor/swagger-ui/swagger-ui.css",
                    "/static/vendor/swagger-ui/LICENSE"],
    )  # fmt: skip
    assert "my_workflow" in overview
    # the vendored chart library and the UI's script are in the wheel, served from it
    assert echarts.lstrip().startswith("/*\n* Licensed to the Apache Software Foundation")
    assert len(echarts) > 1_000_000 and script.startswith("/* provwh web UI")
    # and so are the API docs' Swagger UI and its licence
    assert '<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js">' in docs
    assert "SwaggerUIBundle" in swagger and len(swagger) > 1_000_000
    assert ".swagger-ui" in swagger_css and "Apache License" in licence
    assert [w["name"] for w in json.loads(workflows)["items"]] == ["my_workflow"]

    _run([py, "-m", "pip", "install", "-q", f"{wheel}[postgres]"], work, env)
    upgrade = _run([provwh, "db", "upgrade", "--url", fresh_db], work, env)
    assert "0009" in upgrade.stdout
    load = _run([provwh, "load", "flowcept_buffer.jsonl", "--postgres", fresh_db], work, env)
    assert load.stdout.startswith("loaded 1 batch: ") and "(1 task, 1 workflow)" in load.stdout
    sql = _run([provwh, "sql", "--postgres", fresh_db, "--csv",
                "SELECT activity_id, status, used->>'x' AS x FROM tasks"], work, env)  # fmt: skip
    assert sql.stdout == "activity_id,status,x\nadd_one,FINISHED,7\n"
    env["PROVWH_POSTGRES_URL"] = fresh_db
    check = _run([provwh, "check"], work, env)
    assert "revision 0009" in check.stdout and "does not answer" not in check.stdout
