"""Context discovery across threads, asyncio tasks and nested flows."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from provwh.flows import Flow, current_flow, current_task, flow, task


@task
def whoami(i, this_flow):
    return (i, this_flow, current_flow())


def test_concurrent_flows_in_threads_see_only_their_own_tasks():
    barrier = threading.Barrier(8)

    @flow
    def f(n, this_flow, flow_data):
        barrier.wait()
        flow_data["results"] = [whoami(i) for i in range(n)]
        return this_flow

    runs = [f(50 + k) for k in range(8)]
    threads = [threading.Thread(target=r.execute) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, run in enumerate(runs):
        assert run.flow_status == "FINISHED"
        assert len(run.executed_tasks) == 50 + k
        assert all(t.task_flow is run for t in run.executed_tasks)
        assert [r[0] for r in run.flow_data["results"]] == list(range(50 + k))
        assert all(r[1] is run and r[2] is run for r in run.flow_data["results"])
    assert len({r.flow_id for r in runs}) == 8
    assert current_flow() is None


def test_threads_started_inside_a_flow_attach_only_with_a_copied_context():
    @flow
    def f():
        with ThreadPoolExecutor(4) as pool:
            attached = [pool.submit(contextvars.copy_context().run, whoami, i) for i in range(4)]
            plain = [pool.submit(whoami, i) for i in range(4, 6)]
            return [x.result() for x in attached], [x.result() for x in plain]

    run = f().execute()
    attached, plain = run.flow_return_value
    assert all(r[1] is run for r in attached)
    assert all(r[1] is None for r in plain)  # a fresh thread context: orphan tasks
    assert sorted(t.task_return_value[0] for t in run.executed_tasks) == [0, 1, 2, 3]


def test_asyncio_gather_and_create_task_stay_in_the_flow():
    @task
    async def step(i, this_flow, this_task):
        await asyncio.sleep(0.001 * (5 - i))
        assert current_task() is this_task
        return (i, this_flow)

    @flow
    async def f(this_flow):
        gathered = await asyncio.gather(*(step(i) for i in range(5)))
        created = [asyncio.create_task(step(i)) for i in range(5, 7)]
        return gathered + [await c for c in created]

    run = f().execute()
    assert [r[0] for r in run.flow_return_value] == list(range(7))
    assert all(r[1] is run for r in run.flow_return_value)
    assert len(run.executed_tasks) == 7
    assert all(t.task_parent is None and t.status == "FINISHED" for t in run.executed_tasks)


def test_nested_async_tasks_under_gather_keep_their_parents():
    @task
    async def leaf(i):
        await asyncio.sleep(0)
        return current_task()

    @task
    async def branch(i):
        return await asyncio.gather(leaf(i), leaf(i + 10))

    @flow
    async def f():
        return await asyncio.gather(branch(0), branch(1))

    run = f().execute()
    branches = [t for t in run.executed_tasks if t.task_name == "branch"]
    for b, leaves in zip(branches, run.flow_return_value, strict=True):
        assert [lf.task_parent for lf in leaves] == [b, b]


def test_concurrent_async_flows_in_one_loop():
    @task
    async def step(i, this_flow):
        await asyncio.sleep(0.001)
        return this_flow

    @flow
    async def f(n):
        return [await step(i) for i in range(n)]

    async def main():
        return await asyncio.gather(*(f(n).execute_async() for n in (3, 4, 5)))

    runs = asyncio.run(main())
    for run, n in zip(runs, (3, 4, 5), strict=True):
        assert len(run.executed_tasks) == n
        assert all(r is run for r in run.flow_return_value)


def test_async_flow_execute_inside_a_running_loop_uses_a_fresh_loop():
    @task
    async def step():
        return asyncio.get_running_loop()

    @flow
    async def f():
        return await step()

    async def main():
        loop = asyncio.get_running_loop()
        run = f().execute()  # blocking call from async code: runs in its own loop
        return loop, run

    loop, run = asyncio.run(main())
    assert run.flow_status == "FINISHED"
    assert run.flow_return_value is not loop


def test_execute_async_runs_a_sync_target_inline():
    @flow
    def f():
        return whoami(1)

    run = asyncio.run(f().execute_async())
    assert run.flow_return_value[1] is run


def test_sync_task_inside_async_flow():
    @flow
    async def f():
        return whoami(0)

    run = f().execute()
    assert run.flow_return_value[1] is run


def test_nested_flows():
    @flow
    def inner(this_flow):
        assert current_flow() is this_flow
        return whoami(0)[1]

    @task
    def run_inner():
        return inner().execute()

    @flow
    def outer(this_flow):
        direct = inner().execute()
        from_task = run_inner()
        after = whoami(1)
        return direct, from_task, after

    run = outer().execute()
    direct, from_task, after = run.flow_return_value
    assert direct.parent_flow is run and from_task.parent_flow is run
    assert direct.flow_return_value is direct and from_task.flow_return_value is from_task
    assert after[1] is run  # the outer scope is back after the inner run
    assert [t.task_name for t in run.executed_tasks] == ["run_inner", "whoami"]
    assert [t.task_name for t in direct.executed_tasks] == ["whoami"]
    assert run.parent_flow is None
    assert current_flow() is None


def test_nested_flow_failure_propagates_to_the_outer_flow():
    @flow
    def inner():
        raise LookupError("inner")

    @flow
    def outer():
        inner().execute()

    with pytest.raises(LookupError, match="inner"):
        outer().execute()


def test_find_flow_and_current_helpers():
    @task
    def t(this_task):
        return this_task.find_flow(), current_flow(), current_task() is this_task

    class P(Flow):
        def main(self):
            return t()

    run = P().setup().execute()
    assert run.flow_return_value == (run, run, True)
