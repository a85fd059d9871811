"""CTCF calibration math (paper Sec. IV-F, Eq. 7): fitting from measured times, and validation.

The Compute Time Calibration Function ``CTCF(T) = alpha * T + beta`` maps the time model's
uncalibrated per-layer compute time ``T`` (seconds,
:func:`infersave.formulations.time_model.layer_times`) to the measured one. It is fitted by
least squares per (GPU, phase) on measurements (:mod:`infersave.catalog.measurements`):

    minimise  sum_i ((alpha * x_i + beta - y_i) / y_i)^2    (``weighting="relative"``, default)
    minimise  sum_i  (alpha * x_i + beta - y_i)^2           (``weighting="absolute"``, the paper)

with ``x_i`` the predicted and ``y_i`` the measured per-layer time (seconds). Both are solved with
:func:`numpy.linalg.lstsq`. Relative weighting is the default because the figure we report (and
the one that matters for a recommendation) is the mean absolute percentage error: plain least
squares lets the few longest measurements dominate and leaves small batches off by 20-40%.

A fit is a :class:`infersave.catalog.calibration.CtcfFit` (the one type for a fit, shared with
the calibration file store). Validation predicts every measurement uncalibrated and calibrated,
and holds data out: leave-one-model-out and leave-one-GPU-out (:class:`HeldOut`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from infersave.catalog.calibration import FIT_PHASES, CtcfFit
from infersave.catalog.measurements import Measurement
from infersave.catalog.schemas import GPU, LLM
from infersave.formulations import time_model as time
from infersave.formulations.options import ModelOptions

Weighting = Literal["relative", "absolute"]
Fits = Mapping[tuple[str, str], CtcfFit]
"""(GPU name, phase) -> fit."""


def fit_ctcf(
    predicted_s: Sequence[float] | np.ndarray,
    measured_s: Sequence[float] | np.ndarray,
    weighting: Weighting = "relative",
    gpu: str = "",
    phase: str = "",
) -> CtcfFit:
    """Least-squares fit of CTCF (Eq. 7), ``measured ~ alpha * predicted + beta``.

    Args:
        predicted_s: uncalibrated model times, seconds (> 0).
        measured_s: measured times, seconds (> 0), same length.
        weighting: ``"relative"`` minimises squared relative residuals; ``"absolute"`` plain
            squared residuals (the paper's least squares).
        gpu, phase: the group the fit is for (recorded in the result).

    The result can lie outside the bounds a calibration file accepts (e.g. a negative alpha,
    flagged in ``warning``); :meth:`CtcfFit.bounds_problem` says so.

    ``beta`` is constrained to be >= 0 (see the body), so CTCF(T) > 0 for every T > 0 whenever
    ``alpha`` > 0; the fit's ``warning`` says when the constraint was active.

    Raises:
        ValueError: fewer than 3 points, non-finite or non-positive values, mismatched
            lengths, or points that do not determine a line (all predicted values equal).
    """
    x = np.asarray(predicted_s, dtype=np.float64).ravel()
    y = np.asarray(measured_s, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"CTCF fit: {x.size} predicted but {y.size} measured values")
    if x.size < 3:
        raise ValueError(f"CTCF fit needs at least 3 points, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("CTCF fit: predicted and measured times must be finite")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("CTCF fit: predicted and measured times must be positive")
    spread = float(np.ptp(x))
    if spread <= 1e-9 * float(np.max(np.abs(x))):
        raise ValueError(
            "CTCF fit: all points have the same predicted time, so they do not determine"
            " alpha and beta; measure more than one batch size or length"
        )
    w = 1.0 / y if weighting == "relative" else np.ones_like(y)
    design = np.column_stack([x * w, w])
    # Scale columns so the rank test is not fooled by seconds vs. dimensionless units.
    scale = np.linalg.norm(design, axis=0)
    coef, _, rank, _ = np.linalg.lstsq(design / scale, y * w, rcond=None)
    if rank < 2:
        raise ValueError("CTCF fit: points do not determine a line (rank-deficient system)")
    alpha, beta = (coef / scale).tolist()
    clamped = beta < -1e-9 * float(np.max(y))  # below that it is rounding noise around 0
    if beta < 0:
        # Constrained least squares with beta >= 0: the objective is a convex quadratic, so when
        # the free optimum has beta < 0 the constrained one lies on beta = 0, a line through the
        # origin. A negative offset would predict negative times for work smaller than the
        # measured range (a small model or batch), which the solver would then trust.
        alpha = float(np.sum(w * w * x * y) / np.sum(w * w * x * x))
        beta = 0.0
    after = alpha * x + beta
    before_err = np.abs(x - y) / y * 100.0
    after_err = np.abs(after - y) / y * 100.0
    warning = None
    if clamped:
        warning = "beta constrained to 0 (the free fit's offset was negative)"
    if alpha < 0:
        warning = (
            f"negative alpha ({alpha:.4g}): calibrated time falls as the modelled time grows;"
            " do not extrapolate beyond the measured range"
        )
    return CtcfFit(
        alpha=float(alpha),
        beta=float(beta),
        points=int(x.size),
        mape_before=float(before_err.mean()),
        mape_after=float(after_err.mean()),
        worst_after=float(after_err.max()),
        warning=warning,
        gpu=gpu,
        phase=phase,
    )


# ------------------------------------------------------------------ prediction


@dataclass(frozen=True)
class Resolved:
    """Measurements with their GPU and model resolved, as arrays of shape ``(R,)``.

    ``x_layer_s``: uncalibrated per-layer compute time of the row's phase (seconds; for ``e2e``
    rows the decode-step time); ``y_layer_s``: measured time per layer (``time_s / layers``);
    ``layers``: layers the measured time covers.
    """

    rows: tuple[Measurement, ...]
    gpus: tuple[GPU, ...]
    models: tuple[LLM, ...]
    layers: np.ndarray
    x_layer_s: np.ndarray
    y_layer_s: np.ndarray


def _layer_times(m: Measurement, gpu: GPU, llm: LLM, options: ModelOptions) -> time.LayerTimes:
    tp = m.tensor_parallel
    decode = m.phase == "decode"
    return time.layer_times(
        llm,
        np.asarray(float(m.batch_size)),
        m.input_len,
        0 if decode else m.output_len,
        np.asarray(0.0),
        np.asarray(gpu.fp16_dense_tflops * 1e12 * tp),
        np.asarray(gpu.memory_bandwidth_gbs * 1e9 * tp),
        np.asarray((gpu.pcie_bandwidth_gbs or 16.0) * 1e9),
        options,
    )


def resolve(
    rows: Sequence[Measurement],
    find_gpu: Callable[[str], GPU],
    find_model: Callable[[str], LLM],
    options: ModelOptions,
) -> Resolved:
    """Look up every row's GPU and model and compute its uncalibrated per-layer time.

    Raises:
        ValueError: from ``find_gpu``/``find_model`` for an unknown name (prefixed with the row).
    """
    gpus: list[GPU] = []
    llms: list[LLM] = []
    layers = np.empty(len(rows))
    x = np.empty(len(rows))
    for i, m in enumerate(rows):
        try:
            gpu = find_gpu(m.gpu)
            llm = find_model(m.model)
        except ValueError as exc:
            raise type(exc)(f"measurement row {i + 1}: {exc}") from exc
        if m.layers is not None and m.layers > llm.num_hidden_layers:
            raise ValueError(
                f"measurement row {i + 1}: layers={m.layers} but {llm.name} has only"
                f" {llm.num_hidden_layers}"
            )
        gpus.append(gpu)
        llms.append(llm)
        layers[i] = m.layers or llm.num_hidden_layers
        lt = _layer_times(m, gpu, llm, options)
        x[i] = float(lt.prefill_compute if m.phase == "prefill" else lt.decode_compute)
    y = np.array([m.time_s for m in rows]) / layers
    return Resolved(tuple(rows), tuple(gpus), tuple(llms), layers, x, y)


def _ab(fits: Fits, gpu: str, phase: str) -> tuple[float, float]:
    fit = fits.get((gpu, phase))
    return (1.0, 0.0) if fit is None else fit.coefficients


def predict(res: Resolved, options: ModelOptions, fits: Fits | None) -> np.ndarray:
    """Predicted ``time_s`` of every row (seconds), with the CTCF of ``fits`` where it has an
    entry for the row's (GPU, phase) and uncalibrated elsewhere.

    prefill/decode rows: ``layers x CTCF(T_layer)``; e2e rows: Eq. 4 over the covered layers.
    """
    out = np.empty(len(res.rows))
    fits = fits or {}
    for i, m in enumerate(res.rows):
        gname = res.gpus[i].name
        if m.phase == "e2e":
            ap, bp = _ab(fits, gname, "prefill")
            ad, bd = _ab(fits, gname, "decode")
            lt = _layer_times(m, res.gpus[i], res.models[i], options)
            pt = time.phase_times(res.models[i], lt, m.output_len, ap, bp, ad, bd)
            full = res.models[i].num_hidden_layers
            out[i] = float(pt.e2e_s) * res.layers[i] / full
        else:
            a, b = _ab(fits, gname, m.phase)
            out[i] = res.layers[i] * float(time.ctcf(res.x_layer_s[i], a, b))
    return out


# ------------------------------------------------------------------ fitting and validation


def fit_mask(res: Resolved) -> np.ndarray:
    """Rows usable for fitting: single-GPU prefill or decode rows."""
    return np.array(
        [m.phase in FIT_PHASES and m.tensor_parallel == 1 for m in res.rows], dtype=bool
    )


@dataclass(frozen=True)
class GroupFits:
    """Fits per (GPU, phase), and one line per group that could not be fitted (why)."""

    fits: dict[tuple[str, str], CtcfFit]
    skipped: tuple[str, ...] = ()


def fit_groups(
    res: Resolved, mask: np.ndarray | None = None, weighting: Weighting = "relative"
) -> GroupFits:
    """Fit Eq. 7 per (GPU, phase) on the fit-eligible rows (``mask`` narrows them further).

    Groups with too few or degenerate points, or whose fit is outside the bounds a calibration
    file accepts (:meth:`CtcfFit.bounds_problem`), are skipped with the reason (the GPU then
    stays uncalibrated for that phase).
    """
    ok = fit_mask(res) if mask is None else (fit_mask(res) & mask)
    keys = sorted({(res.gpus[i].name, res.rows[i].phase) for i in np.flatnonzero(ok)})
    fits: dict[tuple[str, str], CtcfFit] = {}
    skipped: list[str] = []
    gnames = np.array([g.name for g in res.gpus])
    phases = np.array([m.phase for m in res.rows])
    for gname, phase in keys:
        sel = ok & (gnames == gname) & (phases == phase)
        try:
            fit = fit_ctcf(res.x_layer_s[sel], res.y_layer_s[sel], weighting, gname, phase)
        except ValueError as exc:
            skipped.append(f"{gname} {phase}: not calibrated: {exc}")
            continue
        if problem := fit.bounds_problem():
            skipped.append(f"{gname} {phase}: not calibrated: {problem}")
            continue
        fits[(gname, phase)] = fit
    return GroupFits(fits, tuple(skipped))


@dataclass(frozen=True)
class HeldOut:
    """Held-out predictions (seconds, ``nan`` where none) and, per row, why there is none
    (``""`` where predicted or the row is not a held-out candidate)."""

    pred: np.ndarray
    why: tuple[str, ...]


@dataclass(frozen=True)
class ErrorRow:
    """Error of predictions on one group of rows: MAPE and worst absolute error (%).

    ``before``: uncalibrated; ``after``: with the calibration under test; ``nan`` when the
    group has no prediction, and then ``note`` says why (also when only some rows have one).
    """

    gpu: str
    phase: str
    points: int
    mape_before: float
    worst_before: float
    mape_after: float
    worst_after: float
    note: str = ""


def _pct(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return np.abs(pred - meas) / meas * 100.0


def group_keys(res: Resolved) -> list[tuple[str, str]]:
    """Sorted (GPU label, phase) groups of ``res``; TP rows are labelled ``GPU xN (TP)``."""
    return sorted({_label(res, i) for i in range(len(res.rows))})


def _label(res: Resolved, i: int) -> tuple[str, str]:
    m = res.rows[i]
    g = res.gpus[i].name
    if m.tensor_parallel > 1:
        g = f"{g} x{m.tensor_parallel} (TP)"
    return g, m.phase


def error_table(
    res: Resolved,
    before: np.ndarray,
    after: np.ndarray | HeldOut,
    mask: np.ndarray | None = None,
) -> list[ErrorRow]:
    """MAPE and worst error per (GPU, phase) of two prediction vectors.

    ``after`` may be :class:`HeldOut`; a group where it has no prediction gets ``nan`` and a
    note with the reason (computed without a division by zero).
    """
    why: tuple[str, ...] = ("",) * len(res.rows)
    if isinstance(after, HeldOut):
        after, why = after.pred, after.why
    labels = [_label(res, i) for i in range(len(res.rows))]
    meas = np.array([m.time_s for m in res.rows])
    keep = np.ones(len(res.rows), dtype=bool) if mask is None else mask
    out = []
    for key in sorted(set(labels)):
        sel = keep & np.array([lab == key for lab in labels])
        if not sel.any():
            continue
        sel_a = sel & np.isfinite(after)
        eb = _pct(before[sel], meas[sel])
        reasons = sorted({why[i] for i in np.flatnonzero(sel & ~sel_a) if why[i]})
        note = "; ".join(reasons) or ("no prediction" if not sel_a.any() else "")
        if sel_a.any():
            ea = _pct(after[sel_a], meas[sel_a])
            mape_a, worst_a = float(ea.mean()), float(ea.max())
            if note:
                note = f"{int(sel_a.sum())} of {int(sel.sum())} rows predicted; {note}"
        else:
            mape_a = worst_a = math.nan
        out.append(
            ErrorRow(
                key[0],
                key[1],
                int(sel.sum()),
                float(eb.mean()),
                float(eb.max()),
                mape_a,
                worst_a,
                note,
            )
        )
    return out


def leave_one_model_out(
    res: Resolved, options: ModelOptions, weighting: Weighting = "relative"
) -> HeldOut:
    """Each single-GPU prefill/decode row predicted with the CTCF of its (GPU, phase) fitted on
    the OTHER models' rows only (none when no other model was measured there)."""
    out = np.full(len(res.rows), math.nan)
    why = [""] * len(res.rows)
    names = np.array([m.name for m in res.models])
    elig = fit_mask(res)
    for name in sorted(set(names)):
        held = names == name
        group = fit_groups(res, ~held, weighting)
        pred = predict(res, options, group.fits)
        for i in np.flatnonzero(held & elig):
            key = (res.gpus[i].name, res.rows[i].phase)
            if key in group.fits:
                out[i] = pred[i]
            elif not np.any(elig & ~held & _in_group(res, key)):
                why[i] = "no other model measured on this GPU and phase"
            else:
                why[i] = "the other models' rows could not be fitted"
    return HeldOut(out, tuple(why))


