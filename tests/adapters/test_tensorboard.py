"""The TensorBoard adapter on event files written by a real writer (tensorboardX)."""

import os
import shutil
import struct
import time
import uuid
from pathlib import Path

import pytest

tbx = pytest.importorskip("tensorboardX")

from tensorboardX.proto import summary_pb2, tensor_pb2, types_pb2  # noqa: E402
from tensorboardX.record_writer import masked_crc32c as tbx_masked_crc32c  # noqa: E402

from provwh import Flowcept  # noqa: E402
from provwh.adapters.tensorboard import TensorBoardInterceptor  # noqa: E402
from provwh.adapters.tfevents import EventFileReader, Events, masked_crc32c  # noqa: E402
from provwh.capture import controller  # noqa: E402

HOST_FIELDS = {"hostname", "login_name", "node_name"}


@pytest.fixture
def logdir(tmp_path, settings_file):
    root = tmp_path / "tb"
    root.mkdir()

    def configure(extra: str = "") -> Path:
        settings_file(
            f"adapters:\n  tensorboard:\n    file_path: {root}\n    watch_interval_sec: 0.05\n"
            + extra
        )
        return root

    return configure


def _event_files(folder: Path) -> list[str]:
    return sorted(
        os.path.join(d, f) for d, _s, files in os.walk(folder) for f in files if "tfevents" in f
    )


def _task_id(first_event_file: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, Path(first_event_file).as_uri()))


def _tasks(ctl) -> list[dict]:
    return [r for r in ctl.get_buffer() if r["type"] == "task"]


def _tensor_scalar(writer, tag: str, tensor, step: int) -> None:
    """A scalar as TensorFlow 2 writes it: a tensor with the scalars plugin's metadata."""
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    summary = summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, metadata=meta, tensor=tensor)]
    )
    writer._get_file_writer().add_summary(summary, step)


def test_runs_written_during_the_workflow_become_its_tasks(logdir):
    root = logdir()
    assert (
        controller.INTERCEPTORS["tensorboard"]
        == "provwh.adapters.tensorboard:TensorBoardInterceptor"
    )
    old = tbx.SummaryWriter(str(root / "old"))  # written before the workflow: left out
    old.add_scalar("accuracy", 0.5, 0)
    old.close()

    t0 = time.time()
    with Flowcept(interceptors=["tensorboard"]) as ctl:
        w = tbx.SummaryWriter(str(root / "run_a"))
        for step, loss in enumerate([1.0, 0.5, 0.25]):
            w.add_scalar("loss", loss, step)
        w.add_text("note", "text is skipped", 0)
        w.add_histogram("weights", [1.0, 2.0, 3.0], 0)
        w.add_hparams({"lr": 0.01, "bs": 32, "opt": "adam", "wd": True}, {"accuracy": 0.9},
                      name="hp")  # fmt: skip
        w.close()

        w = tbx.SummaryWriter(str(root / "run_b"))  # no accuracy: not a task
        w.add_scalar("loss", 2.0, 0)
        w.close()

        w = tbx.SummaryWriter(str(root / "run_c"))  # TensorFlow-style tensors
        float_val = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.75])
        _tensor_scalar(w, "accuracy", float_val, 5)
        raw = struct.pack("<d", 0.125)
        double = tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, tensor_content=raw)
        _tensor_scalar(w, "val_loss", double, 5)
        w.add_hparams({"activity_id": "evaluate", "dropout": 0.5}, {}, name="hp")
        w.close()
    t1 = time.time()

    tasks = sorted(_tasks(ctl), key=lambda t: t["custom_metadata"]["event_file"])
    assert [t["custom_metadata"]["event_file"] for t in tasks] == ["run_a", "run_c"]
    for t in tasks:
        assert HOST_FIELDS <= set(t)
        assert t0 <= t["started_at"] <= t["ended_at"] <= t1
    plain = [
        {k: v for k, v in t.items() if k not in HOST_FIELDS | {"started_at", "ended_at"}}
        for t in tasks
    ]
    a_files, c_files = _event_files(root / "run_a"), _event_files(root / "run_c")
    assert [len(a_files), len(c_files)] == [2, 2]  # the run's own, and add_hparams' (hp/)
    assert plain == [
        {
            "type": "task",
            "task_id": _task_id(a_files[0]),
            "workflow_id": ctl.current_workflow_id,
            "campaign_id": ctl.campaign_id,
            "activity_id": "tb",
            "used": {"bs": 32.0, "lr": 0.01, "opt": "adam", "wd": True},
            "generated": {"accuracy": 0.9, "loss": 0.25},
            "status": "FINISHED",
            "adapter_id": "tensorboard",
            "custom_metadata": {"event_file": "run_a", "log_path": str(root / "run_a")},
        },
        {
            "type": "task",
            "task_id": _task_id(c_files[0]),
            "workflow_id": ctl.current_workflow_id,
            "campaign_id": ctl.campaign_id,
            "activity_id": "evaluate",
            "used": {"dropout": 0.5},
            "generated": {"accuracy": 0.75, "val_loss": 0.125},
            "status": "FINISHED",
            "adapter_id": "tensorboard",
            "custom_metadata": {"event_file": "run_c", "log_path": str(root / "run_c")},
        },
    ]
    assert [w["adapter_id"] for w in ctl.get_buffer() if w["type"] == "workflow"] == ["tensorboard"]


