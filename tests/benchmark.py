"""Benchmark of the CLI as whole processes (not collected by pytest; prints its figures).

Run from the repository root:

    python tests/benchmark.py                      # the issue #4 and #12 targets
    python tests/benchmark.py --workloads 2000 --large-workloads 0 --backends milp,cp

Figures (wall time of each process, so start-up is included; peak memory is the largest
resident set of the process or of one of its workers, from ``os.wait4``):

* ``infersave --help``: median of ``--repeats`` runs (target <= 0.1 s);
* one ``infersave solve`` on the full us-east-1 catalog (default batch sizes 1..256, offload
  step 0.1, no price cap): median of ``--repeats`` runs (target <= 0.2 s);
* ``infersave batch`` of ``--workloads`` generated workloads on us-east-1 with the exhaustive
  backend, with ``--workers 1`` and ``--workers 2``: median wall and peak memory of
  ``--batch-repeats`` runs (target: 10,000 in <= 1.5 s);
* the same for ``--large-workloads`` workloads, one run (target: 100,000 with a peak memory
  <= 1 GiB; the memory must not grow with the number of workloads);
* with ``--dask``, the exhaustive batch again with ``--engine dask --workers 2`` (a local
  cluster, started and stopped by the command): wall time, and the same output bytes;
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


PACKAGES = (
    "infersave",
    "infersave.cli",
    "infersave.solver",
    "infersave.formulations",
    "infersave.catalog",
    "infersave.catalog.readers",
    "infersave.exporters",
)
"""The packages a CLI process imports modules of (compiled by :func:`bytecode_cache`)."""

ENV: dict[str, str] | None = None
"""The children's environment (None: this one's), see :func:`bytecode_cache`."""


def bytecode_cache(prefix: Path) -> dict[str, str]:
    """This environment with Python's bytecode cache on, in ``prefix``, and the package
    compiled there: an installed package starts from its compiled modules (pip compiles them
    at install), whereas an editable install under ``PYTHONDONTWRITEBYTECODE=1`` compiles every
    module of the package at every start (tens of milliseconds)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    import importlib.util

    dirs = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(spec.submodule_search_locations)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-l", *dirs], env=env, check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return env


def timed(args: list[str], check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall seconds of one process running ``args``."""
    wall, _, proc = measured(args, check)
    return wall, proc


def measured(
    args: list[str], check: bool = True
) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    """Wall seconds and peak resident memory (KiB: the largest of the process and its
    waited-for children, e.g. a batch's workers) of one process running ``args``."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=ENV)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(args, child.returncode, out.read(), err.read())
    if check and proc.returncode not in (0, 1):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(args)}\n{proc.stderr}")
    return wall, int(usage.ru_maxrss), proc


def generate(
    path: Path,
    n: int,
    seed: int,
    backend: str,
    solver: str | None = None,
    region: str = "us-east-1",
) -> None:
    """``n`` workloads in ``region`` (``all``: every region of every shipped cloud) for
    ``backend``: chat, summarization and code completion mixes over :data:`MODELS`, SLOs from
    100 to 20,000 TPS, caps none to $40/h, both billing modes; ``solver`` sets the MILP solver
    column."""
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
                region,
                rng.choice(["hourly", "per-second"]),
            ]
            row.append(backend)
            if solver:
                row.append(solver)
            w.writerow(row)


def batch_run(
    cmd: list[str], src: Path, out: Path, workers: int, engine: str = "local"
) -> tuple[float, int, dict[str, object]]:
    """Wall seconds, peak memory (KiB) and JSON summary of one ``infersave batch`` process
    (backend per row)."""
    args = [*cmd, "batch", str(src), "-o", str(out), "--format", "json"]
    if workers > 1:
        args += ["--workers", str(workers)]
    if engine != "local":
        args += ["--engine", engine]
    wall, rss, proc = measured(args)
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    return wall, rss, summary


