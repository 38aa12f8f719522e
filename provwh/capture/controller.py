"""The capture controller: one workflow's capture, from start to dump.

``CaptureController`` knows capture and transport only. What happens to the batches next is
the business of whoever builds it: ``start_loader`` is the hook that starts a loader beside the
capture (``project.db_flush_mode: online``); here it starts none, and the ``Flowcept`` facade
(``provwh.facade``) starts the warehouse's spool consumer.
"""

from __future__ import annotations

import logging
import os
import threading
from time import time
from typing import Any, Protocol, Self

from provwh.capture import context, lifecycle
from provwh.capture.loops import close_open_loops
from provwh.core import serialize
from provwh.core.config import Settings, get_settings
from provwh.core.gcpause import gc_paused
from provwh.core.ids import agent_id_for, new_uuid
from provwh.core.model import AgentObject, merge_records
from provwh.core.text import first_line, plural
from provwh.core.threads import handling_keyboard_interrupt, signals_held
from provwh.core.vocabulary import plain_value
from provwh.transport import BatchWriter, buffer_file, spool
from provwh.transport.buffer import BatchBuffer, batch_lines, build_entry
from provwh.version import __version__

log = logging.getLogger("provwh")

# Interceptor kinds: "instrumentation" is the decorators / tasks / loops of this package;
# other kinds name a class "module:attr" built as cls(controller) with start() and stop(),
# started after the workflow record is saved and stopped before the final flush. The adapters
# register theirs (``provwh.facade`` registers the built-in "dask").
INTERCEPTORS: dict[str, str | None] = {"instrumentation": None}


def register_interceptor(kind: str, target: str) -> None:
    """Make ``Flowcept(interceptors=[kind])`` build ``target`` ("module:Class")."""
    INTERCEPTORS[kind] = target


def _load_interceptor(kind: str) -> Any:
    import importlib

    module, _, attr = INTERCEPTORS[kind].partition(":")
    return getattr(importlib.import_module(module), attr)


class RunningLoader(Protocol):
    """A loader started beside a capture by ``CaptureController.start_loader``."""

    def stop(self, drain: bool = True, timeout: float | None = None) -> Any:
        """Stop it; with ``drain``, after loading every batch written so far, waiting at most
        ``timeout`` seconds for a database that cannot be reached (then raising). Ctrl+C while
        it loads leaves the rest in the spool folder and raises ``KeyboardInterrupt``."""
        ...


class _BufferProperty:
    """``buffer``: on an instance, that run's messages (``get_buffer()``); on the class
    (``Flowcept.buffer``, as Flowcept code reads it), those of the running capture, or None
    when none runs (Flowcept's class attribute is None before ``start()`` and after ``stop()``).
    """

    def __get__(self, obj: Any, owner: type | None = None) -> list[dict[str, Any]] | None:
        if obj is None:
            obj = _running_instance(owner)
            if obj is None:
                return None
        return obj.get_buffer()


def _running_instance(cls: type | None) -> CaptureController | None:
    """The innermost running capture (in this context, else the last started), if it is a
    ``cls``."""
    ctl = context.active_controller()
    if ctl is None or not ctl.running:
        return None
    if cls is not None and not isinstance(ctl, cls):
        return None
    return ctl  # type: ignore[return-value]


