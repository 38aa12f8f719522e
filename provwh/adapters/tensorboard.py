"""TensorBoard capture: each run logged into a watched folder while a workflow runs becomes one
of its tasks.

``Flowcept(interceptors=["tensorboard"])`` watches the folder named by
``adapters.tensorboard.file_path`` (Flowcept's key), every
``adapters.tensorboard.watch_interval_sec`` seconds and once more at ``stop()``. As in
TensorBoard (and Flowcept, through tbparse), a run is a subfolder of that folder, with every event
file under it (``add_hparams`` writes into a subfolder of the run's folder); an event file right
in the folder is a run of its own. Event files are read incrementally with the standard library
(``provwh.adapters.tfevents``): any writer works (``torch.utils.tensorboard``, ``tensorboardX``,
TensorFlow), and no extra is needed.

Which runs: those written while the adapter runs (a new event file, or one that grew since the
adapter started), so a run is recorded by the workflow it belongs to, not again by each later
one. Flowcept's rule for when: a run becomes a task once it has logged one of the tags in
``adapters.tensorboard.log_metrics`` (default ``accuracy``; ``*`` for any). The task is published
then, and once more at ``stop()`` if the run logged more since (records with one ``task_id``
merge).

A task record (Flowcept's mapping): ``used`` = the hyperparameters (``add_hparams``), less
``workflow_id`` and ``activity_id`` which, when there, name the task's workflow and activity;
``generated`` = each scalar tag's latest value (by step; ``scalars`` as written by
``add_scalar``, ``tensors`` as written by TensorFlow 2, as ``log_tags`` selects); ``status``
``FINISHED`` (``ERROR`` when the hparams session ended in failure); ``started_at`` / ``ended_at``
= the first and last event times; ``activity_id`` = the watched folder's name (the runs one
TensorBoard compares), ``task_id`` = a UUID (v5) of the run's first event file's path (event
file names alone repeat across runs), ``adapter_id="tensorboard"``, ``custom_metadata`` =
``event_file`` (the run's name, as Flowcept fills it) and ``log_path``.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

from provwh.adapters.polling import PollingAdapter, matches
from provwh.adapters.tfevents import EventFileReader, Events
from provwh.core.model import task_record
from provwh.core.text import plural

__all__ = ["TensorBoardInterceptor"]

log = logging.getLogger("provwh")
ADAPTER_ID = "tensorboard"
_SESSION_FAILURE = 2  # hparams SessionEndInfo.status


def is_event_file(name: str) -> bool:
    return "tfevents" in name


class _Run:
    """What has been read of one run."""

    def __init__(self, name: str, path: str) -> None:
        self.name, self.path = name, path
        self.readers: dict[str, EventFileReader] = {}
        self.values: dict[str, tuple[int, Any]] = {}  # tag -> (step, value)
        self.hparams: dict[str, Any] = {}
        self.session_status: int | None = None
        self.first: float | None = None
        self.last: float | None = None
        self.changed = False
        self.published = False

    def first_file(self) -> str:
        return min(self.readers, key=lambda p: (p.count(os.sep), p))

    def add(self, events: Events, log_tags: list[str]) -> None:
        for s in events.scalars:
            if s.kind in log_tags:
                held = self.values.get(s.tag)
                if held is None or s.step >= held[0]:
                    self.values[s.tag] = (s.step, s.value)
        if "hparams" in log_tags:
            self.hparams.update(events.hparams)
        if events.session_status is not None:
            self.session_status = events.session_status
        if events.first_wall_time is not None:
            self.first = min(events.first_wall_time, self.first or events.first_wall_time)
            self.last = max(events.last_wall_time or 0.0, self.last or 0.0)


class TensorBoardInterceptor(PollingAdapter):
    """Built by the controller for ``interceptors=["tensorboard"]``."""

    kind = ADAPTER_ID

    def __init__(self, ctl: Any) -> None:
        settings = ctl.settings
        super().__init__(ctl, settings.get("adapters.tensorboard.watch_interval_sec"))
        self.root = os.path.abspath(settings.get("adapters.tensorboard.file_path"))
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise ValueError(
                f"adapters.tensorboard.file_path must name a folder of TensorBoard runs; "
                f"{self.root} is a file"
            )
        self.log_tags = settings.get("adapters.tensorboard.log_tags")
        self.log_metrics = settings.get("adapters.tensorboard.log_metrics")
        self._before: dict[str, int] = {}  # event file -> its size when the adapter started
        self._runs: dict[str, _Run] = {}

    def _event_files(self) -> dict[str, list[str]]:
        """Run name -> its event files (absolute paths)."""
        runs: dict[str, list[str]] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            rel = os.path.relpath(folder, self.root)
            for name in sorted(files):
                if is_event_file(name):
                    run = name if rel == "." else rel.split(os.sep, 1)[0]
                    runs.setdefault(run, []).append(os.path.join(folder, name))
        return runs

    @staticmethod
    def _size(path: str) -> int:
        try:
            return os.path.getsize(path)
        except OSError:
            return -1

    def begin(self) -> None:
        self._before = {
            path: self._size(path) for paths in self._event_files().values() for path in paths
        }

    def poll(self, final: bool = False) -> None:
        for name, paths in self._event_files().items():
            run = self._runs.get(name)
            if run is None:
                if all(self._before.get(p) == self._size(p) for p in paths):
                    continue  # untouched since the adapter started: another workflow's run
                path = os.path.join(self.root, name)
                run = self._runs[name] = _Run(name, path)
            for path in paths:
                reader = run.readers.get(path)
                if reader is None:
                    reader = run.readers[path] = EventFileReader(path)
                events = Events()
                if reader.read_new(events):
                    run.add(events, self.log_tags)
                    run.changed = True
            ready = any(matches(tag, self.log_metrics) for tag in run.values)
            if ready and run.changed and (final or not run.published):
                self.emit(self._record(run))
                run.published, run.changed = True, False
        if final:
            waiting = sorted(name for name, run in self._runs.items() if not run.published)
            if waiting:
                log.info("provwh: %s in %s logged none of adapters.tensorboard.log_metrics "
                         "(%s): not recorded (%s)", plural(len(waiting), "TensorBoard run"),
                         self.root, ", ".join(self.log_metrics), ", ".join(waiting))  # fmt: skip

    def _record(self, run: _Run) -> dict[str, Any]:
        ctl = self.ctl
        used = dict(run.hparams)
        workflow_id = used.pop("workflow_id", None)
        activity_id = used.pop("activity_id", None)
        task_id = str(uuid.uuid5(uuid.NAMESPACE_URL, Path(run.first_file()).as_uri()))
        rec = task_record(
            task_id,
            ctl.current_workflow_id if workflow_id is None else str(workflow_id),
            ctl.campaign_id,
            os.path.basename(self.root) if activity_id is None else str(activity_id),
            used,
        )
        rec["generated"] = {tag: value for tag, (_step, value) in sorted(run.values.items())}
        rec["status"] = "ERROR" if run.session_status == _SESSION_FAILURE else "FINISHED"
        rec["started_at"] = run.first
        rec["ended_at"] = run.last
        rec["adapter_id"] = ADAPTER_ID
        rec["custom_metadata"] = {"event_file": run.name, "log_path": run.path}
        return rec
