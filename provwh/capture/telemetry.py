"""Per-task telemetry: CPU, memory, process, disk, network and GPU snapshots.

A snapshot is taken when a task starts and again when it ends, so it has to be cheap. On Linux
the default categories are read straight from ``/proc`` (one read per file, parsed in place),
which is several times faster than going through psutil's objects; other systems use psutil.
Keys follow Flowcept's telemetry names so records stay comparable with Flowcept's.

A category that fails is left out of that snapshot rather than failing the task, and such
failures are logged once, at debug level. Skipped for speed: CPU frequency and swap ``sin`` /
``sout`` (each would cost about as much as the rest of a snapshot).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

import psutil

try:
    import resource
except ImportError:  # Windows: no procfs path there either
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CATEGORIES = ("cpu", "per_cpu", "mem", "process_info", "disk", "network", "gpu")

_PROCFS = sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")
_TICK = os.sysconf("SC_CLK_TCK") if _PROCFS else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if _PROCFS else 4096
# /proc/stat columns, in order (psutil's names)
_CPU_FIELDS = (
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
)
_IO_FIELDS = {  # /proc/<pid>/io name -> psutil's name
    b"syscr:": "read_count",
    b"syscw:": "write_count",
    b"read_bytes:": "read_bytes",
    b"write_bytes:": "write_bytes",
    b"rchar:": "read_chars",
    b"wchar:": "write_chars",
}


def _read(path: str) -> bytes:
    """Read a whole (proc) file with raw syscalls: ``open()`` costs more than the read."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 65536)
        if len(data) < 65536:  # procfs hands a whole small file over in one read
            return data
        chunks = [data]
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _meminfo(names: tuple[bytes, ...]) -> dict[bytes, int]:
    """Bytes for the given /proc/meminfo names; those the kernel lacks are absent."""
    buf = b"\n" + _read("/proc/meminfo")
    out = {}
    for name in names:
        start = buf.find(name)
        if start >= 0:
            start += len(name)
            out[name] = int(buf[start : buf.index(b"\n", start)].rstrip(b" kB")) * 1024
    return out


_MEM_TOTAL, _MEM_FREE, _MEM_AVAILABLE = b"\nMemTotal:", b"\nMemFree:", b"\nMemAvailable:"
_BUFFERS, _CACHED, _RECLAIMABLE = b"\nBuffers:", b"\nCached:", b"\nSReclaimable:"
_SHMEM, _ACTIVE, _INACTIVE, _SLAB = b"\nShmem:", b"\nActive:", b"\nInactive:", b"\nSlab:"
_SWAP_TOTAL, _SWAP_FREE = b"\nSwapTotal:", b"\nSwapFree:"
_MEM_NAMES = (
    _MEM_TOTAL,
    _MEM_FREE,
    _MEM_AVAILABLE,
    _BUFFERS,
    _CACHED,
    _RECLAIMABLE,
    _SHMEM,
    _ACTIVE,
    _INACTIVE,
    _SLAB,
    _SWAP_TOTAL,
    _SWAP_FREE,
)


def _busy_percent(prev: tuple[int, ...], cur: tuple[int, ...]) -> float:
    """psutil's cpu_percent formula on raw tick counts (guest time is already in user)."""
    total = sum(cur[:8]) - sum(prev[:8])
    idle = sum(cur[3:5]) - sum(prev[3:5])
    busy = total - idle
    if busy <= 0 or total <= 0:
        return 0.0
    return round(min(busy / total * 100.0, 100.0), 1)


def _tick_dict(ticks: tuple[int, ...]) -> dict[str, float]:
    return {name: value / _TICK for name, value in zip(_CPU_FIELDS, ticks, strict=False)}


# --- GPU (NVIDIA through pynvml, initialised once per process) ---------------------------------

