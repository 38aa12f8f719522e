"""Make the screenshots of docs/ui.md: capture examples/quickstart.py into a fresh DuckDB file,
serve it with ``provwh serve`` and photograph the pages with headless Chromium.

    .venv/bin/python docs/screenshots.py      # writes docs/images/ui-*.png

Needs the ``serve`` extra and Chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


def shoot(chromium: str, url: str, out: Path, profile: str, size: str) -> None:
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000",  # the charts drawn
         f"--window-size={size}", f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    print(f"wrote {out.relative_to(ROOT)}")


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("screenshots.py needs Chromium: apt-get install -y chromium")
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="provwh-shots-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
        for _ in range(2):  # two runs: two workflows on the overview
            subprocess.run(
                [sys.executable, str(ROOT / "examples" / "quickstart.py")],
                cwd=tmp, env=env, check=True, capture_output=True, timeout=300,
            )  # fmt: skip
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "provwh.cli", "serve", "--duckdb", "provwh.duckdb",
             "--port", str(port)],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(300):
                try:
                    get(base + "/api/v1/health/live")
                    break
                except OSError:
                    time.sleep(0.1)
            import json

            wf = json.loads(get(base + "/api/v1/workflows?limit=1"))["items"][0]["workflow_id"]
            tasks = json.loads(get(f"{base}/api/v1/tasks?workflow_id={wf}&activity_id=train"))
            task = tasks["items"][-1]["task_id"]
            profile = os.path.join(tmp, "profile")
            shoot(chromium, base + "/", IMAGES / "ui-overview.png", profile, "1280,820")
            shoot(chromium, f"{base}/workflows/{wf}", IMAGES / "ui-workflow.png", profile,
                  "1280,2000")  # fmt: skip
            shoot(chromium, f"{base}/tasks/{task}", IMAGES / "ui-task.png", profile, "1280,1300")
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
