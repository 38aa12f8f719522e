"""The README's Python snippets, run as written, in order, in one fresh folder.

Each runnable block executes in one namespace (a reader follows them in order: the querying
block reads what the capture block recorded), then the test checks what the block promised.
Blocks that are fragments of larger programs are named in ``NOT_RUN`` with the reason; a new
block must be added to one list or the other.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)

# each block is named by how it begins
RUN = [
    "from provwh import Flowcept, flowcept_task",  # Capture
    "from provwh import DBAPI, Flowcept",  # Querying
    "Flowcept.generate_report()",  # Reports
    "from provwh.flows import flow, task",  # Flows
]
NOT_RUN = {
    "from provwh import flowcept_torch, agent_flowcept_task": "fragments of a torch model, an "
    "MCP server, a Dask client and a training function logging to MLflow and TensorBoard "
    "(tests/adapters runs the same calls on real ones)",
}


def _block(start: str) -> str:
    (found,) = [b for b in BLOCKS if b.startswith(start)]
    return found


def test_every_block_is_run_or_says_why_not():
    starts = [*RUN, *NOT_RUN]
    assert [[s for s in starts if b.startswith(s)] for b in BLOCKS] == [
        [s] for s in [next(s for s in starts if b.startswith(s)) for b in BLOCKS]
    ]
    assert len(BLOCKS) == len(starts) == 5


def test_the_readme_snippets_run_as_written(tmp_path, capsys):
    ns: dict = {"__name__": "__readme__"}
    exec(compile(_block(RUN[0]), "README:capture", "exec"), ns)
    msgs = ns["msgs"]
    assert [m["type"] for m in msgs] == ["workflow", "task"]
    assert [(m["used"], m["generated"]) for m in msgs if m["type"] == "task"] == [
        ({"x": 7}, {"z": 8})
    ]

    exec(compile(_block(RUN[1]), "README:querying", "exec"), ns)
    db, wf, task_id = ns["db"], ns["wf"], ns["task_id"]
    assert wf == msgs[0]["workflow_id"] and task_id == msgs[1]["task_id"]
    summary = db.task_summary(workflow_id=wf)
    assert summary == db.task_summary({"workflow_id": wf})
    files_db = ns["DBAPI"].from_files(".provwh/spool")
    assert [t["task_id"] for t in files_db.task_query({})] == [task_id]

    exec(compile(_block(RUN[2]), "README:reports", "exec"), ns)
    assert Path("provenance_card.md").read_text().startswith("# ")
    assert Path("card.md").read_text() == Path("provenance_card.md").read_text()
    assert Path("provenance_report.pdf").read_bytes().startswith(b"%PDF")

    exec(compile(_block(RUN[3]), "README:flows", "exec"), ns)
    run = ns["run"]
    assert run.flow_return_value == 3
    assert capsys.readouterr().out.count("adding one to ") == 2
