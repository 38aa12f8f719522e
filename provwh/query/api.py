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
import io
import logging
import os
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

from provwh.capture.controller import CaptureController
from provwh.query import lineage as lineage_mod
from provwh.query import objects as objects_mod
from provwh.query.backends import Backend, DuckBackend, FilesBackend, PgBackend
from provwh.query.filters import FilterCompiler, _sort_spec
from provwh.query.frag import TRUE, Frag, Raw, all_of, join, sql
from provwh.query.paths import (
    BYTES,
    COLLATE,
    FLOAT,
    INT,
    TEXT,
    TIME,
    Collection,
    ColumnPath,
    JsonPath,
    MissingPath,
    ValuesPath,
    collection,
    resolve,
)
from provwh.query.results import (
    get_path,
    loads_json,
    mongo_key,
    project,
    projection_spec,
    to_json_safe,
    to_record,
)

log = logging.getLogger("provwh.query")

AGGREGATIONS = ("avg", "sum", "min", "max", "count")
EXPORT_FORMATS = ("json", "csv", "parquet")


def _limit(limit: Any) -> int:
    if limit is None:
        return 0
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a non-negative integer (0: no limit), got {limit!r}")
    return limit


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

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Any = None) -> DBAPI:
        """PostgreSQL when ``databases.postgres`` is enabled, else the DuckDB file."""
        if settings is None:
            from provwh.core.config import get_settings

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
    def from_duckdb(cls, path: str | os.PathLike) -> DBAPI:
        return cls(DuckBackend(path))

    @classmethod
    def from_postgres(cls, url: str, migrate_on_startup: bool = False) -> DBAPI:
        return cls(PgBackend(url, migrate_on_startup=migrate_on_startup))

    @classmethod
    def from_files(cls, paths: Any) -> DBAPI:
        """A read-only DBAPI over JSONL / Parquet batch files (files, folders or globs)."""
        from provwh.query.files import expand, load_into_memory

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
    ) -> list[dict[str, Any]]:
        """Records of ``collection`` matching a Mongo-style ``filter``.

        ``projection``: fields to keep (dotted paths keep their nesting), or ``{field: 0}`` to
        drop; ``sort``: ``[(field, 1 | -1)]``; ``limit``: 0 for all; ``aggregation``:
        ``[(op, field)]`` with op in avg, sum, min, max, count, grouped by ``projection[0]``.
        ``remove_json_unserializables`` is accepted for compatibility: records hold nothing
        else (bytes stay bytes, as in Flowcept).
        """
        coll = _collection(collection)
        limit = _limit(limit)
        if aggregation is not None:
            return self._aggregate(coll, filter, projection, limit, sort, aggregation)
        spec = projection_spec(projection)
        comp = FilterCompiler(coll, self._backend.dialect)
        where = all_of([comp.where(filter), _latest_only(coll)])
        columns = _columns_for(coll, spec, self._backend.dialect)
        q = sql(
            f"SELECT {', '.join(columns)} FROM {coll.table} t WHERE {{}} ORDER BY {{}}",
            where,
            comp.order_by(sort),
        )
        if limit:
            q = sql("{} LIMIT {}", q, Raw(str(limit)))
        names, rows = self._backend.query(q)
        records = [to_record(coll, names, row) for row in rows]
        if spec is not None:
            fields, include = spec
            records = [project(r, fields, include) for r in records]
        return records

    def task_query(
        self,
        filter: dict | None = None,
        projection: Any = None,
        limit: int = 0,
        sort: Any = None,
        aggregation: Any = None,
        remove_json_unserializables: bool = True,
    ) -> list[dict[str, Any]]:
        """``query`` on tasks."""
        return self.query(
            filter, projection, limit, sort, aggregation, remove_json_unserializables, "tasks"
        )

    def workflow_query(
        self,
        filter: dict | None = None,
        projection: Any = None,
        limit: int = 0,
        sort: Any = None,
        remove_json_unserializables: bool = True,
    ) -> list[dict[str, Any]]:
        """``query`` on workflows."""
        return self.query(
            filter, projection, limit, sort, None, remove_json_unserializables, "workflows"
        )

    def get_workflow_object(self, workflow_id: str) -> Any:
        """The ``WorkflowObject`` with this id, or None."""
        from provwh.core.model import WorkflowObject

        found = self.workflow_query({"workflow_id": workflow_id}, limit=1)
        return WorkflowObject.from_dict(found[0]) if found else None

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
        if export_format not in EXPORT_FORMATS:
            raise ValueError(
                f"export_format must be one of {', '.join(EXPORT_FORMATS)}, got {export_format!r}"
            )
        if filter is None and not should_zip:
            raise ValueError("dumping a whole collection needs should_zip=True (or pass a filter)")
        records = self.query(filter, collection=collection)
        if output_file is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            output_file = f"docs_dump_{collection}_{stamp}" + (
                ".zip" if should_zip else f".{export_format}"
            )
        data = _encode(records, export_format)
        directory = os.path.dirname(os.path.abspath(output_file))
        os.makedirs(directory, exist_ok=True)
        if should_zip:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(f"dump_file.{export_format}", data)
            data = buf.getvalue()
        with open(output_file, "wb") as fh:
            fh.write(data)
        log.info("provwh: %d %s written to %s", len(records), collection, output_file)
        return output_file

    # --- summaries ---------------------------------------------------------------------------
    def task_summary(self, filter: dict | None = None) -> dict[str, Any]:
        """Count, status counts, per-activity count / avg / min / max / sum duration, time range.

        Durations are ``ended_at - started_at`` in seconds, over tasks with both times (the
        average is over those tasks, not over all tasks as Flowcept's LMDB fallback does).
        """
        coll = collection("tasks")
        d = self._backend.dialect
        comp = FilterCompiler(coll, d)
        dur = d.duration_us(Frag('t."started_at"'), Frag('t."ended_at"'))
        q = sql(
            "SELECT a_, s_, count(*), count(d_), sum(d_), min(d_), max(d_), min(t0_), max(t1_)"
            ' FROM (SELECT t."activity_id" AS a_, t."status" AS s_, {} AS d_,'
            ' t."started_at" AS t0_, t."ended_at" AS t1_ FROM tasks t WHERE {}) AS x_'
            " GROUP BY 1, 2",
            dur,
            comp.where(filter),
        )
        return _summary(self._backend.query(q)[1])

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
        if isinstance(fields, str):
            fields = [fields]
        if not isinstance(fields, (list, tuple)) or not all(isinstance(f, str) for f in fields):
            raise ValueError(f"fields must be a list of dotted field names, got {fields!r}")
        if not isinstance(x_field, str) or not x_field:
            raise ValueError(f"x_field must be a field name, got {x_field!r}")
        limit = _limit(limit)
        coll = collection("tasks")
        comp = FilterCompiler(coll, self._backend.dialect)
        heads = {f.split(".")[0] for f in [*fields, x_field]} | {"task_id", "activity_id"}
        columns = _columns_for(coll, (sorted(heads), True), self._backend.dialect)
        p = resolve(coll, x_field)
        order = join(
            ", ",
            [
                sql("CASE WHEN {} THEN 0 ELSE 1 END", comp._present(p)),
                *comp.sort_keys(x_field, False),
                sql('t."task_id"{}', Raw(COLLATE)),
            ],
        )
        q = sql(
            f"SELECT {', '.join(columns)} FROM tasks t WHERE {{}} ORDER BY {{}}",
            comp.where(filter),
            order,
        )
        if limit:
            q = sql("{} LIMIT {}", q, Raw(str(limit)))
        names, rows = self._backend.query(q)
        out = []
        for row in rows:
            rec = to_record(coll, names, row)
            item = {
                x_field: get_path(rec, x_field)[1],
                "task_id": rec.get("task_id"),
                "activity_id": rec.get("activity_id"),
            }
            item.update({f: get_path(rec, f)[1] for f in fields})
            out.append(item)
        return out

    # --- writes ------------------------------------------------------------------------------
    def insert_or_update_task(self, task: Any) -> str:
        """Insert a task, or merge it into the stored one (later non-null fields win)."""
        rec = _record_of(task, "task")
        if not rec.get("task_id"):
            rec["task_id"] = str(uuid.uuid4())
        self._write_records([rec])
        return rec["task_id"]

    def insert_or_update_workflow(self, workflow_obj: Any) -> Any:
        """Insert a workflow, or merge it into the stored one; returns the workflow object."""
        rec = _record_of(workflow_obj, "workflow")
        if not rec.get("workflow_id"):
            rec["workflow_id"] = str(uuid.uuid4())
            if hasattr(workflow_obj, "workflow_id"):
                workflow_obj.workflow_id = rec["workflow_id"]
        self._write_records([rec])
        if isinstance(workflow_obj, dict):
            from provwh.core.model import WorkflowObject

            return WorkflowObject.from_dict(rec)
        return workflow_obj

    def _write_records(self, records: list[dict[str, Any]]) -> None:
        """Records through the warehouse's one way in (``warehouse.ingest``), one transaction."""
        from provwh.warehouse.ingest import Ingest, in_transaction  # SQLAlchemy: on first write

        self._backend._read_only()
        Ingest(in_transaction(self._backend.write)).records(records, "provwh.query.DBAPI")

    def delete_workflow_data(self, workflow_id: str) -> dict[str, int]:
        """Delete a workflow, its tasks (values, telemetry, tags, edges) and its objects."""
        if not isinstance(workflow_id, str) or not workflow_id:
            raise ValueError(f"workflow_id must be a non-empty string, got {workflow_id!r}")
        wf = sql('"workflow_id" = CAST({} AS TEXT)', workflow_id)
        return self._delete(wf, wf, wf)

    def delete_campaign_data(self, campaign_id: str) -> dict[str, int]:
        """Delete a campaign's workflows, their tasks (and the campaign's) and their objects."""
        if not isinstance(campaign_id, str) or not campaign_id:
            raise ValueError(f"campaign_id must be a non-empty string, got {campaign_id!r}")
        in_campaign = sql(
            '"workflow_id" IN (SELECT w_.workflow_id FROM workflows w_'
            " WHERE w_.campaign_id = CAST({} AS TEXT))",
            campaign_id,
        )
        camp = sql('"campaign_id" = CAST({} AS TEXT)', campaign_id)
        tasks = sql("({} OR {})", camp, in_campaign)
        return self._delete(tasks, in_campaign, camp)

    def _delete(self, tasks: Frag, objects: Frag, workflows: Frag) -> dict[str, int]:
        b = self._backend
        b._read_only()
        ids = sql("SELECT task_id FROM tasks WHERE {}", tasks)
        with b.write() as tx:
            tx.lock()
            n_objects = b.fetch(
                tx, sql("SELECT count(DISTINCT object_id) FROM data_objects WHERE {}", objects)
            )[1][0][0]
            for table in ("task_values", "task_telemetry", "task_tags", "lineage_pending"):
                b.execute(tx, sql(f"DELETE FROM {table} WHERE task_id IN ({{}})", ids))
            b.execute(
                tx,
                sql(
                    "DELETE FROM task_edges WHERE src_task_id IN ({}) OR dst_task_id IN ({})",
                    ids,
                    ids,
                ),
            )
            b.execute(tx, sql("DELETE FROM data_objects WHERE {}", objects))
            n_tasks = b.execute(tx, sql("DELETE FROM tasks WHERE {}", tasks))
            n_workflows = b.execute(tx, sql("DELETE FROM workflows WHERE {}", workflows))
        return {"workflows": n_workflows, "tasks": n_tasks, "objects": int(n_objects)}

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

    save_or_update_ml_model = insert_or_update_ml_model
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
        except Exception as exc:  # a read-only role cannot create them; they may exist anyway
            log.warning("provwh: could not install the views: %s", exc)
            self._views_ready = True

    def sql_rows(self, query: str, params: Any = None) -> tuple[list[str], list[tuple]]:
        """Column names and rows of one read-only SQL query (writes raise ReadOnlyError)."""
        self._ensure_views()
        return self._backend.user_query(query, params)

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

    # --- aggregation -------------------------------------------------------------------------
    def _aggregate(
        self,
        coll: Collection,
        flt: Any,
        projection: Any,
        limit: int,
        sort: Any,
        aggregation: Any,
    ) -> list[dict[str, Any]]:
        spec = projection_spec(projection)
        if spec is not None and (not spec[1] or len(spec[0]) > 1):
            raise ValueError("with aggregation, projection names the one field to group by")
        aggs = _aggregation_spec(aggregation)
        d = self._backend.dialect
        comp = FilterCompiler(coll, d)
        joins: list[Frag] = []
        select: list[Frag] = []
        group_name = decode = None
        if spec is not None:
            group_field = spec[0][0]
            group_name = group_field.replace(".", "_")
            exprs, decode = _group_exprs(comp, resolve(coll, group_field), joins)
            select += exprs
        n_group = len(select)
        names = []
        for op, field in aggs:
            names.append(f"{op}_{field.replace('.', '_')}")
            select.append(_agg_expr(comp, op, resolve(coll, field), joins))
        where = all_of([comp.where(flt), _latest_only(coll)])
        q = sql(
            f"SELECT {{}} FROM {coll.table} t {{}} WHERE {{}}",
            join(", ", select),
            join(" ", joins),
            where,
        )
        if n_group:
            q = sql("{} GROUP BY {}", q, Raw(", ".join(str(i + 1) for i in range(n_group))))
        out = []
        for row in self._backend.query(q)[1]:
            rec: dict[str, Any] = {}
            if decode is not None:
                rec[group_name] = decode(row[:n_group])
            for name, value in zip(names, row[n_group:], strict=True):
                rec[name] = value
            out.append(rec)
        for field, direction in reversed(_sort_spec(sort)):
            key = group_name if field == "_id" else field
            if key not in (group_name, *names) or key is None:
                raise ValueError(
                    f"sort field {field!r} is not in the aggregation result "
                    f"({', '.join(n for n in (group_name, *names) if n)})"
                )
            out.sort(key=lambda r, k=key: mongo_key(r.get(k)), reverse=direction < 0)
        return out[:limit] if limit else out


