"""Events, artifacts, results and the JSON view of a run.

Listeners are registered before execution and removed afterwards (``flow_events.listening``
and the flow's context manager do both). Run with ``python examples/flows_events.py``.
"""

import json

from provwh.flows import FlowEventType, flow, flow_events, task


@task
def train(epochs, this_flow):
    loss = round(1 / (1 + epochs), 3)
    this_flow.add_flow_result("loss", "final training loss", value=loss)
    this_flow.add_flow_artifact(
        "the trained weights", key="weights", data=[0.1, 0.2], artifact_type="list"
    )
    return loss


@flow
def training(epochs=3):
    return train(epochs)


def main() -> None:
    seen = []
    with flow_events.listening(lambda e: seen.append((e.event_type.value, e.task_name))):
        with training() as run:
            run.add_event_listener(
                lambda e: print("new result:", e.data["key"], e.data["value"]),
                event_types=[FlowEventType.NEW_RESULT],
            )
            run.execute()
    print(seen)
    print(json.dumps(run.json()["results"]))
    print(sorted(run.json()))


if __name__ == "__main__":
    main()
