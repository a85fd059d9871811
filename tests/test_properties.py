"""Properties of the model and the optimum across many random scenarios on the real catalog."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infersave.solver import ranking
from infersave.solver.prepare import prepare
from infersave.solver.scenario import Scenario

MODELS = ["opt-1.3b", "opt-2.7b", "opt-6.7b", "llama-3.1-8b", "mistral-7b", "qwen2.5-14b"]

scenarios = st.builds(
    Scenario,
    model=st.sampled_from(MODELS),
    input_len=st.integers(16, 4096),
    output_len=st.integers(2, 1024),
    requests=st.integers(1, 20_000),
    slo_tps=st.floats(10, 20_000),
    max_price=st.floats(0.5, 40),
    batch_sizes=st.just((1, 4, 16, 64, 256)),
    offload_step=st.sampled_from([0.1, 0.25, 0.5]),
    billing=st.sampled_from(["hourly", "per-second"]),
    calibration=st.just("none"),
    backend=st.just("exhaustive"),
).filter(  # within the model's context window (OPT: 2,048 tokens)
    lambda s: not s.model.startswith("opt") or s.input_len + s.output_len <= 2048
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _grid(t, values: np.ndarray) -> np.ndarray:
    """Reshape a candidate array to (instance, batch, offload level)."""
    return values.reshape(len(t.inst.instances), t.batch_sizes.size, t.levels.size)


@SETTINGS
@given(s=scenarios)
def test_offload_monotonicity(s: Scenario) -> None:
    t = prepare(s).table
    gpu_ok = _grid(t, t.ok["memory_feasibility"])
    host_ok = _grid(t, t.ok["host_memory"])
    # more offload never breaks GPU memory feasibility, and never repairs host memory
    assert (np.diff(gpu_ok.astype(int), axis=2) >= 0).all()
    assert (np.diff(host_ok.astype(int), axis=2) <= 0).all()
    # the PCIe transfer makes TPS non-increasing in the offload ratio
    tps = _grid(t, t.tps)
    assert (np.diff(tps, axis=2) <= 1e-9 * tps[:, :, 1:]).all()


@SETTINGS
@given(s=scenarios)
def test_optimum_is_feasible_and_no_feasible_candidate_is_cheaper(s: Scenario) -> None:
    t = prepare(s).table
    k = ranking.exhaustive(t)
    if k is None:
        assert not t.feasible.any()
        return
    assert t.feasible[k] and t.tps[k] >= s.slo_tps
    assert t.price_per_hour[k] <= s.max_price
    assert t.total_cost_usd[k] <= t.total_cost_usd[t.feasible].min() + 1e-9
    # per-second billing never costs more than hourly for the same candidate
    assert t.billed_hours[k] >= t.task_hours[k] - 1e-9


@SETTINGS
@given(s=scenarios, factor=st.floats(1.0, 4.0))
def test_looser_cap_or_slo_never_costs_more(s: Scenario, factor: float) -> None:
    def best(sc: Scenario) -> float:
        t = prepare(sc).table
        k = ranking.exhaustive(t)
        return np.inf if k is None else float(t.total_cost_usd[k])

    base = best(s)
    assert best(s.model_copy(update={"max_price": s.max_price * factor})) <= base + 1e-9
    # A lower SLO keeps every configuration feasible, but it can cost more: Eq. 2 paces the task
    # at TPS_effective = min(TPS, SLO), so the task runs longer. Feasibility must be preserved.
    if base < np.inf:
        assert best(s.model_copy(update={"slo_tps": s.slo_tps / factor})) < np.inf
