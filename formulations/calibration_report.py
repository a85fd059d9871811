"""The calibration workflow behind ``infersave calibrate`` and ``infersave validate``.

``calibrate``: read measurements, fit CTCF (Eq. 7) per (GPU, phase) for each perf model, and
build the calibration document (see :mod:`infersave.catalog.calibration`).
``validate``: predict every measurement uncalibrated and with a calibration, and cross-validate
the fit: leave-one-model-out (LOMO: each model's rows predicted by a CTCF fitted on the other
models' rows of the same GPU and phase) and leave-one-GPU-out (LOGO: each GPU's rows predicted
by one GPU-agnostic CTCF per phase fitted on the other GPUs, i.e. how an unmeasured GPU would
fare with a pooled fit; the uncalibrated column is the roofline alone). A held-out figure that
cannot be computed (one model, one GPU) is ``None`` with a ``note`` saying why.

Errors the user can fix raise :class:`~infersave.catalog.calibration.CalibrationError` (a
``ValueError``; the CLI prints one line and exits 2).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infersave.catalog import calibration as store
from infersave.catalog import curate_measurements as curate
from infersave.catalog import measurements as meas
from infersave.catalog.calibration import CalibrationError
from infersave.formulations import ctcf_fit as cal
from infersave.formulations import engine_fit as ef
from infersave.formulations import engine_model
from infersave.formulations import tp_validation as tpv
from infersave.formulations.options import ModelOptions

PERF_MODELS: tuple[str, ...] = ("v2", "roofline", "paper")


def check_perf_models(perf_models: Sequence[str]) -> None:
    """Raises CalibrationError naming the choices when a perf model is unknown."""
    for pm in perf_models:
        if pm not in PERF_MODELS:
            raise CalibrationError(
                f"unknown perf model {pm!r}; use one of: {', '.join(PERF_MODELS)}"
            )


def _engine_rows(path: str | Path, extra: Sequence[str | Path] = ()) -> ef.Rows:
    """Single-GPU rows of ``path`` and ``extra`` for the v2 model; the shipped Helix file
    brings the shipped engine file along (they are one data set for v2)."""
    rows = meas.read_measurements(path)
    if not extra and Path(path) == meas.shipped_measurements_path():
        extra = (meas.shipped_engine_measurements_path(),)
    for e in extra:
        rows += meas.read_measurements(e)
    try:
        return ef.resolve(rows, meas.find_calibration_gpu, meas.find_calibration_model)
    except CalibrationError:
        raise
    except ValueError as exc:
        raise CalibrationError(f"{Path(path).name}: {exc}") from exc


def _v2_fits(res: ef.Rows, params: ef.V2Params) -> list[dict[str, Any]]:
    """The ``fits.v2`` entries: one per (GPU, phase) correction, as CTCF (alpha, beta 0)."""
    corr = ef.fit_corrections(res, params)
    before = ef.predict(res, params)
    after = ef.predict(res, params, corr)
    fam = np.where(res.phase == "prefill", "prefill", "decode")
    out = []
    for (g, ph), a in sorted(corr.items()):
        sel = (res.gpu == g) & (fam == ph)
        eb = np.abs(before[sel] / res.measured_s[sel] - 1) * 100
        ea = np.abs(after[sel] / res.measured_s[sel] - 1) * 100
        fit = store.CtcfFit(
            a, 0.0, int(sel.sum()), float(eb.mean()), float(ea.mean()), float(ea.max()),
            None, g, ph,
        )  # fmt: skip
        out.append(fit.to_entry())
    return out


def _resolve(path: str | Path, perf_model: str) -> tuple[cal.Resolved, ModelOptions]:
    check_perf_models([perf_model])
    rows = meas.read_measurements(path)
    options = ModelOptions(perf_model=perf_model)  # type: ignore[arg-type]
    try:
        res = cal.resolve(rows, meas.find_calibration_gpu, meas.find_calibration_model, options)
    except CalibrationError:
        raise
    except ValueError as exc:
        raise CalibrationError(f"{Path(path).name}: {exc}") from exc
    return res, options


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def fit_perf_model(
    path: str | Path, perf_model: str, weighting: cal.Weighting = "relative"
) -> cal.GroupFits:
    """Fit CTCF per (GPU, phase) on the single-GPU rows of ``path`` for ``perf_model``.

    Raises:
        CalibrationError (or its base CatalogError): unreadable measurements, unknown GPU/model,
            unknown perf model, or no group could be fitted.
    """
    res, _ = _resolve(path, perf_model)
    group = cal.fit_groups(res, weighting=weighting)
    if not group.fits:
        why = "; ".join(group.skipped) or "no single-GPU prefill/decode rows"
        raise CalibrationError(f"{path}: nothing to calibrate: {why}")
    return group


def calibrate(
    path: str | Path,
    perf_models: Sequence[str] = PERF_MODELS,
    name: str | None = None,
    source: str | None = None,
    assumptions: Sequence[str] = (),
    created: str | None = None,
    weighting: cal.Weighting = "relative",
    engine_paths: Sequence[str | Path] = (),
    refit_v2: bool = False,
) -> dict[str, Any]:
    """The calibration document fitted from the measurements at ``path`` (one fit per perf
    model in ``perf_models``); every entry is
    :meth:`~infersave.catalog.calibration.CtcfFit.to_entry`.

    For ``v2`` the rows of ``path`` and ``engine_paths`` give per-GPU corrections on top of the
    shipped constants (:data:`~infersave.formulations.engine_model.SHIPPED`), or of constants
    refitted on them with ``refit_v2`` (what the shipped file holds); roofline and paper CTCF
    are fitted on ``path`` alone (per-layer Eq. 7).

    Raises:
        CalibrationError: see :func:`fit_perf_model`; an unknown perf model or none at all.
    """
    check_perf_models(perf_models)
    if not perf_models:
        raise CalibrationError("no perf model to calibrate for")
    fits: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    v2_params: dict[str, float] | None = None
    bands: dict[str, Any] | None = None
    for pm in perf_models:
        if pm == "v2":
            res = _engine_rows(path, engine_paths)
            if not len(res):
                raise CalibrationError(f"{path}: nothing to calibrate: no single-GPU rows")
            params = ef.fit_params(res) if refit_v2 else engine_model.SHIPPED
            v2_params = params.to_dict()
            fits[pm] = _v2_fits(res, params)
            own, default = ef.band_log_sigmas(res, ef.cross_validate(res, params))
            if math.isfinite(default):
                bands = {"default_log_sigma": default, "gpus": own}
            continue
        group = fit_perf_model(path, pm, weighting)
        fits[pm] = [f.to_entry() for _, f in sorted(group.fits.items())]
        skipped += [f"{pm}: {s}" for s in group.skipped]
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
    if v2_params is not None:
        doc["v2_params"] = v2_params
        doc["v2_note"] = (
            "fits.v2 are per-GPU scales (alpha; beta 0) of the v2 model's whole phase time, on"
            " top of the GPU-independent v2_params; rows: "
            + ", ".join([Path(path).name, *(Path(e).name for e in engine_paths)])
        )
    if bands is not None:
        doc["bands"] = {"v2": bands}
        doc["bands_note"] = (
            "log-space RMS error of a prediction under cross-validation: per GPU measured with"
            " >= 2 models its LOMO errors, else default_log_sigma (the largest per-GPU LOGO"
            " error); tps_low/tps_high = tps x exp(-/+ z sigma), z the normal quantile of"
            " --slo-confidence (0.9 for the records' band when it is not given)"
        )
    if skipped:
        doc["skipped"] = skipped
    return doc


def shipped_calibration(
    perf_models: Sequence[str] = PERF_MODELS, created: str | None = None
) -> dict[str, Any]:
    """Re-fit the shipped calibration from the shipped measurements (what
    ``catalog/data/calibration.json`` holds, up to ``created``, for ``perf_models``)."""
    return calibrate(
        meas.shipped_measurements_path(),
        perf_models,
        name="helix-asplos25",
        source=curate.SOURCE + "; curated by infersave.catalog.curate_measurements",
        assumptions=curate.ASSUMPTIONS,
        created=created,
        engine_paths=(meas.shipped_engine_measurements_path(),),
        refit_v2=True,
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
            "note": r.note or None,
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
    always re-fitted from ``path``). ``mape_*``/``worst_*`` in %, ``None`` where there is no
    prediction (``note`` says why, e.g. LOGO with one GPU); ``before`` is always the
    uncalibrated perf model. Tensor-parallel rows appear only under ``calibrated`` (ideal
    split; never fitted).

    Raises:
        CalibrationError (or its base CatalogError): unreadable measurements or calibration.
    """
    if perf_model == "v2":
        return validate_v2(path, calibration)
    res, options = _resolve(path, perf_model)
    before = cal.predict(res, options, None)
    fits: cal.Fits | None
    if calibration == "refit":
        fits = cal.fit_groups(res, weighting=weighting).fits
    else:
        try:
            fits = store.load_fits(calibration, perf_model)[1]
        except ValueError as exc:
            raise CalibrationError(f"cannot read calibration {calibration!r}: {exc}") from exc
    after = cal.predict(res, options, fits)
    mask = cal.fit_mask(res)
    lomo = cal.leave_one_model_out(res, options, weighting)
    logo = cal.leave_one_gpu_out(res, options, weighting)
    out = _rows(cal.error_table(res, before, after), "calibrated")
    out += _rows(cal.error_table(res, before, lomo, mask), "lomo")
    out += _rows(cal.error_table(res, before, logo, mask), "logo")
    return out


