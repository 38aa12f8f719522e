"""MLflow capture: each MLflow run that ends while a workflow runs becomes one of its tasks.

``Flowcept(interceptors=["mlflow"])`` watches the MLflow tracking store named by
``adapters.mlflow.file_path`` (Flowcept's key): the SQLite file of
``mlflow.set_tracking_uri("sqlite:///mlflow.db")``, given as a path or as that URI. It reads the
store directly, read-only, every ``adapters.mlflow.watch_interval_sec`` seconds and once more at
``stop()``; mlflow itself is not imported (its SQLite schema has kept these tables and columns
since MLflow 1.x), so the adapter needs no extra and never slows the training loop.

Which runs (Flowcept's rule, without its Redis set of runs seen): a run becomes a task when it
has ended (``FINISHED``, ``FAILED`` or ``KILLED``) and had not already ended, the same way, when
the adapter started. A run still running at ``stop()`` is not recorded.

A task record: ``task_id`` = the run id, ``activity_id`` = the experiment's name, ``used`` = the
run's params (text, as MLflow stores them; ``adapters.mlflow.log_params`` filters the names),
``generated`` = each metric's latest value (``adapters.mlflow.log_metrics`` filters), ``status``
``FINISHED`` (``ERROR`` for a failed or killed run), ``started_at`` / ``ended_at`` (MLflow's
milliseconds as epoch seconds), ``parent_task_id`` = the parent run of a nested run, ``user``,
``adapter_id="mlflow"``, and ``custom_metadata`` = ``run_name``, ``experiment_id``,
``mlflow_status``, ``artifact_uri`` and the run's own tags (``mlflow.*`` system tags left out).
"""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path
from typing import Any

from provwh.adapters.polling import PollingAdapter, matches
from provwh.core.model import task_record

__all__ = ["MLflowInterceptor", "store_path"]

ADAPTER_ID = "mlflow"
_ENDED = ("FINISHED", "FAILED", "KILLED")
_STATUS = {"FINISHED": "FINISHED", "FAILED": "ERROR", "KILLED": "ERROR"}
_CHUNK = 500  # run ids per query (SQLite allows 999 parameters in old builds)


def store_path(setting: str) -> str:
    """The SQLite file named by ``adapters.mlflow.file_path``: a path, or a ``sqlite:///`` URI
    (``sqlite:///rel.db``, ``sqlite:////abs.db``), made absolute."""
    value = setting
    if "://" in value:
        scheme, _, rest = value.partition("://")
        if scheme != "sqlite":
            raise ValueError(
                "adapters.mlflow.file_path must name the MLflow tracking store's SQLite file "
                f"(a path or sqlite:///...); got {setting!r}"
            )
        value = rest[1:] if rest.startswith("/") else rest  # sqlite:///x -> x, ////x -> /x
        value = value.partition("?")[0]
    if not value:
        raise ValueError("adapters.mlflow.file_path is empty")
    return os.path.abspath(value)


def _ms(value: Any) -> float | None:
    return None if value is None else value / 1000.0


