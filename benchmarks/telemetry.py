"""Cost of a telemetry snapshot, the price paid twice per task when telemetry is on.

Run: ``python benchmarks/telemetry.py [snapshots]``. Prints microseconds per snapshot (best of
five rounds, so background noise does not count) and the ratio to a plain Python call measured
in the same run, which makes numbers from different machines comparable.
"""

from __future__ import annotations

import sys
import timeit

from provwh.capture.telemetry import CATEGORIES, TelemetryCapture, gpu_available

ROUNDS = 5


def per_call_us(stmt: str, number: int, **names: object) -> float:
    """Best of ``ROUNDS`` rounds of ``number`` runs of ``stmt``, in microseconds per run."""
    return min(timeit.repeat(stmt, number=number, repeat=ROUNDS, globals=names)) / number * 1e6


def plain(x):
    return x + 1


def main() -> None:
    number = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    number = max(number, 2000)
    default = TelemetryCapture()
    everything = TelemetryCapture(**dict.fromkeys(CATEGORIES, True))
    psutil_path = TelemetryCapture()
    psutil_path._procfs = False  # what reading the same through psutil would cost

    call = per_call_us("f(1)", number * 100, f=plain)
    rows = [
        ("default snapshot (cpu, memory, process, gpu)", default),
        ("all categories (+ per_cpu, disk, network)", everything),
        ("default categories read through psutil", psutil_path),
    ]
    print(f"{number} snapshots x {ROUNDS} rounds; GPU available: {gpu_available()}")
    print(f"plain Python call: {call:.3f} us")
    for label, capture in rows:
        us = per_call_us("snap()", number, snap=capture.snapshot)
        print(f"{label:<48} {us:8.1f} us  ({us / call:,.0f}x a plain call)")


if __name__ == "__main__":
    main()