def validate_v2(path: str | Path, calibration: str = "default") -> list[dict[str, Any]]:
    """Error report of the v2 model on the rows of ``path`` (with the shipped engine rows when
    ``path`` is the shipped Helix file): one row per (check, GPU, phase) and per check one
    ``all``/``all`` row. Checks: ``calibrated`` (shipped constants; corrections of
    ``calibration``: ``default``, ``none``, ``refit`` or a JSON path), and the held-out
    ``lomo``, ``logo``, ``loso`` of :func:`infersave.formulations.engine_fit.cross_validate`
    (always refitted). ``mape_*``, ``median_*`` and ``worst_*`` in %; ``before`` = shipped
    constants without any per-GPU correction.

    Raises:
        CalibrationError: unreadable measurements or calibration.
    """
    res = _engine_rows(path)
    params = engine_model.SHIPPED
    before = ef.predict(res, params)
    if calibration == "refit":
        corr: dict[tuple[str, str], float] = ef.fit_corrections(res, params)
    else:
        try:
            fits = store.load_fits(calibration, "v2")[1] or {}
        except ValueError as exc:
            raise CalibrationError(f"cannot read calibration {calibration!r}: {exc}") from exc
        corr = {k: f.alpha for k, f in fits.items()}
    cv = ef.cross_validate(res, params)
    cv["calibrated"] = ef.predict(res, params, corr)
    y = res.measured_s
    alone = {"lomo": (res.model, "model"), "logo": (res.gpu, "GPU"), "loso": (res.source, "source")}
    out: list[dict[str, Any]] = []
    for check in ef.CHECKS:
        pred = cv[check]
        keys = sorted({(g, p) for g, p in zip(res.gpu, res.phase, strict=True)})
        for g, ph in [*keys, ("all", "all")]:
            sel = (
                np.ones(len(res), dtype=bool) if g == "all" else (res.gpu == g) & (res.phase == ph)
            )
            eb = np.abs(before[sel] / y[sel] - 1) * 100
            ok = sel & np.isfinite(pred)
            ea = np.abs(pred[ok] / y[ok] - 1) * 100
            have = bool(ok.any())
            note = None if have else _why_none(check, alone)
            out.append(_error_row(check, g, ph, int(sel.sum()), eb, ea if have else None, note))
    out += _tensor_parallel_rows(path, params, corr)
    return out