def exhaustive_batch(
    cmd: list[str], d: Path, n: int, seed: int, repeats: int, dask: bool = False
) -> None:
    """Median wall and peak memory of ``repeats`` exhaustive batches of ``n`` workloads, with
    one and two workers (and on a local dask cluster of two with ``dask``); the outputs must be
    identical. (The peak of a dask run is the parent's only: its workers are not waited for.)"""
    src = d / f"workloads_{n}.csv"
    generate(src, n, seed, "exhaustive")
    outputs = []
    engines = [("local", 1), ("local", 2)] + ([("dask", 2)] if dask else [])
    for engine, workers in engines:
        out = d / f"out_{n}_{workers}.csv"
        runs = [batch_run(cmd, src, out, workers, engine) for _ in range(repeats)]
        wall = statistics.median(r[0] for r in runs)
        rss = statistics.median(r[1] for r in runs)
        s = runs[-1][2]
        target = ""
        if n == 10_000:
            target = " (target <= 1.5 s)"
        elif n >= 100_000:
            target = " (target: peak <= 1 GiB)"
        where = f"--workers {workers}" + (f" --engine {engine}" if engine != "local" else "")
        print(
            f"infersave batch, exhaustive, {n:,} workloads, {where}:"
            f" {wall:.2f} s wall (median of {repeats}), {n / wall:,.0f} workloads/s, peak"
            f" {rss / 1024:,.0f} MiB ({s['feasible']} feasible, {s['infeasible']} infeasible,"
            f" {s['errors']} errors){target}"
        )
        outputs.append(out.read_bytes())
        out.unlink()
    if any(o != outputs[0] for o in outputs):
        raise SystemExit(f"{engines} wrote different outputs for {n} workloads")
    src.unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="runs of --help and solve (median)")
    p.add_argument("--workloads", type=int, default=10_000, help="exhaustive batch size")
    p.add_argument(
        "--large-workloads", type=int, default=100_000, help="large exhaustive batch (0: skip)"
    )
    p.add_argument("--batch-repeats", type=int, default=3, help="runs of the exhaustive batch")
    p.add_argument(
        "--all-regions-workloads", type=int, default=2000, help="batch over --region all (0: skip)"
    )
    p.add_argument("--exact-workloads", type=int, default=500, help="exact-backend batch size")
    p.add_argument("--workers", type=int, default=2, help="--workers for the exact backends")
    p.add_argument("--backends", default="milp,cp", help="exact backends to run, comma-separated")
    p.add_argument("--milp-solver", default=None, help="cbc or highs (default: the scenario's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dask", action="store_true", help="also the exhaustive batch on a local dask cluster"
    )
    p.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run the children in this environment as it is (by default they get a bytecode"
        " cache, as an installed package has: see bytecode_cache)",
    )
    a = p.parse_args(argv)

    global ENV
    cmd = infersave_cmd()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, command: {' '.join(cmd)}")
    pycache = tempfile.TemporaryDirectory(prefix="infersave-pycache-")
    if not a.no_bytecode_cache:
        ENV = bytecode_cache(Path(pycache.name))
        print("bytecode: cached in a temporary PYTHONPYCACHEPREFIX (as an installed package)")
    else:
        dont = os.environ.get("PYTHONDONTWRITEBYTECODE")
        print(f"bytecode: this environment's (PYTHONDONTWRITEBYTECODE={dont or 'unset'})")

    helps = [timed([*cmd, "--help"])[0] for _ in range(a.repeats)]
    print(f"infersave --help: median {statistics.median(helps):.3f} s (target <= 0.1 s)")

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
            f" {statistics.median(solves):.3f} s (target <= 0.2 s)"
        )

    # every provider and region at once (issue 11): one solve, and a batch
    everywhere = [*solve[: solve.index("--region") + 1], "all", "--format", "json"]
    walls, out = [], None
    for _ in range(a.repeats):
        wall, out = timed(everywhere)
        walls.append(wall)
    n_cand = json.loads(out.stdout)["candidates"] if out is not None else 0
    print(
        f"infersave solve --region all (every shipped cloud): median"
        f" {statistics.median(walls):.3f} s over {n_cand:,} candidates"
    )

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if a.all_regions_workloads:
            src = d / "workloads_all_regions.csv"
            generate(src, a.all_regions_workloads, a.seed + 2, "exhaustive", region="all")
            wall, rss, summary = batch_run(cmd, src, d / "out_all_regions.csv", 1)
            print(
                f"infersave batch, exhaustive, {a.all_regions_workloads:,} workloads, --region"
                f" all: {wall:.2f} s wall, {a.all_regions_workloads / wall:,.0f} workloads/s,"
                f" peak {rss / 1024:,.0f} MiB ({summary['feasible']} feasible,"
                f" {summary['infeasible']} infeasible, {summary['errors']} errors)"
            )
        if a.workloads:
            exhaustive_batch(cmd, d, a.workloads, a.seed, a.batch_repeats, a.dask)
        if a.large_workloads:
            exhaustive_batch(cmd, d, a.large_workloads, a.seed, 1)

        from infersave.solver.registry import BACKENDS

        for backend in [b.strip() for b in a.backends.split(",") if b.strip()]:
            if backend not in BACKENDS:
                print(f"infersave batch, {backend}: skipped (backend not registered)")
                continue
            src = d / f"workloads_{backend}.csv"
            solver = a.milp_solver if backend == "milp" else None
            generate(src, a.exact_workloads, a.seed + 1, backend, solver)
            wall, _, s = batch_run(cmd, src, d / f"out_{backend}.csv", a.workers)
            target = " (target >= 50 workloads/s)" if backend == "milp" else ""
            print(
                f"infersave batch, {backend}{'/' + solver if solver else ''}, --workers"
                f" {a.workers}, {a.exact_workloads}"
                f" workloads: {wall:.2f} s wall, {a.exact_workloads / wall:,.1f} workloads/s"
                f" ({s['feasible']} feasible, {s['infeasible']} infeasible, {s['errors']}"
                f" errors){target}"
            )
    pycache.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
