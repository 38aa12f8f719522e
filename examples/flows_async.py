"""Async flows: ``async def`` tasks awaited in an ``async def`` flow.

``execute()`` runs the flow in a new event loop; ``await flow.execute_async()`` runs it in the
current one. Tasks started with ``asyncio.gather`` / ``create_task`` stay in the flow.
Run with ``python examples/flows_async.py``.
"""

import asyncio

from provwh.flows import flow, task


@task
async def fetch(i):
    await asyncio.sleep(0.01)
    print(f"fetched {i}")
    return i * i


@flow
async def fan_out(n):
    first = await fetch(0)
    rest = await asyncio.gather(*(fetch(i) for i in range(1, n)))
    return [first, *rest]


async def from_async_code() -> None:
    run = await fan_out(3).execute_async()
    print("in the running loop:", run.flow_return_value)


def main() -> None:
    run = fan_out(4).execute()
    print("in a new loop:", run.flow_return_value, len(run.executed_tasks), "tasks")
    asyncio.run(from_async_code())


if __name__ == "__main__":
    main()