def _error_row(
    check: str,
    gpu: str,
    phase: str,
    points: int,
    before: np.ndarray,
    after: np.ndarray | None,
    note: str | None,
) -> dict[str, Any]:
    """One row of :func:`validate_v2`'s report from the absolute % errors ``before`` (constants
    alone) and ``after`` (the check's predictions; None: no prediction, see ``note``)."""
    return {
        "check": check,
        "gpu": gpu,
        "phase": phase,
        "points": points,
        "mape_before": _finite(float(before.mean())),
        "median_before": _finite(float(np.median(before))),
        "worst_before": _finite(float(before.max())),
        "mape_after": _finite(float(after.mean())) if after is not None else None,
        "median_after": _finite(float(np.median(after))) if after is not None else None,
        "worst_after": _finite(float(after.max())) if after is not None else None,
        "note": note,
    }


def _tensor_parallel_rows(
    path: str | Path, params: ef.V2Params, corr: Mapping[tuple[str, str], float]
) -> list[dict[str, Any]]:
    """The ``tp`` check of :func:`validate_v2`: the tensor-parallel rows of ``path``, held out
    by construction (the fits use single-GPU rows only), predicted by
    :func:`.tp_validation.predict_tp` with the shipped constants and ``corr`` (``before``:
    without the per-GPU scales); one row per (GPU x degree, phase) and one ``all`` row."""
    try:
        tp = tpv.resolve_tp(
            meas.read_measurements(path), meas.find_calibration_gpu, meas.find_calibration_model
        )
    except ValueError as exc:
        raise CalibrationError(f"{Path(path).name}: {exc}") from exc
    if not len(tp):
        return []
    y = tp.measured_s
    before, after = tpv.predict_tp(tp, params), tpv.predict_tp(tp, params, corr)
    out: list[dict[str, Any]] = []
    keys = sorted({(g, p) for g, p in zip(tp.group, tp.phase, strict=True)})
    for g, ph in [*keys, ("all", "all")]:
        sel = np.ones(len(tp), dtype=bool) if g == "all" else (tp.group == g) & (tp.phase == ph)
        eb = np.abs(before[sel] / y[sel] - 1) * 100
        ea = np.abs(after[sel] / y[sel] - 1) * 100
        out.append(_error_row("tp", g, ph, int(sel.sum()), eb, ea, None))
    return out


