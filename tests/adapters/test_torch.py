"""@flowcept_torch and the epoch/batch loops, on a tiny model trained for a few epochs."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from provwh import Flowcept  # noqa: E402
from provwh.adapters.torch import (  # noqa: E402
    FlowceptBatchLoop,
    FlowceptEpochLoop,
    describe,
    flowcept_torch,
    model_profile,
)
from provwh.core import ids as context  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
N_EPOCHS = 3
BATCH_SIZES = (5, 5, 2)  # 12 samples in batches of 5: the last batch is smaller
N_PARAMS = (4 * 8 + 8) + (8 * 1 + 1)


class _Body(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


@flowcept_torch
class TinyNet(_Body):
    pass


@flowcept_torch(children=True)
class TinyNetWithChildren(_Body):
    pass


def _data():
    torch.manual_seed(0)
    x, y = torch.randn(12, 4), torch.randn(12, 1)
    return list(zip(x.split(5), y.split(5), strict=True))


def _train(model, lightweight=False, whole_loop=False):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = _data()
    epochs = FlowceptEpochLoop(N_EPOCHS, lightweight=lightweight, whole_loop=whole_loop)
    for _epoch in epochs:
        for x, y in FlowceptBatchLoop(data, lightweight=lightweight, whole_loop=whole_loop):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
        epochs.end_iter({"loss": loss.item()})


def _captured(body, **kwargs):
    with Flowcept(workflow_name="torch_test", **kwargs):
        body()
    records = Flowcept.read_buffer_file()
    tasks = [r for r in records if r["type"] == "task"]
    (workflow,) = [r for r in records if r["type"] == "workflow"]
    return workflow, tasks


def _kinds(tasks):
    return Counter((t["activity_id"], t.get("subtype")) for t in tasks)


def _tensor(shape):
    return {"shape": list(shape), "dtype": "float32", "device": "cpu"}


@pytest.mark.parametrize("lightweight", [False, True])
def test_training_tasks_counts_shapes_and_parents_with_whole_loops(lightweight):
    model = TinyNet()
    workflow, tasks = _captured(lambda: _train(model, lightweight, whole_loop=True))
    n_batches = N_EPOCHS * len(BATCH_SIZES)
    assert _kinds(tasks) == {
        ("TinyNet", "parent_forward"): n_batches,
        ("batches_iteration", "iteration"): n_batches,
        ("batches", "whole_loop"): N_EPOCHS,
        ("epochs_iteration", "iteration"): N_EPOCHS,
        ("epochs", "whole_loop"): 1,
    }
    by_id = {t["task_id"]: t for t in tasks}
    assert len(by_id) == len(tasks)

    def parent(t):
        return by_id[t["parent_task_id"]]

    forwards = [t for t in tasks if t["subtype"] == "parent_forward"]
    assert sorted(t["used"]["x"]["shape"][0] for t in forwards) == sorted(BATCH_SIZES * N_EPOCHS)
    for t in forwards:
        n = t["used"]["x"]["shape"][0]
        assert t["used"] == {"x": _tensor((n, 4))}
        assert t["generated"] == _tensor((n, 1))
        assert t["status"] == "FINISHED" and t["started_at"] <= t["ended_at"]
        batch = parent(t)
        assert batch["activity_id"] == "batches_iteration"
        assert batch["used"]["batch"] == [_tensor((n, 4)), _tensor((n, 1))]
        assert parent(batch)["activity_id"] == "batches"
        epoch_iteration = parent(parent(batch))
        assert epoch_iteration["activity_id"] == "epochs_iteration"
        assert parent(epoch_iteration)["activity_id"] == "epochs"
    epochs = [t for t in tasks if t["activity_id"] == "epochs_iteration"]
    assert sorted(t["used"]["epoch"] for t in epochs) == list(range(N_EPOCHS))
    assert all("loss" in t["generated"] for t in epochs)
    assert "parent_task_id" not in by_id[parent(epochs[0])["task_id"]]

    _check_profile(workflow)


@pytest.mark.parametrize("lightweight", [False, True])
def test_training_tasks_are_iterations_only_by_default(lightweight):
    """As Flowcept 1.0.3: one task per epoch and per batch, no task per loop; each batch is
    a child of its epoch, each forward of its batch, and a loop's iterations share a group."""
    model = TinyNet()
    _workflow, tasks = _captured(lambda: _train(model, lightweight))
    n_batches = N_EPOCHS * len(BATCH_SIZES)
    assert _kinds(tasks) == {
        ("TinyNet", "parent_forward"): n_batches,
        ("batches_iteration", "iteration"): n_batches,
        ("epochs_iteration", "iteration"): N_EPOCHS,
    }
    by_id = {t["task_id"]: t for t in tasks}
    epochs = [t for t in tasks if t["activity_id"] == "epochs_iteration"]
    assert len({t["group_id"] for t in epochs}) == 1
    assert [t for t in epochs if "parent_task_id" in t] == []
    batches = [t for t in tasks if t["activity_id"] == "batches_iteration"]
    for epoch in epochs:
        mine = [b for b in batches if b["parent_task_id"] == epoch["task_id"]]
        assert [b["used"]["i"] for b in mine] == list(range(len(BATCH_SIZES)))
        assert len({b["group_id"] for b in mine}) == 1
    assert len({b["group_id"] for b in batches}) == N_EPOCHS
    for t in tasks:
        if t["subtype"] == "parent_forward":
            assert by_id[t["parent_task_id"]]["activity_id"] == "batches_iteration"


