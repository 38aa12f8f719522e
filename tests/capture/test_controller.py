import os
import subprocess
import sys

import pytest
from capture_helpers import tasks_of, workflows_of

import provwh
from provwh import Flowcept, flowcept_task


@flowcept_task(output_names="y")
def double(x):
    return 2 * x


def test_manual_start_stop_and_ids():
    flowcept = Flowcept(workflow_name="manual_example", campaign_id="camp-9", foo="adapter-arg")
    assert flowcept.kwargs == {"foo": "adapter-arg"}
    wf_id = flowcept.current_workflow_id
    assert flowcept.start() is flowcept
    assert Flowcept.current_workflow_id == wf_id
    assert Flowcept.campaign_id == "camp-9"
    assert double(21) == 42
    flowcept.stop()
    msgs = Flowcept.read_buffer_file()
    assert len(msgs) == 2
    (wf,) = workflows_of(msgs)
    (task,) = tasks_of(msgs)
    assert wf["workflow_id"] == task["workflow_id"] == wf_id
    assert task["generated"] == {"y": 42}


def test_workflow_record_fields():
    with Flowcept(
        workflow_name="training_workflow",
        workflow_subtype="ml_workflow",
        campaign_id="experiment_42",
        workflow_args={"epochs_list": [10, 100], "learning_rates": [0.1, 0.01]},
        agent_id="agent-1",
    ):
        pass
    (wf,) = Flowcept.read_buffer_file()
    assert wf["type"] == "workflow"
    assert wf["name"] == "training_workflow"
    assert wf["subtype"] == "ml_workflow"
    assert wf["campaign_id"] == "experiment_42"
    assert wf["agent_id"] == "agent-1"
    assert wf["used"] == {"epochs_list": [10, 100], "learning_rates": [0.1, 0.01]}
    assert wf["flowcept_version"] == provwh.__version__
    assert wf["status"] == "FINISHED"
    assert wf["started_at"] <= wf["ended_at"]
    assert wf["utc_timestamp"] == wf["started_at"]
    assert wf["sys_name"] == os.uname()[0]
    assert wf["node_name"] == os.uname()[1]
    for key in ("user", "hostname", "machine_info", "flowcept_settings", "interceptor_ids"):
        assert wf[key], key
    assert wf["flowcept_settings"]["buffer"]["format"] == "jsonl"
    assert wf["interceptor_ids"][0].startswith("instrumentation_")


def test_workflow_record_redacts_secrets(set_env):
    set_env(PROVWH_POSTGRES_URL="postgresql://alice:hunter2@127.0.0.1:1/db")
    with Flowcept(start_persistence=False):
        pass
    (wf,) = Flowcept.read_buffer_file()
    text = repr(wf)
    assert "hunter2" not in text
    assert wf["flowcept_settings"]["databases"]["postgres"]["url"] == (
        "postgresql://alice:REDACTED@127.0.0.1:1/db"
    )