_gpu_lock = threading.Lock()
_gpu_devices: list[tuple[int, Any, dict[str, Any]]] | None = None  # (index, handle, static info)
_pynvml: Any = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _visible_handles(nvml: Any) -> list[tuple[int, Any]]:
    """Devices named by ``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-`` UUIDs), else all."""
    count = nvml.nvmlDeviceGetCount()
    by_index = {ix: nvml.nvmlDeviceGetHandleByIndex(ix) for ix in range(count)}
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(by_index.items())
    by_uuid = {_text(nvml.nvmlDeviceGetUUID(h)): (ix, h) for ix, h in by_index.items()}
    chosen: list[tuple[int, Any]] = []
    for token in (t.strip() for t in spec.split(",")):
        if token.isdigit() and int(token) in by_index:
            chosen.append((int(token), by_index[int(token)]))
        elif token.startswith("GPU-"):
            match = [v for k, v in by_uuid.items() if k.startswith(token)]
            if len(match) != 1:
                break
            chosen.append(match[0])
        else:
            break  # CUDA ignores everything after the first invalid entry
    return chosen


def _no_nvidia_driver() -> bool:
    """On Linux, whether no NVIDIA driver is there to ask: without ``/proc/driver/nvidia``
    (the kernel driver; containers given GPUs see it too) or WSL's ``/dev/dxg``, importing
    pynvml and initializing NVML only costs a process ~20 ms to learn that there is no GPU."""
    return sys.platform.startswith("linux") and not (
        os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/dxg")
    )


def _init_gpus() -> list[tuple[int, Any, dict[str, Any]]]:
    global _pynvml
    if _no_nvidia_driver():
        log.debug("NVIDIA GPU telemetry unavailable: no NVIDIA driver on this host")
        return []
    try:
        import pynvml

        pynvml.nvmlInit()
        devices = []
        for ix, handle in _visible_handles(pynvml):
            static: dict[str, Any] = {"device_ix": ix}
            for key, getter in (
                ("name", pynvml.nvmlDeviceGetName),
                ("uuid", pynvml.nvmlDeviceGetUUID),
            ):
                try:
                    static[key] = _text(getter(handle))
                except Exception:  # a missing detail is not worth failing for
                    pass
            devices.append((ix, handle, static))
        _pynvml = pynvml
        return devices
    except Exception as exc:  # ImportError, NVMLError (no driver, no device), ...
        log.debug("NVIDIA GPU telemetry unavailable: %s", exc)
        return []


def _gpus() -> list[tuple[int, Any, dict[str, Any]]]:
    global _gpu_devices
    devices = _gpu_devices
    if devices is None:
        with _gpu_lock:
            if _gpu_devices is None:
                _gpu_devices = _init_gpus()
            devices = _gpu_devices
    return devices


def gpu_available() -> bool:
    """Whether an NVIDIA GPU can be read through pynvml (initialises NVML on first call)."""
    return bool(_gpus())


def gpu_devices() -> list[dict[str, Any]]:
    """One current reading per visible NVIDIA GPU (empty without one)."""
    return [_gpu_reading(_pynvml, handle, static) for _ix, handle, static in _gpus()]


def _gpu_reading(nvml: Any, handle: Any, static: dict[str, Any]) -> dict[str, Any]:
    """Flowcept's per-GPU fields (plus uuid, free, utilization) for one NVML device."""
    info = dict(static)
    try:
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        info.update(total=int(mem.total), used=int(mem.used), free=int(mem.free))
    except Exception:  # an unsupported query leaves only its fields out
        pass
    try:
        util = nvml.nvmlDeviceGetUtilizationRates(handle)
        info["utilization"] = {"gpu": int(util.gpu), "memory": int(util.memory)}
    except Exception:
        pass
    try:
        info["temperature"] = int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
    except Exception:
        pass
    try:
        info["power_usage"] = int(nvml.nvmlDeviceGetPowerUsage(handle))  # milliwatts
    except Exception:
        pass
    return info


# --- the capture --------------------------------------------------------------------------------


