"""The numbers a report computes from provenance records, one module per concern.

``records`` (kinds, times, workflows, their tasks and objects), ``activities`` (statuses,
durations, tags, inputs and outputs), ``resources`` (telemetry), ``structure`` (lineage),
``artifacts`` and ``objects`` (models, datasets);
the card and the PDF read them through this one name (``summary as sm``).
"""

from provwh.report.activities import (
    ActivityRows,
    ActivityStats,
    ActivityTags,
    KeySummary,
    activity_rows,
    activity_stats,
    activity_tags,
    describe_values,
    io_summary,
    status_counts,
    type_name,
)
from provwh.report.artifacts import Artifacts, PathKey, artifacts, data_size, looks_like_path
from provwh.report.objects import ObjectSummary, StoredObject, summarize, type_label
from provwh.report.records import (
    NO_ACTIVITY,
    STATUS_ORDER,
    Dataset,
    WorkflowRun,
    activity,
    duration,
    load,
    record_kind,
    to_epoch,
)
from provwh.report.resources import (
    ActivityResources,
    Resources,
    dig,
    has_telemetry,
    of_workflow,
    resources,
    snapshot_values,
)
from provwh.report.structure import Lineage, LoopSummary, layers, lineage, task_key

__all__ = [
    "NO_ACTIVITY", "STATUS_ORDER", "ActivityResources", "ActivityRows", "ActivityStats",
    "ActivityTags", "Artifacts", "Dataset", "KeySummary", "Lineage", "LoopSummary",
    "ObjectSummary", "PathKey", "Resources", "StoredObject", "WorkflowRun", "activity",
    "activity_rows", "activity_stats", "activity_tags", "artifacts", "data_size",
    "describe_values", "dig", "duration", "has_telemetry", "io_summary", "layers", "lineage",
    "load", "looks_like_path", "of_workflow", "record_kind", "resources", "snapshot_values",
    "status_counts", "summarize", "task_key", "to_epoch", "type_label", "type_name",
]  # fmt: skip
