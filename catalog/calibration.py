"""The calibration file store: CTCF fits (paper Eq. 7), their JSON file, and the shipped one.

``data/calibration.json`` is fitted by ``infersave calibrate`` from
``data/measurements_helix.csv`` (:mod:`infersave.catalog.measurements`; curated by
:mod:`infersave.catalog.curate_measurements`). A calibration file holds one fit PER PERF MODEL,
because alpha and beta correct one time model's output and mean nothing for another::

    {
      "format": "infersave-calibration/1",
      "name": "helix-asplos25",
      "source": "...", "created": "YYYY-MM-DD", "assumptions": ["..."],
      "formulas": "physics",
      "fits": {
        "roofline": [{"gpu": "T4", "phase": "prefill", "alpha": 2.4, "beta_s": 1e-4,
                      "points": 60, "mape_before": 58.0, "mape_after": 3.1,
                      "worst_after": 12.0, "warning": null}, ...],
        "paper": [...]
      }
    }

Every entry is one :class:`CtcfFit`, the single type for a fit: the fitting math returns it
(:mod:`infersave.formulations.ctcf_fit`), the document writer serialises it
(:meth:`CtcfFit.to_entry`) and loading parses it back (:meth:`CtcfFit.from_entry`).

Bounds (:data:`ALPHA_MAX`, :data:`BETA_MAX_S`): a file is only accepted when every entry has
``0 < alpha <= 100`` and ``0 <= beta_s <= 1`` second per decoder layer, all finite. CTCF
multiplies every predicted compute time by alpha and adds beta to every layer, so one absurd
entry (``1e300``, ``Infinity``) silently pushes a GPU out of every recommendation. The bounds
are wide on purpose: measured fits are 0.7-3.7 for alpha and 0-6 ms for beta; an alpha of 100
means the datasheet overstates the GPU a hundredfold, and one second of fixed overhead per layer
is 80 s per step for an 80-layer model. Either is a broken file, not a slow GPU.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from infersave.catalog.load import CatalogError

FORMAT = "infersave-calibration/1"
SHIPPED_FILE = "calibration.json"
FIT_PHASES: tuple[str, ...] = ("prefill", "decode")
ALPHA_MAX = 100.0
"""Largest accepted CTCF scale (dimensionless); alpha must also be > 0."""
BETA_MAX_S = 1.0
"""Largest accepted CTCF offset, seconds per decoder layer; beta must also be >= 0."""

Calibration = Mapping[tuple[str, str], tuple[float, float]]
"""(GPU name, phase) -> (alpha, beta seconds per layer): what the candidate table
(formulations/candidates.py) consumes; :func:`load_calibration` projects the fits onto it."""

SAME_SILICON: dict[str, str] = {"T4G": "T4"}
"""GPUs that the catalog takes as the same chip as another (gpus.csv: "T4G ... ASSUMED equal to
T4"), so a calibration of the one applies to the other unless the file has its own entry."""


class CalibrationError(CatalogError):
    """A calibration or measurement problem the user can fix (bad file, nothing to fit, bad
    option). A :class:`CatalogError` (so a :class:`ValueError`): the CLI prints it as one line
    and exits 2."""


@dataclass(frozen=True)
class CtcfFit:
    """CTCF (Eq. 7) ``T -> alpha * T + beta`` for one (GPU, phase), with how well it fits.

    ``alpha`` is dimensionless, ``beta`` seconds per decoder layer (``beta_s`` in the file).
    ``points``: measurements fitted; ``mape_before``/``mape_after``: mean absolute percentage
    error (%) of the uncalibrated and calibrated predictions on them; ``worst_after`` the largest
    absolute one (%); ``None`` when unknown (a hand-written file). ``warning`` notes a clamped
    offset or a negative alpha. ``gpu``/``phase`` are empty for a fit not yet assigned to a
    group. A fit can be outside the accepted bounds (the math reports what the data say);
    :meth:`bounds_problem` says so, and the file store never writes or loads such a fit.
    """

    alpha: float
    beta: float
    points: int = 0
    mape_before: float | None = None
    mape_after: float | None = None
    worst_after: float | None = None
    warning: str | None = None
    gpu: str = ""
    phase: str = ""

    @property
    def coefficients(self) -> tuple[float, float]:
        """``(alpha, beta)``, the pair the candidate table applies."""
        return self.alpha, self.beta

    def bounds_problem(self) -> str | None:
        """Why this fit may not be used (outside the documented bounds), or ``None``."""
        a, b = self.alpha, self.beta
        if not (math.isfinite(a) and 0.0 < a <= ALPHA_MAX):
            return (
                f"field 'alpha': {a:.6g} is outside (0, {ALPHA_MAX:g}] (alpha <= 0 predicts"
                " non-positive times; a larger one is a broken fit)"
            )
        if not (math.isfinite(b) and 0.0 <= b <= BETA_MAX_S):
            return (
                f"field 'beta_s': {b:.6g} is outside [0, {BETA_MAX_S:g}] seconds per layer"
                " (infersave calibrate constrains beta >= 0)"
            )
        return None

    def to_entry(self) -> dict[str, Any]:
        """The file's JSON entry (percentages rounded to 4 decimals)."""

        def pct(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(x, 4)

        return {
            "gpu": self.gpu,
            "phase": self.phase,
            "alpha": self.alpha,
            "beta_s": self.beta,
            "points": self.points,
            "mape_before": pct(self.mape_before),
            "mape_after": pct(self.mape_after),
            "worst_after": pct(self.worst_after),
            "warning": self.warning,
        }

    @classmethod
    def from_entry(cls, entry: Any, where: str) -> CtcfFit:
        """Parse and check one JSON entry; ``where`` prefixes every message.

        Raises:
            CalibrationError: missing or mistyped field, unknown phase, or a coefficient outside
                the bounds (naming the GPU, phase and field).
        """

        def bad(msg: str) -> NoReturn:
            raise CalibrationError(f"{where}: {msg}")

        if not isinstance(entry, dict):
            bad("entry is not an object")
        for key in ("gpu", "phase", "alpha", "beta_s"):
            if key not in entry:
                bad(f"missing field {key!r}")
        gpu, phase = entry["gpu"], entry["phase"]
        if not isinstance(gpu, str) or not gpu:
            bad("field 'gpu' must be a GPU name")
        if phase not in FIT_PHASES:
            bad(f"({gpu}) field 'phase': {phase!r} is not one of {', '.join(FIT_PHASES)}")
        label = f"({gpu} {phase})"

        def number(key: str, optional: bool = True) -> float | None:
            value = entry.get(key)
            if value is None:
                if optional:
                    return None
                bad(f"{label} field {key!r} is missing or null")
            if isinstance(value, bool) or not isinstance(value, int | float):
                bad(f"{label} field {key!r}: {value!r} is not a number")
            try:
                x = float(value)
            except OverflowError:
                x = math.inf
            if not math.isfinite(x):
                bad(f"{label} field {key!r}: {x!r} is not finite")
            return x

        points = entry.get("points", 0)
        if isinstance(points, bool) or not isinstance(points, int) or points < 0:
            bad(f"{label} field 'points': {points!r} is not a count")
        warning = entry.get("warning")
        if warning is not None and not isinstance(warning, str):
            bad(f"{label} field 'warning': not a string")
        fit = cls(
            alpha=number("alpha", optional=False),  # type: ignore[arg-type]
            beta=number("beta_s", optional=False),  # type: ignore[arg-type]
            points=points,
            mape_before=number("mape_before"),
            mape_after=number("mape_after"),
            worst_after=number("worst_after"),
            warning=warning,
            gpu=gpu,
            phase=phase,
        )
        if problem := fit.bounds_problem():
            bad(f"{label} {problem}")
        return fit


Fits = dict[tuple[str, str], CtcfFit]
"""(GPU name, phase) -> its fit."""


def parse_calibration(
    data: Any, perf_model: str, formulas: str = "physics", where: str = "calibration"
) -> tuple[str, Fits]:
    """Validate a calibration document and return (name, fits for ``perf_model``).

    GPUs of :data:`SAME_SILICON` without their own entry get their twin's fit.

    Raises:
        CalibrationError: not a calibration document, no fit for ``perf_model`` or
            ``formulas``, a malformed or out-of-bounds entry (in any perf model's section), or
            two entries for one (GPU, phase); the message names ``where`` and the entry.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CalibrationError(f"{where}: not an infersave calibration file (format {FORMAT!r})")
    fits = data.get("fits")
    if not isinstance(fits, dict):
        raise CalibrationError(f"{where}: missing 'fits' object")
    if data.get("formulas", "physics") != formulas:
        raise CalibrationError(
            f"{where}: fitted for --formulas {data.get('formulas')!r}, not {formulas!r}"
        )
    if perf_model not in fits:
        have = ", ".join(sorted(fits)) or "none"
        raise CalibrationError(
            f"{where}: fitted for perf model(s) {have}, not {perf_model!r};"
            f" refit with: infersave calibrate MEASUREMENTS --perf-model {perf_model}"
        )
    entries = fits[perf_model]
    if not isinstance(entries, list):
        raise CalibrationError(f"{where}: fits.{perf_model} is not a list")
    # one absurd entry makes the whole file suspect, whichever perf model it is for
    for other, section in sorted(fits.items()):
        if other != perf_model and isinstance(section, list):
            for k, e in enumerate(section):
                CtcfFit.from_entry(e, f"{where}: fits.{other}[{k}]")
    out: Fits = {}
    for k, e in enumerate(entries):
        fit = CtcfFit.from_entry(e, f"{where}: fits.{perf_model}[{k}]")
        key = (fit.gpu, fit.phase)
        if key in out:
            raise CalibrationError(
                f"{where}: fits.{perf_model}[{k}]: a second entry for {fit.gpu} {fit.phase}"
            )
        out[key] = fit
    for alias, same in SAME_SILICON.items():
        for phase in FIT_PHASES:
            if (same, phase) in out and (alias, phase) not in out:
                out[(alias, phase)] = out[(same, phase)]
    return str(data.get("name") or where), out


class _Constant(str):
    """Marks where a JSON ``Infinity``/``-Infinity``/``NaN`` stood (for the error message)."""


def _no_constant(name: str) -> NoReturn:
    raise ValueError(name)


def _find_constant(node: Any, path: str = "") -> tuple[str, str] | None:
    """(JSON path, with an entry's GPU and phase, and the constant) of the first marked one."""
    if isinstance(node, _Constant):
        return path, str(node)
    items: Any = ()
    if isinstance(node, dict):
        label = ""
        if isinstance(node.get("gpu"), str) and isinstance(node.get("phase"), str):
            label = f" ({node['gpu']} {node['phase']})"
        items = (
            (f"{path}{label} field {k!r}" if label else f"{path}.{k}", v) for k, v in node.items()
        )
    elif isinstance(node, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(node))
    for sub, value in items:
        if found := _find_constant(value, sub):
            return found
    return None


def parse_json(text: str, where: str) -> Any:
    """Strict JSON: ``Infinity``, ``-Infinity`` and ``NaN`` are refused, not read as floats.

    Raises:
        CalibrationError: invalid JSON (naming ``where`` and the line), or such a constant
            (naming where it stands: the entry's GPU, phase and field).
    """
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{where}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    except ValueError as exc:
        found = _find_constant(json.loads(text, parse_constant=_Constant))
        at, name = found if found else ("", str(exc))
        raise CalibrationError(
            f"{where}: {at.lstrip('.') + ': ' if at else ''}{name} is not a finite number"
            " (JSON has no Infinity or NaN)"
        ) from exc


def read_calibration_file(path: str | Path) -> dict[str, Any]:
    """Read a calibration JSON document (UTF-8, a byte-order mark allowed).

    Raises:
        CalibrationError: unreadable file or invalid JSON (naming the file).
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot read: {exc}") from exc
    return parse_json(text, str(path))


def shipped_document() -> dict[str, Any]:
    """The shipped calibration document (``data/calibration.json``)."""
    text = resources.files("infersave.catalog").joinpath("data", SHIPPED_FILE).read_text("utf-8")
    return parse_json(text, SHIPPED_FILE)


def load_fits(
    spec: str, perf_model: str = "roofline", formulas: str = "physics"
) -> tuple[str, Fits | None]:
    """Resolve a ``--calibration`` value to its fits for a scenario's perf model.

    Args:
        spec: ``"default"`` (the shipped fit), ``"none"``, or the path of a calibration JSON.
        perf_model: the scenario's ``--perf-model``; a calibration only applies to the perf
            model it was fitted for.
        formulas: the scenario's ``--formulas``; the shipped fit is for ``physics``.

    Returns:
        (name, fits) - ``("uncalibrated", None)`` for ``"none"``, and for ``"default"`` when the
        shipped file has no fit for this perf model / formulas (never applied silently to the
        wrong model).

    Raises:
        CalibrationError: an unreadable, malformed or out-of-bounds file, or a file without a
            fit for ``perf_model``/``formulas`` (the message says how to refit).
    """
    if spec == "none":
        return "uncalibrated", None
    if spec == "default":
        try:
            return parse_calibration(shipped_document(), perf_model, formulas, SHIPPED_FILE)
        except CalibrationError:
            return "uncalibrated", None
    return parse_calibration(read_calibration_file(spec), perf_model, formulas, spec)


def load_calibration(
    spec: str, perf_model: str = "roofline", formulas: str = "physics"
) -> tuple[str, Calibration | None]:
    """:func:`load_fits`, projected onto the (alpha, beta) pairs of :data:`Calibration`."""
    name, fits = load_fits(spec, perf_model, formulas)
    if fits is None:
        return name, None
    out = {k: f.coefficients for k, f in fits.items()}
    doc = shipped_document() if spec == "default" else read_calibration_file(spec)
    out.update(band_entries(doc, perf_model, SHIPPED_FILE if spec == "default" else spec))
    return name, out


BAND_MAX = 5.0
"""Largest accepted band, log-space RMS error (a factor e^5 = 148: a broken file)."""


def band_entries(
    doc: Mapping[str, Any], perf_model: str, where: str = "calibration"
) -> dict[tuple[str, str], tuple[float, float]]:
    """The error bands of ``doc`` for ``perf_model`` as :data:`Calibration` entries:
    ``(gpu, "band") -> (sigma, 0.0)`` per GPU with a band of its own (and its
    :data:`SAME_SILICON` twins) and ``("*", "band")`` for every other GPU; sigma is the
    log-space RMS error of a prediction under cross-validation. Empty without bands.

    Raises:
        CalibrationError: a band that is not a number in [0, :data:`BAND_MAX`].
    """
    bands = doc.get("bands", {})
    entry = bands.get(perf_model) if isinstance(bands, dict) else None
    if entry is None:
        return {}

    def sigma(x: Any, label: str) -> float:
        if isinstance(x, bool) or not isinstance(x, int | float) or not 0 <= x <= BAND_MAX:
            raise CalibrationError(
                f"{where}: bands.{perf_model} {label}: {x!r} is not a number in [0, {BAND_MAX:g}]"
            )
        return float(x)

    if not isinstance(entry, dict) or not isinstance(entry.get("gpus", {}), dict):
        raise CalibrationError(f"{where}: bands.{perf_model} is not an object")
    out = {("*", "band"): (sigma(entry.get("default_log_sigma"), "default_log_sigma"), 0.0)}
    for g, x in entry.get("gpus", {}).items():
        out[(str(g), "band")] = (sigma(x, str(g)), 0.0)
    for alias, same in SAME_SILICON.items():
        if (same, "band") in out and (alias, "band") not in out:
            out[(alias, "band")] = out[(same, "band")]
    return out


__all__ = [
    "ALPHA_MAX",
    "BAND_MAX",
    "BETA_MAX_S",
    "FIT_PHASES",
    "FORMAT",
    "SAME_SILICON",
    "SHIPPED_FILE",
    "Calibration",
    "CalibrationError",
    "CtcfFit",
    "Fits",
    "band_entries",
    "load_calibration",
    "load_fits",
    "parse_calibration",
    "parse_json",
    "read_calibration_file",
    "shipped_document",
]
