"""Latency SLOs (TTFT, TPOT, E2E): named slack columns of the candidate table that bind, read the
same way by the exhaustive ranker and the exact backends."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import gpu, instance, tiny_model

from infersave.formulations.candidates import Workload, build_table, instance_arrays
from infersave.formulations.options import ModelOptions, offload_levels
from infersave.solver import ranking
from infersave.solver.cbc_backend import solve_cbc
from infersave.solver.cpsat_backend import solve_cpsat
from infersave.solver.highs_backend import solve_highs

INF = math.inf


def table(exact_options: ModelOptions, **slos: float):
    g = [gpu("G", 8e9, tflops=100, bw_gbs=1000)]
    insts = [instance("i", "G", 1.0, 64e9), instance("j", "G", 1.5, 64e9)]
    arrays = instance_arrays(insts, {x.name: x for x in g}, exact_options)
    w = Workload(900, 101, 1000, slos.pop("slo_tps", INF), INF, **slos)
    return build_table(tiny_model(), w, arrays, (1, 8, 64), offload_levels(0.5), exact_options)


def picks(t) -> set[int | None]:
    """The exhaustive pick and every exact backend's."""
    return {ranking.exhaustive(t), *(f(t).index for f in (solve_highs, solve_cbc, solve_cpsat))}


def test_ttft_tpot_e2e_are_the_batch_prefill_one_decode_step_and_eq4(exact_options) -> None:
    t = table(exact_options, ttft_slo=INF)
    # TPOT is one decode step: the batch's decode time over its L_out - 1 = 100 steps
    assert np.allclose(t.tpot_s * 100, t.decode_s)
    assert np.array_equal(t.ttft_s, t.prefill_s)  # every request's first token: batch prefill
    assert np.allclose(t.e2e_s, t.prefill_s + t.decode_s)
    # no SLO given: the columns never bind, and no model row is written for them
    for name in ("ttft_slo", "tpot_slo", "e2e_slo", "tps_slo"):
        assert np.isinf(t.slack[name]).all() and t.ok[name].all()


@pytest.mark.parametrize("name, field", [("ttft_slo", "ttft_s"), ("tpot_slo", "tpot_s")])
def test_latency_slo_binds_and_every_backend_agrees(exact_options, name: str, field: str) -> None:
    free = table(exact_options, slo_tps=1.0)
    k0 = ranking.exhaustive(free)
    assert k0 is not None
    # larger batches are cheaper per token here, and slower per step and per prefill
    assert free.batch_size[k0] == 64
    limit = float(getattr(free, field)[k0]) * 0.999  # just below the free pick's latency
    t = table(exact_options, slo_tps=1.0, **{name: limit})
    assert (t.slack[name] == limit - getattr(t, field)).all()  # the signed slack, in seconds
    assert (t.ok[name] == (getattr(t, field) <= limit)).all()
    (k,) = picks(t)
    assert k is not None and t.batch_size[k] < 64 and getattr(t, field)[k] <= limit
    # the pick is the cheapest candidate meeting the latency SLO (brute force over the table)
    ok = np.flatnonzero(t.feasible)
    assert np.isclose(t.total_cost_usd[k], t.total_cost_usd[ok].min())


def test_unmeetable_latency_is_nothing_feasible_for_every_backend(exact_options) -> None:
    t = table(exact_options, slo_tps=1.0, tpot_slo=1e-9)
    assert not t.feasible.any()
    assert picks(t) == {None}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "infersave.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_cli_latency_only_and_the_record_fields() -> None:
    base = ["solve", "--model", "llama-3.1-8b", "--input-len", "1024", "--output-len", "256"]
    p = run(*base, "--tpot-slo", "0.03", "--provider", "aws", "--format", "json")
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)["recommendation"]
    assert rec["tpot_s"] <= 0.03 and rec["meets_slo"]
    assert rec["ttft_s"] == rec["prefill_s"]
    p = run(*base)  # no SLO of any kind
    assert p.returncode == 2 and "--slo-tps" in p.stderr and "--ttft-slo" in p.stderr
    p = run(*base, "--ttft-slo", "1e-6")
    assert p.returncode == 1 and "--ttft-slo" in p.stdout and "TTFT" in p.stdout
