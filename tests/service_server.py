"""Start ``infersave serve`` as a real process on a free loopback port, for the service tests.

The command is registered here the way ``cli/main.py`` registers its command modules, so the
process runs exactly ``infersave serve ...`` (with ``--port 0``: the server binds a free port
and prints it, so there is no race for the port).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

LAUNCH = """
import sys
from infersave.cli import main, serve_cmd
commands = main.app.registered_commands
if not any("serve" in (c.name, getattr(c.callback, "__name__", None)) for c in commands):
    serve_cmd.register(main.app)
sys.argv = ["infersave", *sys.argv[1:]]
main.run()
"""

STARTUP_S = 60.0


@contextlib.contextmanager
def running_server(log: Path, *args: str) -> Iterator[str]:
    """``infersave serve --port 0 *args`` on 127.0.0.1; yields its base URL once /healthz
    answers; terminates it (by its pid) on exit."""
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "serve", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        base = _wait_ready(proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_ready(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + STARTUP_S
    base = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        if base is None:
            m = re.search(r"serving on (http://127\.0\.0\.1:\d+)", log.read_text())
            base = m.group(1) if m else None
        if base is not None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    return base
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {STARTUP_S} s:\n{log.read_text()}")


def wait_job(client: httpx.Client, job_id: str, timeout_s: float = 120.0) -> dict:
    """Poll ``GET /v1/jobs/{id}`` until the job is no longer queued or running (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if status["state"] not in ("queued", "running"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {status}")
