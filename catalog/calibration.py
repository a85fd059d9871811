"""Shipped CTCF calibration (paper Eq. 7) and the calibration file format.

``data/calibration.json`` is fitted by ``infersave calibrate`` from ``data/measurements_helix.csv``
(curated from the Helix ASPLOS'25 per-layer measurements, see
:mod:`infersave.formulations.calibrate_curate`). A calibration file holds one fit PER PERF
MODEL, because alpha and beta correct one time model's output and mean nothing for another::

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

``beta_s`` is seconds per decoder layer. ``calibration_models.json`` lists model shapes that
measurements may reference besides the catalog's models (e.g. ``llama-30b``).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from infersave.catalog.schemas import GPU, LLM

FORMAT = "infersave-calibration/1"
SHIPPED_FILE = "calibration.json"
SHIPPED_MEASUREMENTS = "measurements_helix.csv"

Calibration = Mapping[tuple[str, str], tuple[float, float]]
"""(GPU name, phase) -> (alpha, beta seconds per layer), as in formulations/candidates.py."""


def _data_text(name: str) -> str:
    return resources.files("infersave.catalog").joinpath("data", name).read_text("utf-8")


def shipped_measurements_path() -> Path:
    """Path of the shipped measurement CSV (inside the installed package)."""
    return Path(str(resources.files("infersave.catalog").joinpath("data", SHIPPED_MEASUREMENTS)))


@functools.cache
def calibration_models() -> dict[str, LLM]:
    """Extra model shapes for calibration data (``calibration_models.json``), by name."""
    data = json.loads(_data_text("calibration_models.json"))
    return {m["name"]: LLM.model_validate(m) for m in data["models"]}


def find_calibration_model(name: str) -> LLM:
    """A catalog model (:func:`infersave.catalog.load.find_model`) or one of
    :func:`calibration_models`.

    Raises:
        ValueError (CatalogError): unknown model, with close matches.
    """
    from infersave.catalog import load

    extra = calibration_models()
    if name.strip().lower() in extra:
        return extra[name.strip().lower()]
    return load.find_model(name)


def find_calibration_gpu(name: str) -> GPU:
    """The catalog GPU ``name`` (datasheet figures of the ``aws`` price set).

    Raises:
        ValueError (CatalogError): unknown GPU, with close matches.
    """
    from infersave.catalog import load

    return load.find_gpu(name)


SAME_SILICON: dict[str, str] = {"T4G": "T4"}
"""GPUs that the catalog takes as the same chip as another (gpus.csv: "T4G ... ASSUMED equal to
T4"), so a calibration of the one applies to the other unless the file has its own entry."""


def parse_calibration(
    data: Any, perf_model: str, formulas: str = "physics", where: str = "calibration"
) -> tuple[str, dict[tuple[str, str], tuple[float, float]]]:
    """Validate a calibration document and return (name, coefficients for ``perf_model``).

    Raises:
        ValueError: not a calibration document, no fit for ``perf_model`` or ``formulas``, or a
            malformed entry (the message names ``where`` and the entry).
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{where}: not an infersave calibration file (format {FORMAT!r})")
    fits = data.get("fits")
    if not isinstance(fits, dict):
        raise ValueError(f"{where}: missing 'fits' object")
    if data.get("formulas", "physics") != formulas:
        raise ValueError(
            f"{where}: fitted for --formulas {data.get('formulas')!r}, not {formulas!r}"
        )
    if perf_model not in fits:
        have = ", ".join(sorted(fits)) or "none"
        raise ValueError(
            f"{where}: fitted for perf model(s) {have}, not {perf_model!r};"
            f" refit with: infersave calibrate MEASUREMENTS --perf-model {perf_model}"
        )
    coef: dict[tuple[str, str], tuple[float, float]] = {}
    for k, e in enumerate(fits[perf_model]):
        try:
            gpu, phase = str(e["gpu"]), str(e["phase"])
            alpha, beta = float(e["alpha"]), float(e["beta_s"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: fits.{perf_model}[{k}]: bad entry ({exc})") from exc
        if phase not in ("prefill", "decode"):
            raise ValueError(f"{where}: fits.{perf_model}[{k}]: unknown phase {phase!r}")
        if not (alpha == alpha and beta == beta):  # NaN
            raise ValueError(f"{where}: fits.{perf_model}[{k}]: alpha/beta not numbers")
        if alpha <= 0 or beta < 0:
            # CTCF must map positive model times to positive times at every scale the solver
            # evaluates (small models, batch 1), not only over the measured range.
            raise ValueError(
                f"{where}: fits.{perf_model}[{k}] ({gpu} {phase}): alpha={alpha:.4g},"
                f" beta={beta:.4g} would predict non-positive times; need alpha > 0, beta >= 0"
                " (infersave calibrate constrains beta >= 0)"
            )
        coef[(gpu, phase)] = (alpha, beta)
    for alias, same in SAME_SILICON.items():
        for phase in ("prefill", "decode"):
            if (same, phase) in coef and (alias, phase) not in coef:
                coef[(alias, phase)] = coef[(same, phase)]
    return str(data.get("name") or where), coef


def read_calibration_file(path: str | Path) -> dict[str, Any]:
    """Read a calibration JSON document.

    Raises:
        ValueError: unreadable file or invalid JSON (naming the file).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc


def shipped_document() -> dict[str, Any]:
    """The shipped calibration document (``data/calibration.json``)."""
    return json.loads(_data_text(SHIPPED_FILE))


def load_calibration(
    spec: str, perf_model: str = "roofline", formulas: str = "physics"
) -> tuple[str, Calibration | None]:
    """Resolve a ``--calibration`` value for a scenario's perf model.

    Args:
        spec: ``"default"`` (the shipped fit), ``"none"``, or the path of a calibration JSON.
        perf_model: the scenario's ``--perf-model``; a calibration only applies to the perf
            model it was fitted for.
        formulas: the scenario's ``--formulas``; the shipped fit is for ``physics``.

    Returns:
        (name, coefficients) - ``("uncalibrated", None)`` for ``"none"``, and for ``"default"``
        when the shipped file has no fit for this perf model / formulas (never applied silently
        to the wrong model).

    Raises:
        ValueError: an unreadable or malformed file, or a file without a fit for
            ``perf_model``/``formulas`` (message says how to refit).
    """
    if spec == "none":
        return "uncalibrated", None
    if spec == "default":
        try:
            name, coef = parse_calibration(shipped_document(), perf_model, formulas, SHIPPED_FILE)
        except ValueError:
            return "uncalibrated", None
        return name, coef
    name, coef = parse_calibration(read_calibration_file(spec), perf_model, formulas, spec)
    return name, coef


def write_json_atomic(data: Any, path: str | Path) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (temp file in the same
    directory, then :func:`os.replace`), so a reader never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
