"""Fitting and cross-validating the v2 time model (:mod:`.engine_model`) on measurements.

Two stages, so that a calibration carries from one model size to another and from calibrated
GPUs to uncalibrated ones:

1. :func:`fit_params`: the GPU-independent constants (:class:`~.engine_model.V2Params`) by
   :func:`scipy.optimize.least_squares` on log residuals ``log(pred / measured)`` of every
   single-GPU row (per-layer Helix rows, whole-model ``prefill``, ``decode`` and ``e2e`` rows).
   Each (source, GPU, phase) group carries the same total weight (weights ``1/sqrt(n)``), so the
   1,000 Helix rows do not drown the 80 engine rows. A constant without data in the fitted rows
   (no slot-powered card, no fp8 row, no whole-model row) takes its neutral value (the
   full-power efficiency, a factor of 1, no per-pass cost), never a starting guess.
2. :func:`fit_corrections`: one scale per (GPU, phase) where the GPU has rows of its own, the
   weighted geometric mean of measured / predicted (prefill from prefill rows, decode from
   decode and e2e rows). They ship as ``fits.v2`` of the calibration file (alpha, beta 0).

Sources (for leave-one-source-out) are the measuring engines: ``vllm`` (Helix), ``lmdeploy``
and ``trtllm``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from infersave.catalog.measurements import Measurement
from infersave.catalog.schemas import GPU, LLM
from infersave.formulations import engine_model
from infersave.formulations import time_model as time
from infersave.formulations.engine_model import V2Params

Corrections = Mapping[tuple[str, str], float]
"""(GPU name, ``prefill``/``decode``) -> scale of that phase's predicted time."""

_NAMES = tuple(V2Params.__dataclass_fields__)
_LOWER = np.array([0.2, 0.05, 0.05, 0.1, 0.0, 0.0, 0.0])
_UPPER = np.array([engine_model.MAX_MEMORY_EFFICIENCY, 1.0, 1.0, 1.5, 1e-3, 0.05, 0.1])
"""Bounds of the fit, in the order of :data:`_NAMES`: efficiencies are shares (memory: at most
the achievable :data:`~.engine_model.MAX_MEMORY_EFFICIENCY`), per-pass costs in seconds."""
_START = np.array([0.8, 0.6, 0.4, 0.6, 2e-5, 2e-3, 5e-3])
CHECKS: tuple[str, ...] = ("calibrated", "lomo", "logo", "loso")


@dataclass(frozen=True)
class Rows:
    """Single-GPU measurements with their GPU and model resolved (arrays of shape ``(R,)``)."""

    rows: tuple[Measurement, ...]
    gpus: tuple[GPU, ...]
    models: tuple[LLM, ...]
    measured_s: np.ndarray
    gpu: np.ndarray  # names
    phase: np.ndarray
    source: np.ndarray  # measuring engine
    model: np.ndarray  # names

    def __len__(self) -> int:
        return len(self.rows)


def source_of(m: Measurement) -> str:
    """The source a row is held out by in leave-one-source-out: its engine (``unknown``)."""
    return m.engine or "unknown"


def resolve(
    rows: Sequence[Measurement],
    find_gpu: Callable[[str], GPU],
    find_model: Callable[[str], LLM],
) -> Rows:
    """Resolve the single-GPU rows (tensor-parallel rows are dropped: the model has no TP).

    Raises:
        ValueError: an unknown GPU or model (prefixed with the row number).
    """
    keep = [m for m in rows if m.tensor_parallel == 1]
    gpus, models = resolve_specs(keep, find_gpu, find_model, "measurement")
    return Rows(
        tuple(keep),
        tuple(gpus),
        tuple(models),
        np.array([m.time_s for m in keep]),
        np.array([g.name for g in gpus]),
        np.array([m.phase for m in keep]),
        np.array([source_of(m) for m in keep]),
        np.array([x.name for x in models]),
    )


def resolve_specs(
    rows: Sequence[Measurement],
    find_gpu: Callable[[str], GPU],
    find_model: Callable[[str], LLM],
    what: str,
) -> tuple[list[GPU], list[LLM]]:
    """The GPU and model of each of ``rows``.

    Raises:
        ValueError: an unknown GPU or model, prefixed with ``what`` and the row number.
    """
    gpus, models = [], []
    for i, m in enumerate(rows):
        try:
            gpus.append(find_gpu(m.gpu))
            models.append(find_model(m.model))
        except ValueError as exc:
            raise type(exc)(f"{what} row {i + 1}: {exc}") from exc
    return gpus, models


