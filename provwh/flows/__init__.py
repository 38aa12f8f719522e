"""Flows and tasks with an injected execution context, recorded as provenance.

``from provwh.flows import Flow, Task, flow, task``: a flow run is a provenance workflow and
each task call a provenance task when a ``Flowcept`` session is open (or the flow's config
asks for its own). Kept out of ``import provwh`` so plain capture never pays for it.
"""

from provwh.flows.config import FlowConfig
from provwh.flows.context import current_flow, current_task
from provwh.flows.events import FlowEvent, FlowEvents, FlowEventType, flow_events
from provwh.flows.flow import Flow, flow
from provwh.flows.task import Task, task

__all__ = [
    "Flow",
    "FlowConfig",
    "FlowEvent",
    "FlowEventType",
    "FlowEvents",
    "Task",
    "current_flow",
    "current_task",
    "flow",
    "flow_events",
    "task",
]
