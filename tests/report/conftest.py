"""Report tests: real captures (no database) turned into cards and PDFs."""

from __future__ import annotations

import pytest
from report_helpers import run_small_workflow

from provwh.core import config


@pytest.fixture(autouse=True)
def no_duckdb(isolated, monkeypatch):
    """After the root ``isolated`` fixture: captures write only the buffer file."""
    monkeypatch.setenv("PROVWH_DUCKDB_ENABLED", "false")
    config.reload_settings()
    yield
    config.reload_settings()


@pytest.fixture
def small_records() -> list[dict]:
    return run_small_workflow()


@pytest.fixture
def set_telemetry(monkeypatch):
    def apply(on: bool) -> None:
        monkeypatch.setenv("PROVWH_TELEMETRY_ENABLED", "true" if on else "false")
        config.reload_settings()

    return apply
