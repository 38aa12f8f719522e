"""``provwh`` export / import / settings / check / version / report from the command line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from warehouse_helpers import count, query, task, workflow, write_jsonl

from provwh import cli
from provwh.cli import settings as cli_settings
from provwh.core.config import SCHEMA, load_settings

COMMANDS = [
    ["export"],
    ["export", "parquet"],
    ["export", "prov"],
    ["export", "openlineage"],
    ["import"],
    ["settings"],
    ["settings", "show"],
    ["settings", "init"],
    ["check"],
    ["version"],
    ["report"],
]


def test_every_command_module_is_listed():
    """cli.COMMANDS holds every command module of provwh/cli/, in the order of --help."""
    folder = Path(cli.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "__main__", "common"}
    assert sorted(m.__name__.rsplit(".", 1)[1] for m in cli.COMMANDS) == sorted(modules)
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == ["db", "load", "consume", "sql", "export", "import", "settings",
                                 "check", "version", "report", "serve"]  # fmt: skip


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def loaded_duck(tmp_path, duck_path, capsys):
    records = [
        workflow(),
        task(0),
        task(1, status="ERROR"),
        task(2, dependencies=[task(1)["task_id"]]),
    ]
    assert (
        run(capsys, "load", write_jsonl(tmp_path / "in.jsonl", records), "--duckdb", duck_path)[0]
        == 0
    )
    return duck_path


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_help_on_every_command(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: provwh {' '.join(argv)}")


@pytest.mark.parametrize(
    "argv",
    [
        ["export"],
        ["export", "parquet", "--workflow", "w"],  # no --out
        ["export", "parquet", "--workflow", "w", "--campaign", "c", "--out", "d"],
        ["export", "parquet", "--workflow", "w", "--out", "d", "--overwrite", "--append"],
        ["export", "prov"],
        ["export", "prov", "--workflow", "w", "--format", "xml"],
        ["import"],
        ["settings", "sideways"],
        ["report", "--type", "poster"],
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_errors_are_one_line_and_exit_1(capsys, tmp_path, loaded_duck):
    cases = [
        (["export", "prov", "--workflow", "nope", "--duckdb", loaded_duck],
         f"DuckDB {loaded_duck}: no workflow 'nope'"),
        (["export", "openlineage", "--workflow", "w", "--duckdb", str(tmp_path / "no.duckdb")],
         f"{tmp_path / 'no.duckdb'}: no such DuckDB file"),
        (["export", "parquet", "--before", "soon", "--out", "a", "--duckdb", loaded_duck],
         "--before 'soon': expected a date (YYYY-MM-DD) or ISO time"),
        (["export", "parquet", "--workflow", "wf-1", "--out", "a", "--delete", "--duckdb",
          loaded_duck], "--delete archives from PostgreSQL only: pass --postgres URL"),
        (["import", str(tmp_path / "missing.jsonl"), "--duckdb", loaded_duck],
         f"{tmp_path / 'missing.jsonl'}: no such file"),
        (["report", "--input", str(tmp_path / "missing.jsonl")],
         f"report input file '{tmp_path / 'missing.jsonl'}' was not found"),
    ]  # fmt: skip
    for argv, message in cases:
        rc, out, err = run(capsys, *argv)
        assert (rc, out, err) == (1, "", f"provwh: error: {message}\n"), argv
    rc, _, err = run(capsys, "--debug", "export", "prov", "--workflow", "nope", "--duckdb",
                     loaded_duck)  # fmt: skip
    assert rc == 1 and "Traceback (most recent call last)" in err


def test_export_commands(capsys, tmp_path, loaded_duck):
    rc, out, _ = run(capsys, "export", "parquet", "--workflow", "wf-1", "--out", "arch",
                     "--duckdb", loaded_duck)  # fmt: skip
    assert (
        rc == 0
        and out.startswith("exported workflow wf-1: ")
        and "(3 tasks, 1 workflow) in " in out
    )
    assert run(capsys, "export", "parquet", "--workflow", "wf-1", "--out", "arch", "--duckdb",
               loaded_duck)[0] == 1  # fmt: skip
    assert run(capsys, "export", "parquet", "--workflow", "wf-1", "--out", "arch", "--duckdb",
               loaded_duck, "--overwrite")[0] == 0  # fmt: skip

    rc, out, _ = run(capsys, "export", "prov", "--workflow", "wf-1", "--duckdb", loaded_duck)
    assert rc == 0 and len(json.loads(out)["activity"]) == 3
    rc, out, _ = run(capsys, "export", "prov", "--workflow", "wf-1", "--format", "provn",
                     "--out", "wf.provn", "--duckdb", loaded_duck)  # fmt: skip
    assert rc == 0 and out.startswith("wrote wf.provn: 3 activities")
    assert (tmp_path / "wf.provn").read_text().startswith("document\n")

    rc, out, _ = run(capsys, "export", "openlineage", "--workflow", "wf-1", "--duckdb", loaded_duck)
    events = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [e["eventType"] for e in events].count("FAIL") == 1 and len(events) == 7


def test_export_reads_the_settings_database(capsys, tmp_path, loaded_duck, set_env):
    set_env(PROVWH_DUCKDB_PATH=loaded_duck)
    rc, out, _ = run(capsys, "export", "openlineage", "--workflow", "wf-1", "--out", "ol.jsonl")
    assert (rc, out) == (0, "wrote ol.jsonl: 7 OpenLineage events\n")


def test_parquet_delete_from_postgres(capsys, tmp_path, pg_url):
    path = write_jsonl(tmp_path / "in.jsonl", [workflow(), task(0), task(1), workflow("wf-2"),
                                               task(2, wf="wf-2")])  # fmt: skip
    assert run(capsys, "load", path, "--postgres", pg_url)[0] == 0
    rc, out, _ = run(capsys, "export", "parquet", "--workflow", "wf-1", "--out", "arch",
                     "--delete", "--postgres", pg_url)  # fmt: skip
    assert rc == 0 and out.rstrip().endswith("rows from PostgreSQL")
    assert query(pg_url, "SELECT task_id FROM tasks") == [(task(2)["task_id"],)]
    assert count(pg_url, "workflows") == 1


def test_import_command(capsys, tmp_path, loaded_duck, pg_url):
    run(capsys, "export", "openlineage", "--workflow", "wf-1", "--duckdb", loaded_duck,
        "--out", "ol.jsonl")  # fmt: skip
    rc, out, _ = run(capsys, "import", "ol.jsonl", "--postgres", pg_url)
    assert rc == 0 and out.startswith("loaded 1 batch: ") and "(3 tasks, 1 workflow)" in out
    assert query(pg_url, "SELECT status, count(*) FROM tasks GROUP BY 1 ORDER BY 1") == [
        ("ERROR", 1),
        ("FINISHED", 2),
    ]
    flowcept = write_jsonl(tmp_path / "buf.jsonl", [task(7)])
    rc, out, _ = run(capsys, "import", flowcept, "--postgres", pg_url)
    assert rc == 0 and count(pg_url, "tasks") == 4


def test_settings_init_writes_every_default(capsys, tmp_path):
    rc, out, _ = run(capsys, "settings", "init")
    assert rc == 0 and out.startswith(f"wrote {cli_settings.DEFAULT_SETTINGS_FILE}")
    path = tmp_path / cli_settings.DEFAULT_SETTINGS_FILE
    text = path.read_text()
    loaded = load_settings(str(path), env={})
    assert {k: loaded.get(k) for k in SCHEMA} == {k: v[1] for k, v in SCHEMA.items()}
    for key in SCHEMA:  # every key appears, commented
        leaf = key.rsplit(".", 1)[1]
        assert any(line.strip().startswith(f"{leaf}:") and "#" in line
                   for line in text.splitlines()), key  # fmt: skip
    assert "$PROVWH_POSTGRES_URL" in text
    rc, _, err = run(capsys, "settings", "init")
    assert rc == 1 and err.endswith("exists: pass --force to overwrite it\n")
    assert run(capsys, "settings", "init", "--force")[0] == 0


def test_settings_show_is_redacted(capsys, set_env):
    set_env(PROVWH_POSTGRES_URL="postgresql://bob:s3cret@db:5432/prov")
    rc, out, _ = run(capsys, "settings", "show")
    assert rc == 0 and "s3cret" not in out
    shown = yaml.safe_load(out)
    assert shown["databases"]["postgres"]["url"] == "postgresql://bob:REDACTED@db:5432/prov"
    assert shown["buffer"]["format"] == "jsonl"
    rc, out, _ = run(capsys, "settings", "show", "--json")
    assert json.loads(out)["databases"]["postgres"]["enabled"] is True


def test_check(capsys, set_env, loaded_duck):
    set_env(PROVWH_DUCKDB_PATH=loaded_duck)
    rc, out, _ = run(capsys, "check")
    assert rc == 0
    assert f"DuckDB {loaded_duck}: ok (schema revision" in out
    assert "packages:" in out and "  duckdb " in out and "databases.duckdb.path = " in out
    set_env(PROVWH_POSTGRES_URL="postgresql://nobody:pw@127.0.0.1:1/none")
    rc, out, _ = run(capsys, "check")
    assert (
        rc == 1
        and "PostgreSQL postgresql+psycopg://nobody:REDACTED@127.0.0.1:1/none: does not" in out
    )


def test_version(capsys):
    from provwh.version import __version__

    assert run(capsys, "version") == (0, f"provwh {__version__}\n", "")


def test_report(capsys, tmp_path):
    path = write_jsonl(tmp_path / "buf.jsonl", [workflow(), task(0), task(1)])
    rc, out, _ = run(capsys, "report", "--input", path, "--out", "card.md")
    assert rc == 0 and out.startswith(f"wrote provenance card {tmp_path / 'card.md'} (2 tasks")
    assert out == (
        f"wrote provenance card {tmp_path / 'card.md'} (2 tasks, 1 workflow, from jsonl {path})\n"
    )
    assert (tmp_path / "card.md").read_text().strip()
    rc, _, err = run(capsys, "report", "--type", "provenance_card", "--format", "pdf")
    assert rc == 1 and err.startswith("provwh: error: report_type 'provenance_card' supports only")


def test_importing_the_new_modules_stays_light():
    code = (
        "import sys, provwh.cli, provwh.exports.parquet, provwh.exports.prov,"
        " provwh.exports.openlineage, provwh.exports.importer\n"
        "heavy = {'sqlalchemy', 'duckdb', 'psycopg', 'pyarrow', 'pandas', 'alembic', 'prov'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
