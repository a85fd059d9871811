"""Error bands of the v2 time model: tps_low/tps_high per record, and --slo-confidence P
making TPS >= SLO hold at the band's lower bound in every backend (one slack column)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import gpu, instance, tiny_model

from infersave.catalog import calibration as store
from infersave.catalog import load
from infersave.formulations import engine_model as em
from infersave.formulations.candidates import Workload, build_table, instance_arrays
from infersave.formulations.options import ModelOptions


def test_band_factor_by_hand() -> None:
    """sigma 0.2 at P = 0.9: z = 1.2815515655446004, exp(0.25631) = 1.292155; P 0 means the
    records' default confidence (0.9); P 0.5 has z 0 (no band)."""
    f = em.band_factor(np.array([0.2, 0.2, 0.2]), np.array([0.9, 0.0, 0.5]))
    assert f[0] == pytest.approx(math.exp(0.2 * 1.2815515655446004), rel=1e-12)
    assert f[1] == f[0] and f[2] == pytest.approx(1.0)


def _table(confidence: float, slo: float) -> tuple[object, object]:
    g = gpu("G", 100e9)
    arrays = instance_arrays([instance("x", "G", 1.0, 1e12)], {"G": g}, ModelOptions())
    w = Workload(100, 10, 10, slo, float("inf"), slo_confidence=confidence)
    return build_table(tiny_model(), w, arrays, (1,), np.array([0.0]), ModelOptions()), arrays


def test_slo_confidence_moves_the_tps_slack_to_the_lower_bound() -> None:
    t0, arrays = _table(0.0, 1.0)
    tps = float(t0.tps[0])
    sigma = float(arrays.tps_log_sigma[0])
    assert sigma == em.UNCALIBRATED_LOG_SIGMA  # no calibration: the default band
    low = tps / math.exp(sigma * 1.2815515655446004)
    assert float(t0.tps_low[0]) == pytest.approx(low, rel=1e-12)
    assert float(t0.tps_high[0]) == pytest.approx(tps * tps / low, rel=1e-12)
    slo = (tps + low) / 2  # met by the point prediction, not by its 90% lower bound
    assert _table(0.0, slo)[0].ok["tps_slo"][0]
    strict = _table(0.9, slo)[0]
    assert not strict.ok["tps_slo"][0]
    assert float(strict.slack["tps_slo"][0]) == pytest.approx(low - slo, rel=1e-9)
    assert float(t0.tps_band_pct[0]) == pytest.approx((tps / low - 1) * 100, rel=1e-9)


def test_bands_from_the_shipped_file_wider_without_data() -> None:
    doc = store.shipped_document()
    bands = doc["bands"]["v2"]
    assert bands["default_log_sigma"] == em.UNCALIBRATED_LOG_SIGMA
    assert all(s <= bands["default_log_sigma"] for s in bands["gpus"].values())
    _, cal = store.load_calibration("default", "v2")
    insts = [load.find_instance(t) for t in ("g4dn.xlarge", "g5g.xlarge", "p5.48xlarge")]
    arrays = instance_arrays(insts, load.gpus(), ModelOptions(tensor_parallel=1), cal)
    t4, t4g, h100 = arrays.tps_log_sigma  # one row each: the TP degree fixed at 1
    assert t4 == t4g == bands["gpus"]["T4"]  # T4G is taken as the same silicon
    assert h100 == bands["default_log_sigma"]  # one model measured: no band of its own
    roof = instance_arrays(insts, load.gpus(), ModelOptions(perf_model="roofline"), cal)
    assert np.isnan(roof.tps_log_sigma).all()


def _solve(*extra: str) -> dict:
    cmd = [sys.executable, "-m", "infersave.cli.main", "solve", "--model", "llama-2-7b",
           "--input-len", "512", "--output-len", "128", "--slo-tps", "3000",
           "--max-price", "5", "--format", "json", *extra]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["recommendation"]


@pytest.mark.parametrize("backend", ["exhaustive", "milp", "cp"])
def test_every_backend_meets_the_slo_at_the_lower_bound(backend: str) -> None:
    loose = _solve("--backend", backend)
    strict = _solve("--backend", backend, "--slo-confidence", "0.95")
    assert loose["tps"] >= 3000 and loose["tps_low"] < 3000  # the case: a bet
    assert strict["tps_low"] >= 3000
    assert strict["total_cost_usd"] >= loose["total_cost_usd"]
    assert strict["tps_low"] < strict["tps"] < strict["tps_high"]
    assert strict == _solve("--backend", "exhaustive", "--slo-confidence", "0.95")


def test_slo_confidence_refused_outside_v2_and_range() -> None:
    for extra, needle in (
        (("--slo-confidence", "0.9", "--perf-model", "roofline"), "perf model v2"),
        (("--slo-confidence", "1.5"), "less than 1"),
    ):
        cmd = [sys.executable, "-m", "infersave.cli.main", "solve", "--model", "llama-2-7b",
               "--input-len", "512", "--output-len", "128", "--slo-tps", "3000",
               *extra]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True)
        assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1


def test_roofline_records_have_no_band() -> None:
    rec = _solve("--perf-model", "roofline")
    assert rec["tps_low"] is None and rec["tps_high"] is None and rec["tps_band_pct"] is None
