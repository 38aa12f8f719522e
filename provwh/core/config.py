"""Settings: defaults, a YAML file (Flowcept's keys where they apply), environment overrides.

The file is named by ``PROVWH_SETTINGS_PATH`` (or ``FLOWCEPT_SETTINGS_PATH``); without one the
defaults below apply and everything works (embedded DuckDB, JSONL batches, dump at stop).
Unknown keys (a Flowcept settings file has many: mq, kv_db, ...) are ignored; a known key with
an invalid value raises ``SettingsError`` naming the key.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Any

SETTINGS_ENV_VARS = ("PROVWH_SETTINGS_PATH", "FLOWCEPT_SETTINGS_PATH")


class SettingsError(ValueError):
    """A settings value is invalid; the message names the key and the file."""


_BOOL, _STR, _POS_INT, _POS_FLOAT, _OPT_STR = "bool", "str", "pos_int", "pos_float", "opt_str"

# key path -> (kind, default, allowed values or None)
SCHEMA: dict[str, tuple[str, Any, tuple | None]] = {
    "project.db_flush_mode": (_STR, "online", ("online", "offline")),
    "project.dump_buffer.enabled": (_BOOL, True, None),
    "project.dump_buffer.path": (_STR, "flowcept_buffer.jsonl", None),
    "project.dump_buffer.delete_previous_file": (_BOOL, True, None),
    "project.dump_buffer.append_workflow_id_to_path": (_BOOL, False, None),
    "project.dump_buffer.append_id_to_path": (_BOOL, False, None),
    "project.replace_non_json_serializable": (_BOOL, True, None),
    "project.enrich_messages": (_BOOL, True, None),
    "instrumentation.enabled": (_BOOL, True, None),
    "telemetry_capture.enabled": (_BOOL, False, None),
    "telemetry_capture.cpu": (_BOOL, True, None),
    "telemetry_capture.per_cpu": (_BOOL, False, None),
    "telemetry_capture.mem": (_BOOL, True, None),
    "telemetry_capture.process_info": (_BOOL, True, None),
    "telemetry_capture.disk": (_BOOL, False, None),
    "telemetry_capture.network": (_BOOL, False, None),
    "telemetry_capture.gpu": (_BOOL, True, None),
    "telemetry_capture.machine_info": (_BOOL, True, None),
    "buffer.format": (_STR, "jsonl", ("jsonl", "parquet")),
    "buffer.spool_dir": (_STR, ".provwh/spool", None),
    "buffer.flush_size": (_POS_INT, 5000, None),
    "buffer.flush_interval": (_POS_FLOAT, 1.0, None),
    "buffer.max_pending": (_POS_INT, 50000, None),
    "buffer.fsync": (_BOOL, True, None),
    "buffer.transport": (_STR, "spool", ("spool", "redis")),
    "buffer.redis_url": (_STR, "redis://127.0.0.1:6379/0", None),
    "buffer.redis_stream": (_STR, "provwh:batches", None),
    "flows.capture": (_BOOL, False, None),
    "databases.duckdb.enabled": (_BOOL, True, None),
    "databases.duckdb.path": (_STR, "provwh.duckdb", None),
    "databases.postgres.enabled": (_BOOL, False, None),
    "databases.postgres.url": (_OPT_STR, None, None),
    "databases.postgres.migrate_on_startup": (_BOOL, False, None),
}

# environment variable -> key path (values are parsed like the file's)
ENV_OVERRIDES: dict[str, str] = {
    "PROVWH_DB_FLUSH_MODE": "project.db_flush_mode",
    "PROVWH_DUMP_BUFFER_ENABLED": "project.dump_buffer.enabled",
    "PROVWH_DUMP_BUFFER_PATH": "project.dump_buffer.path",
    "PROVWH_INSTRUMENTATION_ENABLED": "instrumentation.enabled",
    "PROVWH_TELEMETRY_ENABLED": "telemetry_capture.enabled",
    "PROVWH_BUFFER_FORMAT": "buffer.format",
    "PROVWH_SPOOL_DIR": "buffer.spool_dir",
    "PROVWH_FLUSH_SIZE": "buffer.flush_size",
    "PROVWH_FLUSH_INTERVAL": "buffer.flush_interval",
    "PROVWH_DUCKDB_PATH": "databases.duckdb.path",
    "PROVWH_DUCKDB_ENABLED": "databases.duckdb.enabled",
    "PROVWH_POSTGRES_URL": "databases.postgres.url",
    "PROVWH_MIGRATE_ON_STARTUP": "databases.postgres.migrate_on_startup",
    "PROVWH_FLOWS_CAPTURE": "flows.capture",
    "PROVWH_BUFFER_TRANSPORT": "buffer.transport",
    "PROVWH_REDIS_URL": "buffer.redis_url",
    "PROVWH_REDIS_STREAM": "buffer.redis_stream",
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _convert(key: str, kind: str, value: Any, choices: tuple | None, origin: str) -> Any:
    def bad(expected: str) -> SettingsError:
        return SettingsError(f"{key}: expected {expected}, got {value!r} ({origin})")

    if kind == _BOOL:
        if isinstance(value, bool):
            out = value
        elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            out = value.strip().lower() in _TRUE
        else:
            raise bad("true or false")
    elif kind == _POS_INT:
        if isinstance(value, bool):
            raise bad("a positive integer")
        try:
            out = int(value)
        except (TypeError, ValueError):
            raise bad("a positive integer") from None
        if out <= 0 or (isinstance(value, float) and value != out):
            raise bad("a positive integer")
    elif kind == _POS_FLOAT:
        if isinstance(value, bool):
            raise bad("a positive number")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise bad("a positive number") from None
        if not out > 0:
            raise bad("a positive number")
    elif kind == _OPT_STR:
        if value is not None and not isinstance(value, str):
            raise bad("a string")
        out = value or None
    else:
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        out = value
    if choices is not None and out not in choices:
        raise bad("one of " + ", ".join(choices))
    return out


def _get_path(tree: dict, key: str) -> tuple[bool, Any]:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def normalize_postgres_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as well as the SQLAlchemy form."""
    for prefix in (
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    from provwh.core.redact import redact_url  # its patterns are compiled when first needed

    raise SettingsError(
        f"databases.postgres.url: expected a postgresql:// URL, got {redact_url(url)!r}"
    )


class Settings:
    """Resolved settings: ``get("buffer.format")`` and a few typed shortcuts."""

    def __init__(self, values: dict[str, Any], path: str | None) -> None:
        self._values = values
        self.path = path

    def get(self, key: str) -> Any:
        return self._values[key]

    def as_tree(self) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        for key, value in self._values.items():
            node = tree
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return tree

    def snapshot(self) -> dict[str, Any]:
        """The settings as stored in a workflow record: secrets redacted."""
        from provwh.core.redact import redact, redact_url  # its patterns: only when used

        tree = redact(self.as_tree())
        url = self._values.get("databases.postgres.url")
        if url:
            tree["databases"]["postgres"]["url"] = redact_url(url)
        tree["settings_path"] = self.path
        return tree

    @property
    def postgres_url(self) -> str | None:
        url = self._values["databases.postgres.url"]
        return normalize_postgres_url(url) if url else None

    @property
    def postgres_enabled(self) -> bool:
        return bool(self._values["databases.postgres.enabled"] and self.postgres_url)

    @property
    def duckdb_enabled(self) -> bool:
        return bool(self._values["databases.duckdb.enabled"])

    @property
    def duckdb_path(self) -> str:
        return self._values["databases.duckdb.path"]


def settings_path(env: Any = None) -> str | None:
    env = os.environ if env is None else env
    for var in SETTINGS_ENV_VARS:
        value = env.get(var)
        if value:
            return value
    return None


def load_settings(path: str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Resolve settings from defaults, the file at ``path`` and the environment."""
    env = os.environ if env is None else env
    path = path or settings_path(env)
    tree: dict[str, Any] = {}
    if path:
        if not os.path.exists(path):
            raise SettingsError(f"settings file not found: {path}")
        import yaml

        with open(path, encoding="utf-8") as fh:
            try:
                tree = yaml.safe_load(fh) or {}
            except yaml.YAMLError as exc:
                raise SettingsError(f"settings file {path} is not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise SettingsError(f"settings file {path} must hold a mapping at its top level")

    values: dict[str, Any] = {}
    for key, (kind, default, choices) in SCHEMA.items():
        found, raw = _get_path(tree, key)
        if found and raw is None and kind != _OPT_STR:
            found = False  # YAML `key: ~` means "use the default"
        values[key] = (
            _convert(key, kind, raw, choices, f"in {path}") if found else copy.copy(default)
        )
    for var, key in ENV_OVERRIDES.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        kind, _default, choices = SCHEMA[key]
        values[key] = _convert(key, kind, raw, choices, f"from ${var}")
    if env.get("PROVWH_POSTGRES_URL"):
        values["databases.postgres.enabled"] = True
    if values["databases.postgres.url"]:
        normalize_postgres_url(values["databases.postgres.url"])  # validate early
    return Settings(values, path)


_lock = threading.Lock()
_current: Settings | None = None


def get_settings() -> Settings:
    """The process's settings, loaded once (``reload_settings()`` re-reads them)."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = load_settings()
    return _current


def reload_settings() -> Settings:
    global _current
    with _lock:
        _current = load_settings()
    return _current
