"""Measured times for calibration: the :class:`Measurement` record, its CSV file, and the GPU and
model look-ups that measurements may use.

Measurement format (CSV, UTF-8 with or without a byte-order mark, one row per measured time):
``gpu, model, phase, batch_size, input_len, output_len, time_s, layers, source`` and optional
``tensor_parallel`` (default 1), ``dtype`` (precision of weights and KV cache, default
``fp16``) and ``engine`` (the serving engine that measured it, e.g. ``vllm``, ``lmdeploy``,
``trtllm``; empty = unknown).

* ``phase="prefill"``: the whole prefill of ``batch_size`` prompts of ``input_len`` tokens.
* ``phase="decode"``: ONE decode step of ``batch_size`` requests at context ``input_len``
  (``output_len`` is ignored).
* ``phase="e2e"``: prefill plus ``output_len - 1`` decode steps (Eq. 4), validation only.
* ``layers``: decoder layers the time covers (empty = the whole model).
* ``tensor_parallel`` > 1: the layer is split over that many GPUs; the time model has no TP, so
  these rows are predicted as an ideal split (N x FLOPS and N x memory bandwidth) and never
  used for fitting.

``gpu`` is a catalog GPU name; ``model`` a catalog model or one of
``data/calibration_models.json`` (shapes that only measurements use, e.g. ``llama-30b``).
The shipped measurements are curated by :mod:`infersave.catalog.curate_measurements`:
``data/measurements_helix.csv`` (per-layer, vLLM-based) and ``data/measurements_engine.csv``
(whole-model times from lmdeploy and TensorRT-LLM).
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt

from infersave.catalog.load import CatalogError, find_gpu, find_model, read_records
from infersave.catalog.output_files import write_text_atomic
from infersave.catalog.schemas import GPU, LLM

SHIPPED_MEASUREMENTS = "measurements_helix.csv"
SHIPPED_ENGINE_MEASUREMENTS = "measurements_engine.csv"

Phase = Literal["prefill", "decode", "e2e"]

MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "gpu",
    "model",
    "phase",
    "batch_size",
    "input_len",
    "output_len",
    "time_s",
    "layers",
    "source",
    "tensor_parallel",
    "dtype",
    "engine",
)


class Measurement(BaseModel):
    """One measured time (a row of the measurement CSV). Times in seconds, lengths in tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu: str = Field(min_length=1)
    model: str = Field(min_length=1)
    phase: Phase
    batch_size: PositiveInt
    input_len: PositiveInt
    output_len: NonNegativeInt = 0
    time_s: PositiveFloat
    layers: PositiveInt | None
    source: str = ""
    tensor_parallel: PositiveInt = 1
    dtype: Literal["fp32", "fp16", "bf16", "fp8", "int8"] = "fp16"
    engine: str = ""


def shipped_measurements_path() -> Path:
    """Path of the shipped measurement CSV (inside the installed package)."""
    return Path(str(resources.files("infersave.catalog").joinpath("data", SHIPPED_MEASUREMENTS)))


def shipped_engine_measurements_path() -> Path:
    """Path of the shipped whole-model engine measurement CSV (inside the installed package)."""
    return Path(
        str(resources.files("infersave.catalog").joinpath("data", SHIPPED_ENGINE_MEASUREMENTS))
    )


def read_measurements(path: str | Path) -> tuple[Measurement, ...]:
    """Read a measurement CSV (see the module docstring); a UTF-8 byte-order mark is allowed.

    Raises:
        CatalogError: unreadable file, unknown or missing column, a bad value (naming the file,
            row and field), or no rows.
    """
    name = Path(path).name
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{name}: cannot read: {exc}") from exc
    rows = read_records(io.StringIO(text, newline=""), Measurement, name)
    if not rows:
        raise CatalogError(f"{name}: no measurements")
    return rows


def measurements_csv(rows: Iterable[Measurement]) -> str:
    """CSV text of ``rows``: the columns of :data:`MEASUREMENT_COLUMNS`, ``\\n`` line ends,
    times as ``repr`` (17 significant digits) so a round trip is exact."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(MEASUREMENT_COLUMNS)
    for m in rows:
        out.writerow(
            [
                m.gpu,
                m.model,
                m.phase,
                m.batch_size,
                m.input_len,
                m.output_len,
                repr(float(m.time_s)),
                "" if m.layers is None else m.layers,
                m.source,
                m.tensor_parallel,
                m.dtype,
                m.engine,
            ]
        )
    return buf.getvalue()


def write_measurements(rows: Iterable[Measurement], path: str | Path) -> None:
    """Write :func:`measurements_csv` of ``rows`` to ``path`` atomically (UTF-8, no BOM).
    Callers check the path first (:func:`infersave.catalog.output_files.check_output_path`)."""
    write_text_atomic(measurements_csv(rows), path)


@functools.cache
def calibration_models() -> dict[str, LLM]:
    """Extra model shapes for measurements (``data/calibration_models.json``), by name."""
    text = resources.files("infersave.catalog").joinpath("data", "calibration_models.json")
    data = json.loads(text.read_text("utf-8"))
    return {m["name"]: LLM.model_validate(m) for m in data["models"]}


def find_calibration_model(name: str) -> LLM:
    """A catalog model (:func:`infersave.catalog.load.find_model`) or one of
    :func:`calibration_models`.

    Raises:
        CatalogError: unknown model, with close matches.
    """
    extra = calibration_models()
    if name.strip().lower() in extra:
        return extra[name.strip().lower()]
    return find_model(name)


def find_calibration_gpu(name: str) -> GPU:
    """The catalog GPU ``name`` (datasheet figures of the ``aws`` price set).

    Raises:
        CatalogError: unknown GPU, with close matches.
    """
    return find_gpu(name)


__all__ = [
    "MEASUREMENT_COLUMNS",
    "SHIPPED_ENGINE_MEASUREMENTS",
    "SHIPPED_MEASUREMENTS",
    "Measurement",
    "Phase",
    "calibration_models",
    "find_calibration_gpu",
    "find_calibration_model",
    "measurements_csv",
    "read_measurements",
    "shipped_engine_measurements_path",
    "shipped_measurements_path",
    "write_measurements",
]
