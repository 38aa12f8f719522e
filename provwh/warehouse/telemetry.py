"""Telemetry snapshots -> one typed row per task and phase (``start`` / ``end``).

The columns BI users chart most (CPU, memory, disk, network, process, GPU) are typed; the GPU
section is also kept whole (its shape depends on the vendor) and sections this module does not
know go to ``extra``. The complete snapshot stays in ``tasks.telemetry_at_start`` / ``_end``.
Both Flowcept's key names (``io``, ``netio``) and the ``*_sum`` variants are read.
"""

from __future__ import annotations

from typing import Any

FLOAT, INT = "float", "int"

# column -> (kind, where it is read: alternative key paths; ``telemetry_values`` follows this)
TELEMETRY_COLUMNS: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "cpu_percent": (FLOAT, (("cpu", "percent_all"),)),
    "cpu_user": (FLOAT, (("cpu", "times_avg", "user"),)),
    "cpu_system": (FLOAT, (("cpu", "times_avg", "system"),)),
    "cpu_idle": (FLOAT, (("cpu", "times_avg", "idle"),)),
    "cpu_iowait": (FLOAT, (("cpu", "times_avg", "iowait"),)),
    "mem_total": (INT, (("memory", "virtual", "total"),)),
    "mem_used": (INT, (("memory", "virtual", "used"),)),
    "mem_available": (INT, (("memory", "virtual", "available"),)),
    "mem_percent": (FLOAT, (("memory", "virtual", "percent"),)),
    "swap_used": (INT, (("memory", "swap", "used"),)),
    "swap_percent": (FLOAT, (("memory", "swap", "percent"),)),
    "disk_read_bytes": (INT, (("disk", "io_sum", "read_bytes"), ("disk", "io", "read_bytes"))),
    "disk_write_bytes": (INT, (("disk", "io_sum", "write_bytes"), ("disk", "io", "write_bytes"))),
    "disk_read_count": (INT, (("disk", "io_sum", "read_count"), ("disk", "io", "read_count"))),
    "disk_write_count": (INT, (("disk", "io_sum", "write_count"), ("disk", "io", "write_count"))),
    "disk_usage_percent": (FLOAT, (("disk", "disk_usage", "percent"),)),
    "net_bytes_sent": (
        INT,
        (("network", "netio_sum", "bytes_sent"), ("network", "netio", "bytes_sent")),
    ),
    "net_bytes_recv": (
        INT,
        (("network", "netio_sum", "bytes_recv"), ("network", "netio", "bytes_recv")),
    ),
    "net_packets_sent": (
        INT,
        (("network", "netio_sum", "packets_sent"), ("network", "netio", "packets_sent")),
    ),
    "net_packets_recv": (
        INT,
        (("network", "netio_sum", "packets_recv"), ("network", "netio", "packets_recv")),
    ),
    "proc_cpu_percent": (FLOAT, (("process", "cpu_percent"),)),
    "proc_memory_percent": (FLOAT, (("process", "memory_percent"),)),
    "proc_rss": (INT, (("process", "memory", "rss"),)),
    "proc_vms": (INT, (("process", "memory", "vms"),)),
    "proc_num_threads": (INT, (("process", "num_threads"),)),
    "proc_open_fds": (INT, (("process", "num_open_file_descriptors"),)),
}
# computed from the GPU section (one entry per device): count, sums, mean, max
GPU_COLUMNS: dict[str, str] = {
    "gpu_count": INT,
    "gpu_memory_used": INT,
    "gpu_memory_total": INT,
    "gpu_utilization": FLOAT,
    "gpu_temperature": FLOAT,
    "gpu_power_usage": FLOAT,
}
KNOWN_SECTIONS = frozenset(("cpu", "memory", "disk", "network", "process", "gpu"))
_INT_LIMIT = 2**63


def _number(value: Any, kind: str) -> int | float | None:
    t = type(value)
    if t is int:
        if kind == FLOAT:
            return float(value)
        return value if -_INT_LIMIT <= value < _INT_LIMIT else None
    if t is float:
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return value if kind == FLOAT else int(round(value))
    return None


def _gpu_devices(gpu: Any) -> list[dict]:
    if type(gpu) is list:
        return [d for d in gpu if type(d) is dict]
    if type(gpu) is dict:
        return [d for d in gpu.values() if type(d) is dict]
    return []


