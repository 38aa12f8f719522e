"""Dask capture: every task run on any worker becomes one provenance task.

``Flowcept(interceptors=["dask"], dask_client=client)`` registers a ``WorkerPlugin`` through
``client.register_plugin`` (Dask's own extension point; nothing is patched). Workers are other
processes, often on other hosts, so each worker's plugin writes its records itself: a small
buffer of its own, flushed as batch files into the controller's spool folder (an absolute path,
which must be shared by the workers' hosts) every ``buffer.flush_interval`` seconds, when
``buffer.flush_size`` records wait, and when the plugin is torn down. ``stop()`` unregisters
the plugin (Dask runs every worker's teardown and waits for it), so every task that finished
before ``stop()`` is in a batch file when ``stop()`` returns; the batches' names are added to
the controller's own, so its dump includes the Dask tasks.

Flowcept users may instead register the worker plugin themselves, before starting capture,
as Flowcept 1.0.3 has them do::

    client.register_plugin(FlowceptDaskWorkerAdapter())
    with Flowcept("dask", dask_client=client):
        ...

The adapter on its own captures nothing (it does not know where records go); a controller
started with the ``dask`` interceptor finds it (on the workers, or by its name at the
scheduler) and registers it again, under the same name, configured for its run (so workers
that join later get it too) instead of adding a plugin of its own: each task is captured once.
``stop()`` puts the plain adapter back, which flushes every worker. Workers' batch names carry
a tag of the run, so a cluster closed before ``stop()`` (Flowcept's example does so inside the
``with`` block) still has its tasks in the run's dump: its workers flushed when they closed, and
the controller finds their batches in the spool folder by that tag.

A task record: ``task_id`` = the Dask key (as text), ``activity_id`` = the function's name,
``used`` = its arguments bound to parameter names (results of upstream tasks resolved to their
values), ``generated`` = its result, ``dependencies`` = the upstream keys, worker ``hostname`` /
``address``, compute start/end times, ``status`` (``ERROR`` with the exception's text in
``stderr``), ``adapter_id="dask"``.
"""

from __future__ import annotations

import logging
import os
import threading
from time import time
from typing import Any

from dask.utils import funcname
from distributed import WorkerPlugin

from provwh.capture.args import default_args_handler, make_binder, make_output_mapper
from provwh.core import serialize
from provwh.core.host import host_identity
from provwh.core.ids import new_uuid
from provwh.core.model import task_record
from provwh.transport.buffer import BatchBuffer
from provwh.transport.spool import SpoolWriter

try:  # Dask >= 2024.12 describes tasks with these classes
    from dask._task_spec import Alias, DataNode, Dict, NestedContainer, Task, TaskRef
except ImportError:  # older Dask: tasks are named by their key's prefix, arguments left out
    Alias = DataNode = Dict = NestedContainer = Task = TaskRef = ()  # type: ignore[assignment,misc]

__all__ = ["DaskInterceptor", "FlowceptDaskWorkerAdapter", "ProvenanceWorkerPlugin"]

log = logging.getLogger("provwh")
ADAPTER_ID = "dask"
ADAPTER_NAME = "flowcept-dask-worker-adapter"  # the name a user-registered adapter gets
_RUNNING = frozenset(("executing", "long-running", "cancelled", "resumed"))
_MAX_BINDERS = 256
_map_output = make_output_mapper(None)

# Batch names written by plugins torn down in this (worker) process, until the controller
# collects them: plugin name -> names.
_written: dict[str, list[str]] = {}
_written_lock = threading.Lock()


# -- reading a task's spec on the worker ---------------------------------------------------------
def _dep_value(key: Any, data: Any) -> Any:
    try:
        return data[key]
    except Exception:  # spilled and unreadable, or already released: name it instead
        return {"dask_key": str(key)}


def _resolve(node: Any, data: Any, depth: int = 0) -> Any:
    """An argument as the task received it: references to other tasks become their values.

    Inline sub-tasks are named, never run (running them would run user code twice)."""
    if isinstance(node, TaskRef):
        return _dep_value(node.key, data)
    if isinstance(node, Alias):
        return _dep_value(node.target, data)
    if isinstance(node, DataNode):
        return node.value
    if depth > 16:
        return repr(node)
    if isinstance(node, Dict):
        args = node.args
        return {k: _resolve(v, data, depth + 1) for k, v in zip(args[::2], args[1::2], strict=True)}
    if isinstance(node, NestedContainer):
        return [_resolve(a, data, depth + 1) for a in node.args]
    if isinstance(node, Task):
        return f"<task {_funcname(node.func)}>"
    return node


