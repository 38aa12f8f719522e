"""alembic migrations against a real PostgreSQL, and the startup schema checks."""

from __future__ import annotations

import json
import shutil

import psycopg
import pytest
from warehouse_helpers import T0, count, query, task, workflow, write_jsonl

from provwh.warehouse import migrate
from provwh.warehouse.errors import SchemaError
from provwh.warehouse.loader import Loader
from provwh.warehouse.pg import PgTarget
from provwh.warehouse.schema import SCHEMA_REVISION, metadata


def _tables(url: str) -> set[str]:
    rows = query(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {r[0] for r in rows}


def test_one_head_and_it_is_the_schema_revision():
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert heads == [SCHEMA_REVISION] == [migrate.head_revision()]


def test_upgrade_empty_to_head_check_and_downgrade_to_base(empty_pg_url):
    assert migrate.current_revision(empty_pg_url) is None
    migrate.upgrade(empty_pg_url)
    assert migrate.current_revision(empty_pg_url) == SCHEMA_REVISION
    assert _tables(empty_pg_url) == set(metadata.tables) | {"alembic_version"}
    assert migrate.check(empty_pg_url) == []  # models and migrations agree
    indexes = {
        r[0]
        for r in query(empty_pg_url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    }
    assert {
        "ix_tasks_workflow_started",
        "ix_task_values_value_hash",
        "ix_task_edges_dst_task_id",
        "pk_tasks",
        "pk_task_values",
    } <= indexes
    migrate.downgrade(empty_pg_url, "base")
    assert migrate.current_revision(empty_pg_url) is None
    assert _tables(empty_pg_url) == {"alembic_version"}
    migrate.upgrade(empty_pg_url)  # and up again (the stairway)
    assert migrate.current_revision(empty_pg_url) == SCHEMA_REVISION


def test_check_reports_a_model_change(pg_url):
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP INDEX ix_tasks_activity_id")
        conn.execute("ALTER TABLE tasks ADD COLUMN surprise TEXT")
    diffs = migrate.check(pg_url)
    assert sorted(diffs) == ["add_index ix_tasks_activity_id", "remove_column tasks surprise"]


def test_empty_database_is_created_at_head_on_first_load(empty_pg_url, tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", [task(1)])
    Loader([PgTarget(empty_pg_url)]).load_file(path)
    assert migrate.current_revision(empty_pg_url) == SCHEMA_REVISION
    assert count(empty_pg_url, "tasks") == 1


def test_foreign_tables_are_refused(empty_pg_url, tmp_path):
    with psycopg.connect(empty_pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE someone_elses (x int)")
    with pytest.raises(SchemaError, match="holds tables but no provwh schema revision"):
        PgTarget(empty_pg_url).connect()


def test_unknown_revision_is_refused(pg_url):
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaError, match="schema revision 9999, unknown to this provwh"):
        PgTarget(pg_url, migrate_on_startup=True).connect()


@pytest.fixture
def newer_provwh(tmp_path, monkeypatch):
    """A provwh whose migrations have a revision 9002 beyond the database's head."""
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), scripts)
    (scripts / "versions" / "9002_more.py").write_text(
        '"""Add an index."""\n\nfrom alembic import op\n\n'
        f'revision = "9002"\ndown_revision = "{SCHEMA_REVISION}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade():\n    op.create_index('ix_tasks_status', 'tasks', ['status'])\n\n\n"
        "def downgrade():\n    op.drop_index('ix_tasks_status', table_name='tasks')\n"
    )
    monkeypatch.setattr(migrate, "migrations_dir", lambda: str(scripts))
    monkeypatch.setattr(migrate, "SCHEMA_REVISION", "9002")


def test_database_behind_head_is_refused_naming_the_command(pg_url, newer_provwh):
    with pytest.raises(SchemaError) as err:
        PgTarget(pg_url).connect()
    assert f"is at schema revision {SCHEMA_REVISION}, this provwh needs 9002" in str(err.value)
    assert "run `provwh db upgrade`" in str(err.value)
    assert migrate.current_revision(pg_url) == SCHEMA_REVISION


def test_database_behind_head_is_upgraded_when_asked(pg_url, newer_provwh, tmp_path):
    target = PgTarget(pg_url, migrate_on_startup=True)
    Loader([target]).load_file(write_jsonl(tmp_path / "b.jsonl", [task(1)]))
    assert migrate.current_revision(pg_url) == "9002"
    assert query(pg_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_tasks_status'") == [
        (1,)
    ]


def test_duckdb_file_records_its_schema_version(duck_path, tmp_path):
    from provwh.warehouse.duck import DuckTarget

    Loader([DuckTarget(duck_path)]).load_file(write_jsonl(tmp_path / "b.jsonl", [task(1)]))
    assert query(duck_path, "SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]
    tables = {r[0] for r in query(duck_path, "SELECT table_name FROM information_schema.tables")}
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_duckdb_file_at_another_revision_is_refused(duck_path, tmp_path):
    import duckdb

    from provwh.warehouse.duck import DuckTarget

    Loader([DuckTarget(duck_path)]).load_file(write_jsonl(tmp_path / "b.jsonl", [task(1)]))
    with duckdb.connect(duck_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000'")
    with pytest.raises(
        SchemaError, match=f"has schema revision 0000, this provwh writes {SCHEMA_REVISION}"
    ):
        Loader([DuckTarget(duck_path)]).load_file(write_jsonl(tmp_path / "c.jsonl", [task(2)]))


def test_duckdb_file_at_0001_is_upgraded(duck_path, tmp_path):
    import duckdb

    from provwh.warehouse.duck import DuckTarget

    Loader([DuckTarget(duck_path)]).load_file(write_jsonl(tmp_path / "b.jsonl", [task(1)]))
    with duckdb.connect(duck_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    Loader([DuckTarget(duck_path)]).load_file(write_jsonl(tmp_path / "c.jsonl", [task(2)]))
    assert query(duck_path, "SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]
    assert count(duck_path, "tasks") == 2


def test_0002_indexes_used_and_generated_ranges(empty_pg_url):
    migrate.upgrade(empty_pg_url, "0001")
    assert query(
        empty_pg_url,
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_task_values_key_path_value_num'",
    ) == [(0,)]
    migrate.upgrade(empty_pg_url, "0002")
    assert query(
        empty_pg_url,
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_task_values_key_path_value_num'",
    ) == [
        (
            "CREATE INDEX ix_task_values_key_path_value_num ON public.task_values "
            "USING btree (key_path, value_num)",
        )
    ]
    migrate.downgrade(empty_pg_url, "0001")
    assert migrate.current_revision(empty_pg_url) == "0001"


def test_0004_indexes_key_paths_up_to_600_characters(empty_pg_url):
    sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_task_values_key_path_value_num'"
    migrate.upgrade(empty_pg_url, "head")
    assert query(empty_pg_url, sql) == [
        (
            "CREATE INDEX ix_task_values_key_path_value_num ON public.task_values "
            "USING btree (key_path, value_num) WHERE (length(key_path) <= 600)",
        )
    ]
    assert migrate.check(empty_pg_url) == []
    migrate.downgrade(empty_pg_url, "0003")
    assert query(empty_pg_url, sql) == [
        (
            "CREATE INDEX ix_task_values_key_path_value_num ON public.task_values "
            "USING btree (key_path, value_num)",
        )
    ]


def test_the_duckdb_chain_is_the_alembic_chain():
    """One chain of revisions: the scripts alembic runs, which DuckDB files follow too."""
    from alembic.script import ScriptDirectory

    from provwh.warehouse import revisions

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    walked = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert (
        [r.revision for r in revisions.chain()]
        == walked
        == ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009"]
    )
    assert revisions.head() == SCHEMA_REVISION == scripts.get_current_head()


def test_a_duckdb_file_behind_head_is_upgraded_on_open(tmp_path):
    import duckdb

    from provwh.warehouse.duck import DuckTarget, schema_revision

    path = str(tmp_path / "old.duckdb")
    target = DuckTarget(path)
    with target.transaction():
        pass
    target.close()
    with duckdb.connect(path) as conn:  # as a file written at revision 0001 would be
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    target = DuckTarget(path)
    with target.transaction():
        pass
    target.close()
    with duckdb.connect(path, read_only=True) as conn:
        assert schema_revision(conn) == SCHEMA_REVISION == "0009"
    with duckdb.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaError, match="has schema revision 9999, this provwh writes 0009"):
        with DuckTarget(path).transaction():
            pass


def _old_rule_edges(tmp_path, target) -> list[tuple[str, str, str]]:
    """Load three producers of one path and two readers; the edges only the old rule had."""
    from warehouse_helpers import T0

    recs = [{"type": "task", "task_id": f"w{i}", "ended_at": T0 + i, "generated": {"f": "/a.csv"}}
            for i in range(3)] + [
        {"type": "task", "task_id": f"r{i}", "started_at": T0 + 10, "used": {"f": "/a.csv"}}
        for i in range(2)
    ]  # fmt: skip
    loader = Loader([target])
    loader.load_file(write_jsonl(tmp_path / "old.jsonl", recs))
    loader.derive_lineage()
    loader.close()
    old = [(f"w{i}", f"r{j}", "data") for i in range(3) for j in range(2) if i != 2]
    return old


def test_0003_derives_data_edges_again_on_postgres(pg_url, tmp_path):
    target = PgTarget(pg_url)
    extra = _old_rule_edges(tmp_path, target)
    migrate.downgrade(pg_url, "0002")
    with psycopg.connect(migrate.libpq_url(pg_url)) as conn:
        conn.cursor().executemany("INSERT INTO task_edges VALUES (%s, %s, %s)", extra)
    assert count(pg_url, "task_edges") == 6
    migrate.upgrade(pg_url, "head")
    assert query(pg_url, "SELECT src_task_id, dst_task_id FROM task_edges ORDER BY 2") == [
        ("w2", "r0"),
        ("w2", "r1"),
    ]
    assert count(pg_url, "lineage_pending") == 0


def test_0003_derives_data_edges_again_in_a_duckdb_file(duck_path, tmp_path):
    import duckdb

    from provwh.warehouse.duck import DuckTarget

    extra = _old_rule_edges(tmp_path, DuckTarget(duck_path))
    with duckdb.connect(duck_path) as conn:
        conn.executemany("INSERT INTO task_edges VALUES (?, ?, ?)", extra)
        conn.execute("UPDATE alembic_version SET version_num = '0002'")
    assert count(duck_path, "task_edges") == 6
    target = DuckTarget(duck_path)
    with target.transaction():
        pass
    target.close()
    assert query(duck_path, "SELECT src_task_id, dst_task_id FROM task_edges ORDER BY 2") == [
        ("w2", "r0"),
        ("w2", "r1"),
    ]
    assert count(duck_path, "lineage_pending") == 0


# --- 0005: the agents table; databases written at 0002 upgrade and answer as before -----------

AGENT = {
    "type": "agent",
    "agent_id": "ag-1",
    "name": "planner",
    "user": "alice",
    "workflow_id": "wf-1",
    "registered_at": T0,
    "extra_metadata": {"model": "m-1"},
}


def _old_data() -> list[dict]:
    return [workflow(), task(1, parent_task_id=task(2)["task_id"]), task(2), task(3, tags=["a"])]


def _answers(db) -> dict:
    """What a user asks a warehouse, through the query API and the views."""
    from provwh.query.api import DBAPI

    assert isinstance(db, DBAPI)
    with db.hold():
        return {
            "tasks": db.task_query({"workflow_id": "wf-1"}, sort=[("task_id", 1)]),
            "x>1": [t["task_id"] for t in db.task_query({"used.x": {"$gt": 1}})],
            "workflow": db.get_workflow_object("wf-1").to_dict(),
            "summary": db.task_summary(workflow_id="wf-1"),
            "upstream": db.get_upstream(task(1)["task_id"]),
            "views": db.sql_rows(
                "SELECT activity_id, task_count FROM v_activity_stats ORDER BY activity_id"
            ),
        }


def _0005_checks(db, answers_before: dict) -> None:
    assert _answers(db) == answers_before  # old data intact, same answers
    assert db.agent_query({}) == []  # the new table is there, empty
    db.insert_or_update_agent(dict(AGENT))
    assert db.agent_query({"name": "planner"}) == [{**AGENT, "type": "agent"}]


def test_0005_postgres_database_written_at_0002_upgrades_with_the_cli(pg_url, tmp_path, capsys):
    from provwh.cli import main
    from provwh.query.api import DBAPI

    target = PgTarget(pg_url)
    Loader([target]).load_file(write_jsonl(tmp_path / "old.jsonl", _old_data()))
    target.close()
    db = DBAPI.from_postgres(pg_url)
    before = _answers(db)
    db.close()
    migrate.downgrade(pg_url, "0002")  # as a database provwh wrote at 0002 holds it
    assert migrate.current_revision(pg_url) == "0002"
    assert "agents" not in _tables(pg_url)
    assert count(pg_url, "tasks") == 3
    with pytest.raises(SchemaError, match="is at schema revision 0002, this provwh needs 0009"):
        DBAPI.from_postgres(pg_url).task_query({})

    assert main(["db", "upgrade", "--url", pg_url]) == 0
    assert capsys.readouterr().out.strip().endswith(": at revision 0009")
    assert "agents" in _tables(pg_url)
    assert count(pg_url, "agents") == 0
    assert migrate.check(pg_url) == []
    db = DBAPI.from_postgres(pg_url)
    try:
        _0005_checks(db, before)
    finally:
        db.close()
    migrate.downgrade(pg_url, "0004")  # and back: the table goes, the rest stays
    assert "agents" not in _tables(pg_url)
    assert count(pg_url, "tasks") == 3


def test_0005_duckdb_file_written_at_0002_upgrades_on_open(duck_path, tmp_path):
    import duckdb

    from provwh.query.api import DBAPI
    from provwh.warehouse.duck import DuckTarget

    target = DuckTarget(duck_path)
    Loader([target]).load_file(write_jsonl(tmp_path / "old.jsonl", _old_data()))
    target.close()
    before = _answers(DBAPI.from_duckdb(duck_path))
    with duckdb.connect(duck_path) as conn:  # as a file provwh wrote at 0002 is
        conn.execute("DROP TABLE agents")
        conn.execute("UPDATE alembic_version SET version_num = '0002'")
    assert count(duck_path, "tasks") == 3

    db = DBAPI.from_duckdb(duck_path)  # opening the file upgrades it
    _0005_checks(db, before)
    db.close()
    assert query(duck_path, "SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]
    sql = "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
    assert {r[0] for r in query(duck_path, sql)} == set(metadata.tables) | {"alembic_version"}


def test_agent_records_in_batch_files_load_on_both_engines(engine, tmp_path):
    """Agent records go to ``agents`` (merged by id across parts and batches, as workflows);
    one without an id gets the id its name stands for."""
    from provwh.core.ids import agent_id_for

    kind, location, target = engine
    loader = Loader([target])
    loader.load_file(write_jsonl(tmp_path / "a.jsonl", [workflow(), AGENT, task(1)]))
    loader.load_file(
        write_jsonl(
            tmp_path / "b.jsonl",
            [
                {"type": "agent", "agent_id": "ag-1", "extra_metadata": {"tools": 3}},
                {"type": "agent", "name": "critic", "registered_at": T0 + 5},
            ],
        )
    )
    loader.close()
    rows = query(
        location,
        'SELECT agent_id, name, "user", workflow_id, extra_metadata FROM agents ORDER BY name',
    )
    meta = [r[4] if r[4] is None or isinstance(r[4], dict) else json.loads(r[4]) for r in rows]
    assert [r[:4] for r in rows] == [
        (agent_id_for("critic"), "critic", None, None),
        ("ag-1", "planner", "alice", "wf-1"),
    ]
    assert meta == [None, {"model": "m-1", "tools": 3}]
    assert count(location, "tasks") == 1
    assert count(location, "workflows") == 1


def _long_id_records() -> list[dict]:
    """Ids over 1,000 bytes such as provwh at 0005 stored whole (up to ~2.7 KB on PostgreSQL,
    one long end per edge or tag row): tasks, activity, workflow, campaign, parent, dependency,
    tag, object and agent ids and an agent name, one task and one object id escaped for its
    NUL."""
    import hashlib

    def long(seed: int, size: int = 1500) -> str:
        text, block = "", str(seed).encode()
        while len(text) < size:
            block = hashlib.sha256(block).hexdigest().encode()
            text += block.decode()
        return text[:size]

    l1, l2, wf = long(1), long(2, 1200) + "\x00", long(3)
    return [
        {"type": "workflow", "workflow_id": wf, "campaign_id": long(4), "name": "w"},
        task(1, task_id=l1, wf=wf, activity_id=long(5), tags=["t"]),
        task(2, task_id=l2, wf=wf, parent_task_id="p"),
        task(
            3,
            parent_task_id=l1,
            tags=[long(6)],
            dependencies=[long(7)],
            used={"src": "/data/out_1.bin"},
        ),
        {"type": "object", "object_id": long(8), "task_id": l1, "custom_metadata": {"a": 1}},
        {"type": "object", "object_id": long(9, 1100) + "\x00", "workflow_id": wf},
        {"type": "agent", "agent_id": long(10), "name": long(11), "workflow_id": wf},
    ]


def _id_tables(loc: str) -> dict[str, list[tuple]]:
    """Every table holding ids, rows in key order, JSON documents parsed (``loaded_at`` left
    out: the databases compared were loaded at different times)."""
    import orjson

    from provwh.warehouse import ddl

    out = {}
    for table in ("tasks", "workflows", "task_values", "task_telemetry", "task_tags",
                  "task_edges", "data_objects", "lineage_pending", "agents"):  # fmt: skip
        names = [c for c in ddl.columns(table) if c != "loaded_at"]
        kinds = [k for c, k in zip(ddl.columns(table), ddl.column_kinds(table), strict=True)
                 if c != "loaded_at"]  # fmt: skip
        at = [names.index(k) for k in ddl.key_columns(table)]
        listed = ", ".join(f'"{c}"' for c in names)
        rows = [
            tuple(orjson.loads(v) if k == "json" and isinstance(v, str) else v
                  for v, k in zip(row, kinds, strict=True))
            for row in query(loc, f"SELECT {listed} FROM {table}")
        ]  # fmt: skip
        out[table] = sorted(rows, key=lambda r, at=at: tuple(r[i] for i in at))
    return out


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_0006_stores_long_ids_stored_whole_as_digest_keys(kind, request, tmp_path, monkeypatch):
    """A database loaded at 0005 (ids stored whole; the agents table there), upgraded, holds
    what one loaded now does; the query API finds the ids and gives them back whole."""
    from provwh.query.api import DBAPI
    from provwh.warehouse import escape, normalize
    from provwh.warehouse.duck import DuckTarget

    if kind == "duckdb":
        old, new = str(tmp_path / "old.duckdb"), str(tmp_path / "new.duckdb")
    else:
        make = request.getfixturevalue("make_pg_url")
        old, new = make(), make()

    def target(loc):
        return DuckTarget(loc) if kind == "duckdb" else PgTarget(loc)

    recs = _long_id_records()
    path = write_jsonl(tmp_path / "b.jsonl", recs)
    if kind == "postgres":  # without 0009's indexes, which hold two ids (0006 shortens them)
        migrate.upgrade(old)
        with psycopg.connect(migrate.libpq_url(old), autocommit=True) as conn:
            conn.execute("DROP INDEX ix_tasks_workflow_started, ix_tasks_workflow_started_desc")
    with monkeypatch.context() as m:  # as provwh at 0005 loaded them: ids whole
        for module, name in ((escape, "ID_BYTES"), (escape, "SHORT_ID"), (normalize, "SHORT_ID")):
            m.setattr(module, name, 10**9)
        loader = Loader([target(old)])
        assert loader.load_file(path).rejects == 0
        loader.derive_lineage()
        loader.close()
    assert max(len(r[0]) for r in query(old, "SELECT task_id FROM tasks")) == 1500
    assert query(old, "SELECT length(agent_id), length(name) FROM agents") == [(1500, 1500)]
    loader = Loader([target(new)])
    loader.load_file(path)
    loader.derive_lineage()
    loader.close()
    before = _id_tables(old)
    if kind == "duckdb":
        import duckdb

        with duckdb.connect(old) as conn:
            conn.execute("UPDATE alembic_version SET version_num = '0005'")
        with DuckTarget(old).transaction():  # upgraded on open
            pass
    else:
        migrate.downgrade(old, "0005")  # 0006 leaves the ids as they are; 0007 drops loaded_at
        migrate.upgrade(old)
    assert query(old, "SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]
    after, fresh = _id_tables(old), _id_tables(new)
    assert after == fresh
    assert after != before and len(after["task_edges"]) == 4  # parent x2, dependency, data
    db = DBAPI.from_duckdb(old) if kind == "duckdb" else DBAPI.from_postgres(old)
    try:
        for rec in recs[1:4]:
            (got,) = db.task_query({"task_id": rec["task_id"]})
            assert {k: got[k] for k in rec if k != "type"} == {
                k: v for k, v in rec.items() if k != "type"
            }
        (wf,) = db.workflow_query({"workflow_id": recs[0]["workflow_id"]})
        assert wf["campaign_id"] == recs[0]["campaign_id"]
        up = db.get_upstream(recs[3]["task_id"])
        assert sorted(r["task_id"] for r in up) == sorted(
            [recs[1]["task_id"], recs[3]["dependencies"][0]]
        )
        for rec in recs[4:6]:
            assert db.get_blob_object(rec["object_id"]).object_id == rec["object_id"]
        agent = {k: v for k, v in recs[6].items() if k != "type"}
        assert db.agent_query({"agent_id": agent["agent_id"]}) == [{"type": "agent", **agent}]
        assert db.agent_query({"name": agent["name"]}) == [{"type": "agent", **agent}]
        got = db.get_agent_object(agent["agent_id"])
        assert [got.agent_id, got.name, got.workflow_id] == [
            agent["agent_id"], agent["name"], agent["workflow_id"],
        ]  # fmt: skip
    finally:
        db.close()


# --- 0007: loaded_at ---------------------------------------------------------------------------


def _loaded_at_columns(loc: str) -> list[tuple[str, str]]:
    sql = (
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE column_name = 'loaded_at' AND table_name IN ('tasks', 'workflows')"
        " ORDER BY 1"
    )
    return query(loc, sql)


def _0007_checks(loc: str, target, tmp_path) -> None:
    """After the upgrade: the rows stored before have no load time; a load sets it on the
    rows it inserts and on those it merges, and the other rows keep none."""
    assert _loaded_at_columns(loc) == [("tasks", "loaded_at"), ("workflows", "loaded_at")]
    assert query(loc, "SELECT count(*) FROM tasks WHERE loaded_at IS NULL") == [(3,)]
    assert query(loc, "SELECT loaded_at FROM workflows") == [(None,)]
    t1, t3 = task(1)["task_id"], task(3)["task_id"]
    merge = {"type": "task", "task_id": t1, "status": "ERROR", "stderr": "late"}
    loader = Loader([target], workers=0)
    loader.load_file(write_jsonl(tmp_path / "new.jsonl", [merge, task(4)]))
    loader.close()
    rows = dict(query(loc, "SELECT task_id, loaded_at FROM tasks"))
    assert rows[t1] is not None and rows[t1] == rows[task(4)["task_id"]]
    assert rows[t3] is None and rows[task(2)["task_id"]] is None
    assert query(loc, "SELECT status FROM tasks WHERE task_id = %s", [t1]) == [("ERROR",)]
    names = [r[0] for r in query(loc, _ORDINAL)]
    assert names[-2:] == ["extra", "loaded_at"]  # last, as in a table made at 0007


_ORDINAL = (
    "SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks'"
    " ORDER BY ordinal_position"
)


def test_0007_postgres_database_at_0006_upgrades(pg_url, tmp_path):
    target = PgTarget(pg_url)
    Loader([target]).load_file(write_jsonl(tmp_path / "old.jsonl", _old_data()))
    target.close()
    migrate.downgrade(pg_url, "0006")  # as provwh at 0006 left it: no loaded_at
    assert migrate.current_revision(pg_url) == "0006"
    assert _loaded_at_columns(pg_url) == []
    with pytest.raises(SchemaError, match="at schema revision 0006, this provwh needs 0009"):
        PgTarget(pg_url).connect()
    migrate.upgrade(pg_url, "head")
    assert migrate.check(pg_url) == []
    indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'tasks' AND indexdef LIKE %s"
    assert query(pg_url, indexes, ["%(loaded_at)"]) == [("ix_tasks_loaded_at",)]  # 0008
    _0007_checks(pg_url, PgTarget(pg_url), tmp_path)


def test_0007_duckdb_file_at_0006_upgrades_on_open(duck_path, tmp_path):
    import duckdb

    from provwh.warehouse.duck import DuckTarget

    target = DuckTarget(duck_path)
    Loader([target]).load_file(write_jsonl(tmp_path / "old.jsonl", _old_data()))
    target.close()
    with duckdb.connect(duck_path) as conn:  # as provwh at 0006 wrote the file
        for table in ("tasks", "workflows"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN loaded_at")
        conn.execute("UPDATE alembic_version SET version_num = '0006'")
    assert _loaded_at_columns(duck_path) == []
    with DuckTarget(duck_path).transaction():  # opening the file upgrades it
        pass
    _0007_checks(duck_path, DuckTarget(duck_path), tmp_path)
    assert query(duck_path, "SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]


# --- 0009: a workflow's task pages ----------------------------------------------------------

_TASK_INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks' ORDER BY 1"
_PAGE_INDEXES = [
    (
        "ix_tasks_workflow_started",
        "CREATE INDEX ix_tasks_workflow_started ON public.tasks USING btree "
        '(workflow_id, started_at, task_id COLLATE "C")',
    ),
    (
        "ix_tasks_workflow_started_desc",
        "CREATE INDEX ix_tasks_workflow_started_desc ON public.tasks USING btree "
        '(workflow_id, started_at DESC NULLS LAST, task_id COLLATE "C")',
    ),
]


def _index_names(url: str) -> list[str]:
    return [name for name, _ in query(url, _TASK_INDEXES)]


def test_0009_replaces_the_workflow_index_with_the_page_indexes(pg_url, tmp_path):
    """A database at 0008 with tasks upgrades (built concurrently, outside a transaction),
    loads on, and goes back down to the one workflow_id index."""
    Loader([PgTarget(pg_url)]).load_file(write_jsonl(tmp_path / "a.jsonl", [task(1), task(2)]))
    migrate.downgrade(pg_url, "0008")
    assert "ix_tasks_workflow_id" in _index_names(pg_url)
    assert not {"ix_tasks_workflow_started", "ix_tasks_workflow_started_desc"} & set(
        _index_names(pg_url)
    )
    # a build that failed half-way left an invalid index of that name: it is built again
    with psycopg.connect(migrate.libpq_url(pg_url), autocommit=True) as conn:
        conn.execute("CREATE INDEX ix_tasks_workflow_started ON tasks (task_id)")
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid ="
            " 'ix_tasks_workflow_started'::regclass"
        )
    migrate.upgrade(pg_url, "head")
    rows = dict(query(pg_url, _TASK_INDEXES))
    assert "ix_tasks_workflow_id" not in rows
    assert [(n, rows[n]) for n, _ in _PAGE_INDEXES] == _PAGE_INDEXES
    assert query(
        pg_url,
        "SELECT count(*) FROM pg_index WHERE indrelid = 'tasks'::regclass AND NOT indisvalid",
    ) == [(0,)]
    assert migrate.check(pg_url) == []
    Loader([PgTarget(pg_url)]).load_file(write_jsonl(tmp_path / "b.jsonl", [task(3)]))
    assert count(pg_url, "tasks") == 3
    # the collation is checked too
    with psycopg.connect(migrate.libpq_url(pg_url), autocommit=True) as conn:
        conn.execute("DROP INDEX ix_tasks_workflow_started")
        conn.execute(
            "CREATE INDEX ix_tasks_workflow_started ON tasks (workflow_id, started_at, task_id)"
        )
    assert migrate.check(pg_url) == [
        "remove_index ix_tasks_workflow_started",
        "add_index ix_tasks_workflow_started",
    ]
    migrate.downgrade(pg_url, "0008")
    names = _index_names(pg_url)
    assert "ix_tasks_workflow_id" in names and "ix_tasks_workflow_started" not in names


@pytest.mark.parametrize(
    ("sort", "index"),
    [(None, "ix_tasks_workflow_started"), ([("started_at", -1)], "ix_tasks_workflow_started_desc")],
)
def test_0009_a_workflow_page_reads_its_rows_in_order_from_an_index(pg_url, sort, index):
    """The task list's query (a workflow, the default order or newest first, a page) is
    answered by an index scan, with no sort: the index's order is the query's."""
    from provwh.query import paths
    from provwh.query.filters import FilterCompiler
    from provwh.query.find import latest_only
    from provwh.query.frag import all_of, render, sql

    coll = paths.collection("tasks")
    comp = FilterCompiler(coll, paths.PG)
    where = all_of([comp.where({"workflow_id": "wf-1"}), latest_only(coll)])
    q = sql("SELECT t.task_id FROM tasks t WHERE {} ORDER BY {} LIMIT 50 OFFSET 100",
            where, comp.order_by(sort))  # fmt: skip
    text, params = render(q, "%s")
    with psycopg.connect(migrate.libpq_url(pg_url), autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + text, params).fetchall())
    assert f"Scan using {index} on tasks t" in plan, plan  # (an index-only scan here)
    assert "Sort" not in plan, plan