# --- helpers ----------------------------------------------------------------------------------


def _collection(name: str) -> Collection:
    return collection(name)


def _latest_only(coll: Collection) -> Frag:
    if coll.name != "objects":
        return TRUE
    return Frag(
        't."version" = (SELECT max(o_.version) FROM data_objects o_'
        " WHERE o_.object_id = t.object_id)"
    )


def _columns_for(coll: Collection, spec: Any, dialect: Any) -> list[str]:
    """The columns to read for a projection (all when None or excluding).

    Times are read as epoch microseconds: exact, and much cheaper for the drivers than
    timestamps (``results.to_record`` turns them into float seconds).
    """
    names = list(coll.columns)
    if spec is not None and spec[1]:
        heads = {f.split(".")[0] for f in spec[0]}
        names = [c for c in names if c in heads or c == "extra"]
        for key in coll.keys:
            if key not in names:
                names.append(key)
    return [
        f"{dialect.epoch_us(Frag(f't.{_q(c)}')).sql} AS {_q(c)}"
        if coll.columns[c] == TIME
        else f"t.{_q(c)}"
        for c in names
    ]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _aggregation_spec(aggregation: Any) -> list[tuple[str, str]]:
    if isinstance(aggregation, tuple) and len(aggregation) == 2 and isinstance(aggregation[0], str):
        aggregation = [aggregation]
    if not isinstance(aggregation, (list, tuple)) or not aggregation:
        raise ValueError(f"aggregation must be a list of (operator, field), got {aggregation!r}")
    out = []
    for item in aggregation:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"aggregation must be a list of (operator, field), got {item!r}")
        op, field = item
        if isinstance(op, str):
            op = op.lstrip("$")
        if op not in AGGREGATIONS:
            raise ValueError(
                f"unknown aggregation operator {item[0]!r}; supported: {', '.join(AGGREGATIONS)}"
            )
        if not isinstance(field, str) or not field:
            raise ValueError(f"aggregation field must be a non-empty string, got {field!r}")
        out.append((op, field))
    return out


