"""The user's scenario: the validated input of every solve (pydantic, frozen)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from infersave.formulations.options import DEFAULT_BATCH_SIZES, DTYPE_BYTES, ModelOptions

Backend = Literal["exhaustive", "milp", "cp"]


class InputError(ValueError):
    """Bad user input; the message is one line that says what is wrong and how to fix it."""


class Scenario(BaseModel):
    """One workload to size.

    Lengths are tokens per request; ``slo_tps`` is the throughput target in tokens/s (input plus
    output tokens, Eq. 1); ``max_price`` the price cap P_max in $/h per instance (None: no cap).
    ``batch_size`` fixes the batch size; otherwise every size in ``batch_sizes`` is searched.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    input_len: PositiveInt
    output_len: PositiveInt
    requests: PositiveInt
    slo_tps: PositiveFloat
    max_price: PositiveFloat | None = None
    region: str = "us-east-1"
    catalog: str = "aws"
    batch_sizes: tuple[PositiveInt, ...] = DEFAULT_BATCH_SIZES
    batch_size: PositiveInt | None = None
    offload_step: float = Field(default=0.1, gt=0, le=1)
    billing: Literal["hourly", "per-second"] = "hourly"
    pricing: Literal["on-demand", "spot"] = "on-demand"
    dtype: str = "fp16"
    formulas: Literal["physics", "paper"] = "physics"
    perf_model: Literal["paper", "roofline"] = "roofline"
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    host_memory_utilization: float = Field(default=0.8, gt=0, le=1)
    include_non_nvidia: bool = False
    calibration: str = "default"
    backend: Backend = "milp"
    solver: str = "highs"
    time_limit: PositiveFloat | None = None
    top: int = Field(default=5, ge=0)

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        if v not in DTYPE_BYTES:
            raise ValueError(f"unknown dtype {v!r}; use one of {', '.join(DTYPE_BYTES)}")
        return v

    @field_validator("batch_sizes")
    @classmethod
    def _nonempty(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("batch_sizes must list at least one batch size")
        return tuple(sorted(set(v)))

    @property
    def searched_batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes to evaluate: the fixed one, or all of ``batch_sizes``."""
        return (self.batch_size,) if self.batch_size else self.batch_sizes

    def options(self) -> ModelOptions:
        """The modelling options this scenario asks for."""
        return ModelOptions(
            dtype=self.dtype,
            formulas=self.formulas,
            perf_model=self.perf_model,
            gpu_memory_utilization=self.gpu_memory_utilization,
            host_memory_utilization=self.host_memory_utilization,
            billing=self.billing,
            pricing=self.pricing,
        )


def describe_validation_error(exc: Exception) -> str:
    """One line from a pydantic ValidationError: ``field: problem`` for the first error."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "input"
        msg = first.get("msg", str(exc))
        value = first.get("input")
        shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
        return f"{loc}: {msg}{shown}"
    return str(exc)


def parse_batch_sizes(text: str | None) -> tuple[int, ...] | None:
    """``"1,2,4"`` -> (1, 2, 4); also ``"1-64"`` for powers of two from 1 to 64.

    Raises:
        InputError: on anything else.
    """
    if text is None:
        return None
    text = text.strip()
    try:
        if "-" in text and "," not in text:
            lo, hi = (int(p) for p in text.split("-", 1))
            sizes = []
            b = 1
            while b <= hi:
                if b >= lo:
                    sizes.append(b)
                b *= 2
            if not sizes:
                raise ValueError
            return tuple(sizes)
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise InputError(
            f"--batch-sizes: cannot read {text!r}; give a list like 1,2,4,8 or a range like 1-256"
        ) from None
