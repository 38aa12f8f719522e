"""Capture a small workflow, then write its Workflow Card (Markdown) and report (PDF).

Run `python examples/report_card.py` in any folder (needs `pip install 'provwh[report]'`): it
writes `flowcept_buffer.jsonl`, `provenance_card.md` and `provenance_report.pdf` there, prints
what `generate_report` returned and, with `--print`, renders the card in the terminal.
"""

import sys
import time

from provwh import Flowcept, FlowceptLoop, FlowceptTask, flowcept_task, telemetry_flowcept_task
from provwh.report import generate_report


@flowcept_task(output_names="path")
def download(dataset: str) -> str:
    time.sleep(0.01)
    return f"data/{dataset}.csv"


@flowcept_task(output_names="rows")
def clean_part(path: str, part: int) -> int:
    time.sleep(0.002)
    return 1000 - part * 7


@flowcept_task(output_names="rows")
def clean(path: str, parts: int = 4) -> int:
    return sum(clean_part(path, p) for p in range(parts))


@telemetry_flowcept_task
def train_epoch(rows: int, epoch: int) -> dict:
    total = sum(i * i for i in range(50_000))  # some CPU work for the telemetry page
    return {"loss": round(1.0 / (epoch + 1), 4), "checksum": total % 97}


@flowcept_task
def validate(threshold: float) -> float:
    raise ValueError(f"accuracy below {threshold}")


def main() -> None:
    with Flowcept(workflow_name="report_demo", workflow_args={"dataset": "iris"}):
        path = download("iris")
        rows = clean(path)
        loop = FlowceptLoop(range(3), loop_name="training", item_name="epoch")
        for epoch in loop:
            loop.end_iter(train_epoch(rows, epoch))
        try:
            validate(0.99)
        except ValueError:
            pass  # recorded with status ERROR; the card lists it
        with FlowceptTask(activity_id="save_model", used={"rows": rows}) as task:
            task.end(data=b"\x00weights", generated={"model_path": "models/iris.pt"})

    card = generate_report(print_markdown="--print" in sys.argv[1:])
    print("card:", card)
    report = generate_report(report_type="provenance_report", format="pdf")
    print("report:", report)


if __name__ == "__main__":
    main()
