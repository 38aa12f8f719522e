"""The databases a loader writes to, as configured: DuckDB, PostgreSQL, or both."""

from __future__ import annotations

import logging
from typing import Any

from provwh.core.config import Settings

log = logging.getLogger("provwh.warehouse")


def targets_from_settings(settings: Settings) -> list[Any]:
    """DuckDB (``databases.duckdb.path``) and/or PostgreSQL (``databases.postgres.url``)."""
    targets: list[Any] = []
    if settings.duckdb_enabled:
        from provwh.warehouse.duck import DuckTarget

        targets.append(DuckTarget(settings.duckdb_path))
    if settings.postgres_enabled:
        from provwh.warehouse.pg import PgTarget

        targets.append(
            PgTarget(
                settings.postgres_url,
                migrate_on_startup=bool(settings.get("databases.postgres.migrate_on_startup")),
            )
        )
    return targets


def databases_alive(settings: Settings) -> bool:
    """Whether every enabled database answers (logged when one does not)."""
    ok = True
    for target in targets_from_settings(settings):
        if not target.alive():
            log.error("provwh: %s is not reachable", target.name)
            ok = False
    return ok