def _why_none(check: str, alone: dict[str, tuple[np.ndarray, str]]) -> str:
    key, what = alone.get(check, (np.array([]), ""))
    if len(set(key.tolist())) <= 1:
        return f"only one {what} in the data: nothing to hold out"
    return "no held-out prediction"


def _pooled(rows: list[dict[str, Any]], key: str) -> float | None:
    have = [r for r in rows if r[key] is not None]
    n = sum(r["points"] for r in have)
    return sum(r["points"] * r[key] for r in have) / n if n else None


def summary_lines(report: list[dict[str, Any]]) -> list[str]:
    """Pooled MAPE per check and phase over single-GPU groups, for a short footer; ``n/a`` with
    the reason where no group has a figure."""
    lines = []
    if any(r["gpu"] == "all" for r in report):
        for r in report:
            if r["gpu"] == "all" and r["median_after"] is None:
                lines.append(f"{r['check']:10s} all rows  median error n/a ({r['note']})")
            elif r["gpu"] == "all":
                lines.append(
                    f"{r['check']:10s} all rows  median error {_pct_text(r['median_after'])},"
                    f" mean {_pct_text(r['mape_after'])} (constants alone:"
                    f" median {_pct_text(r['median_before'])})"
                )
        return lines
    for check in ("calibrated", "lomo", "logo"):
        for phase in store.FIT_PHASES:
            rows = [
                r
                for r in report
                if r["check"] == check and r["phase"] == phase and "(TP)" not in r["gpu"]
            ]
            if not rows:
                continue
            before, after = _pooled(rows, "mape_before"), _pooled(rows, "mape_after")
            b = "n/a" if before is None else f"{before:5.1f}%"
            if after is None:
                notes = sorted({r["note"] for r in rows if r.get("note")})
                a = "n/a" + (f" ({'; '.join(notes)})" if notes else "")
            else:
                a = f"{after:5.1f}%"
            lines.append(f"{check:10s} {phase:8s} MAPE uncalibrated {b}  -> {a}")
    return lines


def _pct_text(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}%"


def fit_table_rows(doc: dict[str, Any], perf_model: str) -> list[dict[str, Any]]:
    """Table III-like rows of a calibration document for one perf model."""
    return [dict(e, perf_model=perf_model) for e in doc["fits"].get(perf_model, [])]


__all__ = [
    "PERF_MODELS",
    "calibrate",
    "check_perf_models",
    "fit_perf_model",
    "fit_table_rows",
    "shipped_calibration",
    "summary_lines",
    "validate",
    "validate_v2",
]