def _parts(res: Rows, i: int, p: V2Params) -> tuple[float, float, float]:
    """(prefill seconds, decode-step seconds, decode steps) of row ``i``: what its time is
    made of (per-layer rows: the covered layers only, no per-pass cost)."""
    m, g, llm = res.rows[i], res.gpus[i], res.models[i]
    peak = (g.dtype_tflops(m.dtype) or g.fp16_dense_tflops) * 1e12
    peak *= engine_model.sustained_peak_factor(g.tdp_w, p)
    bw = g.memory_bandwidth_gbs * 1e9
    whole = m.layers is None
    n = float(m.layers or llm.num_hidden_layers)
    if m.phase == "decode":
        _, dec = time.v2_layer_seconds(llm, m.batch_size, 1, m.input_len, peak, bw, m.dtype, p)
        return 0.0, n * float(dec) + (p.step_overhead_s if whole else 0.0), 1.0
    ctx = m.input_len + m.output_len / 2.0
    pre, dec = time.v2_layer_seconds(llm, m.batch_size, m.input_len, ctx, peak, bw, m.dtype, p)
    t_pre = n * float(pre) + (p.prefill_overhead_s if whole else 0.0)
    if m.phase == "prefill":
        return t_pre, 0.0, 0.0
    t_dec = n * float(dec) + (p.step_overhead_s if whole else 0.0)
    return t_pre, t_dec, max(m.output_len - 1.0, 0.0)


def predict(res: Rows, params: V2Params, corrections: Corrections | None = None) -> np.ndarray:
    """Predicted ``time_s`` of every row (seconds), scaled by ``corrections`` where they have
    the row's (GPU, phase); e2e rows: corrected prefill + steps x corrected decode step."""
    c = corrections or {}
    out = np.empty(len(res))
    for i in range(len(res)):
        pre, dec, steps = _parts(res, i, params)
        g = res.gpu[i]
        out[i] = pre * c.get((g, "prefill"), 1.0) + steps * dec * c.get((g, "decode"), 1.0)
    return out


def _weights(res: Rows, mask: np.ndarray) -> np.ndarray:
    trio = zip(res.source, res.gpu, res.phase, strict=True)
    keys = np.array([f"{s}|{g}|{p}" for s, g, p in trio])
    w = np.zeros(len(res))
    for k in set(keys[mask]):
        sel = mask & (keys == k)
        w[sel] = 1.0 / math.sqrt(int(sel.sum()))
    return w


def fit_params(res: Rows, mask: np.ndarray | None = None) -> V2Params:
    """Least-squares fit of the GPU-independent constants on the rows of ``mask`` (all).

    Raises:
        ValueError: no rows to fit.
    """
    mask = np.ones(len(res), dtype=bool) if mask is None else mask
    if not mask.any():
        raise ValueError("v2 fit: no single-GPU measurements to fit")
    low = np.array([engine_model.is_low_power(g.tdp_w) for g in res.gpus])
    fp8 = np.array([m.dtype in ("fp8", "int8") for m in res.rows])
    whole = np.array([m.layers is None for m in res.rows])
    has_low, has_fp8 = bool((mask & low).any()), bool((mask & fp8).any())
    has_whole = bool((mask & whole).any())
    idx = np.flatnonzero(mask)
    w = _weights(res, mask)[idx]
    y = res.measured_s[idx]
    sub = Rows(
        tuple(res.rows[i] for i in idx),
        tuple(res.gpus[i] for i in idx),
        tuple(res.models[i] for i in idx),
        y,
        res.gpu[idx],
        res.phase[idx],
        res.source[idx],
        res.model[idx],
    )

    def params_of(x: np.ndarray) -> V2Params:
        p = V2Params(*map(float, x))
        if not has_low:
            p = replace(p, low_power_compute_efficiency=p.compute_efficiency)
        if not has_fp8:
            p = replace(p, fp8_compute_factor=1.0)
        if not has_whole:  # per-layer rows carry no per-pass cost
            p = replace(p, step_overhead_s=0.0, prefill_overhead_s=0.0)
        return p

    from scipy.optimize import least_squares

    def residuals(x: np.ndarray) -> np.ndarray:
        return w * np.log(predict(sub, params_of(x)) / y)

    fit = least_squares(residuals, _START, bounds=(_LOWER, _UPPER))
    return params_of(fit.x)


