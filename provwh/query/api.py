"""``DBAPI``: Flowcept's query methods over the warehouse (PostgreSQL, a DuckDB file, or files).

``Flowcept.db`` returns ``get_db()``: the process's DBAPI for the current settings
(PostgreSQL when enabled, else the DuckDB file). Methods keep Flowcept's names, signatures and
result shapes (lists of plain dicts with the record's field names), with two deliberate
differences: errors are raised rather than logged and swallowed into ``[]`` / ``None``, and a
filter on a missing field matches nothing. ``docs/query-guide.md`` has the details.

Nothing heavy is imported here at module level: drivers, pandas and pyarrow load on first use.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from provwh.capture.controller import CaptureController
from provwh.core.config import get_settings
from provwh.core.model import WorkflowObject
from provwh.query import agents as agents_mod
from provwh.query import (
    charts,
    dump,
    find,
    paths,
    summaries,
    task_tree,
    typed_telemetry,
    workflow_fields,
    writes,
)
from provwh.query import derived as derived_mod
from provwh.query import lineage as lineage_mod
from provwh.query import loads as loads_mod
from provwh.query import objects as objects_mod
from provwh.query.backends import Backend, DuckBackend, FilesBackend, PgBackend
from provwh.query.files import expand, load_into_memory
from provwh.query.views import ViewsReadOnly

log = logging.getLogger("provwh.query")


class _ClassOrInstance:
    """A method called on the class (``cls, None``) or on an instance (``cls, self``)."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: Any, owner: type) -> Any:
        return functools.partial(self.func, owner, obj)


