"""``DBAPI.get_dao_instance()``: Flowcept's document DAO interface over a DBAPI.

Flowcept code that goes below its ``DBAPI`` (``DBAPI.get_dao_instance().query(...)``,
``.task_query(...)``, ``.count_tasks()``, ``.get_blob_object_doc(...)``) calls the methods of
its ``DocumentDBDAO``; ``DocumentDAO`` has them with their signatures and answers, each a thin
call into the DBAPI it wraps. Not here: Mongo's ``raw_pipeline`` (aggregation pipelines), GridFS
(``get_file_data``: bytes always live in the object row) and dashboards (no table holds them).
"""

from __future__ import annotations

from typing import Any

from provwh.query.frag import Frag


class DocumentDAO:
    """Flowcept's ``DocumentDBDAO`` methods, answered by ``db`` (a ``DBAPI``)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def __repr__(self) -> str:
        return f"DocumentDAO({self.db!r})"

    # --- connection ------------------------------------------------------------------------
    def liveness_test(self) -> bool:
        return self.db.liveness_test()

    def close(self) -> None:
        self.db.close()

    # --- reads ---------------------------------------------------------------------------------
    def query(
        self,
        filter=None,
        projection=None,
        limit=0,
        sort=None,
        aggregation=None,
        remove_json_unserializables=None,
        collection="tasks",
    ) -> list[dict[str, Any]]:
        return self.db.query(filter, projection, limit, sort, aggregation, True, collection)

    def task_query(
        self,
        filter=None,
        projection=None,
        limit=0,
        sort=None,
        aggregation=None,
        remove_json_unserializables=None,
    ) -> list[dict[str, Any]]:
        return self.db.query(filter, projection, limit, sort, aggregation, True, "tasks")

    def workflow_query(
        self, filter=None, projection=None, limit=0, sort=None, remove_json_unserializables=None
    ) -> list[dict[str, Any]]:
        return self.db.query(filter, projection, limit, sort, None, True, "workflows")

    def object_query(self, filter=None, projection=None, limit=0, sort=None) -> list[dict]:
        return self.db.query(filter, projection, limit, sort, None, True, "objects")

    def to_df(self, collection="tasks", filter=None) -> Any:
        return self.db.to_df(collection, filter)

    def count_tasks(self) -> int:
        return self._count("SELECT count(*) FROM tasks")

    def count_workflows(self) -> int:
        return self._count("SELECT count(*) FROM workflows")

    def count_objects(self) -> int:
        """Objects, each counted once whatever its versions (Flowcept's ``objects``)."""
        return self._count("SELECT count(DISTINCT object_id) FROM data_objects")

    def _count(self, text: str) -> int:
        return int(self.db.backend.query(Frag(text))[1][0][0])

    def get_tasks_recursive(self, workflow_id, max_depth=999, mapping=None) -> list[dict]:
        return self.db.get_tasks_recursive(workflow_id, max_depth, mapping)

    def task_summary(self, filter: dict) -> dict:
        return self.db.task_summary(filter)

    def derive_campaigns(self, campaign_id: str | None = None) -> list[dict]:
        return self.db.derive_campaigns(campaign_id)

    def derive_agents(self, filter: dict | None = None) -> list[dict]:
        return self.db.derive_agents(filter)

    def telemetry_timeseries(self, filter, fields, x_field="started_at", limit=1000) -> list:
        return self.db.telemetry_timeseries(filter, fields, x_field, limit)

    def resolve_chart_data(self, data: dict, context: dict | None = None) -> dict:
        return self.db.resolve_chart_data(data, context)

    def get_node_positions(self, workflow_id: str, graph_type: str) -> dict:
        return self.db.get_node_positions(workflow_id, graph_type)

    # --- objects -------------------------------------------------------------------------------
    def get_blob_object_doc(self, object_id, version=None) -> dict | None:
        """The record of one version (with its bytes), or None."""
        from provwh.query import objects

        return objects.fetch(self.db.backend, object_id, version)

    def get_blob_object_metadata_doc(self, object_id, version=None) -> dict | None:
        """The record of one version without its bytes, or None."""
        doc = self.get_blob_object_doc(object_id, version)
        if doc is not None:
            doc.pop("data", None)
        return doc

    def get_object_history(self, object_id) -> list[dict]:
        return self.db.get_object_history(object_id)

    list_object_versions = get_object_history

    # --- writes --------------------------------------------------------------------------------
    def insert_one_task(self, task_dict: dict) -> str:
        return self.db.insert_or_update_task(task_dict)

    def insert_and_update_many_tasks(self, docs: list[dict], indexing_key=None) -> bool:
        """Insert or merge the tasks (keyed by ``task_id`` whatever ``indexing_key``)."""
        from provwh.query import writes

        records = [writes.record_of(doc, "task") for doc in docs]
        if records:
            writes.write_records(self.db.backend, records)
        return True

    def insert_or_update_workflow(self, wf_obj: Any) -> bool:
        self.db.insert_or_update_workflow(wf_obj)
        return True

    def save_workflow_domain_data_schema(self, workflow_id: str, fields: dict) -> bool:
        """Set these fields of a workflow record (Flowcept passes
        ``{"workflow_domain_data_schema": snapshot}``)."""
        from provwh.query import workflow_fields

        workflow_fields.set_fields(self.db.backend, workflow_id, dict(fields))
        return True

    def save_node_positions(self, workflow_id: str, graph_type: str, positions: dict) -> bool:
        return self.db.save_node_positions(workflow_id, graph_type, positions)

    def save_or_update_object(self, *args: Any, **kwargs: Any) -> str:
        return self.db.insert_or_update_object(*args, **kwargs)

    def update_object_metadata(self, object_id, **kwargs: Any) -> str:
        return self.db.update_object_metadata(object_id, **kwargs)

    def dump_to_file(self, collection_name, filter, output_file, export_format, should_zip):
        return self.db.dump_to_file(collection_name, filter, output_file, export_format, should_zip)

    def dump_tasks_to_file_recursive(
        self, workflow_id, output_file="tasks.parquet", max_depth=999, mapping=None
    ) -> None:
        self.db.dump_tasks_to_file_recursive(workflow_id, output_file, max_depth, mapping)

    def delete_object_keys(self, key_name, keys_list) -> bool:
        return self.db.delete_object_keys(key_name, keys_list)

    def delete_workflow_data(self, workflow_id: str) -> dict:
        return self.db.delete_workflow_data(workflow_id)

    def delete_campaign_data(self, campaign_id: str) -> dict:
        return self.db.delete_campaign_data(campaign_id)


def liveness_by_database(settings: Any) -> dict[str, bool]:
    """``{"duckdb": bool, "postgres": bool}``: whether each enabled database answers."""
    from provwh.warehouse.engines import targets_from_settings

    kinds = [k for k in ("duckdb", "postgres") if getattr(settings, f"{k}_enabled")]
    out = {}
    for kind, target in zip(kinds, targets_from_settings(settings), strict=True):
        try:
            out[kind] = bool(target.alive())
        finally:
            target.close()
    return out