def _funcname(func: Any) -> str:
    try:
        return str(funcname(func))
    except Exception:
        return getattr(func, "__name__", type(func).__name__)


def batch_tag(run_tag: str) -> str:
    """What starts the run id of each worker's batches: ``-<tag>`` is in every batch name."""
    return f"dk{run_tag}x" if run_tag else "dask"


# -- the worker plugin ---------------------------------------------------------------------------
class ProvenanceWorkerPlugin(WorkerPlugin):
    """Turns each task a worker runs into a task record written to the spool folder."""

    idempotent = False

    def __init__(
        self,
        name: str,
        spool_dir: str | None,
        workflow_id: str | None,
        campaign_id: str | None,
        fmt: str = "jsonl",
        fsync: bool = True,
        flush_size: int = 1000,
        flush_interval: float = 1.0,
        max_pending: int = 20000,
        replace_non_json_serializable: bool = True,
        run_tag: str = "",
    ) -> None:
        self.name = name
        self.spool_dir = os.path.abspath(spool_dir) if spool_dir is not None else None
        self.workflow_id = workflow_id
        self.campaign_id = campaign_id
        self.fmt, self.fsync = fmt, fsync
        self.flush_size, self.flush_interval, self.max_pending = (
            flush_size,
            flush_interval,
            max_pending,
        )
        self.replace_non_json_serializable = replace_non_json_serializable
        self.run_tag = run_tag  # in every batch name: the controller finds them by it
        self._worker: Any = None

    # Only the options travel to the workers; the worker-side state is built in setup().
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_worker", "_writer", "_buffer", "_pending", "_binders", "_host"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._worker = None

    def setup(self, worker: Any) -> None:
        self._worker = worker
        self._buffer = None
        if self.spool_dir is None:  # not attached to a run: nothing to capture
            return
        # as Flowcept's plugin: worker code can read the run's ids from its worker
        worker.current_workflow_id = self.workflow_id
        worker.current_campaign_id = self.campaign_id
        serialize.configure(self.replace_non_json_serializable)
        self._pending: dict[Any, dict[str, Any]] = {}
        self._binders: dict[Any, Any] = {}
        ident = host_identity()
        self._host = {k: ident[k] for k in ("hostname", "node_name", "login_name") if ident.get(k)}
        self._writer = SpoolWriter(
            self.spool_dir,
            run_id=f"{batch_tag(self.run_tag)}{new_uuid()[:6]}",
            fmt=self.fmt,
            fsync=self.fsync,
        )
        self._buffer = BatchBuffer(
            self._writer.write,
            flush_size=self.flush_size,
            flush_interval=self.flush_interval,
            max_pending=self.max_pending,
        )

    def teardown(self, worker: Any) -> None:
        buffer = getattr(self, "_buffer", None)
        if buffer is None:
            return
        try:
            buffer.close()
        finally:
            with _written_lock:
                _written.setdefault(self.name, []).extend(self._writer.names)
            self._buffer = None

    def flush(self) -> list[str]:
        """Write what waits now; the names of every batch written so far."""
        if getattr(self, "_buffer", None) is not None:
            self._buffer.flush()
        return list(self._writer.names)

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if self._worker is None or getattr(self, "_buffer", None) is None:
            return
        try:
            if finish == "executing":
                if key not in self._pending:
                    self._pending[key] = self._open(key)
            elif finish == "memory" or finish == "error":
                rec = self._pending.pop(key, None)
                if rec is not None:
                    self._close(key, rec, finish)
            elif finish not in _RUNNING:  # cancelled, rescheduled, released: nothing ran to end
                self._pending.pop(key, None)
        except Exception as exc:  # capture never breaks the worker
            log.error("provwh: dask task %r not captured: %r", key, exc)

    def _binder(self, func: Any) -> Any:
        try:
            bind = self._binders.get(func)
        except TypeError:  # unhashable callable
            return make_binder(func)
        if bind is None:
            if len(self._binders) >= _MAX_BINDERS:
                self._binders.clear()
            bind = self._binders[func] = make_binder(func)
        return bind

    def _open(self, key: Any) -> dict[str, Any]:
        worker = self._worker
        ts = worker.state.tasks.get(key)
        # activity and arguments come from the task's spec below (None if it has none)
        rec = task_record(str(key), self.workflow_id, self.campaign_id, None, None)
        rec["adapter_id"], rec["started_at"] = ADAPTER_ID, time()
        if ts is None:
            return rec
        try:
            self._read_spec(ts, rec)
        except Exception:  # an unexpected spec: the task is still recorded, by its key's prefix
            rec["activity_id"] = ts.prefix
        rec["dependencies"] = sorted(str(dep.key) for dep in ts.dependencies)
        return rec

    def _read_spec(self, ts: Any, rec: dict[str, Any]) -> None:
        spec = ts.run_spec
        if isinstance(spec, Task) and not isinstance(spec, NestedContainer):
            func = spec.func
            data = self._worker.data
            args = tuple(_resolve(a, data) for a in spec.args)
            if spec.has_subgraph():
                # Fused tasks run an internal helper over (inner graph, out key, in keys, *inputs):
                # the key's prefix names the work, the inputs are what it used.
                rec["activity_id"] = ts.prefix
                rec["used"] = {str(k): v for k, v in zip(args[2], args[3:], strict=False)}
            else:
                kwargs = {k: _resolve(v, data) for k, v in spec.kwargs.items()}
                rec["activity_id"] = _funcname(func)
                try:
                    rec["used"] = self._binder(func)(args, kwargs)
                except Exception:
                    rec["used"] = default_args_handler(*args, **kwargs)
        else:  # a container or alias, or an older Dask's spec: the key's prefix names it
            rec["activity_id"] = ts.prefix

    def _close(self, key: Any, rec: dict[str, Any], finish: str) -> None:
        worker = self._worker
        ts = worker.state.tasks.get(key)
        now = time()
        computes = [
            s for s in (ts.startstops if ts is not None else ()) if s.get("action") == "compute"
        ]
        if computes:
            rec["started_at"] = computes[-1]["start"]
            rec["ended_at"] = computes[-1]["stop"]
        else:
            rec["ended_at"] = now
        if finish == "memory":
            rec["status"] = "FINISHED"
            try:
                result = worker.data[key]
            except Exception:
                result = None
            generated = _map_output(result)
            if generated is not None:
                rec["generated"] = generated
        else:
            rec["status"] = "ERROR"
            text = ts.exception_text if ts is not None else ""
            rec["stderr"] = text or "error"
        rec["address"] = worker.address
        rec.update(self._host)
        self._buffer.put(rec)