def _check_profile(workflow):
    profile = workflow["custom_metadata"]["model_profiles"]["TinyNet"]
    assert profile["n_params"] == profile["n_trainable_params"] == N_PARAMS
    assert profile["param_bytes"] == 4 * N_PARAMS
    assert profile["param_dtypes"] == ["float32"]
    assert profile["n_modules"] == 4
    assert [(m["path"], m["type"], m["n_params"]) for m in profile["modules"]] == [
        ("", "TinyNet", N_PARAMS),
        ("fc1", "Linear", 40),
        ("act", "ReLU", 0),
        ("fc2", "Linear", 9),
    ]


def test_children_are_tasks_of_their_parent_forward():
    model = TinyNetWithChildren()
    x = torch.randn(3, 4)
    _, tasks = _captured(lambda: model(x))
    assert _kinds(tasks) == {
        ("TinyNetWithChildren", "parent_forward"): 1,
        ("Linear", "child_forward"): 2,
        ("ReLU", "child_forward"): 1,
    }
    (fwd,) = [t for t in tasks if t["subtype"] == "parent_forward"]
    children = sorted(
        (t for t in tasks if t["subtype"] == "child_forward"), key=lambda t: t["started_at"]
    )
    assert [c["custom_metadata"]["module_path"] for c in children] == ["fc1", "act", "fc2"]
    assert all(c["parent_task_id"] == fwd["task_id"] for c in children)
    assert [c["used"]["input"]["shape"] for c in children] == [[3, 4], [3, 8], [3, 8]]
    assert [c["generated"]["shape"] for c in children] == [[3, 8], [3, 8], [3, 1]]


def test_constructor_options_and_all_descendants():
    @flowcept_torch
    class Deep(nn.Module):
        def __init__(self, width=2):
            super().__init__()
            self.block = nn.Sequential(nn.Linear(width, width), nn.Tanh())
            self.block[0].weight.requires_grad_(False)

        def forward(self, x, scale=1.0):
            return self.block(x) * scale

    model = Deep(3, children="all", custom_metadata={"run": "a"}, get_profile=False).double()
    workflow, tasks = _captured(lambda: model(torch.ones(2, 3, dtype=torch.float64), scale=2))
    assert _kinds(tasks) == {
        ("Deep", "parent_forward"): 1,
        ("Sequential", "child_forward"): 1,
        ("Linear", "child_forward"): 1,
        ("Tanh", "child_forward"): 1,
    }
    by_path = {t.get("custom_metadata", {}).get("module_path"): t for t in tasks}
    fwd = by_path[None]
    assert fwd["custom_metadata"] == {"run": "a"}
    assert fwd["used"] == {"x": {"shape": [2, 3], "dtype": "float64", "device": "cpu"}, "scale": 2}
    assert by_path["block"]["parent_task_id"] == fwd["task_id"]
    assert by_path["block.0"]["parent_task_id"] == by_path["block"]["task_id"]
    assert by_path["block.1"]["custom_metadata"] == {"run": "a", "module_path": "block.1"}
    assert "model_profiles" not in workflow.get("custom_metadata", {})
    profile = model_profile(model)
    assert (profile["n_params"], profile["n_trainable_params"]) == (12, 3)


