"""A flow run recorded as provenance: inside a ``Flowcept`` session, or with its own session
(``capture=True``). Run with ``python examples/flows_provenance.py`` in any folder: it writes
``flowcept_buffer.jsonl`` and the spool folder ``.provwh/spool`` there.
"""

from provwh import Flowcept
from provwh.flows import flow, task


@task(output_names="z")
def add_one(x):
    print(f"adding one to {x}")
    return x + 1


@flow
def pipeline(x):
    return add_one(add_one(x))


@flow(flow_config={"capture": True})
def standalone(x):
    return add_one(x)


def main() -> None:
    with Flowcept(workflow_name="session") as session:
        run = pipeline(1).execute()
    tasks = [
        r
        for r in session.get_buffer()
        if r["type"] == "task" and r.get("workflow_id") == run.flow_id
    ]
    for rec in tasks:
        print(rec["activity_id"], rec["used"], rec["generated"], rec["stdout"])

    run = standalone(41).execute()  # opens and closes a session of its own
    records = Flowcept.read_buffer_file()
    workflow = next(r for r in records if r["type"] == "workflow")
    print(workflow["workflow_id"] == run.flow_id, workflow["name"], workflow["status"])


if __name__ == "__main__":
    main()