def fit_corrections(res: Rows, params: V2Params, mask: np.ndarray | None = None) -> dict:
    """One scale per (GPU, phase) with rows in ``mask``: the weighted geometric mean of
    measured / predicted (prefill rows -> prefill; decode and e2e rows -> decode)."""
    mask = np.ones(len(res), dtype=bool) if mask is None else mask
    pred = predict(res, params)
    w2 = _weights(res, mask) ** 2
    fam = np.where(res.phase == "prefill", "prefill", "decode")
    out: dict[tuple[str, str], float] = {}
    for g in sorted(set(res.gpu[mask])):
        for ph in ("prefill", "decode"):
            sel = mask & (res.gpu == g) & (fam == ph)
            if sel.any():
                r = np.log(res.measured_s[sel] / pred[sel])
                out[(g, ph)] = float(np.exp(np.sum(w2[sel] * r) / np.sum(w2[sel])))
    return out


def cross_validate(res: Rows, params: V2Params | None = None) -> dict[str, np.ndarray]:
    """Predictions of every row under each check of :data:`CHECKS` (seconds, nan if none):

    * ``calibrated``: ``params`` (default: a fit on all rows) with per-GPU corrections fitted
      on all rows (in-sample);
    * ``lomo``: constants and corrections refitted without the row's model;
    * ``logo``: constants refitted without the row's GPU, no correction for it (how a GPU
      without data of its own is predicted);
    * ``loso``: constants and corrections refitted without the row's source (engine); the
      held-out engine's GPUs keep corrections only where other sources measured them.
    """
    p_all = params or fit_params(res)
    out = {"calibrated": predict(res, p_all, fit_corrections(res, p_all))}
    for check, key in (("lomo", res.model), ("logo", res.gpu), ("loso", res.source)):
        pred = np.full(len(res), math.nan)
        for k in sorted(set(key)):
            held = key == k
            if held.all():
                continue
            p = fit_params(res, ~held)
            corr = fit_corrections(res, p, ~held)
            pred[held] = predict(res, p, corr)[held]
        out[check] = pred
    return out


def band_log_sigmas(res: Rows, cv: Mapping[str, np.ndarray]) -> tuple[dict[str, float], float]:
    """The expected error of a prediction, as the RMS of ``log(pred / measured)`` under
    cross-validation (dimensionless; a band of +-z sigma in log space):

    * a GPU measured with at least two models: its rows' LOMO errors (a new model on a GPU
      with data of its own);
    * any other GPU (no data, or one model only: holding it out leaves the GPU without data):
      the default, the largest per-GPU LOGO RMS, and never below a calibrated GPU's sigma.

    Returns (sigma per GPU with its own band, default sigma)."""

    def rms(x: np.ndarray) -> float:
        x = x[np.isfinite(x)]
        return float(np.sqrt(np.mean(x * x))) if x.size else math.nan

    lomo = np.log(cv["lomo"] / res.measured_s)
    logo = np.log(cv["logo"] / res.measured_s)
    own: dict[str, float] = {}
    worst_logo = 0.0
    for g in sorted(set(res.gpu)):
        sel = res.gpu == g
        worst_logo = max(worst_logo, rms(logo[sel]) if np.isfinite(rms(logo[sel])) else 0.0)
        if len(set(res.model[sel])) >= 2 and np.isfinite(rms(lomo[sel])):
            own[g] = rms(lomo[sel])
    default = max([worst_logo, *own.values()]) if (own or worst_logo) else math.nan
    return own, default


def uncalibrated(res: Rows, params: V2Params) -> np.ndarray:
    """Predictions with the constants alone (no per-GPU correction), seconds."""
    return predict(res, params)


__all__ = [
    "CHECKS",
    "Corrections",
    "Rows",
    "band_log_sigmas",
    "cross_validate",
    "fit_corrections",
    "fit_params",
    "predict",
    "resolve",
    "source_of",
    "uncalibrated",
]
