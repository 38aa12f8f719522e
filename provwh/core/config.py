"""Settings: defaults, a YAML file (Flowcept's keys where they apply), environment overrides.

The file is named by ``PROVWH_SETTINGS_PATH`` (or ``FLOWCEPT_SETTINGS_PATH``); without one the
defaults below apply and everything works (embedded DuckDB, JSONL batches, dump at stop).
Unknown keys (a Flowcept settings file has many: mq, kv_db, ...) are ignored; a known key with
an invalid value raises ``SettingsError`` naming the key.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import threading
from typing import Any, NamedTuple

SETTINGS_ENV_VARS = ("PROVWH_SETTINGS_PATH", "FLOWCEPT_SETTINGS_PATH")


class SettingsError(ValueError):
    """A settings value is invalid; the message names the key and the file."""


_BOOL, _STR, _POS_INT, _POS_FLOAT, _OPT_STR = "bool", "str", "pos_int", "pos_float", "opt_str"
_SECONDS = "seconds"  # a finite number of seconds, 0 or more
_STR_LIST = "str_list"  # a list of non-empty strings (one string: a list of one)


class Setting(NamedTuple):
    """One settings key: its kind, its default, the values allowed (or None: any of its kind),
    and what it is for (the comments of ``provwh settings init``)."""

    kind: str
    default: Any
    allowed: tuple | None
    description: str


# key path -> Setting; the README's settings table lists the same keys and defaults (a test
# compares them)
SCHEMA: dict[str, Setting] = {
    "project.db_flush_mode": Setting(
        _STR,
        "online",
        ("online", "offline"),
        "online: batches are loaded (Flowcept's loader thread, or a consumer);"
        " offline: no database, dump only",
    ),
    "project.dump_buffer.enabled": Setting(
        _BOOL, True, None, "write the buffer file (JSONL) when a capture stops"
    ),
    "project.dump_buffer.path": Setting(
        _STR, "flowcept_buffer.jsonl", None, "where the buffer file goes"
    ),
    "project.dump_buffer.delete_previous_file": Setting(
        _BOOL, True, None, "start each run with an empty buffer file"
    ),
    "project.dump_buffer.append_workflow_id_to_path": Setting(
        _BOOL, False, None, "one buffer file per workflow"
    ),
    "project.dump_buffer.append_id_to_path": Setting(
        _BOOL, False, None, "one buffer file per capture (its id in the name)"
    ),
    "project.replace_non_json_serializable": Setting(
        _BOOL, True, None, "store repr() of values JSON cannot hold"
    ),
    "project.enrich_messages": Setting(
        _BOOL, True, None, "host fields on tasks, git info on the workflow"
    ),
    "instrumentation.enabled": Setting(
        _BOOL, True, None, "capture at all (false: decorators and contexts do nothing)"
    ),
    "telemetry_capture.enabled": Setting(
        _BOOL, False, None, "CPU / memory / disk / network / GPU at task start and end"
    ),
    "telemetry_capture.cpu": Setting(_BOOL, True, None, "CPU times and percent"),
    "telemetry_capture.per_cpu": Setting(_BOOL, False, None, "also per CPU (bigger records)"),
    "telemetry_capture.mem": Setting(_BOOL, True, None, "virtual memory and swap"),
    "telemetry_capture.process_info": Setting(
        _BOOL, True, None, "this process's memory, CPU and threads"
    ),
    "telemetry_capture.disk": Setting(_BOOL, False, None, "disk usage and I/O counters"),
    "telemetry_capture.network": Setting(_BOOL, False, None, "network I/O counters"),
    "telemetry_capture.gpu": Setting(_BOOL, True, None, "GPU use (needs the gpu extra)"),
    "telemetry_capture.machine_info": Setting(
        _BOOL, True, None, "machine description in the workflow record"
    ),
    "buffer.format": Setting(_STR, "jsonl", ("jsonl", "parquet"), "batch file format in the spool"),
    "buffer.spool_dir": Setting(
        _STR, ".provwh/spool", None, "folder of batch files a consumer loads"
    ),
    "buffer.flush_size": Setting(_POS_INT, 5000, None, "records per batch file"),
    # a task is in a batch file within this long, and so loadable: with 1 s, a task's
    # freshness in Flowcept.db at 10,000 tasks/s was 0.73 / 1.12 s (median / p95,
    # PostgreSQL), with 0.25 s 0.54 / 0.89 s; a size-triggered batch (a fast loop) is not
    # affected; at a slow steady pace, up to 4 files a second instead of 1
    "buffer.flush_interval": Setting(
        _POS_FLOAT, 0.25, None, "seconds before a partial batch is written"
    ),
    "buffer.max_pending": Setting(
        _POS_INT, 50000, None, "records held in memory before capture blocks"
    ),
    "buffer.fsync": Setting(
        _BOOL, True, None, "fsync batch files (durable across power loss; slower)"
    ),
    "buffer.done_retention": Setting(
        _SECONDS,
        3600.0,
        None,
        "seconds loaded batches stay in the spool folder's done/ (producers read them for their"
        " dump at stop; a run's own in-process loader keeps them until then)",
    ),
    "buffer.done_max_mb": Setting(
        _POS_INT,
        1024,
        None,
        "MB done/ may hold: beyond, the oldest loaded batches are deleted first, whatever"
        " their age (a dump then leaves them out, with a warning)",
    ),
    "buffer.transport": Setting(
        _STR,
        "spool",
        ("spool", "redis"),
        "where batches go: the spool folder, or a Redis stream (nodes without a shared disk)",
    ),
    "buffer.redis_url": Setting(
        _STR, "redis://127.0.0.1:6379/0", None, "the Redis server of the redis transport"
    ),
    "buffer.redis_stream": Setting(
        _STR, "provwh:batches", None, "the Redis stream (key) batches go to"
    ),
    "flows.capture": Setting(
        _BOOL,
        False,
        None,
        "standalone flow runs record provenance (a run inside a capturing session always does)",
    ),
    "databases.duckdb.enabled": Setting(_BOOL, True, None, "load into the embedded DuckDB file"),
    "databases.duckdb.path": Setting(_STR, "provwh.duckdb", None, "the DuckDB file"),
    "databases.postgres.enabled": Setting(
        _BOOL, False, None, "load into PostgreSQL (also turned on by PROVWH_POSTGRES_URL)"
    ),
    "databases.postgres.url": Setting(
        _OPT_STR, None, None, "postgresql://user:password@host:5432/db"
    ),
    "databases.postgres.migrate_on_startup": Setting(
        _BOOL, False, None, "upgrade an older schema instead of refusing"
    ),
    "databases.stop_timeout": Setting(
        _SECONDS,
        30.0,
        None,
        "seconds stop() waits for a database it cannot reach (locked, down) before it leaves"
        " the run's batches in the spool folder; 0: give up at the first failure",
    ),
    # Flowcept's adapters.mlflow / adapters.tensorboard keys (provwh.adapters.mlflow,
    # provwh.adapters.tensorboard); used by Flowcept(interceptors=["mlflow"]) / ["tensorboard"]
    "adapters.mlflow.file_path": Setting(
        _STR,
        "mlflow.db",
        None,
        "the MLflow tracking store watched: its SQLite file (or sqlite:///...)",
    ),
    "adapters.mlflow.watch_interval_sec": Setting(
        _POS_FLOAT, 1.0, None, "seconds between two reads of the MLflow store"
    ),
    "adapters.mlflow.log_params": Setting(
        _STR_LIST, ["*"], None, "params kept in used (names or fnmatch patterns)"
    ),
    "adapters.mlflow.log_metrics": Setting(
        _STR_LIST, ["*"], None, "metrics kept in generated (names or fnmatch patterns)"
    ),
    "adapters.tensorboard.file_path": Setting(
        _STR, "tensorboard_events", None, "the TensorBoard log folder watched (a run per subfolder)"
    ),
    "adapters.tensorboard.watch_interval_sec": Setting(
        _POS_FLOAT, 5.0, None, "seconds between two reads of the log folder"
    ),
    "adapters.tensorboard.log_tags": Setting(
        _STR_LIST,
        ["scalars", "hparams", "tensors"],
        None,
        "what is read: scalars and tensors (scalar ones) as generated, hparams as used",
    ),
    "adapters.tensorboard.log_metrics": Setting(
        _STR_LIST,
        ["accuracy"],
        None,
        "a run becomes a task once it logs one of these tags (names or fnmatch patterns; *: any)",
    ),
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
    "PROVWH_STOP_TIMEOUT": "databases.stop_timeout",
    "PROVWH_FLOWS_CAPTURE": "flows.capture",
    "PROVWH_DONE_RETENTION": "buffer.done_retention",
    "PROVWH_DONE_MAX_MB": "buffer.done_max_mb",
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
        if not 0 < out < math.inf:  # inf passed once and then killed the flush thread
            raise bad("a positive, finite number")
    elif kind == _SECONDS:
        if isinstance(value, bool):
            raise bad("a number of seconds")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise bad("a number of seconds") from None
        if not 0 <= out < math.inf:
            raise bad("a finite number of seconds, 0 or more")
    elif kind == _STR_LIST:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) and v for v in items):
            raise bad("a list of non-empty strings")
        out = list(items)
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
    """Resolved settings: ``get("buffer.format")`` and a few typed shortcuts.

    ``warnings``: what in the file looks like a mistake (see ``suspicious``).
    """

    def __init__(
        self, values: dict[str, Any], path: str | None, warnings: list[str] | None = None
    ) -> None:
        self._values = values
        self.path = path
        self.warnings = warnings or []

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
    for key, setting in SCHEMA.items():
        found, raw = _get_path(tree, key)
        if found and raw is None and setting.kind != _OPT_STR:
            found = False  # YAML `key: ~` means "use the default"
        values[key] = (
            _convert(key, setting.kind, raw, setting.allowed, f"in {path}")
            if found
            else copy.copy(setting.default)
        )
    for var, key in ENV_OVERRIDES.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        setting = SCHEMA[key]
        values[key] = _convert(key, setting.kind, raw, setting.allowed, f"from ${var}")
    if env.get("PROVWH_POSTGRES_URL"):
        values["databases.postgres.enabled"] = True
    if values["databases.postgres.url"]:
        normalize_postgres_url(values["databases.postgres.url"])  # validate early
    warnings = suspicious(tree, values)
    for text in warnings:
        if (path, text) not in _warned:  # once per process and file
            _warned.add((path, text))
            log.warning("provwh: settings file %s: %s", path, text)
    return Settings(values, path, warnings)


_warned: set[tuple[str | None, str]] = set()
log = logging.getLogger("provwh")


def _leaves(tree: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out += _leaves(value, name + ".") if isinstance(value, dict) else [(name, value)]
    return out


def suspicious(tree: dict, values: dict[str, Any]) -> list[str]:
    """Keys of a settings file that look like mistakes: a near miss of a known key, a value
    where a section belongs, a PostgreSQL URL that stays off. Keys far from every provwh key
    (a Flowcept file's ``mq``, ``kv_db``, ``databases.lmdb``...) pass silently: only a name
    close to a provwh key of the same section is reported."""
    import difflib

    sections = {k.rsplit(".", 1)[0] for k in SCHEMA} | {k.split(".", 1)[0] for k in SCHEMA}
    out = []
    for key, _value in _leaves(tree):
        if key in SCHEMA:
            continue
        if key in sections:
            inside = sorted(k[len(key) + 1 :] for k in SCHEMA if k.startswith(key + "."))
            out.append(f"{key} is a section ({', '.join(inside)}), not a value: did you mean "
                       f"{key}.{'enabled' if 'enabled' in inside else inside[0]}?")  # fmt: skip
            continue
        parent = key.rpartition(".")[0]
        siblings = [k for k in SCHEMA if k.rpartition(".")[0] == parent]  # a typo in a name
        close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.85)
        if close:
            out.append(f"unknown key {key} (ignored): did you mean {close[0]}?")
    has_url = _get_path(tree, "databases.postgres.url")[1]
    if has_url and not values["databases.postgres.enabled"]:
        out.append("databases.postgres.url is set but databases.postgres.enabled is not true: "
                   "PostgreSQL stays off")  # fmt: skip
    return out


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