def test_two_models_get_two_profiles():
    a, b = TinyNet(), TinyNet()
    x = torch.randn(1, 4)
    workflow, tasks = _captured(lambda: (a(x), b(x), a(x)))
    assert len(tasks) == 3
    assert sorted(workflow["custom_metadata"]["model_profiles"]) == ["TinyNet", "TinyNet_2"]


def test_subclass_of_a_decorated_model_is_recorded_once():
    @flowcept_torch
    class Wider(TinyNet):
        pass

    class Plain(TinyNet):
        pass

    x = torch.ones(1, 4)
    _, tasks = _captured(lambda: (Wider()(x), Plain(get_profile=False)(x)))
    assert sorted(t["activity_id"] for t in tasks) == ["Plain", "Wider"]


def test_errors_are_recorded_and_raised():
    @flowcept_torch(children=True)
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x)

    model = Broken()

    def body():
        with pytest.raises(RuntimeError):
            model(torch.ones(2, 5))  # wrong width: the child raises
        try:
            raise KeyError("handled")
        except KeyError:
            model(torch.ones(2, 4))  # a handled exception is not this call's error

    _, tasks = _captured(body)
    statuses = sorted((t["activity_id"], t["status"]) for t in tasks)
    assert statuses == [
        ("Broken", "ERROR"),
        ("Broken", "FINISHED"),
        ("Linear", "ERROR"),
        ("Linear", "FINISHED"),
    ]
    failed = [t for t in tasks if t["status"] == "ERROR"]
    assert all("shapes cannot be multiplied" in t["stderr"] for t in failed)
    assert all("generated" not in t for t in failed)


def test_forward_inside_a_flow_belongs_to_its_workflow():
    model = TinyNet()

    def body():
        token = context.current_workflow_id.set("flow-workflow")
        try:
            model(torch.ones(1, 4))
        finally:
            context.current_workflow_id.reset(token)

    workflow, (task,) = _captured(body)
    assert task["workflow_id"] == "flow-workflow"
    assert "TinyNet" in workflow["custom_metadata"]["model_profiles"]


def test_telemetry_option():
    model = TinyNet(telemetry=True)
    _, (task,) = _captured(lambda: model(torch.ones(1, 4)))
    assert task["telemetry_at_start"] and task["telemetry_at_end"]
    model = TinyNet()
    _, (task,) = _captured(lambda: model(torch.ones(1, 4)))
    assert "telemetry_at_start" not in task


def test_no_capture_runs_bare_and_removes_hooks():
    model = TinyNetWithChildren()
    x = torch.ones(2, 4)
    expected = _Body.forward(model, x)
    assert torch.equal(model(x), expected)  # nothing running: plain forward
    assert not model.fc1._forward_hooks
    with Flowcept():
        model(x)
        assert model.fc1._forward_hooks and model.fc1._forward_pre_hooks
    assert torch.equal(model(x), expected)  # first call after stop drops the hooks
    assert not model.fc1._forward_hooks and not model.fc1._forward_pre_hooks
    assert [r["type"] for r in Flowcept.read_buffer_file()].count("task") == 4
    assert list(FlowceptBatchLoop([1, 2])) == [1, 2]
    assert len(FlowceptEpochLoop(3)) == 3


def test_instrumentation_disabled(set_env):
    set_env(PROVWH_INSTRUMENTATION_ENABLED="false")
    model = TinyNet()
    with Flowcept():
        model(torch.ones(1, 4))
        assert list(FlowceptEpochLoop(2)) == [0, 1]
    assert [r for r in Flowcept.read_buffer_file() if r["type"] == "task"] == []


def test_decorator_checks_and_describe():
    with pytest.raises(TypeError):
        flowcept_torch(object)
    with pytest.raises(ValueError):
        TinyNet(children="some")
    t = torch.zeros(2, dtype=torch.int64)
    assert describe({"a": [t, 1], "m": nn.ReLU()}) == {
        "a": [{"shape": [2], "dtype": "int64", "device": "cpu"}, 1],
        "m": "<ReLU>",
    }


def test_pytorch_example(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PROVWH_")}
    env["PROVWH_DUCKDB_ENABLED"] = "false"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "pytorch_model.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    records = Flowcept.read_buffer_file(str(tmp_path / "flowcept_buffer.jsonl"))
    kinds = Counter(r.get("subtype") for r in records if r["type"] == "task")
    assert kinds["parent_forward"] == 3
