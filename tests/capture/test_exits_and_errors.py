"""How a run ends and what an error records, when user code does unusual things (issue 19)."""

from __future__ import annotations

import pytest
from capture_helpers import tasks_of

from provwh import Flowcept, FlowceptTask, flowcept_task, lightweight_flowcept_task
from provwh.core import config


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


@pytest.mark.parametrize("decorator", [flowcept_task, lightweight_flowcept_task])
def test_an_exception_whose_str_raises_reaches_the_caller_unchanged(decorator):
    @decorator
    def fails():
        raise Unprintable()

    with pytest.raises(Unprintable):
        with Flowcept(start_persistence=False):
            fails()
    (task,) = tasks_of(Flowcept.read_buffer_file())
    assert (task["status"], task["stderr"]) == (
        "ERROR", "Unprintable (its message could not be read: RuntimeError)"
    )  # fmt: skip


def test_a_custom_task_records_an_unprintable_error():
    with pytest.raises(Unprintable):
        with Flowcept(start_persistence=False):
            with FlowceptTask(activity_id="custom"):
                raise Unprintable()
    (task,) = tasks_of(Flowcept.read_buffer_file())
    assert task["stderr"] == "Unprintable (its message could not be read: RuntimeError)"


@pytest.mark.parametrize(("code", "status"), [(0, "FINISHED"), (None, "FINISHED"), (2, "ERROR"),
                                              ("bye", "ERROR")])  # fmt: skip
def test_sys_exit_ends_the_workflow_as_its_status_says(code, status):
    with pytest.raises(SystemExit):
        with Flowcept(start_persistence=False):
            raise SystemExit(code)
    (wf,) = [r for r in Flowcept.read_buffer_file() if r["type"] == "workflow"]
    assert wf["status"] == status


@pytest.mark.parametrize("value", [".inf", "inf", "nan", "-1", "0"])
def test_a_flush_interval_must_be_positive_and_finite(settings_file, monkeypatch, value):
    with pytest.raises(config.SettingsError, match=r"^buffer.flush_interval: expected a "
                       r"positive, finite number, got "):  # fmt: skip
        settings_file(f"buffer:\n  flush_interval: {value}\n")
    monkeypatch.delenv("PROVWH_SETTINGS_PATH")  # the file stays invalid
    assert config.reload_settings().get("buffer.flush_interval") == 0.25


def test_after_a_nested_run_the_current_workflow_is_the_outer_one():
    with Flowcept(start_persistence=False, workflow_name="outer") as outer:
        assert Flowcept.current_workflow_id == outer.current_workflow_id
        with Flowcept(start_persistence=False, workflow_name="inner") as inner:
            assert Flowcept.current_workflow_id == inner.current_workflow_id
        assert Flowcept.current_workflow_id == outer.current_workflow_id
        assert Flowcept.campaign_id == outer.campaign_id
    assert Flowcept.current_workflow_id == outer.current_workflow_id  # the last one run


def test_settings_typos_are_named_with_the_closest_key(settings_file, caplog, capsys):
    text = (
        "project:\n  db_flush_mod: offline\n  dump_buffer: false\n"
        "buffer:\n  flush_sise: 100\n"
        "databases:\n  postgres:\n    url: postgresql://u@h/db\n  lmdb:\n    enabled: true\n"
        "mq:\n  host: localhost\nkv_db:\n  port: 6379\n"
    )  # the last three are a Flowcept file's own keys: not mistakes
    with caplog.at_level("WARNING", logger="provwh"):
        path = settings_file(text)
    expected = [
        "unknown key project.db_flush_mod (ignored): did you mean project.db_flush_mode?",
        "project.dump_buffer is a section (append_id_to_path, append_workflow_id_to_path, "
        "delete_previous_file, enabled, path), not a value: did you mean "
        "project.dump_buffer.enabled?",
        "unknown key buffer.flush_sise (ignored): did you mean buffer.flush_size?",
        "databases.postgres.url is set but databases.postgres.enabled is not true: "
        "PostgreSQL stays off",
    ]
    assert config.get_settings().warnings == expected
    assert [r.getMessage() for r in caplog.records] == [
        f"provwh: settings file {path}: {w}" for w in expected
    ]
    from provwh.cli import main

    assert main(["check"]) == 1  # capture tests enable no database: check says so
    out = capsys.readouterr().out
    assert "databases:\n  none enabled\n" in out
    assert [ln for ln in out.splitlines() if ln.startswith("  warning: ")] == [
        f"  warning: {w}" for w in expected
    ]
