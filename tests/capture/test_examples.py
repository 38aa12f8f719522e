"""Every capture example of the reference documents runs as a script and records what it says."""

import os
import subprocess
import sys
from pathlib import Path

from provwh import Flowcept

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, cwd: Path, duckdb: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    if not duckdb:
        env["PROVWH_DUCKDB_ENABLED"] = "false"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def records(cwd: Path) -> list[dict]:
    return Flowcept.read_buffer_file(str(cwd / "flowcept_buffer.jsonl"))


def tasks(cwd: Path) -> list[dict]:
    return [m for m in records(cwd) if m["type"] == "task"]


def test_context_manager(tmp_path):
    assert run_example("context_manager.py", tmp_path) == "8\n"
    (task,) = tasks(tmp_path)
    assert (task["used"], task["generated"]) == ({"x": 7}, {"z": 8})
    assert records(tmp_path)[0]["name"] == "my_workflow"


def test_manual_start_stop(tmp_path):
    assert run_example("manual_start_stop.py", tmp_path) == "Result: 42\n"
    (task,) = tasks(tmp_path)
    assert (task["used"], task["generated"]) == ({"x": 21}, {"arg_0": 42})


def test_workflow_options(tmp_path):
    assert run_example("workflow_options.py", tmp_path) == "tasks: 6\n"
    wf = records(tmp_path)[0]
    assert (wf["name"], wf["subtype"], wf["campaign_id"]) == (
        "training_workflow",
        "ml_workflow",
        "experiment_42",
    )
    assert wf["used"] == {"epochs_list": [10, 100], "learning_rates": [0.1, 0.01, 0.001]}


def test_decorators(tmp_path):
    out = run_example("decorators.py", tmp_path)
    assert out.splitlines()[-1] == "tasks: 1005"
    by_act = {t["activity_id"]: t for t in tasks(tmp_path)}
    assert by_act["mult_two"]["generated"] == {"y": 42}
    assert by_act["compute"]["generated"] == {"y": 10, "z": 15}
    assert by_act["compute"]["tags"] == ["math", "demo"]
    assert by_act["compute"]["custom_metadata"] == {"owner": "devX"}
    assert by_act["heavy_function"]["used"] == {"x": 3}
    assert by_act["heavy_function"]["generated"] == {"result": 6}
    assert by_act["configure"]["used"] == {"lr": 0.01, "epochs": 3}
    assert "telemetry_at_end" in by_act["train_step"]
    assert by_act["fast_op"]["used"] == {"x": 999}
    wf = records(tmp_path)[0]
    assert (wf["name"], wf["status"]) == ("main", "FINISHED")


def test_loops(tmp_path):
    out = run_example("loops.py", tmp_path)
    assert out.splitlines() == [  # one task per iteration, none per loop (as Flowcept 1.0.3)
        "eval_loop_iteration 5",
        "loop_a_iteration 100",
        "loop_b_iteration 100",
        "loop_iteration 5",
        "train_loop_iteration 5",
    ]


def test_custom_tasks(tmp_path):
    out = run_example("custom_tasks.py", tmp_path)
    assert out == "messages: 5\ndata round trip: True\n"


def test_buffer_files(tmp_path):
    out = run_example("buffer_files.py", tmp_path)
    assert out.splitlines() == [
        "messages: 4",
        "normalized has generated.attention: True",
        "raw keeps generated as objects: True",
    ]
    assert not (tmp_path / "my_buffer.jsonl").exists()
    assert not (tmp_path / "flowcept_buffer.jsonl").exists()


def test_quickstart_loads_the_embedded_warehouse(tmp_path):
    out = run_example("quickstart.py", tmp_path, duckdb=True)
    lines = out.splitlines()
    assert "8 tasks captured" in lines[0]
    i = lines.index("warehouse provwh.duckdb (activity, tasks, avg ms):")
    counts = [(line.split()[0], int(line.split()[1])) for line in lines[i + 1 : i + 5]]
    assert counts == [
        ("clean", 1),
        ("epochs_iteration", 3),
        ("report", 1),
        ("train", 3),
    ]
    assert lines[i + 5].strip().endswith("used/generated values as typed rows")
    assert lines[i + 7] == f"files in {tmp_path}:"
    assert lines[-4:-1] == [
        "try next, in that folder:",
        "  provwh report --print                              the provenance card",
        '  provwh sql "SELECT * FROM v_activity_stats"        SQL on the views',
    ]