class FlowceptDaskWorkerAdapter(ProvenanceWorkerPlugin):
    """Flowcept's Dask worker plugin: ``client.register_plugin(FlowceptDaskWorkerAdapter())``.

    Registered alone it captures nothing; a ``Flowcept("dask", dask_client=client)`` run
    attaches it to its workflow while it runs (see the module's text)."""

    name = ADAPTER_NAME

    def __init__(self) -> None:
        super().__init__(ADAPTER_NAME, None, None, None)


def _attached(name: str, options: dict[str, Any]) -> FlowceptDaskWorkerAdapter:
    plugin = FlowceptDaskWorkerAdapter()
    plugin.__dict__.update(options)
    plugin.name = name
    return plugin


def _adapter_names_on_worker(dask_worker: Any) -> list[str]:
    """Runs on each worker (``client.run``): names of the Flowcept adapters it has."""
    return sorted(
        name
        for name, plugin in dask_worker.plugins.items()
        if isinstance(plugin, FlowceptDaskWorkerAdapter)
    )


def _adapter_registered(dask_scheduler: Any) -> bool:
    """Runs on the scheduler: whether an adapter is registered under its default name."""
    return ADAPTER_NAME in dask_scheduler.worker_plugins


def _collect_written(name: str) -> list[str]:
    """Runs on each worker (``client.run``): names written by torn-down plugin ``name``."""
    with _written_lock:
        return _written.pop(name, [])


def tagged_batches(spool_dir: str, run_tag: str) -> list[str]:
    """Batches written by the workers of the run tagged ``run_tag``: ready, claimed or loaded."""
    from provwh.transport.batches import is_batch_name
    from provwh.transport.spool import CLAIMED, DONE

    tag = f"-{batch_tag(run_tag)}"
    found: set[str] = set()
    for sub in ("", CLAIMED, DONE):
        try:
            names = os.listdir(os.path.join(spool_dir, sub))
        except OSError:
            continue
        found.update(n for n in names if tag in n and is_batch_name(n))
    return sorted(found)


