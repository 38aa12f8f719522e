"""Capture offline (no database), then load the buffer file into the warehouse later.

    PROVWH_DB_FLUSH_MODE=offline python examples/offline_then_load.py
    provwh load flowcept_buffer.jsonl          # into provwh.duckdb (or PROVWH_POSTGRES_URL)

Run without the variable, the script sets offline mode itself and then loads the file with
the same loader `provwh load` uses.
"""

import os

os.environ.setdefault("PROVWH_DB_FLUSH_MODE", "offline")

from provwh import Flowcept, flowcept_task  # noqa: E402


@flowcept_task(output_names="area")
def area(w: float, h: float) -> float:
    return w * h


if __name__ == "__main__":
    with Flowcept(workflow_name="offline_run"):
        for w in range(1, 4):
            area(w, 2.0)
    print("captured:", len(Flowcept.read_buffer_file()), "messages")

    from provwh.core.config import load_settings
    from provwh.warehouse.engines import targets_from_settings
    from provwh.warehouse.loader import Loader

    loader = Loader(targets_from_settings(load_settings()))
    stats = loader.load_file("flowcept_buffer.jsonl")
    loader.close()
    print(stats.summary())