def test_published_once_ready_and_again_at_stop(logdir, monkeypatch):
    """A run is published when it logs accuracy (while the workflow runs), and again at stop
    with what it logged since; the two records share the task id, and the warehouse (DuckDB
    here) holds one task, with the final values."""
    monkeypatch.setenv("PROVWH_DUCKDB_ENABLED", "true")
    root = logdir()
    with Flowcept(interceptors=["tensorboard"]) as ctl:
        assert isinstance(ctl._adapters[0], TensorBoardInterceptor)
        w = tbx.SummaryWriter(str(root / "live"), flush_secs=0.1)  # its flush() only flushes
        w.add_scalar("accuracy", 0.5, 0)  # the file; the writer's thread writes the event
        deadline = time.monotonic() + 20
        while not _tasks(ctl):
            assert time.monotonic() < deadline, "the run was not published while running"
            time.sleep(0.05)
        w.add_scalar("accuracy", 0.625, 1)
        w.add_scalar("accuracy", 0.0, 0)  # an earlier step logged later: not the latest
        w.close()
    first, last = _tasks(ctl)
    assert first["task_id"] == last["task_id"]
    assert (first["generated"], last["generated"]) == ({"accuracy": 0.5}, {"accuracy": 0.625})
    stored = Flowcept.db.task_query({"workflow_id": ctl.current_workflow_id})
    assert [(t["task_id"], t["generated"], t["adapter_id"]) for t in stored] == [
        (first["task_id"], {"accuracy": 0.625}, "tensorboard")
    ]


def test_log_tags_and_log_metrics_patterns(logdir):
    root = logdir("    log_tags: [scalars]\n    log_metrics: ['val_*']\n")
    with Flowcept(interceptors=["tensorboard"]) as ctl:
        w = tbx.SummaryWriter(str(root / "r1"))
        w.add_hparams({"lr": 0.1}, {"val_acc": 0.8}, name="hp")  # hparams not read
        w.close()
        w = tbx.SummaryWriter(str(root / "r2"))
        w.add_scalar("accuracy", 0.9, 0)  # matches no pattern
        w.close()
    (task,) = _tasks(ctl)
    assert (task["custom_metadata"]["event_file"], task["used"], task["generated"]) == (
        "r1",
        {},
        {"val_acc": 0.8},
    )


def test_a_folder_that_is_a_file_is_refused(tmp_path, settings_file):
    (tmp_path / "events").write_text("")
    settings_file(f"adapters:\n  tensorboard:\n    file_path: {tmp_path / 'events'}\n")
    with pytest.raises(ValueError) as err:
        Flowcept(interceptors=["tensorboard"]).start()
    assert str(err.value) == (
        "adapters.tensorboard.file_path must name a folder of TensorBoard runs; "
        f"{tmp_path / 'events'} is a file"
    )


def test_reader_reads_appended_records_and_waits_for_a_partial_one(tmp_path):
    for data in (b"", b"123456789", bytes(range(256)) * 3):
        assert masked_crc32c(data) == tbx_masked_crc32c(data)

    w = tbx.SummaryWriter(str(tmp_path / "src"))
    for step in range(4):
        w.add_scalar("loss", 1.0 / (step + 1), step)
    w.close()
    (source,) = _event_files(tmp_path / "src")
    data = Path(source).read_bytes()
    growing = tmp_path / "events.out.tfevents.copy"
    growing.write_bytes(data[: len(data) - 5])  # the last record cut short
    reader = EventFileReader(str(growing))
    first = Events()
    assert reader.read_new(first) == 4  # the file_version event and three scalars
    assert [(s.tag, s.step, s.value, s.kind) for s in first.scalars] == [
        ("loss", 0, 1.0, "scalars"),
        ("loss", 1, 0.5, "scalars"),
        ("loss", 2, 0.33333334, "scalars"),  # float32, as its shortest decimal
    ]
    with open(growing, "ab") as fh:
        fh.write(data[len(data) - 5 :])
    rest = Events()
    assert reader.read_new(rest) == 1 and reader.offset == len(data)
    assert [(s.tag, s.step, s.value) for s in rest.scalars] == [("loss", 3, 0.25)]
    assert reader.read_new(Events()) == 0

    damaged = tmp_path / "events.out.tfevents.damaged"
    shutil.copyfile(source, damaged)
    with open(damaged, "r+b") as fh:
        fh.seek(8)  # the first record's length checksum
        fh.write(b"\0\0\0\0")
    reader = EventFileReader(str(damaged))
    assert (reader.read_new(Events()), reader.damaged) == (0, True)
