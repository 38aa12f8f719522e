"""Decorator and class styles, setup/execute, injection, orphan tasks, ``Task`` itself."""

from __future__ import annotations

import pytest

from provwh.flows import Flow, FlowConfig, Task, current_flow, current_task, flow, task


@task
def double(x):
    return 2 * x


@task(task_name="named", raise_on_error=False)
def configured(x):
    return x


def test_flow_decorator_bare_returns_a_set_up_flow():
    @flow
    def pipeline(x, y=10):
        return double(x) + y

    run = pipeline(3)
    assert type(run) is Flow
    assert run.flow_status == "SUBMITTED"
    assert run.flow_name == "pipeline"
    assert run.flow_args == (3,) and run.flow_kwargs == {}
    assert run.flow_id is None and run.executed_tasks == []
    assert run.execute() is run
    assert run.flow_return_value == 16
    assert run.flow_status == "FINISHED"
    assert [t.task_name for t in run.executed_tasks] == ["double"]
    assert run.executed_tasks[0].task_return_value == 6


def test_flow_decorator_with_options():
    @flow(flow_name="custom", flow_config=FlowConfig(raise_flow_error=False))
    def failing():
        raise KeyError("k")

    @flow()
    def plain():
        return 1

    run = failing().execute()
    assert run.flow_name == "custom"
    assert run.flow_config.raise_flow_error is False
    assert isinstance(run.flow_error, KeyError)
    assert plain().execute().flow_return_value == 1
    assert plain().flow_name == "plain"


def test_each_flow_gets_its_own_config_copy():
    shared = FlowConfig(log_to_console=False)

    @flow(flow_config=shared)
    def f():
        return None

    a, b = f(), f()
    a.flow_config.raise_flow_error = False
    assert b.flow_config.raise_flow_error is True and shared.raise_flow_error is True
    assert Flow(flow_config={"capture": True}).flow_config.capture is True
    with pytest.raises(ValueError, match="console_level"):
        FlowConfig(console_level="LOUD")
    with pytest.raises(TypeError):
        Flow(flow_config=3)


def test_task_decorator_with_options():
    @flow
    def pipeline():
        return configured(5)

    run = pipeline().execute()
    (t,) = run.executed_tasks
    assert t.task_name == "named" and t.raise_on_error is False
    assert run.flow_return_value == 5
    assert configured.__name__ == "configured"  # functools.wraps


def test_execute_before_setup_raises():
    with pytest.raises(ValueError, match="^Setup has not been called$"):
        Flow().execute()

    class P(Flow):
        def main(self):
            return 1

    with pytest.raises(ValueError, match="Setup has not been called"):
        P().execute_flow()


def test_class_style_main_and_tasks_on_methods():
    class My_Process(Flow):
        def main(self):
            self.step_one()
            return self.step_two(4)

        @task
        def step_one(self):
            self.log_info("Doing work")

        @task
        def step_two(self, x, this_task):
            assert this_task.task_flow is self
            return x + 1

    run = My_Process().setup().execute()
    assert run.flow_name == "My_Process"
    assert run.flow_return_value == 5
    assert [t.task_name for t in run.executed_tasks] == ["step_one", "step_two"]
    logs = run.captured_logs()
    assert [(e["msg"], e["task"], e["level"], e["source"]) for e in logs] == [
        ("Doing work", "step_one", "INFO", "log")
    ]


def test_class_style_run_as_in_the_reference():
    class My_Process(Flow):
        def run(self):
            self.step_one()
            return "done"

        @task
        def step_one(self):
            self.log_info("Doing work")

    run = My_Process().setup().execute()
    assert run.flow_return_value == "done"
    assert run.executed_tasks[0].task_name == "step_one"


def test_setup_with_a_target_and_arguments():
    def body(a, b, this_flow, flow_data):
        flow_data["sum"] = a + b
        return this_flow

    run = Flow().setup(body, 1, b=2)
    assert run.flow_name == "body"
    run.execute()
    assert run.flow_return_value is run
    assert run.flow_data == {"sum": 3}
    with pytest.raises(TypeError):
        Flow().setup(42)


def test_execute_flow_with_run_params():
    @flow
    def f(a, b=2, c=3):
        return (a, b, c)

    run = f(1).execute_flow({"b": 20})
    assert run.flow_return_value == (1, 20, 3)
    assert run.flow_run_params == {"b": 20}
    assert f(1).execute_flow({"a": 10, "c": 30}).flow_return_value == (10, 2, 30)
    run = f(1).execute_flow({"unknown": 1})  # ignored, noted in the debug log
    assert run.flow_return_value == (1, 2, 3)
    assert "'unknown' is not a parameter" in run.captured_logs()[0]["msg"]

    @flow
    def g(**kwargs):
        return kwargs

    assert g().execute_flow({"anything": 1}).flow_return_value == {"anything": 1}


