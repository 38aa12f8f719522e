"""Error handling: ``raise_on_error=False`` for non-critical tasks, ``flow_error`` and
``raise_flow_error`` at the flow level.

Run with ``python examples/flows_errors.py``.
"""

from provwh.flows import flow, task


@task(raise_on_error=False)
def optional_enrichment():
    raise ConnectionError("enrichment service down")


@task
def critical_step(x):
    if x < 0:
        raise ValueError("x must be positive")
    return x


@flow
def resilient(x):
    optional_enrichment()  # fails, is recorded, the flow goes on
    return critical_step(x)


@flow(flow_config={"raise_flow_error": False})
def quiet(x):
    return critical_step(x)


def main() -> None:
    run = resilient(5).execute()
    failed = [t for t in run.executed_tasks if t.status == "ERROR"]
    print(run.flow_status, run.flow_return_value, [type(t.task_error).__name__ for t in failed])

    try:
        resilient(-1).execute()
    except ValueError as exc:
        print("flow failed with the task's own exception:", exc)

    run = quiet(-1).execute()  # not re-raised
    print(run.flow_status, repr(run.flow_error), run.durations()["flow_status"])


if __name__ == "__main__":
    main()
