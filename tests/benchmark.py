"""Benchmark of the CLI as whole processes (not collected by pytest; prints its figures).

Run from the repository root:

    python tests/benchmark.py                      # the issue #4 targets
    python tests/benchmark.py --workloads 2000 --exact-workloads 100 --backends milp,cp

Figures (wall time of each process, so start-up is included):

* ``infersave --help``: median of ``--repeats`` runs (target < 0.4 s);
* one ``infersave solve`` on the full us-east-1 catalog (default batch sizes 1..256, offload
  step 0.1, no price cap): median of ``--repeats`` runs (target < 1.5 s);
* ``infersave batch`` of ``--workloads`` generated workloads on us-east-1 with the exhaustive
  backend (target: 10,000 in < 10 s);
* ``infersave batch --workers N`` of ``--exact-workloads`` workloads with each exact backend
  registered in ``infersave.solver.registry.BACKENDS`` (target: milp >= 50 workloads/s with 2
  workers); a backend that is not registered is skipped with a message.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = (
    "opt-1.3b",
    "phi-3-mini",
    "llama-3.1-8b",
    "mistral-7b",
    "qwen2.5-7b",
    "gemma-2-9b",
    "qwen2.5-14b",
    "gemma-2-27b",
    "mixtral-8x7b",
    "llama-3.1-70b",
)


def infersave_cmd() -> list[str]:
    """The installed console script, else ``python -m infersave.cli.main``."""
    exe = shutil.which("infersave")
    return [exe] if exe else [sys.executable, "-m", "infersave.cli.main"]


def timed(args: list[str], check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall seconds of one process running ``args``."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if check and proc.returncode not in (0, 1):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(args)}\n{proc.stderr}")
    return wall, proc


def generate(path: Path, n: int, seed: int, backend: str, solver: str | None = None) -> None:
    """``n`` workloads on us-east-1 for ``backend``: chat, summarization and code completion
    mixes over :data:`MODELS`, SLOs from 100 to 20,000 TPS, caps none to $40/h, both billing
    modes; ``solver`` sets the MILP solver column."""
    rng = np.random.default_rng(seed)
    kinds = ((256, 1024, 64, 512), (2048, 6144, 64, 384), (256, 2048, 8, 96))
    cols = [
        "name",
        "model",
        "dtype",
        "input_len",
        "output_len",
        "requests",
        "slo_tps",
        "max_price",
        "region",
        "billing",
    ]
    cols.append("backend")
    if solver:
        cols.append("solver")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(n):
            lo_in, hi_in, lo_out, hi_out = kinds[i % 3]
            model = MODELS[int(rng.integers(len(MODELS)))]
            row = [
                f"svc-{i}",
                model,
                "fp8" if model in ("llama-3.1-70b", "gemma-2-27b") else "fp16",
                int(rng.integers(lo_in, hi_in)),
                int(rng.integers(lo_out, hi_out)),
                int(rng.choice([1000, 10_000, 100_000])),
                float(rng.choice([100, 500, 1000, 2000, 5000, 20_000])),
                rng.choice(["", "2", "5", "10", "40"]),
                "us-east-1",
                rng.choice(["hourly", "per-second"]),
            ]
            row.append(backend)
            if solver:
                row.append(solver)
            w.writerow(row)


def batch_run(
    cmd: list[str], src: Path, out: Path, workers: int
) -> tuple[float, dict[str, object]]:
    """Wall seconds and JSON summary of one ``infersave batch`` process (backend per row)."""
    args = [*cmd, "batch", str(src), "-o", str(out), "--format", "json"]
    if workers > 1:
        args += ["--workers", str(workers)]
    wall, proc = timed(args)
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    return wall, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="runs of --help and solve (median)")
    p.add_argument("--workloads", type=int, default=10_000, help="exhaustive batch size")
    p.add_argument("--exact-workloads", type=int, default=500, help="exact-backend batch size")
    p.add_argument("--workers", type=int, default=2, help="--workers for the exact backends")
    p.add_argument("--backends", default="milp,cp", help="exact backends to run, comma-separated")
    p.add_argument("--milp-solver", default=None, help="cbc or highs (default: the scenario's)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    cmd = infersave_cmd()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, command: {' '.join(cmd)}")

    helps = [timed([*cmd, "--help"])[0] for _ in range(a.repeats)]
    print(f"infersave --help: median {statistics.median(helps):.3f} s (target < 0.4 s)")

    solve = [
        *cmd,
        "solve",
        "--model",
        "llama-3.1-8b",
        "--input-len",
        "1024",
        "--output-len",
        "256",
        "--requests",
        "10000",
        "--slo-tps",
        "2000",
        "--region",
        "us-east-1",
        "--format",
        "json",
    ]
    for backend in ("default", "exhaustive"):
        extra = [] if backend == "default" else ["--backend", backend]
        solves = [timed([*solve, *extra])[0] for _ in range(a.repeats)]
        print(
            f"infersave solve, {backend} backend (us-east-1, batch 1..256, step 0.1): median"
            f" {statistics.median(solves):.3f} s (target < 1.5 s)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = d / "workloads.csv"
        generate(src, a.workloads, a.seed, "exhaustive")
        wall, s = batch_run(cmd, src, d / "out.csv", 1)
        print(
            f"infersave batch, exhaustive, {a.workloads} workloads: {wall:.2f} s wall,"
            f" {a.workloads / wall:,.0f} workloads/s ({s['feasible']} feasible,"
            f" {s['infeasible']} infeasible, {s['errors']} errors) (target 10,000 in < 10 s)"
        )

        from infersave.solver.registry import BACKENDS

        for backend in [b.strip() for b in a.backends.split(",") if b.strip()]:
            if backend not in BACKENDS:
                print(f"infersave batch, {backend}: skipped (backend not registered)")
                continue
            src = d / f"workloads_{backend}.csv"
            solver = a.milp_solver if backend == "milp" else None
            generate(src, a.exact_workloads, a.seed + 1, backend, solver)
            wall, s = batch_run(cmd, src, d / f"out_{backend}.csv", a.workers)
            target = " (target >= 50 workloads/s)" if backend == "milp" else ""
            print(
                f"infersave batch, {backend}{'/' + solver if solver else ''}, --workers"
                f" {a.workers}, {a.exact_workloads}"
                f" workloads: {wall:.2f} s wall, {a.exact_workloads / wall:,.1f} workloads/s"
                f" ({s['feasible']} feasible, {s['infeasible']} infeasible, {s['errors']}"
                f" errors){target}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
