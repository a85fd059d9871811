"""What one server accepts: body size, rows per job, concurrent jobs and requests, search size."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1_000_000


@dataclass(frozen=True)
class Limits:
    """The service's limits. Exceeding one is answered, never a crash: 413 for a body or a job
    that is too large, 429 for too many jobs or requests at once, 422 for a scenario whose
    search the service will not run.

    Attributes:
        max_body_bytes: largest request body (413 above it).
        max_rows: rows per batch job (413 above it).
        max_jobs: batch jobs queued or running at once (429 above it).
        max_kept_jobs: finished jobs whose results are kept for download (oldest dropped).
        job_threads: batch jobs that run at the same time (the others wait, ``queued``).
        max_compare: scenarios per ``/v1/compare`` request (413 above it).
        max_plan_classes: services per ``/v1/plan`` request (413 above it).
        max_pending: solve, predict and compare requests being served or waiting at once
            (429 above it).
        solve_threads: threads that run those requests (off the event loop).
        max_grid: batch sizes x offload levels searched per instance for one scenario (422
            above it: a tiny ``offload_step`` would otherwise allocate without bound).
        max_time_limit: largest ``time_limit`` a scenario may ask of an exact solver, seconds.
    """

    max_body_bytes: int = 16 * MB
    max_rows: int = 100_000
    max_jobs: int = 4
    max_kept_jobs: int = 32
    job_threads: int = 1
    max_compare: int = 100
    max_plan_classes: int = 200
    max_pending: int = 64
    solve_threads: int = 4
    max_grid: int = 10_000
    max_time_limit: float = 60.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