def _in_group(res: Resolved, key: tuple[str, str]) -> np.ndarray:
    return np.array([(g.name, m.phase) == key for g, m in zip(res.gpus, res.rows, strict=True)])


def leave_one_gpu_out(
    res: Resolved, options: ModelOptions, weighting: Weighting = "relative"
) -> HeldOut:
    """Each single-GPU prefill/decode row of GPU g predicted with ONE GPU-agnostic CTCF per
    phase, fitted on the pooled rows of all other GPUs (none when fewer than 3 such rows).
    This is how an unmeasured GPU (e.g. H100) would be predicted if the pooled fit were
    shipped; the uncalibrated model alone is the ``before`` column."""
    del options  # the pooled CTCF applies to the per-layer times already resolved
    out = np.full(len(res.rows), math.nan)
    why = [""] * len(res.rows)
    gnames = np.array([g.name for g in res.gpus])
    elig = fit_mask(res)
    phases = np.array([m.phase for m in res.rows])
    for g in sorted(set(gnames[elig])):
        held = gnames == g
        for phase in FIT_PHASES:
            train = elig & ~held & (phases == phase)
            test = elig & held & (phases == phase)
            if not test.any():
                continue
            reason = ""
            if not train.any():
                reason = "no other GPU measured in this phase"
            elif train.sum() < 3:
                reason = f"only {int(train.sum())} rows on other GPUs (a fit needs 3)"
            else:
                try:
                    f = fit_ctcf(res.x_layer_s[train], res.y_layer_s[train], weighting)
                except ValueError as exc:
                    reason = f"pooled fit failed: {exc}"
                else:
                    reason = f"pooled fit unusable: {p}" if (p := f.bounds_problem()) else ""
            if reason:
                for i in np.flatnonzero(test):
                    why[i] = reason
                continue
            out[test] = res.layers[test] * time.ctcf(res.x_layer_s[test], f.alpha, f.beta)
    return HeldOut(out, tuple(why))


def pooled_fit(res: Resolved, weighting: Weighting = "relative") -> dict[str, CtcfFit]:
    """One GPU-agnostic CTCF per phase over all single-GPU rows (for unmeasured GPUs)."""
    elig = fit_mask(res)
    phases = np.array([m.phase for m in res.rows])
    out = {}
    for phase in FIT_PHASES:
        sel = elig & (phases == phase)
        if sel.sum() >= 3:
            out[phase] = fit_ctcf(res.x_layer_s[sel], res.y_layer_s[sel], weighting, "", phase)
    return out