def _value_join(comp: FilterCompiler, p: ValuesPath, joins: list[Frag]) -> str:
    alias = f"j{len(joins)}_"
    joins.append(
        sql(
            f"LEFT JOIN task_values {alias} ON {alias}.task_id = t.task_id"
            f" AND {alias}.direction = {{}} AND {alias}.key_path = {{}}",
            p.direction,
            p.key_path,
        )
    )
    return alias


def _group_exprs(comp: FilterCompiler, p: Any, joins: list[Frag]) -> tuple[list[Frag], Any]:
    """Expressions to group by for a path, and the function turning them into the value."""
    d = comp.d
    if isinstance(p, MissingPath):
        return [Frag("NULL")], lambda row: None
    if isinstance(p, ColumnPath):
        col = Frag(f't."{p.column}"')
        if p.kind == TIME:
            from provwh.warehouse.times import datetime_to_epoch

            return [col], lambda row: None if row[0] is None else datetime_to_epoch(row[0])
        if p.kind == BYTES:
            return [col], lambda row: None if row[0] is None else bytes(row[0])
        return [col], lambda row: row[0]
    if isinstance(p, JsonPath):
        x = d.json_get(Frag(f't."{p.column}"'), p.keys)
        return [d.j_text(x)], lambda row: None if row[0] is None else loads_json(row[0])
    a = _value_join(comp, p, joins)
    cols = [
        Frag(f"{a}.value_type"),
        Frag(f"{a}.value_text"),
        Frag(f"{a}.value_num"),
        Frag(f"{a}.value_bool"),
        d.j_text(Frag(f"{a}.value_json")),
    ]
    return cols, _decode_value


