"""The decorator style: ``@flow`` and ``@task``, injected context, logs and timings.

Run with ``python examples/flows_decorator.py``.
"""

from provwh.flows import flow, task


@flow
def my_process(flow_data):
    flow_data["rows"] = fetch_data()
    step_one()
    return process_data()


@task
def step_one(task_data):
    task_data["note"] = "private to this call"
    print("Doing work")


@task
def fetch_data(this_task):
    this_task.log_info("Data fetched successfully")
    return [3, 1, 2]


@task
def process_data(flow_data, this_flow):
    this_flow.log_info(f"processing {len(flow_data['rows'])} rows")
    return sorted(flow_data["rows"])


def main() -> None:
    run = my_process().execute()
    print("returned:", run.flow_return_value)
    print("durations:", run.durations())
    for entry in run.captured_logs():
        print(entry["time"], entry["level"], entry["task"], entry["msg"])


if __name__ == "__main__":
    main()
