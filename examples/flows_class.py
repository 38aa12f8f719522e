"""The class-based style: subclass ``Flow``, ``@task`` on methods, a context-manager scope.

Run with ``python examples/flows_class.py``.
"""

from provwh.flows import Flow, task


class My_Process(Flow):
    def run(self):
        self.step_one()
        self.step_two(21)

    @task
    def step_one(self):
        self.log_info("Doing work")

    @task
    def step_two(self, x, this_task):
        this_task.log_debug(f"doubling {x}")
        return 2 * x


def main() -> None:
    try:
        My_Process().execute()
    except ValueError as exc:
        print("as expected:", exc)  # Setup has not been called

    with My_Process() as process:
        process.setup().execute()
        print([t.task_name for t in process.executed_tasks], process.flow_status)
        print(process.captured_logs()[0]["msg"])


if __name__ == "__main__":
    main()
