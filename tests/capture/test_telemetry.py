"""Telemetry snapshots, read for real from this machine (no psutil mocks)."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import orjson
import pytest

from provwh.capture import telemetry
from provwh.capture.telemetry import TelemetryCapture, from_settings, gpu_available

DEFAULT_KEYS = {"cpu", "memory", "process"} | ({"gpu"} if gpu_available() else set())
CPU_TIMES = {
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
}
VIRTUAL = {
    "total",
    "available",
    "percent",
    "used",
    "free",
    "active",
    "inactive",
    "buffers",
    "cached",
    "shared",
    "slab",
}
PROCESS = {
    "pid",
    "cpu_number",
    "memory",
    "memory_percent",
    "cpu_times",
    "cpu_percent",
    "num_threads",
    "num_ctx_switches",
    "io_counters",
    "num_open_file_descriptors",
}


def off(**on: bool) -> TelemetryCapture:
    """A capture with every category off except those named."""
    flags = dict.fromkeys(telemetry.CATEGORIES, False)
    flags.update(on)
    return TelemetryCapture(**flags)


def test_default_snapshot_keys_and_types():
    snap = TelemetryCapture().snapshot()
    assert set(snap) == DEFAULT_KEYS

    cpu = snap["cpu"]
    assert set(cpu) == {"times_avg", "percent_all"}
    if telemetry._PROCFS:
        assert set(cpu["times_avg"]) == CPU_TIMES
    assert all(isinstance(v, float) and v >= 0 for v in cpu["times_avg"].values())
    assert isinstance(cpu["percent_all"], float) and 0.0 <= cpu["percent_all"] <= 100.0

    memory = snap["memory"]
    assert set(memory) == {"virtual", "swap"}
    assert set(memory["virtual"]) == VIRTUAL
    assert set(memory["swap"]) == {"total", "used", "free", "percent"}
    virtual = memory["virtual"]
    assert virtual["total"] > 0 and 0 <= virtual["available"] <= virtual["total"]
    assert virtual["used"] == virtual["total"] - virtual["available"]

    proc = snap["process"]
    assert set(proc) - {"io_counters", "cpu_number"} <= PROCESS  # io can be unreadable
    assert {"pid", "memory", "memory_percent", "cpu_times", "cpu_percent"} <= set(proc)
    assert proc["pid"] == os.getpid()
    assert proc["memory"]["rss"] > 0 and proc["memory"]["vms"] >= proc["memory"]["rss"]
    assert 0.0 < proc["memory_percent"] < 100.0
    assert set(proc["cpu_times"]) >= {"user", "system", "children_user", "children_system"}
    assert proc["num_threads"] >= 1
    assert set(proc["num_ctx_switches"]) == {"voluntary", "involuntary"}
    assert proc["num_open_file_descriptors"] >= 3
    if "io_counters" in proc:
        assert set(proc["io_counters"]) == {
            "read_count",
            "write_count",
            "read_bytes",
            "write_bytes",
            "read_chars",
            "write_chars",
        }


def test_snapshot_is_plain_json():
    cap = TelemetryCapture(per_cpu=True, disk=True, network=True)
    snap = cap.snapshot()
    assert orjson.loads(orjson.dumps(snap)) == snap  # only JSON types, nothing lost


def test_memory_percent_matches_rss():
    proc = TelemetryCapture().snapshot()["process"]
    total = TelemetryCapture().snapshot()["memory"]["virtual"]["total"]
    assert proc["memory_percent"] == pytest.approx(proc["memory"]["rss"] / total * 100, rel=0.2)


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        ("cpu", "cpu"),
        ("mem", "memory"),
        ("process_info", "process"),
        ("disk", "disk"),
        ("network", "network"),
    ],
)
def test_each_toggle_adds_exactly_its_key(flag, key):
    assert set(off(**{flag: True}).snapshot()) == {key}
    defaults = TelemetryCapture(**{flag: not getattr(TelemetryCapture(), flag)})
    assert set(defaults.snapshot()) == DEFAULT_KEYS ^ {key}


def test_per_cpu():
    cpu = off(per_cpu=True).snapshot()["cpu"]
    assert set(cpu) == {"times_per_cpu", "percent_per_cpu"}
    assert len(cpu["times_per_cpu"]) == len(cpu["percent_per_cpu"]) >= 1
    both = off(cpu=True, per_cpu=True).snapshot()["cpu"]
    assert set(both) == {"times_avg", "percent_all", "times_per_cpu", "percent_per_cpu"}


def test_disk_and_network_shapes():
    snap = off(disk=True, network=True).snapshot()
    assert set(snap["disk"]) <= {"disk_usage", "io_sum"} and "disk_usage" in snap["disk"]
    assert set(snap["disk"]["disk_usage"]) == {"total", "used", "free", "percent"}
    assert set(snap["network"]) == {"netio_sum", "netio_per_interface"}
    assert set(snap["network"]["netio_sum"]) >= {"bytes_sent", "bytes_recv"}


def test_gpu_key_follows_availability():
    assert ("gpu" in off(gpu=True).snapshot()) is gpu_available()


def test_all_off_is_none():
    cap = off()
    assert cap.enabled is False
    assert cap.snapshot() is None


def test_cpu_percentages_measure_between_snapshots():
    cap = off(cpu=True, process_info=True)
    assert sum(range(300_000)) > 0  # keep a CPU busy between creation and the snapshot
    snap = cap.snapshot()
    assert 0.0 <= snap["cpu"]["percent_all"] <= 100.0
    assert snap["process"]["cpu_percent"] >= 0.0


class _BrokenMemory(TelemetryCapture):
    def _memory(self):
        raise OSError("cannot read memory")


def test_failing_category_is_left_out_and_logged_once(caplog):
    cap = _BrokenMemory()
    with caplog.at_level("DEBUG", logger="provwh.capture.telemetry"):
        first, second = cap.snapshot(), cap.snapshot()
    assert set(first) == set(second) == DEFAULT_KEYS - {"memory"}
    assert [r.levelname for r in caplog.records if "memory" in r.getMessage()] == ["DEBUG"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_reports_its_own_pid():
    cap = TelemetryCapture()
    assert cap.snapshot()["process"]["pid"] == os.getpid()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write_end, orjson.dumps(cap.snapshot()["process"]["pid"]))
        finally:
            os._exit(0)
    os.close(write_end)
    reported = orjson.loads(os.read(read_end, 100))
    os.close(read_end)
    os.waitpid(child, 0)
    assert reported == child


def test_procfs_and_psutil_paths_agree():
    if not telemetry._PROCFS:
        pytest.skip("the /proc fast path exists on Linux only")
    fast = TelemetryCapture(per_cpu=True, disk=True, network=True)
    slow = TelemetryCapture(per_cpu=True, disk=True, network=True)
    slow._procfs = False
    a, b = fast.snapshot(), slow.snapshot()

    def shape(d, depth=0):
        return {
            k: shape(v, depth + 1) if isinstance(v, dict) and depth < 2 else None
            for k, v in d.items()
        }

    a["network"].pop("netio_per_interface")
    b["network"].pop("netio_per_interface")
    assert shape(a) == shape(b)
    assert a["process"]["pid"] == b["process"]["pid"] == os.getpid()
    assert a["memory"]["virtual"]["total"] == b["memory"]["virtual"]["total"]
    assert a["memory"]["swap"]["total"] == b["memory"]["swap"]["total"]
    assert a["process"]["memory"]["vms"] == pytest.approx(b["process"]["memory"]["vms"], rel=0.1)
    assert len(a["cpu"]["times_per_cpu"]) == len(b["cpu"]["times_per_cpu"])


def test_thread_safety():
    cap = TelemetryCapture()
    errors: list[BaseException] = []
    results: list[object] = []
    lock = threading.Lock()

    def work():
        try:
            local = [cap.snapshot() for _ in range(200)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            return
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 1600
    assert all(isinstance(r, dict) and set(r) == DEFAULT_KEYS for r in results)


def test_from_settings():
    values = {f"telemetry_capture.{k}": False for k in telemetry.CATEGORIES}
    values["telemetry_capture.mem"] = True
    values["telemetry_capture.disk"] = True
    cap = from_settings(SimpleNamespace(get=values.__getitem__))
    assert (cap.cpu, cap.mem, cap.disk, cap.gpu) == (False, True, True, False)
    assert set(cap.snapshot()) == {"memory", "disk"}


def test_from_default_settings():
    from provwh.core.config import load_settings

    cap = from_settings(load_settings(env={}))
    defaults = TelemetryCapture()
    assert all(getattr(cap, k) == getattr(defaults, k) for k in telemetry.CATEGORIES)


class _FakeNvml:
    """Stands in for pynvml's API on machines without an NVIDIA GPU (like CI's)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, count: int, broken: str = ""):
        self.count, self.broken = count, broken

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, ix):
        return ("handle", ix)

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle[1]:04d}-uuid"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=80, used=30, free=50)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=7, memory=3)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 41

    def nvmlDeviceGetPowerUsage(self, handle):
        if self.broken == "power":
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return 65000


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [0, 1, 2]),
        ("2,0", [2, 0]),
        ("1,9,2", [1]),  # CUDA stops at the first invalid entry
        ("GPU-0002", [2]),
        ("", []),
        ("-1", []),
    ],
)
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, spec, expected):
    if spec is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", spec)
    chosen = telemetry._visible_handles(_FakeNvml(3))
    assert [ix for ix, _handle in chosen] == expected


def test_gpu_reading_fields_and_partial_failure():
    static = {"device_ix": 1, "name": "Fake GPU", "uuid": "GPU-0001-uuid"}
    reading = telemetry._gpu_reading(_FakeNvml(2), ("handle", 1), static)
    assert reading == {
        **static,
        "total": 80,
        "used": 30,
        "free": 50,
        "utilization": {"gpu": 7, "memory": 3},
        "temperature": 41,
        "power_usage": 65000,
    }
    partial = telemetry._gpu_reading(_FakeNvml(2, broken="power"), ("handle", 1), static)
    assert "power_usage" not in partial and partial["temperature"] == 41
