"""What the service refuses that the command line accepts: a scenario must not make the server
read its own files, must be finite, and its search must be bounded.

Every check raises :class:`~infersave.InputError` with a one-line message that starts with the
field name (answered 422).
"""

from __future__ import annotations

import difflib
import functools
import math
from typing import Any

from infersave import InputError, Scenario, models
from infersave.service.limits import Limits

CALIBRATIONS = ("default", "none")
"""Calibrations a client may name (files on the server are not the client's to read)."""


@functools.cache
def _model_names() -> dict[str, str]:
    """Lower-case names the catalog answers to (short name, Hugging Face id, its last part)."""
    names: dict[str, str] = {}
    for name, m in models().items():
        names[name.lower()] = name
        names[m.hf_id.lower()] = m.hf_id
        names[m.hf_id.split("/")[-1].lower()] = m.hf_id
    return names


def check_model(model: str) -> None:
    """Only catalog models: on the command line a model may also be a local config.json path,
    which a server must not open for a client."""
    names = _model_names()
    if model.strip().lower() in names:
        return
    close = difflib.get_close_matches(model.strip().lower(), list(names), n=3)
    hint = f"; did you mean: {', '.join(names[c] for c in close)}?" if close else ""
    raise InputError(
        f"model: unknown model {model!r}{hint} (the service takes catalog names and Hugging Face"
        " ids, listed at GET /v1/models; config.json paths only on the command line)"
    )


def check_fields(fields: dict[str, Any]) -> None:
    """Numbers finite (JSON has no Infinity or NaN, and CSV's ``inf`` is not a number a solve
    can meet) and text valid Unicode (JSON's escapes can carry a lone surrogate)."""
    for name, value in fields.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{name}: must be a finite number, got {value}")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"{name}: not valid Unicode text") from None


def check_scenario(s: Scenario, limits: Limits, offload_searched: bool = True) -> None:
    """Refuse what the service will not run (see the module docstring).

    Args:
        offload_searched: whether the offload grid is searched (False for a predict with a
            given ``offload_ratio``).

    Raises:
        InputError: ``field: problem`` in one line.
    """
    check_fields(dict(s))
    check_model(s.model)
    if s.calibration not in CALIBRATIONS:
        raise InputError(
            f"calibration: the service takes {' or '.join(CALIBRATIONS)}, got {s.calibration!r}"
            " (calibration files only on the command line)"
        )
    if s.time_limit is not None and s.time_limit > limits.max_time_limit:
        raise InputError(
            f"time_limit: at most {limits.max_time_limit:g} s on this service, got {s.time_limit:g}"
        )
    levels = round(1 / s.offload_step) + 1 if offload_searched else 1
    grid = len(s.searched_batch_sizes) * levels
    if grid > limits.max_grid:
        raise InputError(
            f"offload_step: {len(s.searched_batch_sizes)} batch sizes x {levels} offload levels"
            f" = {grid} points per instance, more than this service's {limits.max_grid}; use a"
            " coarser offload_step or fewer batch_sizes"
        )
