"""Cost model (Eq. 2-3) and billing modes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infersave.formulations import cost_model as cost


def test_task_hours_eq2_uses_effective_tps() -> None:
    # 1000 requests x 1152 tokens at min(3183, 100) = 100 TPS: 1,152,000 / 360,000 = 3.2 h
    tps_eff = cost.effective_tps(np.array([3183.0, 50.0]), 100.0)
    assert tps_eff.tolist() == [100.0, 50.0]
    hours = cost.task_hours(1000, 1024, 128, tps_eff)
    assert hours == pytest.approx([3.2, 6.4])


def test_hourly_billing_rounds_up_but_not_exact_hours() -> None:
    billed = cost.billed_hours(np.array([3.2, 3.0, 0.01, 1.0 + 1e-12, 2.0000001]), "hourly")
    assert billed.tolist() == [4.0, 3.0, 1.0, 1.0, 3.0]


def test_per_second_billing_has_a_60_second_minimum() -> None:
    billed = cost.billed_hours(np.array([0.001, 1.5, 10 / 3600, 61.2 / 3600]), "per-second")
    assert billed == pytest.approx([60 / 3600, 1.5, 60 / 3600, 62 / 3600])


def test_unknown_billing_mode_raises() -> None:
    with pytest.raises(ValueError, match="billing"):
        cost.billed_hours(np.array([1.0]), "monthly")  # type: ignore[arg-type]


def test_cost_and_efficiency_eq3() -> None:
    # 4 billed hours at $0.42/h = $1.68; CE = 100 x 3600 / (4 x 0.42)
    total = cost.total_cost(np.array([4.0]), np.array([0.42]))
    assert total == pytest.approx([1.68])
    ce = cost.cost_efficiency(np.array([100.0]), np.array([4.0]), np.array([0.42]))
    assert ce == pytest.approx([100 * 3600 / (4 * 0.42)])


@given(hours=st.floats(1e-6, 1e4))
def test_billed_hours_bound_task_hours(hours: float) -> None:
    h = np.array([hours])
    hourly = cost.billed_hours(h, "hourly")[0]
    per_s = cost.billed_hours(h, "per-second")[0]
    assert hours - 1e-6 <= per_s <= hourly + 1e-9
    assert hourly == int(hourly) and hourly - hours < 1 + 1e-9
    assert per_s >= 60 / 3600
