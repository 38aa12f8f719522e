"""Flow tests read batch and buffer files; the warehouse is tested on its own."""

from __future__ import annotations

import sys

import pytest

from provwh.core import config
from provwh.core.model import merge_records


@pytest.fixture(autouse=True)
def no_databases(isolated, monkeypatch):
    monkeypatch.setenv("PROVWH_DUCKDB_ENABLED", "false")
    config.reload_settings()
    yield
    from provwh.flows import flow_events, logs

    leaked = flow_events.listeners
    flow_events.clear()
    assert not leaked, f"a test left global flow listeners: {leaked}"
    assert logs._users == 0, "a flow run did not release the stdout router"
    assert not isinstance(sys.stdout, logs.RoutingStream)


@pytest.fixture
def spooled():
    """All records a controller wrote to its batch files, each workflow's parts merged by id.

    The buffer dump (``get_buffer`` / ``read_buffer_file``) keeps only the session's own
    workflow record, so flow workflow records are read from the batches the loader consumes.
    """

    def read(ctl) -> list[dict]:
        from provwh.core import serialize
        from provwh.transport import spool

        ctl._flush()
        out: list[dict] = []
        workflows: dict[str, dict] = {}
        for line in spool.iter_raw_lines(ctl._writer.spool_dir, list(ctl._writer.names)):
            rec = serialize.loads_line(line)
            if rec["type"] == "workflow":
                if rec["workflow_id"] in workflows:
                    merge_records(workflows[rec["workflow_id"]], rec)
                    continue
                workflows[rec["workflow_id"]] = rec
            out.append(rec)
        return out

    return read
