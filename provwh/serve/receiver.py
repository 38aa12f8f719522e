"""The OpenLineage receiver: run events posted to ``/api/v1/lineage`` into the warehouse.

Events land through the importer (``exports.importer.load_events``), which maps them as
``provwh import`` does (one task per run id, activity = job name, the parent run facet names
the workflow, input and output datasets as used / generated values) and loads each through
the warehouse's one ingest entry, keyed in its ledger by the event's content: an event sent
again is skipped. A run's START and COMPLETE sent in separate requests merge into one task;
an end that arrived before its START keeps its status.
"""

from __future__ import annotations

import threading
from typing import Any

from provwh.serve.records import TERMINAL_STATUSES, BadRequest

MAX_EVENTS = 10_000  # per request


def events_of(body: Any) -> list[dict[str, Any]]:
    """The run events of a request body: one event, ``{"events": [...]}``, or a JSON array."""
    from provwh.exports.importer import run_event_error

    if isinstance(body, dict) and "events" in body and "eventType" not in body:
        events = body["events"]
        if not isinstance(events, list):
            raise BadRequest("events must be a list of OpenLineage run events")
    elif isinstance(body, list):
        events = body
    elif isinstance(body, dict):
        events = [body]
    else:
        raise BadRequest('the body is one OpenLineage run event, {"events": [...]} or an array')
    if len(events) > MAX_EVENTS:
        raise BadRequest(f"at most {MAX_EVENTS} events per request, got {len(events)}")
    for i, ev in enumerate(events):
        error = run_event_error(ev)
        if error is not None:
            where = f"event {i}: " if len(events) > 1 or body is not events[0] else ""
            raise BadRequest(f"{where}{error}")
    return events


class Receiver:
    """Loads events into the server's database (its own loader, one request at a time)."""

    def __init__(self, db: Any, targets: list[Any]) -> None:
        self.db = db
        self.targets = targets
        self._loader: Any = None
        self._lock = threading.Lock()

    def _get_loader(self) -> Any:
        if self._loader is None:
            from provwh.warehouse.loader import Loader

            self._loader = Loader(self.targets, workers=0)
        return self._loader

    def receive(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        from provwh.exports.importer import load_events, parent_run_ids

        run_ids = sorted({ev["run"]["runId"] for ev in events} | parent_run_ids(events))
        with self._lock:
            workflows, ended = self._known(run_ids)
            stats = load_events(events, self._get_loader(), workflows, ended)
        return {
            "received": len(events),
            "loaded": stats.batches,
            "duplicates": stats.skipped,
            "rejects": stats.rejects,
        }

    def _known(self, run_ids: list[str]) -> tuple[set[str], set[str]]:
        """Runs stored as workflows, and runs whose end is stored (tasks or workflows)."""
        ids = {"$in": run_ids}
        fields = ["status", "ended_at"]
        with self.db.hold():
            wfs = self.db.workflow_query({"workflow_id": ids}, projection=["workflow_id", *fields])
            tasks = self.db.task_query({"task_id": ids}, projection=["task_id", *fields])
        ended = {
            r.get("workflow_id") or r.get("task_id")
            for r in [*wfs, *tasks]
            if r.get("ended_at") is not None or r.get("status") in TERMINAL_STATUSES
        }
        return {w["workflow_id"] for w in wfs}, ended

    def close(self) -> None:
        with self._lock:
            if self._loader is not None:
                self._loader.close()
                self._loader = None