class DBAPI:
    """Flowcept's DB API over a relational warehouse; see the module docstring."""

    ASCENDING = 1
    DESCENDING = -1

    def __init__(self, backend: Backend | None = None) -> None:
        """A DB API on ``backend``; ``DBAPI()`` (as in Flowcept) is the configured database."""
        if backend is None:
            backend = DBAPI.from_settings()._backend
        self._backend = backend
        self._views_ready = False
        self._views_missing: ViewsReadOnly | None = None

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Any = None) -> DBAPI:
        """PostgreSQL when ``databases.postgres`` is enabled, else the DuckDB file."""
        if settings is None:
            settings = get_settings()
        if settings.postgres_enabled:
            return cls.from_postgres(
                settings.postgres_url,
                migrate_on_startup=bool(settings.get("databases.postgres.migrate_on_startup")),
            )
        if settings.duckdb_enabled:
            return cls.from_duckdb(settings.duckdb_path)
        raise ValueError(
            "no database is enabled (databases.duckdb / databases.postgres): query batch files "
            "with DBAPI.from_files(paths), or enable a database"
        )

    @classmethod
    def from_duckdb(
        cls,
        path: str | os.PathLike,
        external_access: bool = True,
        idle_release: float | None = None,
        max_hold: float = 30.0,
    ) -> DBAPI:
        """A DuckDB file; ``external_access=False``: its queries cannot reach files, the
        network or extensions (``read_csv``, ``COPY``...), as a server's must not.
        ``idle_release``: keep the file open while calls keep coming, reads concurrent,
        closed after that many idle seconds or when another process waits for it (a
        server's; see ``duckhold``)."""
        return cls(
            DuckBackend(
                path,
                external_access=external_access,
                idle_release=idle_release,
                max_hold=max_hold,
            )
        )

    @classmethod
    def from_postgres(
        cls, url: str, migrate_on_startup: bool = False, connections: int = 1
    ) -> DBAPI:
        """A PostgreSQL database; ``connections``: how many calls may run at once (each on a
        connection of its own, opened when first needed)."""
        return cls(PgBackend(url, migrate_on_startup=migrate_on_startup, connections=connections))

    @classmethod
    def from_files(cls, paths: Any) -> DBAPI:
        """A read-only DBAPI over JSONL / Parquet batch files (files, folders or globs)."""
        files = expand(paths)
        return cls(FilesBackend(load_into_memory(files), files))

    @property
    def engine(self) -> str:
        """``postgresql`` or ``duckdb``."""
        return self._backend.dialect.name

    @property
    def backend(self) -> Backend:
        return self._backend

    def __repr__(self) -> str:
        return f"DBAPI({self._backend.name})"

    def close(self) -> None:
        """Close the connection (a later call reconnects, except over files)."""
        self._backend.close()

    def liveness_test(self) -> bool:
        """True when the database answers."""
        return self._backend.alive()

    @staticmethod
    def db_liveness_tests() -> dict[str, bool]:
        """Whether each enabled database answers: ``{"duckdb": bool, "postgres": bool}``
        (Flowcept's keys are ``mongo`` / ``lmdb``)."""
        from provwh.query.dao import liveness_by_database

        return liveness_by_database(get_settings())

    @_ClassOrInstance
    def get_dao_instance(cls, self: DBAPI | None = None) -> Any:
        """Flowcept's document DAO interface (``query``, ``task_query``, ``count_tasks``,
        ``get_blob_object_doc``...) over this DBAPI, or, called on the class, over
        ``Flowcept.db``."""
        from provwh.query.dao import DocumentDAO

        return DocumentDAO(self if self is not None else get_db())

    @contextlib.contextmanager
    def hold(self) -> Iterator[DBAPI]:
        """Keep a DuckDB file open across several calls (other processes wait meanwhile)."""
        with self._backend.hold():
            yield self

    # --- queries -----------------------------------------------------------------------------
    def query(
        self,
        filter: dict | None = None,
        projection: Any = None,
        limit: int = 0,
        sort: Any = None,
        aggregation: Any = None,
        remove_json_unserializables: bool = True,
        collection: str = "tasks",
        skip: int = 0,
    ) -> list[dict[str, Any]]:
        """Records of ``collection`` matching a Mongo-style ``filter``.

        ``projection``: fields to keep (dotted paths keep their nesting), or ``{field: 0}`` to
        drop; ``sort``: ``[(field, 1 | -1)]``; ``limit``: 0 for all; ``aggregation``:
        ``[(op, field)]`` with op in avg, sum, min, max, count, grouped by ``projection[0]``.
        ``remove_json_unserializables`` is accepted for compatibility: records hold nothing
        else (bytes stay bytes, as in Flowcept). ``skip`` (not in Flowcept; pymongo's name)
        leaves out the first records of the order, for paging.
        """
        coll = paths.collection(collection)  # the argument hides the function's name
        limit = find.limit_of(limit)
        if aggregation is not None:
            if skip:
                raise ValueError("skip does not apply to an aggregation")
            return find.aggregate(self._backend, coll, filter, projection, limit, sort, aggregation)
        return find.find(self._backend, coll, filter, projection, limit, sort, skip)

    def task_query(
        self,
        filter: dict | None = None,
        projection: Any = None,
        limit: int = 0,
        sort: Any = None,
        aggregation: Any = None,
        remove_json_unserializables: bool = True,
        skip: int = 0,
    ) -> list[dict[str, Any]]:
        """``query`` on tasks."""
        return self.query(
            filter, projection, limit, sort, aggregation, remove_json_unserializables, "tasks", skip
        )

    def workflow_query(
        self,
        filter: dict | None = None,
        projection: Any = None,
        limit: int = 0,
        sort: Any = None,
        remove_json_unserializables: bool = True,
        skip: int = 0,
    ) -> list[dict[str, Any]]:
        """``query`` on workflows."""
        return self.query(
            filter, projection, limit, sort, None, remove_json_unserializables, "workflows", skip
        )

    def get_workflow_object(self, workflow_id: str) -> Any:
        """The ``WorkflowObject`` with this id, or None."""
        found = self.workflow_query({"workflow_id": workflow_id}, limit=1)
        return WorkflowObject.from_dict(found[0]) if found else None

    def save_workflow_domain_data_schema(self, workflow_id: str, snapshot: dict) -> bool:
        """Store a workflow's domain data schema snapshot as its ``workflow_domain_data_schema``
        field (replacing the previous one; a workflow not stored yet gets a record)."""
        workflow_fields.set_fields(
            self._backend, workflow_id, {workflow_fields.DOMAIN_DATA_SCHEMA: snapshot}
        )
        return True

    def get_workflow_domain_data_schema(self, workflow_id: str) -> dict | None:
        """The snapshot saved for a workflow; None when none is, or no such workflow."""
        return workflow_fields.get_field(
            self._backend, workflow_id, workflow_fields.DOMAIN_DATA_SCHEMA
        )[1]

    def save_node_positions(self, workflow_id: str, graph_type: str, positions: dict) -> bool:
        """Store the UI's node positions of one graph (``dataflow``, ``task``, ``activity``...)
        of a workflow, replacing that graph's; kept in the workflow's ``node_positions``."""
        return workflow_fields.save_node_positions(
            self._backend, workflow_id, graph_type, positions
        )

    def get_node_positions(self, workflow_id: str, graph_type: str) -> dict:
        """The node positions saved for one graph of a workflow, or ``{}``."""
        return workflow_fields.get_node_positions(self._backend, workflow_id, graph_type)

    def get_tasks_recursive(
        self, workflow_id: str, max_depth: int = 999, mapping: dict | None = None
    ) -> list[dict[str, Any]]:
        """The workflow's root tasks, each followed by its descendants by ``parent_task_id``
        (down to ``max_depth``), with ``depth`` and ``ancestor_ids``; ``mapping`` adds
        ``custom_characterization`` (see ``provwh.query.task_tree``)."""
        with self._backend.hold():
            return task_tree.get_tasks_recursive(self._backend, workflow_id, max_depth, mapping)

    def dump_tasks_to_file_recursive(
        self,
        workflow_id: str,
        output_file: str = "tasks.parquet",
        max_depth: int = 999,
        mapping: dict | None = None,
    ) -> None:
        """``get_tasks_recursive`` written to a Parquet file (dict fields as JSON text)."""
        with self._backend.hold():
            task_tree.dump_tasks_to_file_recursive(
                self._backend, workflow_id, output_file, max_depth, mapping
            )

    def get_tasks_from_current_workflow(self) -> list[dict[str, Any]]:
        """Tasks of ``Flowcept.current_workflow_id`` (the running or last started workflow)."""
        workflow_id = CaptureController.current_workflow_id
        if workflow_id is None:
            return []
        return self.task_query({"workflow_id": workflow_id})

    def to_df(self, collection: str = "tasks", filter: dict | None = None, **kwargs: Any) -> Any:
        """The records as a pandas DataFrame (nested dicts as objects, as Flowcept's)."""
        pd = _pandas()
        return pd.DataFrame.from_records(self.query(filter, collection=collection, **kwargs))

    def dump_to_file(
        self,
        collection: str = "tasks",
        filter: dict | None = None,
        output_file: str | None = None,
        export_format: str = "json",
        should_zip: bool = False,
    ) -> str:
        """Write the matching records to a JSON, CSV or Parquet file (in a zip on request).

        As in Flowcept, dumping a whole collection (no filter) needs ``should_zip=True``.
        Returns the path written. JSON keeps records whole (bytes as ``$binary``); CSV and
        Parquet have one dotted column per nested field (lists as JSON text).
        """
        if export_format not in dump.EXPORT_FORMATS:
            formats = ", ".join(dump.EXPORT_FORMATS)
            raise ValueError(f"export_format must be one of {formats}, got {export_format!r}")
        if filter is None and not should_zip:
            raise ValueError("dumping a whole collection needs should_zip=True (or pass a filter)")
        records = self.query(filter, collection=collection)
        if output_file is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            output_file = f"docs_dump_{collection}_{stamp}" + (
                ".zip" if should_zip else f".{export_format}"
            )
        dump.write(records, output_file, export_format, should_zip)
        log.info("provwh: %d %s written to %s", len(records), collection, output_file)
        return output_file

    # --- load order ----------------------------------------------------------------------------
    def loaded_after(
        self,
        cursor: loads_mod.LoadCursor | None = None,
        filter: dict | None = None,
        limit: int = 1000,
        collection: str = "tasks",
    ) -> list[tuple[dict[str, Any], loads_mod.LoadCursor]]:
        """Records the loader wrote after ``cursor`` (None: from the first one it timed), in
        the order they loaded, each with the cursor just past it: a follower's read (the
        server's live streams). ``collection``: ``tasks`` or ``workflows``. See
        ``provwh.query.loads``."""
        cursor = cursor if cursor is not None else loads_mod.LoadCursor()
        return loads_mod.loaded_after(self._backend, collection, filter, cursor, limit)

    def newest_load(self, collection: str = "tasks") -> loads_mod.LoadCursor:
        """The cursor past everything loaded so far (where a follower starting now begins)."""
        return loads_mod.newest(self._backend, collection)

    # --- summaries ---------------------------------------------------------------------------
    def task_summary(
        self, filter: dict | None = None, workflow_id: str | None = None
    ) -> dict[str, Any]:
        """Count, status counts, per-activity count / avg / min / max / sum duration, time range.

        Of the tasks matching ``filter``, or of a workflow's (``workflow_id=``; both: the
        workflow's tasks matching the filter). Durations are ``ended_at - started_at`` in
        seconds, over tasks with both times (the average is over those tasks, not over all
        tasks as Flowcept's LMDB fallback does).
        """
        if workflow_id is not None:
            by_workflow = {"workflow_id": workflow_id}
            filter = {"$and": [filter, by_workflow]} if filter else by_workflow
        return summaries.task_summary(self._backend, filter)

    def telemetry_timeseries(
        self,
        filter: dict | None,
        fields: list[str],
        x_field: str = "started_at",
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Rows ``{x_field, task_id, activity_id, <field>: value...}`` ordered by x.

        The first ``limit`` rows by x (0: all; Flowcept limits before sorting); tasks without
        an x value come last.
        """
        return summaries.telemetry_timeseries(self._backend, filter, fields, x_field, limit)

    def derive_campaigns(self, campaign_id: str | None = None) -> list[dict[str, Any]]:
        """Campaign summaries from workflows and tasks, latest first (one campaign with
        ``campaign_id``): ``{campaign_id, workflow_count, task_count, users, workflow_names,
        first_ts, last_ts}``."""
        with self._backend.hold():
            return derived_mod.derive_campaigns(self._backend, campaign_id)

    def derive_agents(self, filter: dict | None = None) -> list[dict[str, Any]]:
        """Agent summaries from the tasks (matching ``filter``) that carry an ``agent_id``:
        ``{agent_id, task_count, activities, source_agent_ids, campaign_ids, workflow_ids,
        last_active, name, workflow_id, registered_at}``."""
        return derived_mod.derive_agents(self._backend, filter)

    def resolve_chart_data(self, data: dict, context: dict | None = None) -> dict[str, Any]:
        """A declarative chart spec resolved into ``{"rows", "count"}`` (see
        ``provwh.query.charts``)."""
        with self._backend.hold():
            return charts.resolve_chart_data(self._backend, data, context)

    # --- writes ------------------------------------------------------------------------------
    def insert_or_update_task(self, task: Any) -> str:
        """Insert a task, or merge it into the stored one (later non-null fields win)."""
        rec = writes.record_of(task, "task")
        if not rec.get("task_id"):
            rec["task_id"] = str(uuid.uuid4())
        writes.write_records(self._backend, [rec])
        return rec["task_id"]

    def insert_or_update_workflow(self, workflow_obj: Any) -> Any:
        """Insert a workflow, or merge it into the stored one; returns the workflow object."""
        rec = writes.record_of(workflow_obj, "workflow")
        if not rec.get("workflow_id"):
            rec["workflow_id"] = str(uuid.uuid4())
            if hasattr(workflow_obj, "workflow_id"):
                workflow_obj.workflow_id = rec["workflow_id"]
        writes.write_records(self._backend, [rec])
        if isinstance(workflow_obj, dict):
            return WorkflowObject.from_dict(rec)
        return workflow_obj

    def delete_workflow_data(self, workflow_id: str) -> dict[str, int]:
        """Delete a workflow, its tasks (values, telemetry, tags, edges) and its objects."""
        return writes.delete_workflow(self._backend, workflow_id)

    def delete_campaign_data(self, campaign_id: str) -> dict[str, int]:
        """Delete a campaign's workflows, their tasks (and the campaign's) and their objects."""
        return writes.delete_campaign(self._backend, campaign_id)

    def delete_object_keys(self, key_name: str, keys_list: Any) -> bool:
        """Delete the objects (all their versions) whose ``key_name`` is in ``keys_list``."""
        writes.delete_objects_where(self._backend, key_name, keys_list)
        return True

    # --- agents (PROV-AGENT) -------------------------------------------------------------------
    def insert_or_update_agent(self, agent_obj: Any) -> Any:
        """Insert an agent (``AgentObject`` or dict), or merge it into the stored one; returns
        it as an ``AgentObject``. Without ``agent_id``, the id its ``name`` stands for."""
        return agents_mod.save(self._backend, agent_obj)

    def get_agent_object(self, agent_id: str) -> Any:
        """The ``AgentObject`` with this id, or None."""
        return agents_mod.get(self._backend, agent_id)

    def agent_query(
        self,
        filter: dict | None = None,
        projection: Any = None,
        limit: int = 0,
        sort: Any = None,
    ) -> list[dict[str, Any]]:
        """``query`` on agents (oldest registered first)."""
        return agents_mod.query(
            self._backend, filter, projection=projection, limit=limit, sort=sort
        )

    def delete_agents_with_filter(self, filter: dict) -> bool:
        """Delete the agents matching ``filter`` (``{}``: all). True, as in Flowcept, when the
        delete ran (whether or not an agent matched); errors raise."""
        agents_mod.delete(self._backend, filter)
        return True

    # --- data objects ------------------------------------------------------------------------
    def insert_or_update_object(
        self,
        object: Any,
        object_id: str | None = None,
        task_id: str | None = None,
        workflow_id: str | None = None,
        object_type: str | None = None,
        custom_metadata: dict | None = None,
        save_data_in_collection: bool = True,
        pickle: bool = False,
        control_version: bool = False,
        tags: list | None = None,
        type: str | None = None,
    ) -> str:
        """Store bytes (or, with ``pickle``, any object) as the next version of ``object_id``.

        ``control_version`` keeps the previous versions; without it the latest is replaced
        (its version number still grows). The bytes always live in the table
        (``save_data_in_collection`` is accepted; there is no GridFS). ``workflow_id``
        defaults to the running workflow. Returns the object id.
        """
        self._backend._read_only()
        if workflow_id is None:
            workflow_id = CaptureController.current_workflow_id
        return objects_mod.save(
            self._backend,
            object,
            object_id=object_id,
            task_id=task_id,
            workflow_id=workflow_id,
            object_type=object_type or type,
            custom_metadata=custom_metadata,
            pickle=pickle,
            control_version=control_version,
            tags=tags,
        )

    save_or_update_object = insert_or_update_object

    def insert_or_update_ml_model(self, object: Any, **kwargs: Any) -> str:
        """``insert_or_update_object`` with ``object_type="ml_model"``."""
        kwargs.setdefault("object_type", "ml_model")
        return self.insert_or_update_object(object, **kwargs)

    def insert_or_update_dataset(self, object: Any, **kwargs: Any) -> str:
        """``insert_or_update_object`` with ``object_type="dataset"``."""
        kwargs.setdefault("object_type", "dataset")
        return self.insert_or_update_object(object, **kwargs)

    def insert_or_update_torch_model(
        self,
        model: Any,
        object_id: str | None = None,
        task_id: str | None = None,
        workflow_id: str | None = None,
        custom_metadata: dict | None = None,
        control_version: bool = False,
        tags: list | None = None,
    ) -> str:
        """Store a PyTorch model's ``state_dict`` (``torch.save`` bytes) as an ``ml_model``
        object; ``custom_metadata`` gets the model's class name as ``class``."""
        import io

        import torch

        data = io.BytesIO()
        torch.save(model.state_dict(), data)
        return self.insert_or_update_object(
            data.getvalue(),
            object_id=object_id,
            task_id=task_id,
            workflow_id=workflow_id,
            object_type="ml_model",
            custom_metadata={**(custom_metadata or {}), "class": type(model).__name__},
            control_version=control_version,
            tags=tags,
        )

    def load_torch_model(self, model: Any, object_id: str) -> dict[str, Any]:
        """Load a stored ``state_dict`` into ``model``; returns the object's record (its
        metadata also in ``model._flowcept_model_object``)."""
        return objects_mod.load_torch_model(self._backend, model, object_id)

    save_or_update_ml_model = insert_or_update_ml_model
    save_or_update_torch_model = insert_or_update_torch_model
    save_or_update_dataset = insert_or_update_dataset

    def update_object_metadata(
        self,
        object_id: str,
        custom_metadata: dict | None = None,
        tags: list | None = None,
        object_type: str | None = None,
        task_id: str | None = None,
        workflow_id: str | None = None,
        control_version: bool = True,
    ) -> str:
        """New metadata for an object, keeping its bytes (a new version by default)."""
        self._backend._read_only()
        return objects_mod.save(
            self._backend,
            None,
            object_id=object_id,
            task_id=task_id,
            workflow_id=workflow_id,
            object_type=object_type,
            custom_metadata=custom_metadata,
            control_version=control_version,
            tags=tags,
            keep_data=True,
        )

    def blob_object_query(self, filter: dict | None = None) -> list[dict[str, Any]]:
        """Latest versions of the objects matching ``filter`` (with their bytes)."""
        return self.query(filter, collection="objects")

    ml_model_query = blob_object_query
    dataset_query = blob_object_query

    def get_blob_object(self, object_id: str, version: int | None = None) -> Any:
        """One version (the latest when None) as a ``BlobObject``; ValueError if missing."""
        rec = objects_mod.fetch(self._backend, object_id, version)
        if rec is None:
            raise ValueError(objects_mod._not_found(object_id, version))
        return objects_mod.BlobObject.from_dict(rec)

    get_ml_model = get_blob_object
    get_dataset = get_blob_object

    def get_object_history(self, object_id: str) -> list[dict[str, Any]]:
        """Metadata of every stored version of an object, latest first (no bytes)."""
        return objects_mod.history(self._backend, object_id)

    list_object_versions = get_object_history

    def get_blob_fingerprint(self, object_id: str, version: int | None = None) -> dict[str, Any]:
        """Hash, algorithm and size of a version (never reads the bytes)."""
        return objects_mod.fingerprint(self._backend, object_id, version)

    def blob_objects_equal(
        self,
        object_id_a: str,
        object_id_b: str,
        version_a: int | None = None,
        version_b: int | None = None,
        fallback_to_payload: bool = False,
    ) -> bool:
        """Whether two versions hold the same bytes (by hash; by bytes only as a fallback)."""
        fa = self.get_blob_fingerprint(object_id_a, version_a)
        fb = self.get_blob_fingerprint(object_id_b, version_b)
        if fa["data_sha256"] and fb["data_sha256"] and fa["data_hash_algo"] == fb["data_hash_algo"]:
            return fa["data_sha256"] == fb["data_sha256"]
        sa, sb = fa["object_size_bytes"], fb["object_size_bytes"]
        if sa is not None and sb is not None and sa != sb:
            return False
        if not fallback_to_payload:
            return False
        a = self.get_blob_object(object_id_a, version_a).data
        b = self.get_blob_object(object_id_b, version_b).data
        return a == b

    # --- SQL -----------------------------------------------------------------------------------
    def install_views(self, force: bool = False) -> int:
        """(Re)install the views of ``sql/views``; returns how many were (re)created."""
        n = self._backend.install_views(force)
        self._views_ready = True
        return n

    def _ensure_views(self) -> None:
        if self._views_ready:
            return
        try:
            self.install_views()
        except ViewsReadOnly as exc:  # a reader: queries use the views there are
            self._views_missing = exc
            self._views_ready = True
        except Exception as exc:
            log.warning("provwh: could not install the views: %s", exc)
            self._views_ready = True

    def sql_rows(self, query: str, params: Any = None) -> tuple[list[str], list[tuple]]:
        """Column names and rows of one read-only SQL query (writes raise ReadOnlyError).

        The views are installed first where missing or outdated, on the same connection (a
        DuckDB file another process writes is waited for once); a role that may not create
        them queries the views there are, and a query on a missing one says who installs it.
        """
        with self._backend.hold():
            self._ensure_views()
            try:
                return self._backend.user_query(query, params)
            except Exception as exc:
                missing = self._views_missing
                if missing is not None and any(n in str(exc) for n in missing.names):
                    raise ViewsReadOnly(self._backend.name, missing.names) from exc
                raise

    def sql(self, query: str, params: Any = None) -> Any:
        """One read-only SQL query as a pandas DataFrame (views ``v_*`` included).

        Parameters are bound: ``%s`` placeholders on PostgreSQL, ``?`` (or ``$1``) on DuckDB.
        JSON columns come back as JSON text on both engines.
        """
        pd = _pandas()
        names, rows = self.sql_rows(query, params)
        return pd.DataFrame.from_records(rows, columns=names)

    # --- lineage -----------------------------------------------------------------------------
    def get_upstream(
        self, task_id: str, max_depth: int | None = None, kinds: Any = None
    ) -> list[dict[str, Any]]:
        """Tasks this task depends on (transitively), nearest first, each with its ``depth``.

        ``kinds``: edge kinds to follow (explicit, parent, dataflow; default all).
        """
        with self._backend.hold():
            return lineage_mod.related(self._backend, task_id, "up", max_depth, kinds)

    def get_downstream(
        self, task_id: str, max_depth: int | None = None, kinds: Any = None
    ) -> list[dict[str, Any]]:
        """Tasks depending on this task (transitively), nearest first, with their ``depth``."""
        with self._backend.hold():
            return lineage_mod.related(self._backend, task_id, "down", max_depth, kinds)

    def lineage_graph(
        self,
        task_id: str | None = None,
        workflow_id: str | None = None,
        depth: int | None = None,
        kinds: Any = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """``{"nodes": [...], "edges": [{"src", "dst", "kind"}]}``.

        Around a task: every task up to ``depth`` steps upstream or downstream (None: all).
        Of a workflow: its tasks, plus those up to ``depth`` steps away (None: 0, the
        workflow alone). Edges are all edges between the nodes.
        """
        with self._backend.hold():
            return lineage_mod.graph(self._backend, task_id, workflow_id, depth, kinds)

    def dataflow(self, workflow_id: str) -> dict[str, Any]:
        """A workflow's tasks and the data linking them (values one task generated and
        another used) as ``{"workflow_id", "nodes", "edges"}`` (``provwh.query.dataflow``)."""
        from provwh.query.dataflow import dataflow

        if not isinstance(workflow_id, str) or not workflow_id:
            raise ValueError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        with self._backend.hold():
            self._ensure_views()
            missing = self._views_missing
            if missing is not None and "v_data_lineage" in missing.names:
                raise ViewsReadOnly(self._backend.name, missing.names)
            return dataflow(self._backend, workflow_id)


# --- helpers ----------------------------------------------------------------------------------


def _pandas() -> Any:
    try:
        import pandas as pd
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "pandas is required for DataFrames: pip install 'provwh[pandas]'"
        ) from exc
    return pd


