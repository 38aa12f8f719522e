"""The MLflow adapter on a real tracking store: an SQLite file written by the mlflow package."""

import shutil
import subprocess
import sys
import time

import pytest

mlflow = pytest.importorskip("mlflow")

from provwh import Flowcept  # noqa: E402
from provwh.adapters.mlflow import MLflowInterceptor, store_path  # noqa: E402
from provwh.capture import controller  # noqa: E402

HOST_FIELDS = {"hostname", "login_name", "node_name"}


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An empty tracking store, made once (mlflow creates its tables in seconds)."""
    path = tmp_path_factory.mktemp("mlflow") / "empty.db"
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    mlflow.MlflowClient().search_experiments()
    mlflow.set_tracking_uri(None)
    return path


@pytest.fixture
def store(tmp_path, settings_file, empty_store):
    """An MLflow tracking store in tmp_path (mlflow.db), and provwh settings naming it."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, path)
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    settings_file(
        f"adapters:\n  mlflow:\n    kind: mlflow\n    file_path: {path}\n"
        "    watch_interval_sec: 0.05\n"
    )
    yield path
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def _tasks(records):
    return {r["task_id"]: r for r in records if r["type"] == "task"}


def _info(run_id):
    return mlflow.get_run(run_id).info


def _plain(rec):
    """A task without the host fields every task gets (hostname...)."""
    assert HOST_FIELDS <= set(rec)
    return {k: v for k, v in rec.items() if k not in HOST_FIELDS}


def test_runs_that_end_during_the_workflow_become_its_tasks(store, set_env):
    set_env(PROVWH_DUCKDB_ENABLED="true")  # and load into the warehouse
    assert controller.INTERCEPTORS["mlflow"] == "provwh.adapters.mlflow:MLflowInterceptor"
    mlflow.set_experiment("tuning")
    with mlflow.start_run(run_name="before") as before:  # ended before the workflow: left out
        mlflow.log_param("lr", 1)
    straddling = mlflow.start_run(run_name="straddling")  # ends during the workflow: kept

    with Flowcept(interceptors=["mlflow"]) as ctl:
        mlflow.log_metric("loss", 3.5)
        mlflow.end_run()
        with mlflow.start_run(run_name="train") as train:
            mlflow.log_params({"lr": 0.01, "optimizer": "adam"})
            mlflow.log_metric("loss", 1.0, step=0)
            mlflow.log_metric("loss", 0.25, step=2)
            mlflow.log_metric("loss", 0.5, step=1)  # logged last, not the latest step
            mlflow.log_metric("accuracy", 0.875)
            mlflow.set_tag("team", "vision")
            with mlflow.start_run(run_name="fold-1", nested=True) as child:
                mlflow.log_metric("fold_accuracy", 0.75)
        failed = mlflow.start_run(run_name="diverged")
        mlflow.log_param("lr", 10)
        mlflow.end_run(status="FAILED")
        running = mlflow.MlflowClient().create_run(train.info.experiment_id, run_name="open")

    tasks = _tasks(ctl.get_buffer())
    assert sorted(tasks) == sorted(
        [straddling.info.run_id, train.info.run_id, child.info.run_id, failed.info.run_id]
    )
    assert before.info.run_id not in tasks and running.info.run_id not in tasks
    exp_id = train.info.experiment_id

    def expected(run_id, used, generated, status, mlflow_status, name, tags=None, parent=None):
        info = _info(run_id)
        rec = {
            "type": "task",
            "task_id": run_id,
            "workflow_id": ctl.current_workflow_id,
            "campaign_id": ctl.campaign_id,
            "activity_id": "tuning",
            "used": used,
            "generated": generated,
            "status": status,
            "started_at": info.start_time / 1000,
            "ended_at": info.end_time / 1000,
            "user": info.user_id,
            "adapter_id": "mlflow",
            "custom_metadata": {
                "run_name": name,
                "experiment_id": exp_id,
                "mlflow_status": mlflow_status,
                "artifact_uri": info.artifact_uri,
                "tags": tags or {},
            },
        }
        if parent:
            rec["parent_task_id"] = parent
        return rec

    run_id = train.info.run_id
    assert _plain(tasks[run_id]) == expected(
        run_id,
        {"lr": "0.01", "optimizer": "adam"},  # params are text in MLflow
        {"accuracy": 0.875, "loss": 0.25},
        "FINISHED",
        "FINISHED",
        "train",
        tags={"team": "vision"},
    )
    run_id = child.info.run_id
    assert _plain(tasks[run_id]) == expected(
        run_id, {}, {"fold_accuracy": 0.75}, "FINISHED", "FINISHED", "fold-1",
        parent=train.info.run_id,
    )  # fmt: skip
    run_id = failed.info.run_id
    assert _plain(tasks[run_id]) == expected(
        run_id, {"lr": "10"}, {}, "ERROR", "FAILED", "diverged"
    )
    run_id = straddling.info.run_id
    assert _plain(tasks[run_id]) == expected(
        run_id, {}, {"loss": 3.5}, "FINISHED", "FINISHED", "straddling"
    )
    assert tasks[run_id]["started_at"] < ctl._workflow_record["started_at"]

    workflow = [r for r in ctl.get_buffer() if r["type"] == "workflow"]
    assert [w["adapter_id"] for w in workflow] == ["mlflow"]

    fields = ("used", "generated", "status", "parent_task_id", "user", "custom_metadata")
    stored = Flowcept.db.task_query({"workflow_id": ctl.current_workflow_id})
    assert {t["task_id"]: [t.get(f) for f in fields] for t in stored} == {
        task_id: [t.get(f) for f in fields] for task_id, t in tasks.items()
    }


