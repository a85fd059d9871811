"""Cost model: task time, billed hours, total cost and cost efficiency (paper Eq. 2-3).

Vectorized over candidates; TPS in tokens/s, prices in $/h, times in hours unless named ``_s``.
"""

from __future__ import annotations

import numpy as np

from infersave.formulations.options import Billing

_EPS_HOURS = 1e-9  # floating-point slack so that exactly 3.0 hours is billed as 3, not 4


def effective_tps(tps: np.ndarray, slo_tps: float) -> np.ndarray:
    """TPS_effective = min(TPS_actual, TPS_SLO) (paper section III-B), tokens/s."""
    return np.minimum(tps, slo_tps)


def task_hours(requests: int, input_len: int, output_len: int, tps_eff: np.ndarray) -> np.ndarray:
    """Hours to serve the task, Eq. 2: requests x (L_in + L_out) / (TPS_effective x 3600).

    The paper writes BS for the number of requests; the task is all ``requests`` of it.
    """
    return requests * (input_len + output_len) / (np.asarray(tps_eff, dtype=np.float64) * 3600.0)


def billed_hours(hours: np.ndarray, billing: Billing) -> np.ndarray:
    """Hours the cloud bills for ``hours`` of use.

    ``hourly``: ceil(hours), the paper's Eq. 3. ``per-second``: whole seconds with a 60-second
    minimum (AWS on-demand and spot Linux instances, "Amazon EC2 billing" documentation).

    Raises:
        ValueError: on an unknown billing mode.
    """
    h = np.asarray(hours, dtype=np.float64)
    if billing == "hourly":
        return np.ceil(h - _EPS_HOURS)
    if billing == "per-second":
        return np.maximum(np.ceil(h * 3600.0 - 3600.0 * _EPS_HOURS), 60.0) / 3600.0
    raise ValueError(f"unknown billing mode {billing!r}; use hourly or per-second")


def total_cost(billed: np.ndarray, price_per_hour: np.ndarray) -> np.ndarray:
    """Total cost in $: billed hours x $/h."""
    return billed * price_per_hour


def cost_efficiency(
    tps_eff: np.ndarray, billed: np.ndarray, price_per_hour: np.ndarray
) -> np.ndarray:
    """SLO-based cost efficiency, Eq. 3: TPS_effective x 3600 / (billed hours x price).

    Unit: tokens per hour per dollar billed per hour of the task; higher is better.
    """
    return tps_eff * 3600.0 / (billed * price_per_hour)
