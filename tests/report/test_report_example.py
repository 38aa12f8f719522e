"""examples/report_card.py runs and writes the card and the PDF it announces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "report_card.py"


def test_report_card_example(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVWH_", "FLOWCEPT_"))}
    env["PROVWH_DUCKDB_ENABLED"] = "false"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("card: {'report_type': 'provenance_card'")
    assert lines[1].startswith("report: {'report_type': 'provenance_report'")
    card = (tmp_path / "provenance_card.md").read_text()
    assert "| Tasks | 14 (13 FINISHED, 1 ERROR) |" in card
    assert "Telemetry was captured for 3 of 14 tasks." in card
    assert (tmp_path / "provenance_report.pdf").read_bytes().startswith(b"%PDF-")
