"""Small helpers for reading back what a capture produced."""

from provwh import Flowcept


def tasks_of(records):
    return [r for r in records if r.get("type") == "task"]


def workflows_of(records):
    return [r for r in records if r.get("type") == "workflow"]


def run_captured(body, **flowcept_kwargs):
    """Run ``body()`` inside a Flowcept and return (controller, its messages)."""
    with Flowcept(**flowcept_kwargs) as ctl:
        body()
    return ctl, Flowcept.read_buffer_file()
