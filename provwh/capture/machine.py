"""Static facts about the host and the code, recorded once per workflow.

Everything here is computed once and cached: it does not change while a process runs, and
workflow records should not pay for it twice. Nothing contacts the network, and secrets are
kept out (``core.redact``): environment variables and command-line values whose names look
secret are dropped or redacted, and URLs lose their passwords. Who runs where (user, host,
addresses) is ``core.host``.
"""

from __future__ import annotations

import copy
import functools
import os
import platform
import subprocess
import sys
from typing import Any

import psutil

from provwh.capture.telemetry import gpu_devices
from provwh.core.redact import is_secret_name, redact_argv, redact_url

# --- environment ---------------------------------------------------------------------------------

_ENV_PREFIXES = (
    "SLURM_",
    "PBS_",
    "LSB_",
    "FLUX_",
    "COBALT_",
    "OMP_",
    "MPI_",
    "OMPI_",
    "PROVWH_",
    "FLOWCEPT_",
)
_ENV_NAMES = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "CONDA_DEFAULT_ENV",
        "CONDA_PREFIX",
        "VIRTUAL_ENV",
        "HOSTNAME",
        "USER",
        "LANG",
        "SHELL",
    }
)


def environment_snapshot() -> dict[str, str]:
    """The environment variables that matter for provenance (scheduler, MPI, GPUs, env).

    Only an allow-list is kept, never a variable whose name looks secret, and URL passwords
    in values are hidden.
    """
    return {
        name: redact_url(value)
        for name, value in sorted(os.environ.items())
        if (name in _ENV_NAMES or name.startswith(_ENV_PREFIXES)) and not is_secret_name(name)
    }


# --- machine info --------------------------------------------------------------------------------


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Processor", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    if sys.platform.startswith("linux"):
        return None  # platform.processor() would run `uname -p` there
    return platform.processor() or None


def _cpu() -> dict[str, Any]:
    out: dict[str, Any] = {
        "logical": psutil.cpu_count(),
        "physical": psutil.cpu_count(logical=False),
        "model": _cpu_model(),
    }
    try:
        freq = psutil.cpu_freq()
        out["max_frequency"] = (freq.max or None) if freq else None  # MHz; 0 when unknown
    except Exception:
        out["max_frequency"] = None
    return out


def _gpu() -> dict[str, Any] | None:
    devices = gpu_devices()
    if not devices:
        return None
    return {
        "count": len(devices),
        "names": [d.get("name") for d in devices],
        "uuids": [d.get("uuid") for d in devices],
        "memory_totals": [d.get("total") for d in devices],
    }


def _process() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "argv": redact_argv(list(sys.argv)),
    }


@functools.cache
def _machine_info() -> dict[str, Any]:
    parts = {
        "platform": lambda: {
            "system": platform.system(),
            "release": platform.release(),
            "version": platform.version(),
            "machine": platform.machine(),
            "python_version": platform.python_version(),
            "python_implementation": platform.python_implementation(),
        },
        "cpu": _cpu,
        "memory": lambda: {
            "total": psutil.virtual_memory().total,
            "swap_total": psutil.swap_memory().total,
        },
        "disk": lambda: {"path": os.getcwd(), **psutil.disk_usage(os.getcwd())._asdict()},
        "gpu": _gpu,
        "process": _process,
        "environment": environment_snapshot,
    }
    info: dict[str, Any] = {}
    for key, read in parts.items():
        try:
            value = read()
        except Exception:  # one unreadable part must not lose the others
            continue
        if value is not None:
            info[key] = value
    return info


def machine_info() -> dict[str, Any]:
    """Platform, CPU, memory, disk, GPU, process and environment facts (JSON-ready)."""
    return copy.deepcopy(_machine_info())


# --- code repository -----------------------------------------------------------------------------

_GIT_TIMEOUT = 2.0
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _git(cwd: str, *args: str) -> str | None:
    """stdout of one git command, or None when it fails, times out or git is missing."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            env={**os.environ, **_GIT_ENV},  # no index.lock: never disturb the user's git
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def strip_credentials(url: str) -> str:
    """A remote URL without user info that could hold a secret (``https://u:tok@h`` -> ``h``).

    http(s) URLs lose their user part entirely (tokens are often sent as the user name);
    other schemes keep a plain user (``ssh://git@host``) but never a password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url  # scp-like `git@host:path` or a local path: no password possible
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return redact_url(url)  # a token in a query parameter (``?private_token=...``)
    if scheme.lower() in ("http", "https") or ":" in userinfo:
        return redact_url(f"{scheme}://{host}{slash}{path}")
    return redact_url(url)


def _origin_url(config_path: str) -> str | None:
    """``remote.origin.url`` read from a repository's config file (saves a git call)."""
    try:
        with open(config_path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    in_origin = False
    for raw in lines:
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            header = line[1 : line.find("]")].strip()
            name, _, sub = header.partition(" ")
            in_origin = (name.lower(), sub.strip().strip('"')) == ("remote", "origin") or (
                header.lower() == "remote.origin"
            )
        elif in_origin:
            key, eq, value = line.partition("=")
            if eq and key.strip().lower() == "url":
                return value.strip().strip('"')
    return None


@functools.lru_cache(maxsize=64)
def _code_repository(path: str) -> dict[str, Any] | None:
    where = _git(path, "rev-parse", "--show-toplevel", "--git-common-dir")
    if where is None:
        return None
    lines = where.splitlines()
    if len(lines) < 2:
        return None
    root = lines[0]
    common_dir = os.path.join(path, lines[1])  # relative to `path` unless absolute
    status = _git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return None
    commit = branch = None
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    url = _origin_url(os.path.join(common_dir, "config"))
    return {
        "commit": commit,
        "branch": branch,
        "remote": strip_credentials(url) if url else None,
        "dirty": dirty,
        "root": root,
    }


def code_repository(path: str | None = None) -> dict[str, Any] | None:
    """The git commit, branch, origin remote, dirtiness and root of ``path`` (default: cwd).

    None when it is not inside a git work tree, git is missing or slower than 2 s. Untracked
    files do not make a tree dirty (as with ``git describe --dirty``). Cached per path.
    """
    result = _code_repository(os.path.abspath(path or os.getcwd()))
    return dict(result) if result is not None else None
