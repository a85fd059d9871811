"""Batch jobs: a bounded in-memory registry and the threads that run them.

A job is a list of ``(row, raw fields, scenario or error)``; a worker thread solves it in chunks
with :func:`~infersave.solve_many` (progress reported as rows finish; a cancel stops it at the
next progress report) and keeps the output rows as JSON Lines text (:func:`~infersave.result_row`,
:func:`~infersave.render_rows`), about 1 kB per row. Jobs belong to the server, not to the
request that submitted them: a client that disconnects leaves its job running.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infersave import render_rows, result_row, solve_many

log = logging.getLogger("infersave.service")

CHUNK_ROWS = 2000
"""Rows per :func:`solve_many` call: the unit in which results become available."""

Item = tuple[int, dict[str, Any], Any]
"""One workload: row number, raw fields, Scenario or the exception that rejected it."""


class TooManyJobs(Exception):
    """The registry holds ``max_jobs`` active jobs already (answered 429)."""


class _Cancelled(Exception):
    """Raised from the progress callback to stop :func:`solve_many` mid-chunk."""


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    """One batch job and its results so far (``lines``: JSON Lines text, in row order)."""

    id: str
    name: str | None
    items: Sequence[Item]
    rows: int = 0
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    done: int = 0
    feasible: int = 0
    infeasible: int = 0
    errors: int = 0
    message: str = ""
    lines: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def status(self) -> dict[str, Any]:
        """The fields of :class:`~infersave.service.schemas.JobStatus`."""
        end = self.finished if self.finished is not None else time.time()
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "rows": self.rows,
            "done": self.done,
            "feasible": self.feasible,
            "infeasible": self.infeasible,
            "errors": self.errors,
            "created_at": _iso(self.created),
            "started_at": _iso(self.started),
            "finished_at": _iso(self.finished),
            "wall_seconds": None if self.started is None else round(end - self.started, 3),
            "message": self.message,
            "results": f"/v1/jobs/{self.id}/results",
            "results_csv": f"/v1/jobs/{self.id}/results?format=csv",
        }

    def rows_out(self) -> list[dict[str, Any]]:
        """The output rows (parsed back from the kept JSON Lines)."""
        return [json.loads(line) for line in self.lines]

    def csv_chunks(self) -> Iterator[str]:
        """The results as CSV text chunks (the batch module's columns)."""
        return render_rows(self.rows_out(), "csv")


class JobStore:
    """The registry: at most ``max_jobs`` queued or running jobs (:class:`TooManyJobs` beyond),
    and at most ``max_kept`` finished ones (the oldest finished are dropped first)."""

    def __init__(self, max_jobs: int, max_kept: int, threads: int = 1) -> None:
        self.max_jobs = max_jobs
        self.max_kept = max_kept
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="infersave-job")

    def active(self) -> int:
        with self._lock:
            return sum(j.active for j in self._jobs.values())

    def submit(self, items: Sequence[Item], name: str | None = None) -> Job:
        """Register a job and queue it. Raises :class:`TooManyJobs` when the store is full."""
        with self._lock:
            if sum(j.active for j in self._jobs.values()) >= self.max_jobs:
                raise TooManyJobs(
                    f"{self.max_jobs} batch jobs are queued or running; retry when one finishes"
                )
            job = Job(id=uuid.uuid4().hex, name=name, items=items, rows=len(items))
            self._jobs[job.id] = job
            self._evict()
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def remove(self, job_id: str) -> Job | None:
        """Cancel an active job (it stops at the next chunk), or forget a finished one."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.active:
                job.cancel.set()
            else:
                del self._jobs[job_id]
            return job

    def shutdown(self) -> None:
        """Cancel every active job and wait for the worker threads."""
        for job in self.list():
            job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _evict(self) -> None:
        finished = sorted(
            (j for j in self._jobs.values() if not j.active), key=lambda j: j.finished or 0
        )
        for job in finished[: max(0, len(finished) - self.max_kept)]:
            del self._jobs[job.id]

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            self._finish(job, "cancelled", "cancelled before it started")
            return
        job.state, job.started = "running", time.time()
        try:
            for start in range(0, job.rows, CHUNK_ROWS):
                self._solve_chunk(job, job.items[start : start + CHUNK_ROWS])
        except _Cancelled:
            job.done = len(job.lines)
            self._finish(job, "cancelled", f"cancelled; the first {job.done} rows were solved")
            return
        except Exception as exc:  # a bug: fail this job, keep the server
            log.exception("batch job %s failed", job.id)
            self._finish(job, "failed", f"{type(exc).__name__}: {exc}".splitlines()[0])
            return
        self._finish(job, "done", "")

    def _solve_chunk(self, job: Job, part: Sequence[Item]) -> None:
        base = job.done

        def progress(n: int) -> None:
            job.done += n
            if job.cancel.is_set():  # stop after this row (exact backends) or vector chunk
                raise _Cancelled

        if job.cancel.is_set():
            raise _Cancelled
        outcomes = solve_many([s for _, _, s in part], progress=progress)
        rows = []
        for (row, fields, s), outcome in zip(part, outcomes, strict=True):
            scenario = None if isinstance(s, Exception) else s
            rows.append(finite(result_row(row, fields, outcome, scenario)))
            if isinstance(outcome, Exception):
                job.errors += 1
            elif outcome.status == "ok":
                job.feasible += 1
            else:
                job.infeasible += 1
        job.lines.extend(render_rows(rows, "jsonl"))
        job.done = base + len(part)

    def _finish(self, job: Job, state: str, message: str) -> None:
        with self._lock:
            job.state, job.message, job.finished = state, message, time.time()
            job.items = ()  # the results are kept; the scenarios are not needed again
            self._evict()
