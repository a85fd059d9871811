"""Benchmark (not a test): fleet plans of 20 classes over the full us-east-1 catalog with HiGHS.

Each run draws 20 services (catalog models up to 32B, prompt and output lengths, a request
rate, TTFT/TPOT SLOs on some) and plans them with the default options, plus, on the same
classes, a budget just below the optimum's fleet $/h relaxed (to exercise the coupling rows)
and --max-count 3 with a G quota. Prints the median and p95 of the HiGHS solve and of the
whole plan (candidate tables, model, solve, greedy), per variant.

    python tests/benchmark_plan.py [--runs 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from infersave.solver import plan as planner
from infersave.solver.plan import PlanOptions, class_from_fields

MODELS = (
    ("llama-3.1-8b", "fp16"),
    ("qwen2.5-7b", "fp16"),
    ("mistral-7b", "fp16"),
    ("gemma-2-9b", "fp16"),
    ("qwen2.5-14b", "fp8"),
    ("llama-2-13b", "fp16"),
    ("gemma-2-27b", "fp8"),
    ("qwen2.5-32b", "fp8"),
    ("opt-6.7b", "fp16"),
    ("phi-3-mini", "fp16"),
)


def classes(rng: np.random.Generator, n: int = 20) -> list:
    out = []
    for c in range(n):
        model, dtype = MODELS[int(rng.integers(len(MODELS)))]
        row = {
            "name": f"svc{c:02d}",
            "model": model,
            "dtype": dtype,
            "input_len": int(rng.choice([256, 512, 1024, 1536])),
            "output_len": int(rng.choice([64, 128, 256])),
            "rate_rps": round(float(rng.uniform(0.2, 8.0)), 2),
        }
        if rng.random() < 0.5:
            row["ttft_slo"] = float(rng.choice([4.0, 8.0, 15.0]))
        if rng.random() < 0.3:
            row["tpot_slo"] = 0.15
        out.append(class_from_fields(row, c + 1))
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    rng = np.random.default_rng(args.seed)
    variants = {
        "default": lambda best: PlanOptions(),
        "max-count 3, quota G=96": lambda best: PlanOptions(max_count=3, quotas={"G": 96}),
        "no-split": lambda best: PlanOptions(split=False),
        "budget = optimum": lambda best: PlanOptions(budget=best),
    }
    solve: dict[str, list[float]] = {k: [] for k in variants}
    whole: dict[str, list[float]] = {k: [] for k in variants}
    sizes: list[tuple[int, int]] = []
    planner.plan(classes(np.random.default_rng(99), 2))  # warm the catalog caches
    for _ in range(args.runs):
        cl = classes(rng)
        best = None
        for name, make in variants.items():
            opts = make(best)
            t0 = time.perf_counter()
            res = planner.plan(cl, opts)
            whole[name].append(time.perf_counter() - t0)
            solve[name].append(res.solver.solve_seconds)
            if name == "default":
                best = res.fleet_usd_per_hour
                sizes.append((res.solver.variables, res.solver.constraints))
            assert res.status in ("ok", "infeasible"), res.message
    v = statistics.median(s[0] for s in sizes)
    r = statistics.median(s[1] for s in sizes)
    print(f"20 classes over us-east-1, {args.runs} random plans; ~{v:.0f} columns x {r:.0f} rows")
    for name in variants:
        print(
            f"{name:>24}: HiGHS solve median {statistics.median(solve[name]):.3f} s,"
            f" p95 {pct(solve[name], 95):.3f} s, max {max(solve[name]):.3f} s; whole plan median"
            f" {statistics.median(whole[name]):.3f} s, p95 {pct(whole[name], 95):.3f} s"
            " (target < 5 s)"
        )


if __name__ == "__main__":
    main()
