"""``Flowcept``: the class instrumented code uses, with Flowcept's API.

It is the capture controller (``capture.controller.CaptureController``) joined with what reads
and loads the warehouse: ``Flowcept.db`` (the query API), ``generate_report``,
``start_consumption_services``, ``services_alive``, and, in online mode, the in-process loader
that ``start()`` runs on the spool folder (the controller's ``start_loader`` hook). ``@flowcept``
runs a function as one workflow under a ``Flowcept``.

This is the one module that joins capture, warehouse, query and report. Each of them but
capture is imported when first used, so ``import provwh`` imports no database driver, Arrow
or pandas. (The module is not named ``flowcept``: ``provwh.flowcept`` is the decorator.)
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

from provwh.capture.args import make_binder
from provwh.capture.controller import CaptureController, RunningLoader, register_interceptor
from provwh.core.config import Settings, get_settings
from provwh.core.text import plural

log = logging.getLogger("provwh")

register_interceptor("dask", "provwh.adapters.dask:DaskInterceptor")
register_interceptor("mlflow", "provwh.adapters.mlflow:MLflowInterceptor")
register_interceptor("tensorboard", "provwh.adapters.tensorboard:TensorBoardInterceptor")


class _DBProperty:
    """``Flowcept.db``: the query API bound to the configured database (imported on use)."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        from provwh.query.api import get_db

        return get_db()


class Flowcept(CaptureController):
    """Starts and stops provenance capture for one workflow, and loads and queries it.

    See ``CaptureController`` for capture. ``Flowcept.db`` is the query API on the configured
    database; with ``project.db_flush_mode: online`` (and ``start_persistence``), ``start()``
    also starts a loader thread on the spool folder, and ``stop()`` drains it.
    """

    db = _DBProperty()

    def start_loader(self, spool_dir: str, settings: Settings) -> RunningLoader | None:
        """The warehouse's spool consumer (and Redis consumer), when a database is enabled."""
        if not (settings.duckdb_enabled or settings.postgres_enabled):
            return None
        try:
            from provwh.warehouse.consumer import SpoolConsumer
        except ImportError:  # the warehouse is optional for pure capture installs
            log.debug("provwh: warehouse not available; batches stay in %s", spool_dir)
            return None
        # this run's loaded batches stay in done/ until its dump at stop (the size bound aside)
        tag = f"-{self._writer.run_id}-"
        consumer = SpoolConsumer(spool_dir, settings, keep=lambda name: tag in name)
        if settings.get("buffer.transport") == "redis":  # the spool still takes fallback batches
            from provwh.warehouse.redis_consumer import CombinedConsumer, RedisConsumer

            return CombinedConsumer([RedisConsumer(settings), consumer]).start()
        return consumer.start()

    def load_fallback(self, folder: str, settings: Settings) -> Any:
        """This run's batches in ``folder`` (where they went when the spool folder could not
        take them), loaded as the spool consumer loads: claimed, committed, moved to done/.
        Other runs' batches there are left alone: they may belong to another database."""
        if not (settings.duckdb_enabled or settings.postgres_enabled):
            return None
        from provwh.warehouse.consumer import SpoolConsumer

        tag = f"-{self._writer.run_id}-"
        mine = lambda name: tag in name  # noqa: E731
        consumer = SpoolConsumer(folder, settings, keep=mine, only=mine)
        stats = consumer.stop(drain=True, timeout=settings.get("databases.stop_timeout"))
        log.info("provwh: loaded %s from %s", plural(stats.batches, "batch"), folder)
        return stats

    @staticmethod
    def services_alive() -> bool:
        """True when the spool folder is writable and every enabled database answers."""
        settings = get_settings()
        ok = _spool_writable(settings.get("buffer.spool_dir"))
        if settings.postgres_enabled or settings.duckdb_enabled:
            try:
                from provwh.warehouse.engines import databases_alive
            except ImportError:
                return ok
            ok = databases_alive(settings) and ok
        return ok

    @staticmethod
    def services_status() -> dict[str, str]:
        """Each persistence service this configuration uses, and whether it answers: ``"ok"``,
        else why not. ``spool`` (the folder batches go to) is always there; ``redis`` with
        ``buffer.transport: redis``; ``duckdb`` / ``postgres`` when enabled. All ``"ok"``
        is what ``services_alive()`` says True to."""
        settings = get_settings()
        status = {
            "spool": "ok" if _spool_writable(settings.get("buffer.spool_dir")) else "not writable"
        }
        if settings.get("buffer.transport") == "redis":
            status["redis"] = _redis_status(settings.get("buffer.redis_url"))
        if settings.duckdb_enabled or settings.postgres_enabled:
            try:
                from provwh.warehouse.engines import targets_from_settings
            except ImportError:
                for name in ("duckdb", "postgres"):
                    if getattr(settings, f"{name}_enabled"):
                        status[name] = "warehouse not installed"
                return status
            kinds = [k for k in ("duckdb", "postgres") if getattr(settings, f"{k}_enabled")]
            for kind, target in zip(kinds, targets_from_settings(settings), strict=True):
                try:
                    status[kind] = "ok" if target.alive() else "unreachable"
                finally:
                    target.close()
        return status

    @staticmethod
    def insert_or_update_object(object: Any, **kwargs: Any) -> str:
        """``Flowcept.db.insert_or_update_object``: store an object (bytes, or pickled)."""
        return Flowcept.db.insert_or_update_object(object, **kwargs)

    @staticmethod
    def insert_or_update_ml_model(object: Any, **kwargs: Any) -> str:
        """``Flowcept.db.insert_or_update_ml_model``: an object of type ``ml_model``."""
        return Flowcept.db.insert_or_update_ml_model(object, **kwargs)

    @staticmethod
    def insert_or_update_dataset(object: Any, **kwargs: Any) -> str:
        """``Flowcept.db.insert_or_update_dataset``: an object of type ``dataset``."""
        return Flowcept.db.insert_or_update_dataset(object, **kwargs)

    @staticmethod
    def insert_or_update_torch_model(model: Any, **kwargs: Any) -> str:
        """``Flowcept.db.insert_or_update_torch_model``: a PyTorch model's ``state_dict``."""
        return Flowcept.db.insert_or_update_torch_model(model, **kwargs)

    @staticmethod
    def generate_report(
        report_type: str = "provenance_card",
        format: str = "markdown",
        print_markdown: bool = False,
        output_path: str | None = None,
        input_jsonl_path: str | None = None,
        records: list[dict[str, Any]] | None = None,
        workflow_id: str | None = None,
        campaign_id: str | None = None,
    ) -> dict[str, Any]:
        """Write the Workflow Card (Markdown; ``"workflow_card"`` or ``"provenance_card"``) or the
        provenance report (PDF); see ``provwh.report``."""
        from provwh.report import generate_report

        return generate_report(
            report_type=report_type,
            format=format,
            print_markdown=print_markdown,
            output_path=output_path,
            input_jsonl_path=input_jsonl_path,
            records=records,
            workflow_id=workflow_id,
            campaign_id=campaign_id,
        )

    @staticmethod
    def start_consumption_services(
        bundle_exec_id: str | None = None,
        check_safe_stops: bool = False,
        consumers: list | None = None,
    ) -> None:
        """Run the loader in the foreground on the spool folder until SIGINT / SIGTERM: it
        stops after the transaction in hand; a second signal ends the process at once."""
        from provwh.warehouse.consumer import start_consumption_services

        start_consumption_services(
            bundle_exec_id=bundle_exec_id, check_safe_stops=check_safe_stops, consumers=consumers
        )


