"""The FastAPI application: routes over the front door (see :func:`create_app`)."""

from __future__ import annotations

import asyncio
import functools
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

import anyio
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException

import infersave
from infersave import (
    LLM,
    InputError,
    Instance,
    Prediction,
    Scenario,
    SolveResult,
    read_workloads,
    scenario_from_fields,
)
from infersave.service import errors
from infersave.service.body import BodyLimit
from infersave.service.errors import Busy, TooLarge
from infersave.service.guard import check_fields, check_scenario
from infersave.service.jobs import Item, Job, JobStore, TooManyJobs
from infersave.service.limits import Limits
from infersave.service.responses import SafeJSONResponse, encoded, model_json
from infersave.service.schemas import (
    BatchRequest,
    CompareRequest,
    ErrorBody,
    Health,
    JobStatus,
    PlanRequest,
    PredictRequest,
)

T = TypeVar("T")

DESCRIPTION = """Pick the cheapest cloud GPU instance, batch size and KV-cache offload ratio that
meets an LLM inference SLO (after InferSave, arXiv 2504.11816).

Bodies are the command line's JSON: `POST /v1/solve` takes a Scenario and answers the SolveResult
that `infersave solve -f json` prints (nothing feasible is still 200, with status `infeasible`
and the closest miss in `message`). Errors carry a one-line `message`: 422 bad input (the field
named), 413 too large, 429 too many at once. `POST /v1/batch` starts a job: poll
`GET /v1/jobs/{id}`, stream the rows from `GET /v1/jobs/{id}/results` (JSON Lines, or
`?format=csv` once done)."""

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (413, "Body, job or comparison too large"),
        (422, "Bad input; message names the field"),
        (429, "Too many requests or jobs at once; retry later"),
        (500, "Unexpected error (logged)"),
    )
}

_PREDICTION = TypeAdapter(Prediction)

JobId = Annotated[str, Path(max_length=64, description="The id `POST /v1/batch` answered.")]