class MLflowInterceptor(PollingAdapter):
    """Built by the controller for ``interceptors=["mlflow"]``."""

    kind = ADAPTER_ID

    def __init__(self, ctl: Any) -> None:
        settings = ctl.settings
        super().__init__(ctl, settings.get("adapters.mlflow.watch_interval_sec"))
        self.path = store_path(settings.get("adapters.mlflow.file_path"))
        self.log_params = settings.get("adapters.mlflow.log_params")
        self.log_metrics = settings.get("adapters.mlflow.log_metrics")
        self._seen: dict[str, Any] = {}  # run id -> its end_time when recorded (or at start)

    # -- reading the store --------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection | None:
        if not os.path.isfile(self.path):
            return None
        uri = Path(self.path).as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=5.0)

    def _ended_runs(self, conn: sqlite3.Connection) -> list[tuple[str, Any]]:
        """(run id, end_time) of every ended run; none while the store has no runs table."""
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone() is None:
            return []
        marks = ",".join("?" * len(_ENDED))
        return conn.execute(
            f"SELECT run_uuid, end_time FROM runs WHERE status IN ({marks})"
            " ORDER BY end_time, run_uuid",
            _ENDED,
        ).fetchall()

    def begin(self) -> None:
        conn = self._connect()
        if conn is None:
            return
        try:
            self._seen = dict(self._ended_runs(conn))
        finally:
            conn.close()

    def poll(self, final: bool = False) -> None:
        conn = self._connect()
        if conn is None:
            return
        try:
            conn.execute("BEGIN")  # one snapshot of the store for every read below
            new = [(r, end) for r, end in self._ended_runs(conn) if self._seen.get(r, -1) != end]
            for i in range(0, len(new), _CHUNK):
                chunk = new[i : i + _CHUNK]
                records = self._records(conn, [r for r, _end in chunk])
                for run_id, end in chunk:
                    rec = records.get(run_id)
                    if rec is not None:
                        self.emit(rec)
                        self._seen[run_id] = end
        finally:
            conn.close()  # ends the read transaction

    def _records(self, conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, dict]:
        """The task record of each run: its row, params, latest metrics and tags."""
        marks = ",".join("?" * len(run_ids))
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        name_col = "r.name" if "name" in columns else "NULL"
        rows = conn.execute(
            f"SELECT r.run_uuid, {name_col}, r.status, r.start_time, r.end_time, r.user_id,"
            " r.artifact_uri, r.experiment_id, e.name"
            " FROM runs r LEFT JOIN experiments e ON e.experiment_id = r.experiment_id"
            f" WHERE r.run_uuid IN ({marks})",
            run_ids,
        ).fetchall()
        params = conn.execute(
            f"SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({marks})"
            " ORDER BY run_uuid, key",
            run_ids,
        ).fetchall()
        metrics = self._latest_metrics(conn, marks, run_ids)
        tags = conn.execute(
            f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({marks})"
            " ORDER BY run_uuid, key",
            run_ids,
        ).fetchall()
        used: dict[str, dict] = {r: {} for r in run_ids}
        for run_id, key, value in params:
            if matches(key, self.log_params):
                used[run_id][key] = value
        generated: dict[str, dict] = {r: {} for r in run_ids}
        for run_id, key, value, is_nan in metrics:
            if matches(key, self.log_metrics):
                generated[run_id][key] = None if is_nan or value is None else _number(value)
        run_tags: dict[str, dict] = {r: {} for r in run_ids}
        for run_id, key, value in tags:
            run_tags[run_id][key] = value

        ctl, out = self.ctl, {}
        for run_id, name, status, start, end, user, artifact_uri, exp_id, exp_name in rows:
            tags_of = run_tags[run_id]
            rec = task_record(run_id, ctl.current_workflow_id, ctl.campaign_id, exp_name,
                              used[run_id])  # fmt: skip
            rec["generated"] = generated[run_id]
            rec["status"] = _STATUS.get(status, "UNKNOWN")
            rec["started_at"] = _ms(start)
            rec["ended_at"] = _ms(end)
            parent = tags_of.get("mlflow.parentRunId")
            if parent:
                rec["parent_task_id"] = parent
            if user:
                rec["user"] = user
            rec["adapter_id"] = ADAPTER_ID
            rec["custom_metadata"] = {
                "run_name": name if name is not None else tags_of.get("mlflow.runName"),
                "experiment_id": None if exp_id is None else str(exp_id),
                "mlflow_status": status,
                "artifact_uri": artifact_uri,
                "tags": {k: v for k, v in tags_of.items() if not k.startswith("mlflow.")},
            }
            out[run_id] = rec
        return out

    @staticmethod
    def _latest_metrics(conn: sqlite3.Connection, marks: str, run_ids: list[str]) -> list:
        """(run id, key, value, is_nan): each metric's value at its latest step (then time), as
        MLflow's ``latest_metrics`` table keeps it; from ``metrics`` in a store without it."""
        has_latest = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'latest_metrics'"
        ).fetchone()
        table = "latest_metrics" if has_latest else "metrics"
        query = (
            f"SELECT run_uuid, key, value, is_nan FROM {table} WHERE run_uuid IN ({marks})"
            " ORDER BY run_uuid, key, step, timestamp, value"
        )  # with the history (metrics), the last row of a key is its latest value
        return conn.execute(query, run_ids).fetchall()


def _number(value: Any) -> Any:
    """A metric value (a double in MLflow's store)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