def _redis_status(url: str) -> str:
    from provwh.core.redact import redact_url
    from provwh.transport.redis_stream import broker_errors, connect

    try:
        client = connect(url)
    except ImportError:
        return "redis package not installed"
    try:
        client.ping()
        return "ok"
    except broker_errors() as exc:
        log.error("provwh: Redis at %s is not reachable: %s", redact_url(url), exc)
        return "unreachable"
    finally:
        client.close()


def _spool_writable(spool_dir: str) -> bool:
    import tempfile  # with shutil, random, bz2, lzma: not for every 'import provwh'

    try:
        os.makedirs(spool_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=spool_dir, prefix=".alive-"):
            return True
    except OSError as exc:
        log.error("provwh: spool folder %s is not writable: %s", spool_dir, exc)
        return False


def flowcept(func: Callable | None = None, **flowcept_kwargs: Any) -> Callable:
    """Run a main function as one workflow: a ``Flowcept`` controller wraps each call.

    Options are ``Flowcept(...)`` arguments; ``workflow_name`` defaults to the function's name
    and ``workflow_args`` to the call's bound arguments (stored as the workflow's ``used``).
    """
    if func is None:
        return lambda f: flowcept(f, **flowcept_kwargs)
    bind = make_binder(func)

    def controller(args: tuple, kwargs: dict) -> Flowcept:
        options = dict(flowcept_kwargs)
        options.setdefault("workflow_name", func.__name__)
        if "workflow_args" not in options:
            options["workflow_args"] = bind(args, kwargs) or None
        return Flowcept(**options)

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with controller(args, kwargs):
                return await func(*args, **kwargs)

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with controller(args, kwargs):
            return func(*args, **kwargs)

    return wrapper
