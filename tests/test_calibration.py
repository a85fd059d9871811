"""CTCF calibration (Eq. 7): least squares, degenerate inputs, shipped fit, validation, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infersave.catalog import calibration as store
from infersave.catalog import curate_measurements as curate
from infersave.catalog import measurements as meas
from infersave.catalog.measurements import read_measurements
from infersave.formulations import calibration_report as wf
from infersave.formulations.ctcf_fit import fit_ctcf

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@settings(max_examples=60, deadline=None)
@given(
    alpha=st.floats(0.05, 20.0),
    beta=st.floats(0.0, 0.01),
    xs=st.lists(st.floats(1e-5, 1.0), min_size=3, max_size=40, unique=True),
    weighting=st.sampled_from(["relative", "absolute"]),
)
def test_lstsq_recovers_known_alpha_beta(
    alpha: float, beta: float, xs: list[float], weighting: str
) -> None:
    x = np.array(xs)
    if np.ptp(x) < 1e-3 * x.max():
        return  # nearly identical points: ill-conditioned by construction
    y = alpha * x + beta
    f = fit_ctcf(x, y, weighting)  # type: ignore[arg-type]
    assert f.alpha == pytest.approx(alpha, rel=1e-6, abs=1e-9)
    assert f.beta == pytest.approx(beta, rel=1e-6, abs=1e-9)
    assert f.points == len(xs)
    assert f.mape_after == pytest.approx(0.0, abs=1e-5)
    assert f.warning is None


def test_fewer_than_three_points_refused() -> None:
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_ctcf([1.0, 2.0], [1.0, 2.0])


def test_same_predicted_value_refused() -> None:
    with pytest.raises(ValueError, match="do not determine"):
        fit_ctcf([0.5, 0.5, 0.5], [1.0, 1.1, 0.9])


@pytest.mark.parametrize(
    ("x", "y", "msg"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "predicted but"),
        ([1.0, 2.0, -3.0], [1.0, 2.0, 3.0], "positive"),
        ([1.0, 2.0, math.nan], [1.0, 2.0, 3.0], "finite"),
    ],
)
def test_bad_inputs_refused(x: list[float], y: list[float], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        fit_ctcf(x, y)


def test_negative_alpha_flagged() -> None:
    f = fit_ctcf([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], "absolute")
    assert f.alpha == pytest.approx(-1.0)
    assert f.warning and "negative alpha" in f.warning


def test_shipped_calibration_reproduces_from_shipped_measurements() -> None:
    shipped = store.shipped_document()
    refit = wf.shipped_calibration(created=shipped["created"])
    assert set(refit["fits"]) == set(shipped["fits"]) == {"roofline", "paper", "v2"}
    for pm, entries in shipped["fits"].items():
        assert len(entries) == len(refit["fits"][pm]) == (14 if pm == "v2" else 8)
        for a, b in zip(entries, refit["fits"][pm], strict=True):
            assert (a["gpu"], a["phase"], a["points"]) == (b["gpu"], b["phase"], b["points"])
            assert a["alpha"] == pytest.approx(b["alpha"], abs=1e-9)
            assert a["beta_s"] == pytest.approx(b["beta_s"], abs=1e-9)
    assert shipped["assumptions"] == list(curate.ASSUMPTIONS)


def test_curation_is_deterministic(tmp_path: Path) -> None:
    raw = SHARED / curate.RAW_FILE
    if not raw.exists():
        pytest.skip("shared data not available")
    out = tmp_path / "m.csv"
    assert curate.main([str(SHARED), "-o", str(out)]) == 0
    assert out.read_bytes() == meas.shipped_measurements_path().read_bytes()


def test_calibrating_then_validating_same_file_reduces_error() -> None:
    report = wf.validate(meas.shipped_measurements_path(), "refit")
    rows = [r for r in report if r["check"] == "calibrated" and "(TP)" not in r["gpu"]]
    assert len(rows) == 8
    for r in rows:
        assert r["mape_after"] < r["mape_before"], r


def test_held_out_errors_reported_for_every_gpu_and_phase() -> None:
    report = wf.validate(meas.shipped_measurements_path(), "default")
    for check in ("lomo", "logo"):
        rows = [r for r in report if r["check"] == check]
        assert {(r["gpu"], r["phase"]) for r in rows} == {
            (g, p)
            for g in ("A100-SXM4-40GB", "L4", "T4", "V100-SXM2-16GB")
            for p in ("prefill", "decode")
        }
        assert all(r["mape_after"] is not None for r in rows)
    # prefill generalises across models on every measured GPU
    lomo_pre = [r for r in report if r["check"] == "lomo" and r["phase"] == "prefill"]
    assert all(r["mape_after"] < 15 for r in lomo_pre)


def test_load_calibration_specs(tmp_path: Path) -> None:
    assert store.load_calibration("none") == ("uncalibrated", None)
    name, coef = store.load_calibration("default", "roofline")
    assert name == "helix-asplos25"
    assert coef is not None and ("T4", "prefill") in coef and ("L4", "decode") in coef
    # the paper perf model has its own fit, never the roofline one
    assert store.load_calibration("default", "paper")[1] != coef
    # a calibration for formulas the shipped file was not fitted for is not applied
    assert store.load_calibration("default", "roofline", "paper") == ("uncalibrated", None)
    only_paper = store.shipped_document()
    del only_paper["fits"]["roofline"]
    p = tmp_path / "paper_only.json"
    p.write_text(json.dumps(only_paper))
    with pytest.raises(ValueError, match="not 'roofline'"):
        store.load_calibration(str(p), "roofline")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        store.load_calibration(str(bad))
    with pytest.raises(ValueError, match="cannot read"):
        store.load_calibration(str(tmp_path / "missing.json"))


def test_measurement_errors_name_row_and_field(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text(
        "gpu,model,phase,batch_size,input_len,output_len,time_s,layers,source\n"
        "T4,llama-2-7b,warmup,1,10,0,0.1,,x\n"
    )
    with pytest.raises(ValueError, match=r"row 1, field phase"):
        read_measurements(p)


def test_unknown_gpu_in_measurements(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text(
        "gpu,model,phase,batch_size,input_len,output_len,time_s,layers,source\n"
        "Z9000,llama-2-7b,prefill,1,10,0,0.1,,x\n"
    )
    with pytest.raises(ValueError, match="row 1"):
        wf.validate(p, "none")


def _synthetic(tmp_path: Path) -> Path:
    """Measurements that are exactly 1.5 x model + 0.2 ms per layer (whole model rows)."""
    from infersave.catalog.measurements import Measurement, write_measurements
    from infersave.formulations.ctcf_fit import resolve
    from infersave.formulations.options import ModelOptions

    rows = [
        Measurement(
            gpu="L4",
            model=model,
            phase=phase,
            batch_size=bs,
            input_len=256,
            output_len=0,
            time_s=1.0,
            layers=None,
            source="synthetic",
        )
        for model in ("llama-2-7b", "mistral-7b")
        for phase in ("prefill", "decode")
        for bs in (1, 4, 16, 64)
    ]
    roofline = ModelOptions(perf_model="roofline")  # CTCF on the roofline (not the v2 default)
    res = resolve(rows, meas.find_calibration_gpu, meas.find_calibration_model, roofline)
    exact = [
        m.model_copy(update={"time_s": float(n * (1.5 * x + 2e-4))})
        for m, x, n in zip(rows, res.x_layer_s, res.layers, strict=True)
    ]
    p = tmp_path / "synthetic.csv"
    write_measurements(exact, p)
    return p


def test_cli_calibrate_and_validate(tmp_path: Path) -> None:
    from infersave.cli.main import app

    meas = _synthetic(tmp_path)
    out = tmp_path / "cal.json"
    runner = CliRunner()
    r = runner.invoke(app, ["calibrate", str(meas), "-o", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    for e in doc["fits"]["roofline"]:
        assert e["alpha"] == pytest.approx(1.5, rel=1e-6)
        assert e["beta_s"] == pytest.approx(2e-4, rel=1e-5)
    r = runner.invoke(app, ["validate", str(meas), "--calibration", str(out), "--format", "json",
                            "--perf-model", "roofline"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["rows"]
    assert all(x["mape_after"] < 1e-4 for x in rows if x["check"] == "calibrated")
    assert all(x["mape_after"] < 1e-4 for x in rows if x["check"] == "lomo")
    r = runner.invoke(app, ["validate", str(tmp_path / "nope.csv")])
    assert r.exit_code == 2


def test_negative_intercept_is_constrained_to_zero() -> None:
    # y = 2x - 1e-3 over x in [1e-3, 1e-2]: the free fit has beta < 0, which would predict
    # negative times below x = 5e-4; the constrained fit passes through the origin.
    x = np.linspace(1e-3, 1e-2, 10)
    y = 2 * x - 1e-3
    f = fit_ctcf(x, y, "absolute")
    assert f.beta == 0.0
    assert f.alpha == pytest.approx(float(np.sum(x * y) / np.sum(x * x)))
    assert f.warning is not None and "beta constrained" in f.warning
    assert f.alpha * 1e-6 + f.beta > 0
