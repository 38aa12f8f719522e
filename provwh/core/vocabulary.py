"""The vocabulary Flowcept code imports at module level (``flowcept.commons.vocabulary``).

``ML_Types`` and ``PROV_AGENT`` are string enums of ``subtype`` values; records store their
plain string values (``@flowcept_task(subtype=ML_Types.DATA_PREP)`` stores ``"dataprep"``).
``Status`` is ``core.model.Status``.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Any

from provwh.core.model import Status

__all__ = ["ML_Types", "PROV_AGENT", "Status", "plain_value"]


class ML_Types(StrEnum):  # noqa: N801 (Flowcept's name)
    """Common subtype values of ML workflows and tasks."""

    WORKFLOW = "ml_workflow"
    DATA_PREP = "dataprep"
    LEARNING = "learning"
    MODEL_SELECTION = "model_selection"


class PROV_AGENT(StrEnum):  # noqa: N801 (Flowcept's name)
    """Activity subtypes of agentic AI workflows (the PROV-AGENT model): one LLM call, and one
    tool run by an agent."""

    AI_MODEL_INVOCATION = "ai_model_invocation"
    AGENT_TOOL = "agent_tool"


def plain_value(value: Any) -> Any:
    """An enum member as its value (what a record stores); anything else as it is."""
    return value.value if isinstance(value, Enum) else value
