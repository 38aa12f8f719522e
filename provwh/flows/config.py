"""How a flow run behaves: console echo, log capture, error policy, provenance capture."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

LEVELS = {"DEBUG": 10, "INFO": 20, "ERROR": 40}


@dataclass(slots=True)
class FlowConfig:
    """Options of one flow; each ``Flow`` holds its own copy, so changing one changes no other.

    ``log_to_console``: echo prints and log calls made inside the run (at ``console_level`` and
    above) to the real console; captured either way. ``log_to_memory``: keep them for
    ``captured_logs()``. ``raise_flow_error``: ``execute()`` re-raises the exception that failed
    the flow (else it is only kept in ``flow_error``). ``capture``: a flow that runs outside any
    ``Flowcept`` session opens one of its own for the run, so it is recorded as provenance.
    """

    log_to_console: bool = True
    log_to_memory: bool = True
    console_level: str = "INFO"
    raise_flow_error: bool = True
    capture: bool = False

    def __post_init__(self) -> None:
        if self.console_level not in LEVELS:
            raise ValueError(f"console_level must be one of {', '.join(LEVELS)}")

    @classmethod
    def coerce(cls, value: FlowConfig | dict[str, Any] | None) -> FlowConfig:
        """A private copy of ``value`` (a ``FlowConfig``, a dict of its fields, or None)."""
        if value is None:
            return cls()
        if isinstance(value, FlowConfig):
            return replace(value)
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"flow_config must be a FlowConfig or a dict, not {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
