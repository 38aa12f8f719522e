"""Shared fixtures: every test runs in its own folder with default settings."""

from __future__ import annotations

import os

import pytest
from pg_support import admin_server

from provwh.core import config

_ENV_PREFIXES = ("PROVWH_", "FLOWCEPT_")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh cwd and default settings, whatever the environment of the test run says."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) and name != "PROVWH_TEST_POSTGRES_URL":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    config.reload_settings()
    yield tmp_path
    from provwh.capture import context

    for ctl in context.running_controllers():  # a failed test must not leak a running capture
        ctl.stop()
    config.reload_settings()


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    """Write a settings YAML, point PROVWH_SETTINGS_PATH at it and reload; returns the path."""

    def write(text: str) -> str:
        path = tmp_path / "settings.yaml"
        path.write_text(text)
        monkeypatch.setenv("PROVWH_SETTINGS_PATH", str(path))
        config.reload_settings()
        return str(path)

    return write


@pytest.fixture
def set_env(monkeypatch):
    """Set environment variables and reload settings."""

    def apply(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        config.reload_settings()

    return apply


@pytest.fixture(scope="session")
def pg_server():
    """An admin URL (libpq form) of a PostgreSQL server the tests may create databases on.

    Never skipped: without a server the tests fail with the reasons (see pg_support).
    """
    with admin_server() as url:
        yield url
