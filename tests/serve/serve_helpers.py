"""Helpers for the serve tests: the server subprocess, loading the parity fixture, Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pg_support import free_port
from query_helpers import load, parity_batches, write_batches

STARTUP_TIMEOUT = 60.0


def load_parity(engine: str, location: str, folder: Path) -> None:
    """The query tests' parity fixture (3 workflows, 2 campaigns, 18 tasks) into a database."""
    paths = write_batches(folder, parity_batches())
    if engine == "duckdb":
        from provwh.warehouse.duck import DuckTarget

        load(DuckTarget(location), paths)
    else:
        from provwh.warehouse.pg import PgTarget

        load(PgTarget(location), paths)


class Server:
    """``python -m provwh.cli serve OPTIONS --port <free port>``, answering once started."""

    def __init__(self, options: list[str], folder: Path, env: dict[str, str] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.engine = "duckdb" if "--duckdb" in options else "postgres"
        self.out_path, self.err_path = folder / "stdout.txt", folder / "stderr.txt"
        cmd = [sys.executable, "-m", "provwh.cli", "serve", *options, "--port", str(self.port)]
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=folder, stdout=out, stderr=err, env={**os.environ, **(env or {})}
            )
        self.client = httpx.Client(base_url=self.url, timeout=60)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"provwh serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if self.client.get("/api/v1/health/live").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"provwh serve did not answer in {STARTUP_TIMEOUT} s:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.out_path.read_text() + self.err_path.read_text()

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig``; the exit code."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"provwh serve did not stop {timeout} s after {sig!r}")
        return self.proc.returncode

    def stop_checked(self) -> None:
        """Stop it; a clean stop exits 0 and says so, with nothing on stderr but warnings."""
        if self.proc.poll() is not None:
            return
        rc = self.stop()
        out = self.out_path.read_text()
        assert rc == 0, self.output()
        assert out.endswith("provwh serve: stopped\n"), self.output()
        assert "Traceback" not in self.err_path.read_text(), self.output()


# --- Chromium -----------------------------------------------------------------------------------


def chromium() -> str:
    """The system's Chromium; the tests fail (never skip) without it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "the UI tests need a headless Chromium: apt-get install -y chromium"
            " (.ci/run installs it)"
        )
    return found


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def dump_dom(url: str, profile: Path) -> str:
    """The page's DOM after Chromium loaded it."""
    done = _chromium(["--dump-dom", url], profile)
    assert done.returncode == 0, done.stderr
    return done.stdout


def screenshot(url: str, path: Path, profile: Path, size: str = "1280,900") -> Path:
    done = _chromium([f"--window-size={size}", f"--screenshot={path}", url], profile)
    assert done.returncode == 0 and path.exists(), done.stderr
    return path


def colors_of(path: Path) -> tuple[int, float]:
    """Distinct colors of a PNG, and the share of its most common color."""
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB")
        counts = rgb.getcolors(maxcolors=1 << 24)
        total = rgb.width * rgb.height
    return len(counts), max(n for n, _ in counts) / total
