"""Who runs where: user, login name, system, node, hostname and private IPv4 address.

Computed once per process and cached (it does not change while a process runs). Nothing
contacts the network: ``public_ip`` is always None.
"""

from __future__ import annotations

import functools
import getpass
import ipaddress
import os
import platform
import socket
import threading
from typing import Any

import psutil


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
