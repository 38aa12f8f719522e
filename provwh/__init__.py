"""provwh: workflow provenance capture with Flowcept's API, and a SQL warehouse for it.

``from provwh import Flowcept, flowcept_task`` is all instrumented code needs; databases,
Arrow and pandas are imported only when a feature that needs them is used.
"""

from typing import Any

from provwh.capture.custom_task import FlowceptTask
from provwh.capture.decorators import (
    flowcept_task,
    lightweight_flowcept_task,
    telemetry_flowcept_task,
)
from provwh.capture.loops import FlowceptLightweightLoop, FlowceptLoop
from provwh.core.model import AgentObject, Status, TaskObject, WorkflowObject
from provwh.core.serialize import register_dict_class
from provwh.core.vocabulary import PROV_AGENT, ML_Types
from provwh.facade import Flowcept, flowcept
from provwh.version import __version__

__all__ = [
    "AgentObject",
    "DBAPI",
    "BaseConsumer",
    "Flowcept",
    "FlowceptLightweightLoop",
    "FlowceptLoop",
    "FlowceptTask",
    "ML_Types",
    "PROV_AGENT",
    "Status",
    "TaskObject",
    "TelemetryCapture",
    "WorkflowObject",
    "__version__",
    "flowcept",
    "flowcept_task",
    "lightweight_flowcept_task",
    "register_dict_class",
    "telemetry_flowcept_task",
]

# Loaded on first use, so `import provwh` never imports torch, mcp, dask, the warehouse or the
# query layer.
_LAZY = {
    "DBAPI": ("provwh.query.api", "DBAPI"),
    "BaseConsumer": ("provwh.warehouse.base_consumer", "BaseConsumer"),
    "TelemetryCapture": ("provwh.capture.telemetry", "TelemetryCapture"),
    "FlowceptDaskWorkerAdapter": ("provwh.adapters.dask", "FlowceptDaskWorkerAdapter"),
    "flowcept_torch": ("provwh.adapters.torch", "flowcept_torch"),
    "agent_flowcept_task": ("provwh.adapters.agent", "agent_flowcept_task"),
    "flowcept_agent_task": ("provwh.adapters.agent", "flowcept_agent_task"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'provwh' has no attribute {name!r}")