# -- the interceptor -----------------------------------------------------------------------------
class DaskInterceptor:
    """Built by the controller for ``interceptors=["dask"]``; needs ``dask_client=``."""

    def __init__(self, ctl: Any) -> None:
        client = ctl.kwargs.get("dask_client")
        if client is None:
            from distributed import default_client

            try:
                client = default_client()
            except ValueError:
                raise ValueError(
                    "the dask interceptor needs a client: Flowcept(interceptors=['dask'], "
                    "dask_client=client)"
                ) from None
        if getattr(client, "asynchronous", False):
            raise ValueError("the dask interceptor needs a synchronous dask Client")
        self.ctl = ctl
        self.client = client
        self.name = f"provwh-{ctl.current_workflow_id}"
        self.run_tag = new_uuid()[:8]
        self.adapters: list[str] = []  # the user's FlowceptDaskWorkerAdapter names, attached
        self._registered = False

    def _options(self) -> dict[str, Any]:
        ctl, settings = self.ctl, self.ctl.settings
        return {
            "spool_dir": os.path.abspath(ctl.spool_dir),
            "workflow_id": ctl.current_workflow_id,
            "campaign_id": ctl.campaign_id,
            "fmt": settings.get("buffer.format"),
            "fsync": settings.get("buffer.fsync"),
            "flush_size": settings.get("buffer.flush_size"),
            "flush_interval": settings.get("buffer.flush_interval"),
            "max_pending": settings.get("buffer.max_pending"),
            "replace_non_json_serializable": settings.get("project.replace_non_json_serializable"),
            "run_tag": self.run_tag,
        }

    def find_adapters(self) -> list[str]:
        """Names under which FlowceptDaskWorkerAdapters are registered on this cluster."""
        client = self.client
        names: set[str] = set()
        for found in client.run(_adapter_names_on_worker, on_error="ignore").values():
            if isinstance(found, list):
                names.update(found)
        try:
            if client.run_on_scheduler(_adapter_registered):
                names.add(ADAPTER_NAME)
        except Exception as exc:  # a scheduler that runs no code: the workers said enough
            log.debug("provwh: could not ask the dask scheduler for its plugins: %r", exc)
        return sorted(names)

    def start(self) -> None:
        options = self._options()
        self.adapters = self.find_adapters()
        if self.adapters:  # the user registered Flowcept's plugin: attach it to this run
            for name in self.adapters:
                self.client.register_plugin(_attached(name, options), name=name)
        else:
            options.pop("spool_dir")
            plugin = ProvenanceWorkerPlugin(self.name, self.ctl.spool_dir, **options)
            self.client.register_plugin(plugin, name=self.name)
        self._registered = True
        self.ctl.update_workflow(adapter_id=ADAPTER_ID, custom_metadata=self.cluster_info())

    def cluster_info(self) -> dict[str, Any]:
        """What the workflow record says about the cluster."""
        import dask
        import distributed

        nthreads = self.client.nthreads()
        return {
            "scheduler": self.client.scheduler.address,
            "n_workers": len(nthreads),
            "n_threads": sum(nthreads.values()),
            "workers": sorted(nthreads),
            "dask_version": dask.__version__,
            "distributed_version": distributed.__version__,
        }

    def stop(self) -> None:
        if not self._registered:
            return
        self._registered = False
        names = self.adapters or [self.name]
        written: set[str] = set()
        client = self.client
        if client.status in ("running", "connecting"):
            try:
                if self.adapters:  # the plain adapter again: every worker flushes in teardown
                    for name in self.adapters:
                        client.register_plugin(FlowceptDaskWorkerAdapter(), name=name)
                else:
                    client.unregister_worker_plugin(self.name)  # every worker flushes
                for name in names:
                    for found in client.run(_collect_written, name, on_error="ignore").values():
                        if isinstance(found, list):
                            written.update(found)
            except Exception as exc:
                log.warning("provwh: could not detach the dask plugin (%r); workers that are "
                            "still running flush when they close", exc)  # fmt: skip
        # Workers in this process, and those that closed before stop() (a cluster closed
        # inside the ``with`` block), flushed at their teardown: their batches are found by tag.
        for name in names:
            written.update(_collect_written(name))
        written.update(tagged_batches(self.ctl.spool_dir, self.run_tag))
        if written:
            self.ctl.add_batches(sorted(written))
