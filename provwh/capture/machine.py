"""Static facts about the host and the code, recorded once per workflow.

Everything here is computed once and cached: it does not change while a process runs, and
workflow records should not pay for it twice. Nothing contacts the network (``public_ip`` is
always None) and secrets are kept out: environment variables and command-line values whose
names look secret are dropped or redacted, and URLs lose their passwords.
"""

from __future__ import annotations

import copy
import functools
import getpass
import ipaddress
import os
import platform
import re
import socket
import subprocess
import sys
import threading
from typing import Any

import psutil

REDACTED = "***"

# --- secrets -------------------------------------------------------------------------------------

_SECRET_PARTS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "passphrase",
        "secret",
        "token",
        "key",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "private",
        "cookie",
        "session",
        "signature",
        "cert",
        "dsn",
    }
)
_CHUNKS = re.compile(r"[^A-Za-z0-9]+")
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")  # camelCase / ACRONYMWord parts
# scheme://user:password@host -> keeps the user, hides the password (up to the last @)
_URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/\s:@]*):[^/\s]*@")


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a key or variable name looks like it holds a secret.

    Matches whole word parts (split on ``_ - .`` and camelCase), so ``GITHUB_TOKEN`` and
    ``apiKey`` are secrets while ``MONKEYPATCH``, ``KEYBOARD`` and ``PWD`` are not.
    """
    for chunk in _CHUNKS.split(name):
        for word in _WORDS.findall(chunk):
            word = word.lower()
            if word in _SECRET_PARTS or (word.endswith("s") and word[:-1] in _SECRET_PARTS):
                return True
    return False


def redact_url(text: str) -> str:
    """Hide the passwords of the URLs in ``text`` (``scheme://user:***@host``)."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", text)


def redact(obj: Any) -> Any:
    """A deep copy of ``obj`` with secrets hidden.

    Values under secret-looking keys become ``"***"`` (None stays None: it reveals nothing),
    and passwords in URL strings are replaced.
    """
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            secret = isinstance(key, str) and is_secret_name(key) and value is not None
            out[key] = REDACTED if secret else redact(value)
        return out
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_url(obj)
    try:
        return copy.deepcopy(obj)
    except Exception:  # an object that cannot be copied is passed through as it is
        return obj


def redact_argv(argv: list[str]) -> list[str]:
    """Command-line arguments with secret option values hidden.

    ``--password=x`` becomes ``--password=***``, the value after ``--token`` becomes ``***``,
    and URL passwords anywhere are replaced.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        name, eq, _value = arg.partition("=")
        if eq and name and is_secret_name(name.lstrip("-")):
            out.append(f"{name}={REDACTED}")
        elif arg.startswith("-") and not eq and is_secret_name(arg.lstrip("-")):
            out.append(arg)
            hide_next = True
        else:
            out.append(redact_url(arg))
    return out


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


# --- host identity -------------------------------------------------------------------------------


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        pass
    try:
        return os.getlogin()
    except OSError:
        return None


def _login_name(user: str | None) -> str | None:
    try:
        return os.getlogin()
    except OSError:  # no controlling terminal (batch jobs, containers)
        return user


def _hostname() -> str:
    """The fully qualified name, without waiting on a slow or absent DNS for more than 1 s."""
    name = socket.gethostname()
    if "." in name:
        return name
    found: list[str] = []
    lookup = threading.Thread(target=lambda: found.append(socket.getfqdn(name)), daemon=True)
    lookup.start()
    lookup.join(1.0)
    fqdn = found[0] if found else ""
    return fqdn if fqdn and fqdn != "localhost" else name


def _private_ip() -> str | None:
    """The first IPv4 address of a non-loopback interface, preferring interfaces that are up."""
    try:
        addresses = psutil.net_if_addrs()
        stats = psutil.net_if_stats()
    except Exception:
        return None
    candidates: list[tuple[bool, str]] = []
    for nic, addrs in addresses.items():
        for addr in addrs:
            if addr.family != socket.AF_INET:
                continue
            ip = ipaddress.ip_address(addr.address)
            if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
                candidates.append((not (nic in stats and stats[nic].isup), addr.address))
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


@functools.cache
def _host_identity() -> dict[str, Any]:
    uname = platform.uname()  # os.uname() where it exists, and on Windows too
    user = _user()
    return {
        "user": user,
        "login_name": _login_name(user),
        "sys_name": uname.system,
        "node_name": uname.node,
        "hostname": _hostname(),
        "private_ip": _private_ip(),
        "public_ip": None,  # finding it means asking an outside server; we never do
    }


def host_identity() -> dict[str, Any]:
    """Who runs where: user, login name, system, node, hostname and private IPv4 address."""
    return dict(_host_identity())


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
    from provwh.capture.telemetry import gpu_devices

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
        return url
    if scheme.lower() in ("http", "https") or ":" in userinfo:
        return f"{scheme}://{host}{slash}{path}"
    return url


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
