"""Task and flow errors: policies, preserved types, one status everywhere, stop events."""

from __future__ import annotations

import asyncio

import pytest

from provwh.flows import FlowEventType, flow, task


class CustomError(Exception):
    pass


@task
def boom(msg="bad"):
    raise CustomError(msg)


@task(raise_on_error=False)
def soft_boom():
    raise CustomError("soft")


def _stops(run):
    stops = []
    run.add_event_listener(stops.append, [FlowEventType.TASK_STOP, FlowEventType.FLOW_STOP])
    return stops


def test_failing_task_fails_the_flow_with_its_own_exception():
    @flow
    def f():
        boom("original")

    run = f()
    stops = _stops(run)
    with pytest.raises(CustomError, match="original") as info:
        run.execute()
    assert run.flow_error is info.value
    assert run.flow_status == "ERROR"
    assert run.durations()["flow_status"] == "ERROR"
    (t,) = run.executed_tasks
    assert t.status == "ERROR" and t.task_error is info.value and t.ended_at is not None
    assert [(e.event_type, e.data["status"]) for e in stops] == [
        (FlowEventType.TASK_STOP, "ERROR"),
        (FlowEventType.FLOW_STOP, "ERROR"),
    ]
    errors = [e for e in run.captured_logs() if e["level"] == "ERROR"]
    assert [(e["msg"], e["task"]) for e in errors] == [
        ("CustomError: original (in task boom)", None)
    ]


def test_raise_on_error_false_records_and_continues():
    @flow
    def f():
        first = soft_boom()
        return first, "went on"

    run = f().execute()
    assert run.flow_return_value == (None, "went on")
    assert run.flow_status == "FINISHED" and run.flow_error is None
    (t,) = run.executed_tasks
    assert t.status == "ERROR" and isinstance(t.task_error, CustomError)
    assert t.task_return_value is None
    assert [(e["level"], e["msg"], e["task"]) for e in run.captured_logs()] == [
        ("ERROR", "CustomError: soft", "soft_boom")
    ]


def test_raise_flow_error_false_keeps_the_error():
    @flow(flow_config={"raise_flow_error": False})
    def f():
        boom()

    run = f().execute()
    assert isinstance(run.flow_error, CustomError)
    assert run.flow_status == "ERROR" == run.durations()["flow_status"]
    assert run.json()["flow_error"] == {"type": "CustomError", "message": "bad"}


def test_error_in_the_flow_body_itself():
    @flow
    def f():
        return {}["missing"]

    with pytest.raises(KeyError):
        f().execute()


def test_caught_task_error_inside_the_flow_does_not_fail_it():
    @flow
    def f():
        try:
            boom()
        except CustomError:
            return "recovered"

    run = f().execute()
    assert run.flow_status == "FINISHED" and run.flow_return_value == "recovered"
    assert run.executed_tasks[0].status == "ERROR"


def test_base_exceptions_are_always_re_raised():
    @task(raise_on_error=False)
    def interrupt():
        raise KeyboardInterrupt

    @flow(flow_config={"raise_flow_error": False})
    def f():
        interrupt()

    run = f()
    with pytest.raises(KeyboardInterrupt):
        run.execute()
    assert run.flow_status == "ERROR"
    assert run.executed_tasks[0].status == "ERROR"


def test_async_task_errors():
    @task
    async def fails():
        await asyncio.sleep(0)
        raise CustomError("async")

    @task(raise_on_error=False)
    async def soft():
        raise ValueError("soft async")

    @flow
    async def f():
        results = await asyncio.gather(soft(), soft())
        await fails()
        return results

    run = f()
    with pytest.raises(CustomError, match="async"):
        run.execute()
    assert [t.status for t in run.executed_tasks] == ["ERROR"] * 3
    assert run.flow_status == "ERROR"


def test_cancelled_async_task_is_recorded():
    @task
    async def slow():
        await asyncio.sleep(10)

    @flow(flow_config={"raise_flow_error": False})
    async def f():
        t = asyncio.create_task(slow())
        await asyncio.sleep(0.01)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            return "cancel seen"

    run = f().execute()
    assert run.flow_return_value == "cancel seen"
    assert run.executed_tasks[0].status == "ERROR"
    assert isinstance(run.executed_tasks[0].task_error, asyncio.CancelledError)


def test_a_listener_that_raises_does_not_break_the_run(caplog):
    @flow
    def f():
        return 1

    run = f()
    run.add_event_listener(lambda e: 1 / 0)
    assert run.execute().flow_status == "FINISHED"
    assert "event listener" in caplog.text
