"""``infersave serve``: the HTTP service (FastAPI and uvicorn, imported only when it runs)."""

from __future__ import annotations

from typing import Annotated

import typer

from infersave.cli.common import fail

SERVE_HELP = """Serve the solver over HTTP: POST /v1/solve, /v1/predict, /v1/compare, /v1/batch;
GET /v1/jobs/{id}, /v1/instances, /v1/models, /healthz. The bodies are the JSON of the
commands (`solve -f json` is what POST /v1/solve answers); the OpenAPI document is at
/openapi.json and interactive docs at /docs. Binds to 127.0.0.1 unless --host says otherwise.

Example:

  infersave serve --port 8000

  curl -s localhost:8000/v1/solve -H 'content-type: application/json' -d '{"model":
  "opt-2.7b", "input_len": 1024, "output_len": 128, "requests": 1000, "slo_tps": 100,
  "max_price": 3}'
"""


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to bind (0: any free port).")
    ] = 8000,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Largest request body, MB (413 above).")
    ] = 16.0,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Rows per batch job (413 above).")
    ] = 100_000,
    max_jobs: Annotated[
        int,
        typer.Option("--max-jobs", min=1, help="Batch jobs queued or running at once (429 above)."),
    ] = 4,
) -> None:
    from infersave.service.limits import MB, Limits
    from infersave.service.server import run

    if not max_body_mb > 0:
        fail(f"--max-body-mb must be positive, got {max_body_mb}")
    limits = Limits(max_body_bytes=int(max_body_mb * MB), max_rows=max_rows, max_jobs=max_jobs)
    try:
        run(host, port, limits)
    except OSError as exc:
        fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``infersave`` app."""
    app.command(name="serve", help=SERVE_HELP)(serve)