def test_code_repository_from_git(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run(git[:3] + ["init", "-q", "-b", "main"], check=True)
    (repo / "f.txt").write_text("x")
    subprocess.run(git + ["add", "f.txt"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "c"], check=True)
    sha = subprocess.run(git[:3] + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout
    monkeypatch.chdir(repo)
    with Flowcept():
        pass
    (wf,) = Flowcept.read_buffer_file()
    assert wf["code_repository"]["commit"] == sha.strip()
    assert wf["code_repository"]["branch"] == "main"


def test_error_in_context_marks_workflow():
    with pytest.raises(RuntimeError):
        with Flowcept(workflow_name="failing"):
            double(1)
            raise RuntimeError("x")
    msgs = Flowcept.read_buffer_file()
    (wf,) = workflows_of(msgs)
    assert wf["status"] == "ERROR"
    assert len(tasks_of(msgs)) == 1


def test_get_buffer_list_and_dataframe():
    @flowcept_task
    def attention(x):
        return {"attention": [x, x]}

    with Flowcept(workflow_name="buf") as f:
        attention(1)
        attention(2)
        buf = f.get_buffer()
        assert [m["type"] for m in buf] == ["workflow", "task", "task"]
        assert buf[0]["status"] == "RUNNING"
        df = f.get_buffer(return_df=True)
        assert "generated.attention" in df.columns
        assert len(df) == 3
        assert f.buffer == buf
    assert f.get_buffer()[0]["status"] == "FINISHED"


def test_dump_buffer_overwrites_and_custom_path(tmp_path):
    with Flowcept() as f:
        double(1)
        custom = tmp_path / "my_buffer.jsonl"
        custom.write_text("old junk\n" * 100)
        assert f.dump_buffer(str(custom)) == str(custom)
        first = Flowcept.read_buffer_file(str(custom))
        double(2)
    assert [m["type"] for m in first] == ["workflow", "task"]
    assert len(Flowcept.read_buffer_file()) == 3


def test_dump_disabled_and_offline_mode_cleans_spool(settings_file, tmp_path):
    settings_file("project:\n  db_flush_mode: offline\n")
    with Flowcept():
        double(1)
    assert len(Flowcept.read_buffer_file()) == 2
    spool = tmp_path / ".provwh" / "spool"
    assert [p for p in spool.iterdir() if p.is_file()] == []

    settings_file("project:\n  dump_buffer:\n    enabled: false\n")
    os.remove("flowcept_buffer.jsonl")
    with Flowcept():
        double(1)
    assert not os.path.exists("flowcept_buffer.jsonl")
    assert len(list(spool.glob("*.jsonl"))) >= 1  # online: batches stay for the loader


def test_read_buffer_file_dataframes_and_alias():
    @flowcept_task
    def f(x):
        return {"loss": x / 10}

    with Flowcept():
        f(1)
    msgs = Flowcept.read_messages_file()
    assert len(msgs) == 2
    raw = Flowcept.read_buffer_file(return_df=True)
    assert "generated" in raw.columns and "generated.loss" not in raw.columns
    norm = Flowcept.read_buffer_file(return_df=True, normalize_df=True)
    assert norm["generated.loss"].dropna().tolist() == [0.1]


def test_read_buffer_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        Flowcept.read_buffer_file(str(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "task"}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        Flowcept.read_buffer_file(str(bad))
    with pytest.raises(ValueError, match="workflow_id"):
        Flowcept.read_buffer_file(str(bad), consolidate=True)


def test_delete_buffer_file(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text("{}\n")
    Flowcept.delete_buffer_file(str(path))
    assert not path.exists()
    Flowcept.delete_buffer_file(str(path))  # missing: no error
    Flowcept.delete_buffer_file()  # default path, missing: no error


def test_delete_previous_file_at_start(tmp_path):
    (tmp_path / "flowcept_buffer.jsonl").write_text('{"type": "task", "task_id": "stale"}\n')
    f = Flowcept(delete_buffer_file=True, start_persistence=False)
    f.start()
    assert not (tmp_path / "flowcept_buffer.jsonl").exists()
    f.stop()


def test_consolidate_producer_files(settings_file, tmp_path):
    settings_file(
        "project:\n  dump_buffer:\n    append_workflow_id_to_path: true\n"
        "    append_id_to_path: true\n"
    )
    wf_id = "wf-shared"
    producers = []
    for _ in range(3):
        with Flowcept(workflow_id=wf_id, save_workflow=False, start_persistence=False) as f:
            double(len(producers))
        producers.append(f)
    files = sorted(p.name for p in tmp_path.glob("flowcept_buffer_wf-shared_*.jsonl"))
    assert len(files) == 3
    msgs = Flowcept.read_buffer_file(consolidate=True, workflow_id=wf_id)
    assert sorted(m["used"]["x"] for m in msgs) == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.glob("flowcept_buffer_wf-shared*.jsonl")) == [
        "flowcept_buffer_wf-shared.jsonl"
    ]


def test_save_workflows_alias_and_unknown_interceptor():
    with Flowcept(workflow_id="w-given", save_workflows=False, start_persistence=False) as f:
        double(3)
    assert f.current_workflow_id == "w-given"
    msgs = Flowcept.read_buffer_file()
    assert [m["type"] for m in msgs] == ["task"]
    with pytest.raises(ValueError, match="not supported"):
        Flowcept(interceptors=["nosuch"])


def test_nested_controller_gets_parent_workflow():
    with Flowcept(workflow_name="outer") as outer:
        with Flowcept(workflow_name="inner") as inner:
            double(1)
        double(2)
    assert inner.parent_workflow_id == outer.current_workflow_id
    msgs = Flowcept.read_buffer_file()  # the outer one dumped last
    assert [t["used"]["x"] for t in tasks_of(msgs)] == [2]


def test_stop_twice_and_services_alive():
    f = Flowcept(start_persistence=False).start()
    f.stop()
    f.stop()  # warns, no error
    assert Flowcept.services_alive() is True


def test_process_exit_without_stop_loses_nothing(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(
        "from provwh import Flowcept, flowcept_task\n"
        "@flowcept_task\n"
        "def f(x):\n    return x\n"
        "Flowcept(workflow_name='forgot').start()\n"
        "for i in range(2500):\n    f(i)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVWH_")}
    env["PROVWH_DUCKDB_ENABLED"] = "false"
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, check=True)
    msgs = Flowcept.read_buffer_file(str(tmp_path / "flowcept_buffer.jsonl"))
    assert len(tasks_of(msgs)) == 2500
    assert workflows_of(msgs)[0]["status"] == "FINISHED"
