"""Capture tests look at batch and buffer files; the warehouse is tested on its own."""

import pytest

from provwh.core import config


@pytest.fixture(autouse=True)
def no_databases(isolated, monkeypatch):
    monkeypatch.setenv("PROVWH_DUCKDB_ENABLED", "false")
    config.reload_settings()
    yield