_NO_GPU = (None,) * len(GPU_COLUMNS)


def gpu_summary(gpu: Any) -> tuple:
    """(count, memory used, memory total, mean utilization %, max temperature, power sum)."""
    devices = _gpu_devices(gpu)
    if not devices:
        return _NO_GPU
    used = total = power = 0
    utils: list[float] = []
    temps: list[float] = []
    for d in devices:
        used += _number(d.get("used"), INT) or 0
        total += _number(d.get("total"), INT) or 0
        power += _number(d.get("power_usage") or d.get("power"), FLOAT) or 0.0
        util = d.get("utilization")
        if type(util) is dict:
            util = util.get("gpu")
        util = _number(util, FLOAT)
        if util is not None:
            utils.append(util)
        temp = _number(d.get("temperature"), FLOAT)
        if temp is not None:
            temps.append(temp)
    return (
        len(devices),
        used,
        total,
        sum(utils) / len(utils) if utils else None,
        max(temps) if temps else None,
        float(power),
    )


_EMPTY: dict = {}


def _d(value: Any) -> dict:
    return value if type(value) is dict else _EMPTY


def _f(v: Any) -> float | None:
    t = type(v)
    return v if t is float else float(v) if t is int else None


def _i(v: Any) -> int | None:
    t = type(v)
    if t is int:
        return v if -_INT_LIMIT <= v < _INT_LIMIT else None
    return int(v) if t is float and -9e18 < v < 9e18 else None


def telemetry_values(snapshot: dict) -> tuple[list, Any, Any]:
    """Typed values (in ``TELEMETRY_COLUMNS`` then ``GPU_COLUMNS`` order), GPU section, extra.

    Written out by hand, in column order, because it runs twice per task.
    """
    get = snapshot.get
    cpu = _d(get("cpu"))
    times = _d(cpu.get("times_avg"))
    mem = _d(get("memory"))
    virt = _d(mem.get("virtual"))
    swap = _d(mem.get("swap"))
    disk = _d(get("disk"))
    dio = _d(disk.get("io_sum") or disk.get("io"))
    net = _d(get("network"))
    nio = _d(net.get("netio_sum") or net.get("netio"))
    proc = _d(get("process"))
    pmem = _d(proc.get("memory"))
    gpu = get("gpu")
    values = [
        _f(cpu.get("percent_all")),
        _f(times.get("user")),
        _f(times.get("system")),
        _f(times.get("idle")),
        _f(times.get("iowait")),
        _i(virt.get("total")),
        _i(virt.get("used")),
        _i(virt.get("available")),
        _f(virt.get("percent")),
        _i(swap.get("used")),
        _f(swap.get("percent")),
        _i(dio.get("read_bytes")),
        _i(dio.get("write_bytes")),
        _i(dio.get("read_count")),
        _i(dio.get("write_count")),
        _f(_d(disk.get("disk_usage")).get("percent")),
        _i(nio.get("bytes_sent")),
        _i(nio.get("bytes_recv")),
        _i(nio.get("packets_sent")),
        _i(nio.get("packets_recv")),
        _f(proc.get("cpu_percent")),
        _f(proc.get("memory_percent")),
        _i(pmem.get("rss")),
        _i(pmem.get("vms")),
        _i(proc.get("num_threads")),
        _i(proc.get("num_open_file_descriptors")),
        *(gpu_summary(gpu) if gpu is not None else _NO_GPU),
    ]
    extra = None
    if not KNOWN_SECTIONS.issuperset(snapshot):
        extra = {k: v for k, v in snapshot.items() if k not in KNOWN_SECTIONS}
    return values, gpu, extra


def snapshot_from_columns(values: dict[str, Any], gpu: Any = None) -> dict[str, Any]:
    """The part of a snapshot that typed columns hold, nested as the snapshot was.

    ``values``: column -> value (``TELEMETRY_COLUMNS`` names; a missing figure as None, kept so
    that a snapshot with none of them is still a snapshot); ``gpu``: the stored GPU section.
    Readers that need a few figures of many snapshots (the report) read these columns instead
    of decoding every snapshot's JSON.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        *parents, leaf = TELEMETRY_COLUMNS[name][1][0]
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    if gpu is not None:
        out["gpu"] = gpu
    return out