def _decode_value(row: tuple) -> Any:
    """A used / generated value from its typed key/value columns."""
    vtype, text, num, flag, doc = row
    if vtype is None or vtype == "null":
        return None
    if vtype == "str":
        return loads_json(doc) if doc is not None else text
    if vtype == "int":
        return int(text) if text is not None else int(num)
    if vtype == "float":
        return num
    if vtype == "bool":
        return flag
    return loads_json(doc) if doc is not None else None


def _agg_expr(comp: FilterCompiler, op: str, p: Any, joins: list[Frag]) -> Frag:
    d = comp.d
    value: Frag
    text = False
    if isinstance(p, MissingPath):
        value = Frag("CAST(NULL AS DOUBLE PRECISION)")
    elif isinstance(p, ColumnPath):
        col = Frag(f't."{p.column}"')
        if p.kind == TIME:
            value = d.epoch(col)
        elif p.kind in (INT, FLOAT):
            value = sql("CAST({} AS DOUBLE PRECISION)", col)
        elif p.kind == TEXT:
            value, text = col, True
        else:
            value = Frag("CAST(NULL AS DOUBLE PRECISION)")
    elif isinstance(p, JsonPath):
        x = d.json_get(Frag(f't."{p.column}"'), p.keys)
        value = x if op == "count" else d.j_num(x)
    else:
        a = _value_join(comp, p, joins)
        value = Frag(f"{a}.value_type" if op == "count" else f"{a}.value_num")
    if op == "count":
        return sql("count({})", value)
    if text:
        if op in ("min", "max"):
            return sql(f"{op}({{}}{COLLATE})", value)
        return Frag("CAST(NULL AS DOUBLE PRECISION)") if op == "avg" else Frag("0")
    if op == "sum":
        return sql("COALESCE(sum({}), 0)", value)
    return sql(f"{op}({{}})", value)


