"""The calibration workflow behind ``infersave calibrate`` and ``infersave validate``.

``calibrate``: read measurements, fit CTCF (Eq. 7) per (GPU, phase) for each perf model, and
build the calibration document (see :mod:`infersave.catalog.calibration`).
``validate``: predict every measurement uncalibrated and with a calibration, and cross-validate
the fit: leave-one-model-out (LOMO: each model's rows predicted by a CTCF fitted on the other
models' rows of the same GPU and phase) and leave-one-GPU-out (LOGO: each GPU's rows predicted
by one GPU-agnostic CTCF per phase fitted on the other GPUs, i.e. how an unmeasured GPU would
fare with a pooled fit; the uncalibrated column is the roofline alone).
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infersave.catalog import calibration as store
from infersave.formulations import calibration as cal
from infersave.formulations.options import ModelOptions
from infersave.solver.scenario import InputError

PERF_MODELS: tuple[str, ...] = ("roofline", "paper")


def _resolve(path: str | Path, perf_model: str) -> tuple[cal.Resolved, ModelOptions]:
    try:
        rows = cal.read_measurements(path)
        options = ModelOptions(perf_model=perf_model)  # type: ignore[arg-type]
        res = cal.resolve(rows, store.find_calibration_gpu, store.find_calibration_model, options)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    return res, options


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def fit_entries(
    path: str | Path, perf_model: str, weighting: cal.Weighting = "relative"
) -> list[dict[str, Any]]:
    """Fit CTCF per (GPU, phase) on the single-GPU rows of ``path`` for ``perf_model``.

    Returns one dict per fitted group: gpu, phase, alpha, beta_s (seconds per layer), points,
    mape_before, mape_after, worst_after (%), warning.

    Raises:
        InputError: unreadable measurements, unknown GPU/model, or no group could be fitted.
    """
    res, _ = _resolve(path, perf_model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = cal.fit_groups(res, weighting=weighting)
    if not fits:
        why = "; ".join(str(w.message) for w in caught) or "no single-GPU prefill/decode rows"
        raise InputError(f"{path}: nothing to calibrate: {why}")
    out = []
    for (gpu, phase), f in sorted(fits.items()):
        out.append(
            {
                "gpu": gpu,
                "phase": phase,
                "alpha": f.alpha,
                "beta_s": f.beta,
                "points": f.points,
                "mape_before": round(f.mape_before, 4),
                "mape_after": round(f.mape_after, 4),
                "worst_after": round(f.worst_after, 4),
                "warning": f.warning,
            }
        )
    for w in caught:
        out.append({"skipped": str(w.message)})
    return out


def calibrate(
    path: str | Path,
    perf_models: Sequence[str] = PERF_MODELS,
    name: str | None = None,
    source: str | None = None,
    assumptions: Sequence[str] = (),
    created: str | None = None,
    weighting: cal.Weighting = "relative",
) -> dict[str, Any]:
    """The calibration document fitted from the measurements at ``path`` (one fit per perf
    model in ``perf_models``).

    Raises:
        InputError: see :func:`fit_entries`; an unknown perf model.
    """
    for pm in perf_models:
        if pm not in PERF_MODELS:
            raise InputError(f"unknown perf model {pm!r}; use one of: {', '.join(PERF_MODELS)}")
    fits = {}
    skipped = []
    for pm in perf_models:
        entries = fit_entries(path, pm, weighting)
        fits[pm] = [e for e in entries if "skipped" not in e]
        skipped += [f"{pm}: {e['skipped']}" for e in entries if "skipped" in e]
    doc: dict[str, Any] = {
        "format": store.FORMAT,
        "name": name or Path(path).stem,
        "source": source or str(path),
        "created": created or _dt.date.today().isoformat(),
        "measurements": Path(path).name,
        "formulas": "physics",
        "dtype": "fp16",
        "weighting": weighting,
        "beta_unit": "seconds per decoder layer",
        "assumptions": list(assumptions),
        "fits": fits,
    }
    if skipped:
        doc["skipped"] = skipped
    return doc


def shipped_calibration(created: str | None = None) -> dict[str, Any]:
    """Re-fit the shipped calibration from the shipped measurements (what
    ``catalog/data/calibration.json`` holds, up to ``created``)."""
    from infersave.formulations import calibrate_curate as curate

    return calibrate(
        store.shipped_measurements_path(),
        name="helix-asplos25",
        source=curate.SOURCE + "; curated by infersave.formulations.calibrate_curate",
        assumptions=curate.ASSUMPTIONS,
        created=created,
    )


def _rows(table: list[cal.ErrorRow], kind: str) -> list[dict[str, Any]]:
    return [
        {
            "check": kind,
            "gpu": r.gpu,
            "phase": r.phase,
            "points": r.points,
            "mape_before": _finite(r.mape_before),
            "worst_before": _finite(r.worst_before),
            "mape_after": _finite(r.mape_after),
            "worst_after": _finite(r.worst_after),
        }
        for r in table
    ]


def validate(
    path: str | Path,
    calibration: str = "default",
    perf_model: str = "roofline",
    weighting: cal.Weighting = "relative",
) -> list[dict[str, Any]]:
    """Error report of the measurements at ``path``: one row per (check, GPU, phase).

    checks: ``calibrated`` (uncalibrated vs. ``calibration`` applied: ``default``, ``none``,
    ``refit`` = fitted on these same rows, or a JSON path), ``lomo`` and ``logo`` (held out,
    always re-fitted from ``path``). ``mape_*``/``worst_*`` in %; ``before`` is always the
    uncalibrated perf model. Tensor-parallel rows appear only under ``calibrated`` (ideal
    split; never fitted).

    Raises:
        InputError: unreadable measurements or calibration.
    """
    res, options = _resolve(path, perf_model)
    before = cal.predict(res, options, None)
    if calibration == "refit":
        coef: Any = cal.coefficients(cal.fit_groups(res, weighting=weighting))
    else:
        try:
            coef = store.load_calibration(calibration, perf_model)[1]
        except ValueError as exc:
            raise InputError(f"cannot read calibration {calibration!r}: {exc}") from exc
    after = cal.predict(res, options, coef)
    mask = cal.fit_mask(res)
    lomo = cal.leave_one_model_out(res, options, weighting)
    logo = cal.leave_one_gpu_out(res, options, weighting)
    out = _rows(cal.error_table(res, before, after), "calibrated")
    out += _rows(cal.error_table(res, before, lomo, mask), "lomo")
    out += _rows(cal.error_table(res, before, logo, mask), "logo")
    return out


def summary_lines(report: list[dict[str, Any]]) -> list[str]:
    """Pooled MAPE per check and phase over single-GPU groups, for a short footer."""
    lines = []
    for check in ("calibrated", "lomo", "logo"):
        for phase in cal.FIT_PHASES:
            rows = [
                r
                for r in report
                if r["check"] == check and r["phase"] == phase and "(TP)" not in r["gpu"]
            ]
            if not rows:
                continue
            n = np.array([r["points"] for r in rows], dtype=float)
            b = np.array([r["mape_before"] or math.nan for r in rows])
            a = np.array(
                [r["mape_after"] if r["mape_after"] is not None else math.nan for r in rows]
            )
            ok = ~np.isnan(a)
            lines.append(
                f"{check:10s} {phase:8s} MAPE uncalibrated {np.sum(n * b) / n.sum():5.1f}%"
                f"  -> {np.sum(n[ok] * a[ok]) / n[ok].sum():5.1f}%"
            )
    return lines


def fit_table_rows(doc: dict[str, Any], perf_model: str) -> list[dict[str, Any]]:
    """Table III-like rows of a calibration document for one perf model."""
    return [dict(e, perf_model=perf_model) for e in doc["fits"].get(perf_model, [])]


__all__ = [
    "PERF_MODELS",
    "calibrate",
    "fit_entries",
    "fit_table_rows",
    "shipped_calibration",
    "summary_lines",
    "validate",
]
