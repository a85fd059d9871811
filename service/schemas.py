"""Request and response bodies the front door has no model for. Scenarios and results are the
front door's own models (one definition for the command line's JSON and the OpenAPI document);
these only wrap them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from infersave import PlanOptions, Scenario


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PredictRequest(_Body):
    """One configuration to predict: the scenario (with ``batch_size``) on ``instance`` (in the
    scenario's region) or on one bare ``gpu``; exactly one of the two. ``offload_ratio``: the
    KV-cache share kept in host memory; by default the smallest level of the grid that fits."""

    scenario: Scenario
    instance: str | None = Field(default=None, min_length=1, examples=["g5.xlarge"])
    gpu: str | None = Field(default=None, min_length=1, examples=["L4"])
    offload_ratio: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_target(self) -> PredictRequest:
        if (self.instance is None) == (self.gpu is None):
            raise ValueError("give exactly one of instance or gpu")
        if self.scenario.batch_size is None:
            raise ValueError("scenario.batch_size is required for predict")
        return self


class CompareRequest(_Body):
    """Scenarios to search with every backend and the paper's heuristic."""

    scenarios: list[Scenario] = Field(min_length=1)


WorkloadFormat = Literal["csv", "jsonl", "yaml"]


class BatchRequest(_Body):
    """A batch job: ``rows`` (one mapping of Scenario fields per workload, as a JSON Lines file
    holds; ``name``, ``service`` and ``id`` are copied to the output) or ``file`` (the text of a
    workloads file) with its ``format``; exactly one. A bad row becomes an ``error`` row of the
    results, as in ``infersave batch``. ``backend`` applies to rows that do not name one;
    ``name`` labels the job."""

    rows: list[dict[str, Any]] | None = None
    file: str | None = None
    format: WorkloadFormat | None = None
    backend: Literal["exhaustive", "milp", "cp"] | None = None
    name: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_source(self) -> BatchRequest:
        if (self.rows is None) == (self.file is None):
            raise ValueError("give exactly one of rows or file")
        if self.file is not None and self.format is None:
            raise ValueError("format is required with file: csv, jsonl or yaml")
        return self


JobState = Literal["queued", "running", "done", "failed", "cancelled"]


class JobStatus(BaseModel):
    """A batch job. ``done`` counts rows finished so far; ``feasible``, ``infeasible`` and
    ``errors`` are filled as rows finish. ``results`` is where the JSON Lines rows stream from
    (while running too); ``results_csv`` the CSV download once ``done``."""

    id: str
    name: str | None
    state: JobState
    rows: int
    done: int
    feasible: int
    infeasible: int
    errors: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    wall_seconds: float | None
    message: str
    results: str
    results_csv: str


class Health(BaseModel):
    """``ok`` when the server answers; the package version and the jobs it holds."""

    status: Literal["ok"]
    version: str
    jobs_active: int


class ErrorBody(BaseModel):
    """Every error: ``message`` is one line; ``detail`` is that line, or for a request that
    fails validation the list of pydantic errors (``loc`` names the field)."""

    detail: str | list[dict[str, Any]]
    message: str


class PlanRequest(_Body):
    """A fleet plan (``infersave plan`` over HTTP): ``classes``, one mapping per service with the
    fields of a workloads file's row (the Scenario fields plus ``rate_rps``, ``ttft_slo``,
    ``tpot_slo``, ``instances``; ``service`` or ``name`` names it), and the plan's ``options``
    (budget, quotas, max counts, mode, deadline, spot, backend: those of ``infersave plan``)."""

    classes: list[dict[str, Any]] = Field(min_length=1)
    options: PlanOptions = Field(default_factory=PlanOptions)