def _summary(rows: list[tuple]) -> dict[str, Any]:
    """Flowcept's task summary from (activity, status, count, timed, sum, min, max, t0, t1)."""
    from provwh.warehouse.times import datetime_to_epoch

    status_counts: dict[str, int] = {}
    acts: dict[Any, dict[str, Any]] = {}
    total = 0
    t_min = t_max = None
    for activity, status, n, timed, s_us, mn, mx, t0, t1 in rows:
        status = status or "UNKNOWN"
        total += n
        status_counts[status] = status_counts.get(status, 0) + n
        a = acts.setdefault(
            activity,
            {"activity_id": activity, "count": 0, "status_counts": {}, "_n": 0, "_sum": 0},
        )
        a["count"] += n
        a["status_counts"][status] = a["status_counts"].get(status, 0) + n
        if timed:
            a["_n"] += timed
            a["_sum"] += int(s_us)
            a["_min"] = mn if a.get("_min") is None else min(a["_min"], mn)
            a["_max"] = mx if a.get("_max") is None else max(a["_max"], mx)
        if t0 is not None:
            t0 = datetime_to_epoch(t0)
            t_min = t0 if t_min is None else min(t_min, t0)
        if t1 is not None:
            t1 = datetime_to_epoch(t1)
            t_max = t1 if t_max is None else max(t_max, t1)
    stats = []
    for a in acts.values():
        n = a.pop("_n")
        s = a.pop("_sum")
        mn, mx = a.pop("_min", None), a.pop("_max", None)
        a["avg_duration"] = s / n / 1_000_000 if n else None
        a["min_duration"] = mn / 1_000_000 if n else None
        a["max_duration"] = mx / 1_000_000 if n else None
        a["sum_duration"] = s / 1_000_000 if n else None
        stats.append(a)
    stats.sort(key=lambda a: str(a["activity_id"]))
    return {
        "count": total,
        "status_counts": status_counts,
        "activity_stats": stats,
        "time_range": {"min_started_at": t_min, "max_ended_at": t_max},
    }