def test_context_manager_scopes_listeners():
    @flow
    def f():
        return 1

    seen = []
    with f() as run:
        assert run.flow_status == "SUBMITTED"
        run.add_event_listener(seen.append)
        run.execute()
    assert len(seen) == 2
    run.execute()  # listeners were removed by the with block
    assert len(seen) == 2


def test_injection_by_name_explicit_arguments_win():
    seen = {}

    @task
    def t(x, this_flow=None, this_task=None, flow_data=None, task_data=None):
        seen.setdefault("calls", []).append((this_flow, this_task, flow_data, task_data))
        return x

    @flow
    def f(this_flow, flow_data):
        flow_data["k"] = 1
        t(1)
        t(2, this_flow="mine", flow_data="explicit")
        t(3, None, None, None, "positional")
        return this_flow

    run = f().execute()
    first, second, third = seen["calls"]
    tasks = run.executed_tasks
    assert first[0] is run and first[1] is tasks[0] and first[2] is run.flow_data
    assert first[2] == {"k": 1}
    assert first[3] == {}
    assert second[0] == "mine" and second[2] == "explicit" and second[1] is tasks[1]
    assert third == (None, None, None, "positional")
    assert run.flow_return_value is run


def test_flow_data_shared_task_data_fresh_per_call():
    @task
    def writer(i, flow_data, task_data):
        assert task_data == {}
        task_data["i"] = i
        flow_data.setdefault("seen", []).append(i)
        return task_data

    @flow
    def f():
        return [writer(i) for i in range(3)]

    run = f().execute()
    assert run.flow_return_value == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert run.flow_data == {"seen": [0, 1, 2]}
    assert all(t.task_data is None for t in run.executed_tasks)  # dropped after the call


def test_flow_data_is_fresh_for_each_run_but_can_be_seeded():
    @flow
    def f(flow_data):
        flow_data["n"] = flow_data.get("n", 0) + 1

    run = f()
    run.flow_data["n"] = 10
    run.execute()
    assert run.flow_data == {"n": 11}
    first_id = run.flow_id
    run.execute()
    assert run.flow_data == {"n": 1}
    assert run.flow_id != first_id


def test_orphan_task_runs_without_a_flow():
    @task
    def lone(x, this_flow, this_task, flow_data, task_data):
        assert current_flow() is None and current_task() is this_task
        return (x, this_flow, this_task.task_flow, flow_data, task_data)

    assert lone(1) == (1, None, None, None, {})
    assert double(4) == 8


def test_nested_task_records_its_parent_task():
    @task
    def inner():
        return current_task()

    @task
    def outer():
        return inner()

    @flow
    def f():
        return outer()

    run = f().execute()
    outer_t, inner_t = run.executed_tasks
    assert run.flow_return_value is inner_t
    assert inner_t.task_parent is outer_t and outer_t.task_parent is None
    assert inner_t.task_flow is run


def test_task_class_directly():
    def add(a, b, this_task):
        return (a + b, this_task.task_name)

    @flow
    def f():
        t = Task(task_target=add, task_args=(1,), task_kwargs={"b": 2}, task_name="adder")
        return t.execute__sync(), t

    run = f().execute()
    (value, name), t = run.flow_return_value
    assert (value, name) == (3, "adder")
    assert t.task_flow is run and t.find_flow() is run and t.status == "FINISHED"
    assert t.task_target is add and t.duration >= 0
    assert run.executed_tasks == [t]
    assert repr(t).startswith("Task('adder'")
    with pytest.raises(TypeError):
        Task(task_target=None)


def test_a_running_flow_cannot_be_executed_again_inside_itself():
    @flow
    def f(this_flow):
        this_flow.execute()

    with pytest.raises(RuntimeError, match="already running"):
        f().execute()


def test_import_provwh_does_not_import_flows():
    import subprocess
    import sys

    code = "import provwh, sys; print('provwh.flows' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_a_task_object_runs_once_and_async_targets_need_await():
    import asyncio

    async def coro():
        return 1

    t = Task(task_target=lambda: 2)
    assert t.execute__sync() == 2
    with pytest.raises(RuntimeError, match="already run"):
        t.execute__sync()
    with pytest.raises(TypeError, match="execute__async"):
        Task(task_target=coro).execute__sync()
    assert asyncio.run(Task(task_target=coro).execute__async()) == 1
    assert asyncio.run(Task(task_target=lambda: 3).execute__async()) == 3