def _warm_up() -> None:
    """Load the catalog and the MILP solver once, so the first request is not the slow one."""
    example = Scenario(
        model="opt-2.7b", input_len=1024, output_len=128, requests=1000, slo_tps=100, max_price=3
    )
    infersave.solve(example)
    infersave.solve(example.model_copy(update={"backend": "exhaustive"}))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read_file(text: str, fmt: str) -> list[tuple[int, Any]]:
    """The rows of a workloads file given as text (read by the batch module's reader).

    Raises:
        InputError: ``file: ...`` for anything that cannot be read as ``fmt`` (including
            text that is not valid Unicode and nesting too deep to parse).
    """
    if fmt == "yaml":
        _no_yaml_aliases(text)
    fd, path = tempfile.mkstemp(prefix="infersave-workloads-", suffix=f".{fmt}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(text)  # a lone surrogate is written as is: the reader says "not UTF-8"
        return list(read_workloads(path))
    except InputError as exc:
        raise InputError(f"file: {exc}".replace(repr(path), "the file")) from None
    except Exception as exc:  # the parsers' own errors (csv.Error, RecursionError, ...)
        raise InputError(f"file: cannot read it as {fmt}: {type(exc).__name__}: {exc}") from None
    finally:
        os.unlink(path)


def _no_yaml_aliases(text: str) -> None:
    """Refuse YAML anchors and aliases: a few bytes of them expand into gigabytes."""
    import yaml

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise InputError("file: YAML aliases (*name) are not accepted by the service")
    except yaml.YAMLError as exc:
        raise InputError(f"file: malformed YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise InputError("file: YAML nested too deeply") from None


def batch_items(req: BatchRequest, limits: Limits) -> list[Item]:
    """One ``(row, fields, scenario or error)`` per workload of the request; a bad row is an
    error for that row only (as in ``infersave batch``).

    Raises:
        TooLarge: more than ``limits.max_rows`` rows.
        InputError: a file that cannot be read at all.
    """
    if req.rows is not None:
        if len(req.rows) > limits.max_rows:
            raise TooLarge(f"{len(req.rows)} rows; this service takes {limits.max_rows} per job")
        raw: list[tuple[int, Any]] = list(enumerate(req.rows, 1))
    else:
        assert req.file is not None and req.format is not None
        raw = _read_file(req.file, req.format)
        if len(raw) > limits.max_rows:
            raise TooLarge(f"{len(raw)} rows; this service takes {limits.max_rows} per job")
    items: list[Item] = []
    for row, fields in raw:
        if isinstance(fields, Exception):
            items.append((row, {}, fields))
            continue
        if req.backend is not None and _blank(fields.get("backend")):
            fields = {**fields, "backend": req.backend}
        try:
            check_fields(fields)
            s = scenario_from_fields(fields, row)
            check_scenario(s, limits)
        except InputError as exc:
            msg = str(exc)
            items.append(
                (row, fields, InputError(msg if msg.startswith("row ") else f"row {row}: {msg}"))
            )
            continue
        items.append((row, fields, s))
    return items


def create_app(limits: Limits | None = None) -> FastAPI:
    """The service's FastAPI app, with its own job store and ``limits``."""
    limits = limits or Limits()
    store = JobStore(limits.max_jobs, limits.max_kept_jobs, limits.job_threads)
    pending = 0
    limiter: anyio.CapacityLimiter | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal limiter
        limiter = anyio.CapacityLimiter(limits.solve_threads)
        await anyio.to_thread.run_sync(_warm_up)
        yield
        await anyio.to_thread.run_sync(store.shutdown)

    app = FastAPI(
        title="infersave",
        version=infersave.__version__,
        description=DESCRIPTION,
        default_response_class=SafeJSONResponse,
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    errors.install(app)
    app.state.limits = limits
    app.state.jobs = store

    async def off_loop(fn: Callable[..., T], *args: Any) -> T:
        """Run a CPU-bound call in a worker thread; 429 when too many wait already."""
        nonlocal pending
        if pending >= limits.max_pending:
            raise Busy(f"{limits.max_pending} requests are being served; retry shortly")
        pending += 1
        try:
            return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=limiter)
        finally:
            pending -= 1

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness: answers as soon as the server is up (after the warm-up solve)."""
        return {"status": "ok", "version": infersave.__version__, "jobs_active": store.active()}

    # --- solve, predict, compare -------------------------------------------------------

    def run_solve(s: Scenario) -> SolveResult:
        check_scenario(s, limits)
        return infersave.solve(s)

    @app.post("/v1/solve", response_model=SolveResult, responses=ERRORS, tags=["solve"])
    async def solve(scenario: Scenario) -> Response:
        """The cheapest configuration that meets the SLO: the JSON of
        `infersave solve -f json` (status `infeasible` and the closest miss when nothing fits).
        """
        return model_json(await off_loop(run_solve, scenario))

    def run_predict(req: PredictRequest) -> Prediction:
        check_scenario(req.scenario, limits, offload_searched=req.offload_ratio is None)
        return infersave.predict(req.scenario, req.instance, req.gpu, req.offload_ratio)

    @app.post("/v1/predict", response_model=Prediction, responses=ERRORS, tags=["solve"])
    async def predict(body: PredictRequest) -> Response:
        """Memory, times, TPS and cost of one configuration (`infersave predict`): the record,
        and the memory constraints it violates (`problems`, empty when it fits)."""
        pred = await off_loop(run_predict, body)
        return Response(_PREDICTION.dump_json(pred), media_type="application/json")

    def run_compare(req: CompareRequest) -> dict[str, Any]:
        if len(req.scenarios) > limits.max_compare:
            raise TooLarge(
                f"{len(req.scenarios)} scenarios; this service compares {limits.max_compare}"
                " per request"
            )
        for i, s in enumerate(req.scenarios):
            try:
                check_scenario(s, limits)
            except InputError as exc:
                raise InputError(f"scenarios.{i}.{exc}") from None
        return infersave.compare(req.scenarios)

    @app.post("/v1/compare", response_model=dict[str, Any], responses=ERRORS, tags=["solve"])
    async def compare(body: CompareRequest) -> dict[str, Any]:
        """Every backend and the paper's heuristic on each scenario (`infersave compare -f
        json`): `{"summary": ..., "scenarios": [...]}`."""
        return await off_loop(run_compare, body)

    # --- fleet plans ---------------------------------------------------------------------

    def run_plan(req: PlanRequest) -> Any:
        if len(req.classes) > limits.max_plan_classes:
            raise TooLarge(
                f"{len(req.classes)} classes; this service plans {limits.max_plan_classes} per"
                " request"
            )
        if req.options.time_limit is not None and req.options.time_limit > limits.max_time_limit:
            raise InputError(
                f"options.time_limit: at most {limits.max_time_limit:g} s here, got"
                f" {req.options.time_limit:g}"
            )
        classes = []
        for i, fields in enumerate(req.classes):
            try:
                classes.append(infersave.class_from_fields(fields, i + 1))
            except InputError as exc:
                raise InputError(f"classes.{i}: {exc}") from None
        return infersave.plan(classes, req.options)

    @app.post("/v1/plan", response_model=infersave.PlanResult, responses=ERRORS, tags=["plan"])
    async def plan(body: PlanRequest) -> Any:
        """The cheapest fleet for several services (`infersave plan -f json`): its lines
        (instance type, count, TP, dtype, batch size, offload, share of each class's rate), $/h,
        per-class latency and headroom, and the greedy plan beside it; ``status`` is
        ``infeasible`` (with the binding constraint in ``message``) when no fleet fits."""
        return await off_loop(run_plan, body)

    # --- batch jobs ----------------------------------------------------------------------

    def run_submit(req: BatchRequest) -> Job:
        if store.active() >= limits.max_jobs:  # before reading thousands of rows for nothing
            raise TooManyJobs(
                f"{limits.max_jobs} batch jobs are queued or running; retry when one finishes"
            )
        return store.submit(batch_items(req, limits), req.name)

    @app.post(
        "/v1/batch", status_code=202, response_model=JobStatus, responses=ERRORS, tags=["batch"]
    )
    async def batch(body: BatchRequest) -> dict[str, Any]:
        """Start a batch job (`infersave batch` over HTTP): one result row per workload. Answers
        202 with the job; poll `GET /v1/jobs/{id}`. The job runs on even if this client
        disconnects."""
        job = await off_loop(run_submit, body)
        return job.status()

    def find(job_id: str) -> Job:
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r} (finished jobs are kept for a while)")
        return job

    @app.get("/v1/jobs", response_model=list[JobStatus], tags=["batch"])
    async def jobs() -> list[dict[str, Any]]:
        """Every job the server holds (active, and the latest finished)."""
        return [j.status() for j in store.list()]

    @app.get(
        "/v1/jobs/{job_id}",
        response_model=JobStatus,
        responses={404: {"model": ErrorBody}},
        tags=["batch"],
    )
    async def job_status(job_id: JobId) -> dict[str, Any]:
        """State and progress of a job: queued, running, done, failed or cancelled."""
        return find(job_id).status()

    @app.delete(
        "/v1/jobs/{job_id}",
        response_model=JobStatus,
        responses={404: {"model": ErrorBody}},
        tags=["batch"],
    )
    async def job_delete(job_id: JobId) -> dict[str, Any]:
        """Cancel an active job (it stops after the row or vector chunk being solved), or forget
        a finished one."""
        job = store.remove(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job.status()

    @app.get(
        "/v1/jobs/{job_id}/results",
        responses={
            200: {
                "description": "One row per workload, in input order",
                "content": {"application/x-ndjson": {}, "text/csv": {}},
            },
            404: {"model": ErrorBody},
            409: {"model": ErrorBody, "description": "CSV asked before the job is done"},
        },
        response_class=Response,
        tags=["batch"],
    )
    async def job_results(
        job_id: JobId,
        request: Request,
        format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
    ) -> Response:
        """The result rows of `infersave batch`: JSON Lines streamed as rows finish (the
        stream ends with the job), or CSV (the batch command's columns) once the job is done."""
        job = find(job_id)
        if format == "csv":
            if job.state != "done":
                raise HTTPException(409, f"job is {job.state}; CSV is ready when it is done")
            chunks = await off_loop(lambda: list(job.csv_chunks()))
            return StreamingResponse(
                encoded(chunks),
                media_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{job.id}.csv"'},
            )

        async def stream() -> AsyncIterator[bytes]:
            sent = 0
            while True:
                active = job.active
                lines = job.lines
                if sent < len(lines):
                    yield "".join(lines[sent:]).encode("utf-8", "backslashreplace")
                    sent = len(lines)
                elif not active:
                    return
                else:
                    await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    # --- catalog -------------------------------------------------------------------------

    @app.get("/v1/models", response_model=list[LLM], tags=["catalog"])
    async def models() -> list[LLM]:
        """The catalog's models (`infersave models -f json`)."""
        return list(infersave.models().values())

    @app.get("/v1/instances", response_model=list[Instance], responses=ERRORS, tags=["catalog"])
    async def instances(
        catalog: Annotated[str, Query(max_length=64, description="aws or paper-2025")] = "aws",
        region: Annotated[str | None, Query(max_length=64)] = None,
        gpu: Annotated[str | None, Query(max_length=64, description="e.g. L4")] = None,
        max_price: Annotated[float | None, Query(gt=0, allow_inf_nan=False)] = None,
        all: Annotated[bool, Query(description="Include excluded instances")] = False,
    ) -> list[Instance]:
        """Catalog instances (`infersave instances -f json`), cheapest first per region."""
        try:
            rows = infersave.instances(catalog)
        except ValueError as exc:
            raise InputError(f"catalog: {exc}") from None
        if region is not None and region not in {i.region for i in rows}:
            raise InputError(f"region: unknown region {region!r} in catalog {catalog!r}")
        if gpu is not None:
            names = {i.gpu.lower(): i.gpu for i in rows if i.gpu}
            if gpu.strip().lower() not in names:
                raise InputError(
                    f"gpu: unknown GPU {gpu!r}; use one of {', '.join(sorted(set(names.values())))}"
                )
            gpu = names[gpu.strip().lower()]
        out = [
            i
            for i in rows
            if (region is None or i.region == region)
            and (gpu is None or i.gpu == gpu)
            and (max_price is None or (i.on_demand_per_hour or 0) <= max_price)
            and (all or i.excluded is None)
        ]
        out.sort(key=lambda i: (i.region, i.on_demand_per_hour or 0, i.instance_type))
        return out

    return app
