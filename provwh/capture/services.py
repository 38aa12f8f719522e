"""Liveness of what capture hands data to: the spool folder and the enabled databases."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

log = logging.getLogger("provwh")


def spool_writable(spool_dir: str) -> bool:
    try:
        os.makedirs(spool_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=spool_dir, prefix=".alive-"):
            return True
    except OSError as exc:
        log.error("provwh: spool folder %s is not writable: %s", spool_dir, exc)
        return False


def services_alive(settings: Any) -> bool:
    ok = spool_writable(settings.get("buffer.spool_dir"))
    if settings.postgres_enabled or settings.duckdb_enabled:
        try:
            from provwh.warehouse.engines import databases_alive
        except ImportError:
            return ok
        ok = databases_alive(settings) and ok
    return ok