def test_a_run_is_published_while_the_workflow_runs(store):
    """The polling thread publishes an ended run before stop(), and only once."""
    mlflow.set_experiment("live")
    with Flowcept(interceptors=["mlflow"]) as ctl:
        assert isinstance(ctl._adapters[0], MLflowInterceptor)
        with mlflow.start_run(run_name="live-run") as run:
            mlflow.log_metric("m", 2.0)
        deadline = time.monotonic() + 20
        while run.info.run_id not in _tasks(ctl.get_buffer()):
            assert time.monotonic() < deadline, "the run was not published while running"
            time.sleep(0.05)
    records = [r for r in ctl.get_buffer() if r["type"] == "task"]
    assert [(r["task_id"], r["activity_id"], r["generated"]) for r in records] == [
        (run.info.run_id, "live", {"m": 2.0})
    ]


def test_store_created_during_the_workflow_and_name_filters(tmp_path, settings_file, empty_store):
    """A store that does not exist yet at start (mlflow creates it), given as a sqlite:/// URI
    relative to the working folder; log_params / log_metrics keep the names they match."""
    uri = "sqlite:///tracking/mlflow.db"
    settings_file(
        "adapters:\n  mlflow:\n    file_path: " + uri + "\n    watch_interval_sec: 0.05\n"
        "    log_params: [lr, 'model_*']\n    log_metrics: 'val_*'\n"
    )
    (tmp_path / "tracking").mkdir()
    try:
        with Flowcept(interceptors=["mlflow"]) as ctl:
            time.sleep(0.2)  # the adapter polls a store that is not there yet
            shutil.copyfile(empty_store, tmp_path / "tracking" / "mlflow.db")  # what mlflow makes
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment("Default")  # not the experiment an earlier test set
            with mlflow.start_run() as run:
                mlflow.log_params({"lr": 0.1, "model_depth": 4, "seed": 7})
                mlflow.log_metrics({"val_loss": 0.5, "train_loss": 0.4})
    finally:
        mlflow.set_tracking_uri(None)
    (task,) = _tasks(ctl.get_buffer()).values()
    assert task["task_id"] == run.info.run_id
    assert task["activity_id"] == "Default"
    assert (task["used"], task["generated"]) == (
        {"lr": "0.1", "model_depth": "4"},
        {"val_loss": 0.5},
    )
    assert task["custom_metadata"]["run_name"] == run.info.run_name


def test_store_path_and_a_store_that_is_not_sqlite(tmp_path, settings_file):
    assert store_path("mlflow.db") == str(tmp_path / "mlflow.db")
    assert store_path("sqlite:///sub/m.db") == str(tmp_path / "sub" / "m.db")
    assert store_path("sqlite:////abs/m.db") == "/abs/m.db"
    settings_file("adapters:\n  mlflow:\n    file_path: postgresql://host/mlflow\n")
    with pytest.raises(ValueError) as err:
        Flowcept(interceptors=["mlflow"]).start()
    assert str(err.value) == (
        "adapters.mlflow.file_path must name the MLflow tracking store's SQLite file "
        "(a path or sqlite:///...); got 'postgresql://host/mlflow'"
    )


def test_the_adapters_import_neither_tool():
    """Capture needs neither mlflow nor a TensorBoard package: both adapters load and run
    their first read where those cannot be imported."""
    code = (
        "import sys\n"
        "for name in ('mlflow', 'tensorboard', 'tensorboardX', 'tbparse', 'google.protobuf'):\n"
        "    sys.modules[name] = None\n"
        "from provwh import Flowcept\n"
        "with Flowcept(interceptors=['mlflow', 'tensorboard']) as f:\n"
        "    print(sorted(type(a).__name__ for a in f._adapters))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out == "['MLflowInterceptor', 'TensorBoardInterceptor']\n"