class CaptureController:
    """Starts and stops provenance capture for one workflow.

    Use it as a context manager or with ``start()`` / ``stop()``. While it runs, decorated
    functions, ``FlowceptTask`` and loops anywhere in the process record tasks into its buffer,
    which flushes batch files into the spool folder; ``stop()`` flushes the rest, closes the
    workflow record (``ended_at``, ``status``) and, when ``project.dump_buffer.enabled``,
    writes the run's messages to one JSONL file. Unknown keyword arguments are kept in
    ``self.kwargs`` for adapters (e.g. ``dask_client``).

    Instrumentation uses the public attributes ``capture.context.Recorder`` describes
    (``capturing``, ``telemetry``, ``batch_buffer``...); the rest is the controller's own.
    ``CaptureController.current_workflow_id`` / ``campaign_id`` (on the class) are those of
    the innermost running capture, or of the last one once none runs.
    """

    current_workflow_id: str | None = None
    campaign_id: str | None = None

    def __init__(
        self,
        interceptors: list[str] | str | None = None,
        bundle_exec_id: str | None = None,
        campaign_id: str | None = None,
        workflow_id: str | None = None,
        workflow_name: str | None = None,
        workflow_subtype: str | None = None,
        workflow_args: dict | None = None,
        agent_id: str | None = None,
        parent_workflow_id: str | None = None,
        start_persistence: bool = True,
        check_safe_stops: bool = True,
        save_workflow: bool = True,
        delete_buffer_file: bool | None = None,
        *args: Any,
        agent_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = get_settings()
        self.enabled = bool(self.settings.get("instrumentation.enabled"))
        if interceptors is None:
            interceptors = ["instrumentation"] if self.enabled else []
        elif isinstance(interceptors, str):
            interceptors = [interceptors]
        for kind in interceptors:
            if kind not in INTERCEPTORS:
                raise ValueError(
                    f"interceptor {kind!r} is not supported; supported: "
                    + ", ".join(sorted(INTERCEPTORS))
                )
        self._interceptors = list(interceptors)
        self.bundle_exec_id = bundle_exec_id or str(id(self))
        self.campaign_id = campaign_id or new_uuid()
        self.current_workflow_id = workflow_id or new_uuid()
        self.workflow_name = workflow_name
        self.workflow_subtype = plain_value(workflow_subtype)
        self.workflow_args = workflow_args
        # PROV-AGENT: a named agent runs this workflow. Its id, when not given, is the one its
        # name stands for (a UUIDv5), so every run of "planner" names the same agent.
        self.agent_name = agent_name
        if agent_id is None and agent_name is not None:
            agent_id = agent_id_for(agent_name)
        self.agent_id = None if agent_id is None else str(agent_id)
        self.parent_workflow_id = parent_workflow_id
        self._start_persistence = start_persistence
        self._check_safe_stops = check_safe_stops
        if "save_workflows" in kwargs:  # the distributed example spells it this way
            save_workflow = bool(kwargs.pop("save_workflows"))
        self._save_workflow = save_workflow
        self._delete_buffer_file = delete_buffer_file
        self.args = args
        self.kwargs = kwargs

        self.running = False
        self.capturing = False
        self.telemetry = None
        self._forced_telemetry_cache = None
        self.batch_buffer: BatchBuffer | None = None
        self._writer: BatchWriter | None = None  # SpoolWriter, or RedisBatchWriter
        self._workflow_record: dict[str, Any] | None = None
        # Every workflow record this run wrote (its own, flows', adapters'), merged by id:
        # what get_buffer() and the dump show, each workflow once.
        self._workflows: dict[str, dict[str, Any]] = {}
        # batches this process wrote without a workflow record: the dump copies them whole
        self._task_only_batches: set[str] = set()
        self._batch_workflows = 0  # workflow records in the batch being written
        self._consumer: RunningLoader | None = None
        self._adapters: list[Any] = []
        self._context_tokens: list[Any] = []
        self._lock = threading.RLock()
        self.is_started = False

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Start capturing (and the in-process loader when persistence is on)."""
        with self._lock:
            if self.running:
                log.warning("provwh: this Flowcept is already started")
                return self
            settings = self.settings
            serialize.configure(settings.get("project.replace_non_json_serializable"))
            delete_previous = self._delete_buffer_file
            if delete_previous is None:
                delete_previous = settings.get("project.dump_buffer.delete_previous_file")
            if delete_previous and settings.get("project.dump_buffer.enabled"):
                CaptureController.delete_buffer_file(self._dump_path())
            if self.parent_workflow_id is None:
                outer = context.active_controller()
                if outer is not None and outer.current_workflow_id != self.current_workflow_id:
                    self.parent_workflow_id = outer.current_workflow_id

            self._writer = _make_writer(settings)
            self.batch_buffer = BatchBuffer(
                self._export,
                flush_size=settings.get("buffer.flush_size"),
                flush_interval=settings.get("buffer.flush_interval"),
                max_pending=settings.get("buffer.max_pending"),
            )
            if settings.get("telemetry_capture.enabled"):
                self.telemetry = self.forced_telemetry
            self._host = self._task_enrichment() if settings.get("project.enrich_messages") else {}

            CaptureController.current_workflow_id = self.current_workflow_id
            CaptureController.campaign_id = self.campaign_id
            self.running = True
            self._pid = os.getpid()
            self.is_started = True
            self.capturing = self.enabled and "instrumentation" in self._interceptors
            context.push_started(self)
            if self._save_workflow:
                self.save_workflow()
            if self.agent_name is not None:
                self.save_agent()
            for kind in self._interceptors:
                if INTERCEPTORS[kind] is not None:
                    adapter = _load_interceptor(kind)(self)
                    adapter.start()
                    self._adapters.append(adapter)
            if self._start_persistence and settings.get("project.db_flush_mode") == "online":
                self._consumer = self.start_loader(self._writer.spool_dir, settings)
            lifecycle.register_atexit()
            return self

    def stop(self, status: str = "FINISHED") -> None:
        """Flush everything, close the workflow record, load and dump as configured."""
        with self._lock:
            if not self.running:
                log.warning("provwh: Flowcept is already stopped or was never started")
                return
            # A Ctrl+C while stopping (a second one, when the first ended the run) stops the
            # loading: the workflow is still closed, flushed and dumped, the rest left in the
            # spool folder.
            interrupted = None
            try:
                close_open_loops(self)
            except KeyboardInterrupt as exc:
                interrupted = exc
            for adapter in reversed(self._adapters):
                try:
                    adapter.stop()
                except KeyboardInterrupt as exc:
                    interrupted = interrupted or exc
                except Exception as exc:  # the workflow still gets closed and flushed
                    log.error("provwh: stopping interceptor %r failed: %r", adapter, exc)
            self._adapters = []
            self.capturing = False
            try:
                with signals_held():  # closing the record goes whole
                    if self._workflow_record is not None:
                        self._put_workflow({"ended_at": time(), "status": status})
            except KeyboardInterrupt as exc:  # held, unless a thread of a library took it
                interrupted = interrupted or exc
            while True:
                try:
                    self.batch_buffer.close()  # a flush cut short keeps what it did not write
                    break
                except KeyboardInterrupt as exc:
                    interrupted = interrupted or exc
                except Exception:  # nothing could take them: they go to the dump (see below)
                    break
            self.running = False
            context.remove_started(self)
            outer = context.active_controller()
            if outer is not None:  # a nested run ended: the current ids are the outer run's
                CaptureController.current_workflow_id = outer.current_workflow_id
                CaptureController.campaign_id = outer.campaign_id
            consumer, self._consumer = self._consumer, None
            settings = self.settings
            drained = False
            if consumer is not None:
                try:
                    consumer.stop(
                        drain=interrupted is None, timeout=settings.get("databases.stop_timeout")
                    )
                    drained = interrupted is None
                except KeyboardInterrupt as exc:  # Ctrl+C while loading: the rest stays
                    interrupted = exc
                except Exception as exc:  # the run keeps its dump and its batches
                    if getattr(exc, "at_stop", False):  # a database it gave up waiting for
                        reason = first_line(exc)
                    else:
                        reason = (
                            f"loading this run's records failed ({type(exc).__name__}: "
                            f"{first_line(exc)})"
                        )
                    self._left_in_spool(reason)
                    log.debug("provwh: persistence failure", exc_info=exc)
                if interrupted is not None:
                    self._left_in_spool("loading stopped by Ctrl+C")
                elif drained:
                    interrupted = self._load_fallen_back(settings)
            dumped = None
            if settings.get("project.dump_buffer.enabled"):
                try:
                    dumped = self.dump_buffer()
                except Exception as exc:
                    self._persistence_failed("writing the buffer file", exc)
            self._report_unwritten(dumped)
            self._report_fallback()
            if dumped and settings.get("project.db_flush_mode") == "offline":
                for folder, names in self._writer.run_batches():
                    spool.remove(folder, names)
            getattr(self._writer, "close", lambda: None)()
            if interrupted is not None and not handling_keyboard_interrupt():
                raise interrupted  # a Ctrl+C that came during stop() still stops the program

    def start_loader(self, spool_dir: str, settings: Settings) -> RunningLoader | None:
        """The hook that starts a loader on the spool folder, for the online mode.

        ``stop()`` stops it (draining) before the dump. Capture alone loads nothing: its
        batches stay in the spool folder for ``provwh load`` or a consumer process.
        """
        return None

    def load_fallback(self, folder: str, settings: Settings) -> Any:
        """The hook that loads this run's batches in a fallback folder at stop, for the online
        mode (the loader started beside the capture follows the spool folder only); returns
        None when there is no database to load them into."""
        return None

    def _load_fallen_back(self, settings: Settings) -> KeyboardInterrupt | None:
        """At stop, after the spool folder is drained: load what the spool folder could not
        take. A failure leaves the batches where they are (``_report_fallback`` says where)."""
        for folder, names in self._writer.run_batches():
            if folder == self._writer.spool_dir or not spool.left_to_load(folder, names)[0]:
                continue
            try:
                self.load_fallback(folder, settings)
            except KeyboardInterrupt as exc:
                return exc
            except Exception as exc:
                log.error(
                    "provwh: loading this run's batches in %s failed (%s: %s)",
                    folder, type(exc).__name__, first_line(exc),
                )  # fmt: skip
                log.debug("provwh: persistence failure", exc_info=exc)
        return None

    def _left_in_spool(self, reason: str) -> None:
        """One error line: why loading stopped, what of this run is left in the spool folder,
        and the command that loads it later."""
        spool_dir = self._writer.spool_dir
        names = dict(self._writer.run_batches()).get(spool_dir, [])
        batches, records = spool.left_to_load(spool_dir, names)
        stream = getattr(self._writer, "stream", None)  # the redis transport's
        if stream is not None and not batches:
            log.error("provwh: %s; its batches stay in the Redis stream %s (unacknowledged): "
                      "`provwh consume --redis` loads them", reason, stream)  # fmt: skip
            return
        if batches:
            left = (
                f"{spool_dir} holds {plural(batches, 'batch')} ({plural(records, 'record')}) "
                "of this run"
            )
        else:
            left = f"its batches stay in {spool_dir}"
        log.error("provwh: %s; %s: load them later with `provwh load %s`", reason, left, spool_dir)

    def _persistence_failed(self, what: str, exc: BaseException) -> None:
        """One error line: what failed, where the batches are, and how to load them later.

        A persistence failure never reaches the user's program (the run itself succeeded).
        """
        spool_dir = self._writer.spool_dir
        log.error(
            "provwh: %s this run's records failed (%s: %s); its batches stay in %s: "
            "load them later with `provwh load %s`",
            what,
            type(exc).__name__,
            first_line(exc),
            spool_dir,
            spool_dir,
        )
        log.debug("provwh: persistence failure", exc_info=exc)

    def _report_fallback(self) -> None:
        """At stop: batches that went to the fallback folder are loaded by no consumer of
        the spool folder; say where they are and how to load them."""
        if self.settings.get("project.db_flush_mode") != "online":
            return
        for folder, names in self._writer.run_batches():
            if folder == self._writer.spool_dir or not names:
                continue
            left = spool.left_to_load(folder, names)[0]
            if left:
                log.warning(
                    "provwh: %s of this run are in %s (the spool folder could not take them): "
                    "load them with `provwh load %s`",
                    plural(left, "batch"),
                    folder,
                    folder,
                )

    def _report_unwritten(self, dump_path: str | None) -> None:
        """At stop: how many records no folder could take, and where they are now."""
        buf = self.batch_buffer
        held, dropped = len(buf), buf.dropped
        if not held and not dropped:
            return
        kept = f"in the buffer file {dump_path}" if dump_path else "lost (no buffer file)"
        parts = [f"{held} are {kept}" if dropped else f"they are {kept}"] if held else []
        if dropped:
            parts.append(f"{dropped} were dropped to keep memory bounded")
        error = buf.last_error
        log.error(
            "provwh: %d records of this run could not be written as batches (%s: %s): %s",
            held + dropped,
            type(error).__name__,
            first_line(error) if error is not None else "",
            ", ".join(parts),
        )

    # -- process lifecycle (see ``lifecycle``) ------------------------------------------------
    def at_exit(self) -> None:
        """At interpreter exit: stop (the process that started it), or flush (a forked child:
        the parent owns the workflow and its dump)."""
        if self._pid == os.getpid():
            self.stop()
        else:
            self.batch_buffer.flush()

    def after_fork(self) -> None:
        """In a forked child: batches of its own; the parent's loader thread is not here."""
        self._writer.reset_after_fork()
        self._consumer = None

    def __enter__(self) -> Self:
        self.start()
        self._context_tokens.append(context.enter_controller(self))
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if self._context_tokens:
            context.exit_controller(self._context_tokens.pop())
        if self.running:
            self.stop(status="ERROR" if _is_failure(exc_type, exc_val) else "FINISHED")

    # -- records ------------------------------------------------------------------------------
    @property
    def forced_telemetry(self) -> Any:
        """Telemetry for ``@telemetry_flowcept_task``: on whatever the master switch says."""
        if self._forced_telemetry_cache is None:
            from provwh.capture.telemetry import from_settings

            self._forced_telemetry_cache = from_settings(self.settings)
        return self._forced_telemetry_cache

    def _task_enrichment(self) -> dict[str, Any]:
        from provwh.core.host import host_identity

        ident = host_identity()
        return {
            k: ident[k] for k in ("hostname", "node_name", "login_name") if ident.get(k) is not None
        }

    def _export(self, entries: list[Any]) -> None:
        # a batch's records are all alive until written: the cycle search would find nothing
        self._batch_workflows = 0
        with gc_paused():
            if tuple in set(map(type, entries)):  # deferred entries: their builders write lines
                lines = batch_lines(entries, self._host, self._records)
                # (if the write fails, the entries are queued again)
                name = self._writer.write(lines if lines is not None else self._records(entries))
            else:
                name = self._writer.write(self._records(entries))
        if not self._batch_workflows:
            self._task_only_batches.add(name)

    def _records(self, entries: list[Any]) -> list[dict[str, Any]]:
        """The records of buffer entries (built if deferred), tasks with the host's fields;
        workflow records are merged into this run's (for the dump)."""
        host, workflows = self._host, self._workflows
        for i, rec in enumerate(entries):
            if type(rec) is tuple:
                entries[i] = rec = build_entry(rec)
                if rec is None:
                    continue
            kind = rec.get("type")
            if kind == "task":
                if host and "hostname" not in rec:
                    rec.update(host)
            elif kind == "workflow":
                self._batch_workflows += 1
                wf_id = rec.get("workflow_id")
                if wf_id in workflows:
                    merge_records(workflows[wf_id], rec)
                else:
                    workflows[wf_id] = dict(rec)
        return [rec for rec in entries if rec is not None]

    def update_workflow(self, **fields: Any) -> None:
        """Add or change fields of this run's workflow record (merged: dicts are updated)."""
        if not self.running:
            raise RuntimeError("update_workflow() needs a started Flowcept")
        self._put_workflow(fields)

    def _put_workflow(self, fields: dict[str, Any]) -> None:
        rec = {"type": "workflow", "workflow_id": self.current_workflow_id, **fields}
        if self._workflow_record is None:
            self._workflow_record = dict(rec)
        else:
            merge_records(self._workflow_record, rec)
        self.batch_buffer.put(rec)

    def save_workflow(
        self, interceptor: str | None = None, interceptor_instance: Any = None
    ) -> None:
        """Publish this run's workflow record (host, code version, settings, arguments)."""
        from provwh.capture.machine import code_repository, machine_info
        from provwh.core.host import host_identity

        settings = self.settings
        now = time()
        rec: dict[str, Any] = {
            "campaign_id": self.campaign_id,
            "name": self.workflow_name,
            "subtype": self.workflow_subtype,
            "parent_workflow_id": self.parent_workflow_id,
            "agent_id": self.agent_id,
            "used": self.workflow_args,
            "interceptor_ids": [f"{k}_{self.bundle_exec_id}" for k in self._interceptors],
            "flowcept_version": __version__,
            "utc_timestamp": now,
            "started_at": now,
            "status": "RUNNING",
            "conf": {"settings_path": settings.path},
            "flowcept_settings": settings.snapshot(),
        }
        ident = host_identity()
        for key in ("user", "sys_name", "node_name", "hostname", "private_ip", "public_ip"):
            rec[key] = ident.get(key)
        if settings.get("telemetry_capture.machine_info"):
            rec["machine_info"] = machine_info()
        if settings.get("project.enrich_messages"):
            rec["code_repository"] = code_repository()
        if interceptor is not None and interceptor != "instrumentation":
            rec["adapter_id"] = interceptor
        self._put_workflow({k: v for k, v in rec.items() if v is not None})

    def save_agent(self, agent: AgentObject | dict | None = None) -> AgentObject:
        """Publish an agent record (PROV-AGENT), loaded into the ``agents`` table.

        Without ``agent``, this run's agent: ``Flowcept(agent_name=...)`` calls it at start,
        with ``agent_id`` (given, or derived from the name), ``name``, ``user`` and the run's
        ``workflow_id`` / ``campaign_id``. An ``AgentObject`` (or dict) given is published as
        it is, ``user`` filled in when missing. Returns the agent published.
        """
        if not self.running:
            raise RuntimeError("save_agent() needs a started Flowcept")
        if agent is None:
            if self.agent_id is None:
                raise ValueError("this Flowcept has no agent: pass agent_name= or agent_id=")
            agent = AgentObject(
                self.agent_id,
                self.agent_name,
                workflow_id=self.current_workflow_id,
                campaign_id=self.campaign_id,
            )
        elif isinstance(agent, dict):
            agent = AgentObject.from_dict(agent)
        if not agent.agent_id:
            if not agent.name:
                raise ValueError("an agent needs an agent_id or a name")
            agent.agent_id = agent_id_for(agent.name)
        agent.enrich()
        self.batch_buffer.put(agent.to_dict())
        return agent

    # -- batches ------------------------------------------------------------------------------
    @property
    def spool_dir(self) -> str:
        """The folder this run's batch files go to (and where its dump reads them back)."""
        return self._writer.spool_dir

    def add_batches(self, names: list[str]) -> None:
        """Batches written for this run by other processes (Dask workers): part of its dump."""
        self._writer.names.extend(names)

    def _flush(self) -> None:
        if self.batch_buffer is not None:
            try:
                self.batch_buffer.flush()
            except Exception as exc:  # what could not be written is read from memory
                self.batch_buffer.record_failure(exc)

    def _raw_blocks(self):
        """This run's records as blocks of JSON lines (each line ending with a newline), each
        workflow once (merged), tasks as captured: from its batches wherever they were written
        (a batch's bytes as they are), then those no folder could take."""
        if self._writer is None:
            return
        self._flush()
        held = self.batch_buffer.held()
        for rec in held:
            if rec.get("type") == "workflow":
                merge_records(self._workflows.setdefault(rec["workflow_id"], {}), rec)
        for record in list(self._workflows.values()):
            yield serialize.dumps(record) + b"\n"
        gone: list[str] = []
        for folder, names in self._writer.run_batches():
            yield from spool.iter_raw_blocks(
                folder, names, b"workflow", missing=gone.append, whole=self._task_only_batches
            )
        if gone:
            log.warning(
                "provwh: %s of this run (%s) no longer in %s: loaded, then pruned from done/ "
                "(buffer.done_retention, buffer.done_max_mb), or set aside in rejected/; "
                "their records are not in this buffer. The database has those loaded",
                plural(len(gone), "batch"),
                ", ".join(gone[:3]) + (", ..." if len(gone) > 3 else ""),
                self._writer.spool_dir,
            )
        for rec in held:
            if rec.get("type") != "workflow":
                yield serialize.dumps(rec) + b"\n"

    buffer = _BufferProperty()

    @classmethod
    def get_current_instance(cls) -> Self | None:
        """The running controller (the innermost one in this context, else the last started
        in the process), or None when none runs."""
        return _running_instance(cls)

    def get_buffer(self, return_df: bool = False) -> Any:
        """This run's messages: a list of dicts, or a DataFrame with dotted columns."""
        records = [
            serialize.loads_line(line)
            for block in self._raw_blocks()
            for line in block.split(b"\n")[:-1]
        ]
        if return_df:
            return buffer_file.to_dataframe(records, normalize=True)
        return records

    def dump_buffer(self, path: str | None = None) -> str:
        """Write this run's messages to a JSONL file (overwriting it); returns the path."""
        path = self._dump_path(path)
        buffer_file.write_blocks(path, self._raw_blocks())
        return path

    def _dump_path(self, path: str | None = None) -> str:
        settings = self.settings
        return buffer_file.resolve_dump_path(
            path or settings.get("project.dump_buffer.path"),
            self.current_workflow_id,
            settings.get("project.dump_buffer.append_workflow_id_to_path"),
            settings.get("project.dump_buffer.append_id_to_path"),
            unique_id=f"{os.getpid()}_{self.bundle_exec_id}",
        )

    @staticmethod
    def read_buffer_file(
        file_path: str | None = None,
        return_df: bool = False,
        normalize_df: bool = False,
        consolidate: bool = False,
        workflow_id: str | None = None,
        cleanup_files: bool = True,
    ) -> Any:
        """Read a JSONL buffer file (list of dicts, or a DataFrame); see ``buffer_file``."""
        if file_path is None:
            file_path = get_settings().get("project.dump_buffer.path")
        assert file_path, "Please indicate file_path either in the argument or in the settings."
        if consolidate:
            if workflow_id is None:
                raise ValueError("workflow_id must be provided when consolidate=True.")
            file_path = buffer_file.consolidate(file_path, workflow_id, cleanup_files)
        records = buffer_file.read(file_path)
        if return_df:
            return buffer_file.to_dataframe(records, normalize=normalize_df)
        return records

    read_messages_file = read_buffer_file

    @staticmethod
    def delete_buffer_file(path: str | None = None) -> None:
        """Delete a buffer file if it exists (no error when it does not)."""
        if path is None:
            path = get_settings().get("project.dump_buffer.path")
        try:
            os.remove(path)
            log.info("provwh: buffer file deleted: %s", path)
        except FileNotFoundError:
            pass


def _make_writer(settings: Settings) -> BatchWriter:
    """Where batches go: the spool folder, or a Redis stream (``buffer.transport``)."""
    args = {
        "run_id": new_uuid()[:8],
        "fmt": settings.get("buffer.format"),
        "fsync": settings.get("buffer.fsync"),
    }
    if settings.get("buffer.transport") == "redis":
        from provwh.transport.redis_stream import RedisBatchWriter

        return RedisBatchWriter(
            settings.get("buffer.spool_dir"),
            url=settings.get("buffer.redis_url"),
            stream=settings.get("buffer.redis_stream"),
            retention=settings.get("buffer.done_retention"),
            max_bytes=settings.get("buffer.done_max_mb") << 20,
            **args,
        )
    return spool.SpoolWriter(settings.get("buffer.spool_dir"), **args)


def _is_failure(exc_type: Any, exc_val: Any) -> bool:
    """Whether leaving the ``with`` block this way failed the run: ``sys.exit(0)`` (or
    ``sys.exit()``) is a normal end, as its exit status says."""
    if exc_type is None:
        return False
    return not (issubclass(exc_type, SystemExit) and getattr(exc_val, "code", 1) in (0, None))