# --- the process's DBAPI -------------------------------------------------------------------------

_lock = threading.Lock()
_db: DBAPI | None = None
_db_settings: Any = None


def get_db() -> DBAPI:
    """The process-wide DBAPI for the current settings (made again when settings change)."""
    global _db, _db_settings
    settings = get_settings()
    db = _db
    if db is not None and _db_settings is settings:
        return db
    with _lock:
        if _db is not None and _db_settings is settings:
            return _db
        old = _db
        _db = DBAPI.from_settings(settings)
        _db_settings = settings
    if old is not None:
        try:
            old.close()
        except Exception:  # closing a connection that is gone already
            pass
    return _db


def records_for(
    workflow_id: str | None = None,
    campaign_id: str | None = None,
    telemetry_columns: Sequence[str] | None = None,
    objects: bool = False,
    db: DBAPI | None = None,
) -> list[dict[str, Any]]:
    """The workflow and task records of a workflow or a campaign, as a buffer file holds them.

    Workflows first (by start time), then tasks (by start time); plain dicts with Flowcept's
    field names, ``type`` first, nested values restored, times as float epoch seconds.
    ``telemetry_columns``: telemetry snapshots hold only these typed columns (names of
    ``warehouse.telemetry.TELEMETRY_COLUMNS``, ``"gpu"`` for the GPU section), read without
    decoding the snapshots' JSON: what a reader of a few figures of many tasks wants.
    ``objects``: then the workflows' data objects (models, datasets: every stored version,
    without their bytes, ``"type": "object"``), by object id and version.
    ``db``: the database to read (None: ``get_db()``, the settings').
    """
    if workflow_id is None and campaign_id is None:
        raise ValueError("records_for needs a workflow_id or a campaign_id")
    if db is None:
        db = get_db()
    wf_filter: dict[str, Any] = {}
    if workflow_id is not None:
        wf_filter["workflow_id"] = workflow_id
    if campaign_id is not None:
        wf_filter["campaign_id"] = campaign_id
    if telemetry_columns is not None:
        telemetry_columns = typed_telemetry.check_columns(telemetry_columns)
    with db.hold():
        workflows = db.workflow_query(wf_filter)
        if workflow_id is not None:
            task_filter: dict[str, Any] = {"workflow_id": workflow_id}
        else:
            wf_ids = [w["workflow_id"] for w in workflows]
            task_filter = {"$or": [{"campaign_id": campaign_id}, {"workflow_id": {"$in": wf_ids}}]}
        if telemetry_columns is None:
            tasks = db.task_query(task_filter)
        else:
            tasks = typed_telemetry.tasks_with_typed_telemetry(
                db.backend, task_filter, telemetry_columns
            )
        if not objects:
            return workflows + tasks
        wf_ids = [w["workflow_id"] for w in workflows]
        if workflow_id is not None and workflow_id not in wf_ids:
            wf_ids.append(workflow_id)  # its tasks (and objects) may be stored without it
        wf_ids += [t["workflow_id"] for t in tasks if t.get("workflow_id")]
        return workflows + tasks + objects_mod.of_workflows(db.backend, wf_ids)
