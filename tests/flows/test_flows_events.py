"""Event listeners: per flow and global, filtered, removed, never leaking across runs."""

from __future__ import annotations

import threading

from provwh.flows import FlowEvent, FlowEvents, FlowEventType, flow, flow_events, task

E = FlowEventType


@task
def step(x, this_flow):
    print(f"step {x}")
    this_flow.add_flow_artifact("an artifact", key=f"a{x}", data=[x], artifact_type="list")
    this_flow.add_flow_result(f"r{x}", "a result", value=x * 10)
    return x


@flow(flow_config={"log_to_console": False})
def pipeline(n):
    return [step(i) for i in range(n)]


def test_event_sequence_for_one_run():
    run = pipeline(2)
    events: list[FlowEvent] = []
    run.add_event_listener(events.append)
    run.execute()
    assert [(e.event_type, e.task_name) for e in events] == [
        (E.FLOW_START, None),
        (E.TASK_START, "step"),
        (E.FLOW_MESSAGE, "step"),
        (E.NEW_ARTIFACT, "step"),
        (E.NEW_RESULT, "step"),
        (E.TASK_STOP, "step"),
        (E.TASK_START, "step"),
        (E.FLOW_MESSAGE, "step"),
        (E.NEW_ARTIFACT, "step"),
        (E.NEW_RESULT, "step"),
        (E.TASK_STOP, "step"),
        (E.FLOW_STOP, None),
    ]
    assert {e.flow_id for e in events} == {run.flow_id}
    assert {e.flow_name for e in events} == {"pipeline"}
    assert events[2].data == {"level": "INFO", "msg": "step 0", "source": "stdout"}
    assert events[3].data["key"] == "a0" and events[3].data["data"] == [0]
    assert events[4].data["value"] == 0 and events[9].data["value"] == 10
    assert events[5].data["status"] == "FINISHED" and events[5].data["duration"] >= 0
    assert events[-1].data["status"] == "FINISHED"
    assert events[1].task_id == run.executed_tasks[0].task_id
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps)


def test_filtered_listeners_and_removal():
    run = pipeline(3)
    starts, stops = [], []
    run.add_event_listener(starts.append, ["task_start"])
    run.add_event_listener(stops.append, [E.TASK_STOP, E.FLOW_STOP])
    run.execute()
    assert [e.event_type for e in starts] == [E.TASK_START] * 3
    assert [e.event_type for e in stops] == [E.TASK_STOP] * 3 + [E.FLOW_STOP]
    assert run.remove_event_listener(starts.append) is False  # a different bound method
    assert run.remove_event_listener(run._events.listeners[0]) is True
    run.execute()
    assert len(starts) == 3 and len(stops) == 8


def test_per_flow_listeners_do_not_see_other_flows():
    a, b = pipeline(1), pipeline(1)
    seen_a = []
    a.add_event_listener(seen_a.append)
    b.execute()
    a.execute()
    assert {e.flow for e in seen_a} == {a}


def test_outer_flow_listener_does_not_see_the_inner_flow():
    @flow
    def outer():
        pipeline(1).execute()

    run = outer()
    seen = []
    run.add_event_listener(seen.append)
    run.execute()
    assert [e.event_type for e in seen] == [E.FLOW_START, E.FLOW_STOP]


def test_global_listeners_see_every_flow_and_are_removed():
    seen = []

    def listener(event):
        seen.append(event)

    flow_events.add_listener(listener, [E.FLOW_START])
    try:
        pipeline(1).execute()
        pipeline(1).execute()
    finally:
        assert flow_events.remove_listener(listener) is True
    assert len(seen) == 2 and seen[0].flow is not seen[1].flow
    pipeline(1).execute()
    assert len(seen) == 2
    assert len(flow_events) == 0 and not flow_events


def test_listening_context_removes_even_on_error():
    seen = []
    try:
        with flow_events.listening(seen.append, [E.FLOW_STOP]):
            pipeline(1).execute()
            raise RuntimeError("leave the block")
    except RuntimeError:
        pass
    pipeline(1).execute()
    assert len(seen) == 1 and flow_events.listeners == []


def test_orphan_task_events_reach_global_listeners_only():
    @task
    def lone():
        print("lone line")

    seen = []
    with flow_events.listening(seen.append):
        lone()
    assert [(e.event_type, e.flow, e.task_name) for e in seen] == [
        (E.TASK_START, None, "lone"),
        (E.TASK_STOP, None, "lone"),
    ]
    assert seen[0].task is seen[1].task and seen[1].data["status"] == "FINISHED"


def test_registry_is_thread_safe():
    registry = FlowEvents()
    listeners = [lambda e, i=i: i for i in range(200)]

    def add_remove(chunk):
        for fn in chunk:
            registry.add_listener(fn)
        for fn in chunk[::2]:
            registry.remove_listener(fn)

    threads = [threading.Thread(target=add_remove, args=(listeners[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(registry) == 100
    registry.clear()
    assert len(registry) == 0
