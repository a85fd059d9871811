"""Do per-engine constants (an ``--engine`` profile) beat the shared v2 constants?

Not a test (no ``test_`` prefix): run ``python tests/engine_profile_check.py``. For each
measuring engine it fits the v2 constants on that engine's rows alone and compares the median
error with the shipped, shared constants in-sample, and (TensorRT-LLM, the one engine measured
on several GPUs) on each GPU held out from both fits. The README ("How accurate is it?")
quotes the figures: per-engine constants fit their own rows better, but on a held-out GPU they
are no better than the shared ones beyond noise (14 TensorRT-LLM rows), so no profile ships.
"""

from __future__ import annotations

import numpy as np

from infersave.catalog import measurements as meas
from infersave.formulations import engine_fit as ef
from infersave.formulations import engine_model as em


def main() -> None:
    rows = meas.read_measurements(meas.shipped_measurements_path())
    rows += meas.read_measurements(meas.shipped_engine_measurements_path())
    res = ef.resolve(rows, meas.find_calibration_gpu, meas.find_calibration_model)

    def median_err(pred: np.ndarray, sel: np.ndarray) -> float:
        return float(np.median(np.abs(pred[sel] / res.measured_s[sel] - 1) * 100))

    shared = ef.predict(res, em.SHIPPED)
    for eng in sorted(set(res.source)):
        m = res.source == eng
        own = ef.predict(res, ef.fit_params(res, m))
        print(
            f"{eng:9s} rows {int(m.sum()):4d}  median error: shared constants"
            f" {median_err(shared, m):5.1f}%, own-engine constants {median_err(own, m):5.1f}%"
        )
    m = res.source == "trtllm"
    for g in sorted(set(res.gpu[m])):
        held = m & (res.gpu == g)
        own = ef.predict(res, ef.fit_params(res, m & ~held))
        logo = ef.predict(res, ef.fit_params(res, res.gpu != g))  # shared, refitted without g
        print(
            f"trtllm, {g} held out ({int(held.sum())} rows): shared (refitted without it)"
            f" {median_err(logo, held):5.1f}%, own-engine {median_err(own, held):5.1f}%"
        )


if __name__ == "__main__":
    main()
