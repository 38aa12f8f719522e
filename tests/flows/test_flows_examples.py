"""Every flows example runs as written (the reference document's examples, adapted)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED = {
    "flows_decorator.py": "returned: [1, 2, 3]",
    "flows_class.py": "as expected: Setup has not been called",
    "flows_errors.py": "flow failed with the task's own exception: x must be positive",
    "flows_async.py": "in the running loop: [0, 1, 4]",
    "flows_events.py": "new result: loss 0.25",
    "flows_provenance.py": "True standalone FINISHED",
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("flows_*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name, capsys):
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert EXPECTED[name] in capsys.readouterr().out
