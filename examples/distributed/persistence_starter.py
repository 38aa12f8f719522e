"""The one persistence process of a distributed run: names the workflow and loads batches.

Start it first (e.g. at the top of an HPC job), then the producers with the workflow id:

    python persistence_starter.py &          # writes workflow_id.txt, loads until stopped
    python distributed_tasks.py `cat workflow_id.txt`

Producers and this process share the spool folder (buffer.spool_dir, or PROVWH_SPOOL_DIR).
Stop this process with Ctrl+C or SIGTERM: it loads what the producers left in the spool folder
and exits. A second Ctrl+C (or SIGTERM) while it loads leaves the rest in the spool folder, for
`provwh load` or the next start.
"""

import signal
import threading

from provwh import Flowcept

if __name__ == "__main__":
    flowcept = Flowcept(
        workflow_name="distributed_process_example", start_persistence=True, check_safe_stops=False
    )
    with open("workflow_id.txt", "w") as f:
        f.write(flowcept.current_workflow_id)  # links the producers' tasks to this workflow
    flowcept.start()
    print("persistence started for workflow", flowcept.current_workflow_id, flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a second one: leave the rest
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    flowcept.stop()  # loads what is left, then returns
    print("persistence stopped", flush=True)