def _record_of(obj: Any, kind: str) -> dict[str, Any]:
    if hasattr(obj, "to_dict"):
        rec = obj.to_dict()
    elif isinstance(obj, dict):
        rec = dict(obj)
    else:
        raise ValueError(f"expected a {kind} object or dict, got {type(obj).__name__}")
    rec = {k: v for k, v in rec.items() if v is not None}
    rec["type"] = kind
    return rec


def _pandas() -> Any:
    try:
        import pandas as pd
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "pandas is required for DataFrames: pip install 'provwh[pandas]'"
        ) from exc
    return pd


def _flatten(rec: dict[str, Any], prefix: str = "", out: dict | None = None) -> dict[str, Any]:
    import orjson

    out = {} if out is None else out
    for k, v in rec.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            _flatten(v, key + ".", out)
        elif isinstance(v, (list, dict)):
            out[key] = orjson.dumps(to_json_safe(v)).decode()
        else:
            out[key] = v
    return out


def _encode(records: list[dict[str, Any]], fmt: str) -> bytes:
    import orjson

    if fmt == "json":
        return orjson.dumps(to_json_safe(records), option=orjson.OPT_INDENT_2)
    flat = [_flatten(r) for r in records]
    columns: list[str] = []
    seen: set[str] = set()
    for r in flat:
        for k in r:
            if k not in seen:
                seen.add(k)
                columns.append(k)
    if fmt == "csv":
        import csv

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for r in flat:
            writer.writerow(["" if r.get(c) is None else _csv_cell(r.get(c)) for c in columns])
        return buf.getvalue().encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for c in columns:
        values = [r.get(c) for r in flat]
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int, float} and kinds != {int, float}:
            arrays[c] = pa.array(values)
        elif kinds == {int, float}:
            arrays[c] = pa.array([None if v is None else float(v) for v in values])
        elif kinds in ({str}, {bool}, {bytes}, set()):
            arrays[c] = pa.array(values)
        else:  # mixed types in one column: as JSON text
            arrays[c] = pa.array(
                [None if v is None else orjson.dumps(to_json_safe(v)).decode() for v in values]
            )
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(arrays), sink)
    return sink.getvalue().to_pybytes()


def _csv_cell(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        import base64

        return base64.b64encode(bytes(v)).decode()
    return v


# --- the process's DBAPI -------------------------------------------------------------------------

_lock = threading.Lock()
_db: DBAPI | None = None
_db_settings: Any = None


def get_db() -> DBAPI:
    """The process-wide DBAPI for the current settings (made again when settings change)."""
    global _db, _db_settings
    from provwh.core.config import get_settings

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
    workflow_id: str | None = None, campaign_id: str | None = None
) -> list[dict[str, Any]]:
    """The workflow and task records of a workflow or a campaign, as a buffer file holds them.

    Workflows first (by start time), then tasks (by start time); plain dicts with Flowcept's
    field names, ``type`` first, nested values restored, times as float epoch seconds.
    """
    if workflow_id is None and campaign_id is None:
        raise ValueError("records_for needs a workflow_id or a campaign_id")
    db = get_db()
    wf_filter: dict[str, Any] = {}
    if workflow_id is not None:
        wf_filter["workflow_id"] = workflow_id
    if campaign_id is not None:
        wf_filter["campaign_id"] = campaign_id
    with db.hold():
        return _records_for(db, workflow_id, campaign_id, wf_filter)


def _records_for(db: DBAPI, workflow_id: Any, campaign_id: Any, wf_filter: dict) -> list[dict]:
    workflows = db.workflow_query(wf_filter)
    if workflow_id is not None:
        task_filter: dict[str, Any] = {"workflow_id": workflow_id}
    else:
        wf_ids = [w["workflow_id"] for w in workflows]
        task_filter = {"$or": [{"campaign_id": campaign_id}, {"workflow_id": {"$in": wf_ids}}]}
    return workflows + db.task_query(task_filter)
