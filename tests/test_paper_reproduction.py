"""The paper's own formulas and prices reproduce its online result (Table V, 400 TPS)."""

from __future__ import annotations

import pytest

from infersave.solver.recommend import solve
from infersave.solver.scenario import Scenario

PAPER = dict(
    model="opt-2.7b",
    catalog="paper-2025",
    formulas="paper",
    perf_model="paper",
    calibration="none",
    batch_size=32,
    max_price=3.0,
    backend="exhaustive",
)


def test_online_400_tps_picks_g4dn_and_saves_73_7_percent() -> None:
    r = solve(Scenario(input_len=128, output_len=512, requests=3000, slo_tps=400, **PAPER))
    assert r.recommendation is not None
    assert r.recommendation.instance_type == "g4dn.xlarge"
    assert r.recommendation.offload_ratio == 0.0
    assert r.baseline.max_performance is not None
    assert r.baseline.max_performance.instance_type == "g6e.xlarge"
    # same billed hours on both: 1 - 0.71 / 2.699 = 73.69 %, the paper's "up to 73.7%"
    assert r.baseline.savings_pct == pytest.approx(100 * (1 - 0.71 / 2.699))
    assert [a.instance_type for a in r.alternatives][:1] == ["g6.xlarge"]


def test_paper_prices_and_gpu_figures_are_used() -> None:
    r = solve(Scenario(input_len=128, output_len=512, requests=3000, slo_tps=400, **PAPER))
    prices = {a.instance_type: a.price_per_hour for a in [r.recommendation, *r.alternatives]}
    assert prices == {
        "g4dn.xlarge": 0.71,
        "g6.xlarge": 1.167,
        "g5.xlarge": 1.466,
        "g6e.xlarge": 2.699,
    }
