"""Tasks built by hand with FlowceptTask: explicit end, send, and context-managed."""

from time import sleep
from uuid import uuid4

from provwh import Flowcept, FlowceptTask

if __name__ == "__main__":
    flowcept = Flowcept(
        start_persistence=False, save_workflow=True, workflow_name="MyFirstWorkflow"
    )
    flowcept.start()

    agent1 = uuid4()
    FlowceptTask(activity_id="super_func1", used={"x": 1}, agent_id=agent1, tags=["tag1"]).send()

    with FlowceptTask(
        activity_id="super_func2", used={"y": 1}, agent_id=agent1, tags=["tag2"]
    ) as t2:
        sleep(0.05)
        t2.end(generated={"o": 3})

    t3 = FlowceptTask(activity_id="super_func3", used={"z": 1}, agent_id=agent1, tags=["tag3"])
    sleep(0.01)
    t3.end(generated={"w": 1})

    with FlowceptTask(activity_id="download", used={"url": "https://example.org/data"}) as t:
        data = b"\x00\x01 some binary payload"
        t.end(data=data, generated={"bytes": len(data)})

    flowcept.stop()

    flowcept_messages = Flowcept.read_buffer_file()
    assert len(flowcept_messages) == 5
    print("messages:", len(flowcept_messages))
    print("data round trip:", flowcept_messages[-1]["data"] == data)