def shutdown_gpu_telemetry() -> None:
    """Shut NVML down if it was started; the next GPU reading starts it again."""
    global _gpu_devices, _pynvml
    with _gpu_lock:
        nvml, _pynvml, _gpu_devices = _pynvml, None, None
    if nvml is not None:
        try:
            nvml.nvmlShutdown()
        except Exception as exc:  # NVMLError: already shut down, driver gone
            log.debug("NVML shutdown failed: %s", exc)


class Telemetry:
    """One telemetry snapshot, as Flowcept's ``TelemetryCapture.capture()`` returns it."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Telemetry({self._data!r})"


class TelemetryCapture:
    """Takes telemetry snapshots; one instance is shared by all threads of a process.

    CPU and process percentages are measured between consecutive snapshots of this instance
    (the first one covers the time since the instance was created), never by sleeping.
    """

    def __init__(
        self,
        cpu: bool = True,
        per_cpu: bool = False,
        mem: bool = True,
        process_info: bool = True,
        disk: bool = False,
        network: bool = False,
        gpu: bool = True,
    ) -> None:
        self.cpu, self.per_cpu, self.mem = bool(cpu), bool(per_cpu), bool(mem)
        self.process_info, self.disk, self.network = bool(process_info), bool(disk), bool(network)
        self.gpu = bool(gpu)
        self._procfs = _PROCFS  # tests turn this off to exercise the psutil path
        self._lock = threading.Lock()
        self._failed: set[str] = set()
        self._pid = -1
        self._proc: psutil.Process | None = None
        self._mem_total = 0
        self._last_cpu: list[tuple[int, ...]] | None = None
        self._last_proc: tuple[float, float] = (0.0, 0.0)
        if self.gpu:
            _gpus()  # pay NVML's start-up (or failure) now, not in the first task
        if self.cpu or self.per_cpu:
            self._guard("cpu", self._cpu)  # baseline for the first percentages
        if self.process_info:
            self._guard("process", self._process)

    @property
    def enabled(self) -> bool:
        """Whether any category is on (``snapshot()`` returns None otherwise)."""
        return (
            self.cpu
            or self.per_cpu
            or self.mem
            or self.process_info
            or self.disk
            or self.network
            or self.gpu
        )

    def snapshot(self) -> dict[str, Any] | None:
        """The enabled categories now; None when every category is off."""
        if not self.enabled:
            return None
        out: dict[str, Any] = {}
        if self.cpu or self.per_cpu:
            self._guard("cpu", self._cpu, out)
        if self.mem:
            self._guard("memory", self._memory, out)
        if self.process_info:
            self._guard("process", self._process, out)
        if self.disk:
            self._guard("disk", self._disk, out)
        if self.network:
            self._guard("network", self._network, out)
        if self.gpu:
            self._guard("gpu", self._gpu, out)
        return out

    def capture(self) -> Telemetry | None:
        """Flowcept's call: a snapshot now as a ``Telemetry`` (``to_dict()``), or None when
        every category is off."""
        snap = self.snapshot()
        return None if snap is None else Telemetry(snap)

    def capture_machine_info(self) -> dict[str, Any]:
        """This machine's description (platform, CPU, memory, disk, process, environment), as
        stored in a workflow record's ``machine_info``."""
        from provwh.capture.machine import machine_info

        return machine_info()

    def shutdown_gpu_telemetry(self) -> None:
        """Release NVML (a later GPU reading initialises it again)."""
        shutdown_gpu_telemetry()

    def _guard(self, key: str, func: Any, out: dict[str, Any] | None = None) -> None:
        try:
            value = func()
        except Exception as exc:  # a category that cannot be read is left out
            if key not in self._failed:
                self._failed.add(key)
                log.debug("telemetry category %r left out: %r", key, exc)
            return
        if out is not None and value is not None:
            out[key] = value

    # CPU ------------------------------------------------------------------------------------

    def _cpu_ticks(self) -> list[tuple[int, ...]]:
        """Raw ticks: element 0 is the machine total, then one per CPU when per_cpu is on."""
        if self._procfs:
            data = _read("/proc/stat")
            if not self.per_cpu:
                return [tuple(map(int, data[: data.index(b"\n")].split()[1:]))]
            rows = data.split(b"\n")
            return [tuple(map(int, r.split()[1:])) for r in rows if r.startswith(b"cpu")]
        rows = [psutil.cpu_times()]
        if self.per_cpu:
            rows += psutil.cpu_times(percpu=True)
        return [tuple(round(getattr(r, f, 0.0) * _TICK) for f in _CPU_FIELDS) for r in rows]

    def _cpu(self) -> dict[str, Any]:
        ticks = self._cpu_ticks()
        with self._lock:
            prev, self._last_cpu = self._last_cpu, ticks
        if prev is None or len(prev) != len(ticks):
            prev = ticks
        out: dict[str, Any] = {}
        if self.cpu:
            out["times_avg"] = _tick_dict(ticks[0])
            out["percent_all"] = _busy_percent(prev[0], ticks[0])
        if self.per_cpu:
            out["times_per_cpu"] = [_tick_dict(t) for t in ticks[1:]]
            out["percent_per_cpu"] = [
                _busy_percent(p, t) for p, t in zip(prev[1:], ticks[1:], strict=True)
            ]
        return out

    # memory ---------------------------------------------------------------------------------

    def _memory(self) -> dict[str, Any]:
        if not self._procfs:
            virtual = psutil.virtual_memory()._asdict()
            self._mem_total = virtual["total"]
            swap = psutil.swap_memory()
            swap_keys = ("total", "used", "free", "percent")  # the procfs path's shape
            return {"virtual": virtual, "swap": {k: getattr(swap, k) for k in swap_keys}}
        kb = _meminfo(_MEM_NAMES)
        get = kb.get
        total, free, buffers = kb[_MEM_TOTAL], kb[_MEM_FREE], get(_BUFFERS, 0)
        cached = get(_CACHED, 0) + get(_RECLAIMABLE, 0)  # as `free` and psutil count it
        avail = get(_MEM_AVAILABLE, free + buffers + cached)
        avail = min(max(avail, 0), total)
        self._mem_total = total
        swap_total = get(_SWAP_TOTAL, 0)
        swap_free = get(_SWAP_FREE, 0)
        swap_used = swap_total - swap_free
        return {
            "virtual": {
                "total": total,
                "available": avail,
                "percent": round((total - avail) / total * 100, 1) if total else 0.0,
                "used": total - avail,
                "free": free,
                "active": get(_ACTIVE, 0),
                "inactive": get(_INACTIVE, 0),
                "buffers": buffers,
                "cached": cached,
                "shared": get(_SHMEM, 0),
                "slab": get(_SLAB, 0),
            },
            "swap": {
                "total": swap_total,
                "used": swap_used,
                "free": swap_free,
                "percent": round(swap_used / swap_total * 100, 1) if swap_total else 0.0,
            },
        }

    # process --------------------------------------------------------------------------------

    def _cpu_percent(self, cpu_seconds: float) -> float:
        """psutil's Process.cpu_percent semantics: 100 means one CPU fully busy."""
        now = time.monotonic()
        with self._lock:
            (last_cpu, last_wall), self._last_proc = self._last_proc, (cpu_seconds, now)
        elapsed = now - last_wall
        if last_wall == 0.0 or elapsed <= 0:
            return 0.0
        return round(max(cpu_seconds - last_cpu, 0.0) / elapsed * 100.0, 1)

    def _check_pid(self) -> int:
        pid = os.getpid()
        if pid != self._pid:  # first use, or we are a forked child: reset per-process state
            with self._lock:
                self._pid, self._proc = pid, None
                self._last_proc = (0.0, 0.0)
        return pid

    def _process(self) -> dict[str, Any]:
        pid = self._check_pid()
        if not self._procfs:
            return self._process_psutil(pid)
        base = f"/proc/{pid}/"
        stat = _read(base + "stat")
        fields = stat[stat.rindex(b")") + 2 :].split()
        user, system, c_user, c_system = (int(v) / _TICK for v in fields[11:15])
        vms, rss, shared, text, lib, data, dirty = (
            int(n) * _PAGE for n in _read(base + "statm").split()[:7]
        )
        memory = {"rss": rss, "vms": vms, "shared": shared, "text": text, "lib": lib}
        memory.update(data=data, dirty=dirty)
        if not self._mem_total:
            self._mem_total = psutil.virtual_memory().total
        usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads, unlike /proc's status
        out: dict[str, Any] = {
            "pid": pid,
            "cpu_number": int(fields[36]),
            "memory": memory,
            "memory_percent": memory["rss"] / self._mem_total * 100.0,
            "cpu_times": {
                "user": user,
                "system": system,
                "children_user": c_user,
                "children_system": c_system,
                "iowait": int(fields[39]) / _TICK,
            },
            "cpu_percent": self._cpu_percent(user + system),
            "num_threads": int(fields[17]),
            "num_ctx_switches": {"voluntary": usage.ru_nvcsw, "involuntary": usage.ru_nivcsw},
        }
        try:
            io = _read(base + "io").split()
            raw = dict(zip(io[::2], io[1::2], strict=False))
            out["io_counters"] = {name: int(raw[key]) for key, name in _IO_FIELDS.items()}
        except (OSError, KeyError):
            pass  # not readable in some containers; psutil leaves it out too
        out["num_open_file_descriptors"] = len(os.listdir(base + "fd"))
        return out

    def _process_psutil(self, pid: int) -> dict[str, Any]:
        proc = self._proc
        if proc is None:
            proc = self._proc = psutil.Process(pid)
        with proc.oneshot():
            cpu_times = proc.cpu_times()
            out: dict[str, Any] = {"pid": pid}
            try:
                out["cpu_number"] = proc.cpu_num()
            except (AttributeError, psutil.Error):
                pass
            out["memory"] = proc.memory_info()._asdict()
            out["memory_percent"] = proc.memory_percent()
            out["cpu_times"] = cpu_times._asdict()
            out["cpu_percent"] = self._cpu_percent(cpu_times.user + cpu_times.system)
            out["num_threads"] = proc.num_threads()
            out["num_ctx_switches"] = proc.num_ctx_switches()._asdict()
            try:
                out["io_counters"] = proc.io_counters()._asdict()
            except (AttributeError, psutil.Error):
                pass
            try:
                out["num_open_file_descriptors"] = proc.num_fds()
            except (AttributeError, psutil.Error):
                pass
        return out

    # disk, network, GPU ---------------------------------------------------------------------

    def _disk(self) -> dict[str, Any]:
        out: dict[str, Any] = {"disk_usage": psutil.disk_usage("/")._asdict()}
        io = psutil.disk_io_counters(perdisk=False)
        if io is not None:  # None on machines without disks (some containers)
            out["io_sum"] = io._asdict()
        return out

    def _network(self) -> dict[str, Any]:
        per_nic = psutil.net_io_counters(pernic=True)
        total: dict[str, int] = {}
        per_interface: dict[str, dict[str, int]] = {}
        for name, counters in per_nic.items():
            values = counters._asdict()
            for key, value in values.items():
                total[key] = total.get(key, 0) + value
            if counters.bytes_sent and counters.bytes_recv:
                per_interface[name] = values
        return {"netio_sum": total, "netio_per_interface": per_interface}

    def _gpu(self) -> dict[str, Any] | None:
        devices = _gpus()
        if not devices:
            return None
        return {f"gpu_{ix}": _gpu_reading(_pynvml, h, static) for ix, h, static in devices}


def from_settings(settings: Any) -> TelemetryCapture:
    """A capture configured by the ``telemetry_capture.*`` settings."""
    return TelemetryCapture(**{k: bool(settings.get(f"telemetry_capture.{k}")) for k in CATEGORIES})
