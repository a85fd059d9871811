"""The user's scenario: the validated input of every solve (pydantic, frozen)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from infersave.formulations.options import WEIGHT_DTYPES, ModelOptions
from infersave.solver.fields import (
    BY_NAME,
    FIELDS,
    MAX_BATCH_SIZE,
    MAX_BATCH_SIZES,
    REQUIRED,
    FieldSpec,
)

Backend = BY_NAME["backend"].type


class InputError(ValueError):
    """Bad user input; the message is one line that says what is wrong and how to fix it.

    Messages name scenario fields (``max_price``, ``offload_step``), not command-line flags; the
    CLI shows them as flags.
    """


class _ScenarioBase(BaseModel):
    """Behaviour of :class:`Scenario`; its fields come from
    :data:`infersave.solver.fields.FIELDS`."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("batch_sizes", check_fields=False)
    @classmethod
    def _batch_sizes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("batch_sizes must list at least one batch size")
        bad = [b for b in v if b < 1 or b > MAX_BATCH_SIZE]
        if bad:
            raise ValueError(f"batch sizes must be from 1 to {MAX_BATCH_SIZE}, got {bad[0]}")
        sizes = tuple(sorted(set(v)))
        if len(sizes) > MAX_BATCH_SIZES:
            raise ValueError(f"at most {MAX_BATCH_SIZES} batch sizes, got {len(sizes)}")
        return sizes

    @field_validator("dtypes", check_fields=False)
    @classmethod
    def _dtypes(cls, v: str | None) -> str | None:
        if v is None:
            return None
        names = [d.strip().lower() for d in v.split(",") if d.strip()]
        bad = [d for d in names if d not in WEIGHT_DTYPES]
        if not names or bad:
            raise ValueError(
                f"dtypes: unknown {bad[0]!r}; give a comma list of {', '.join(WEIGHT_DTYPES)}"
                if bad
                else f"dtypes: give a comma list of {', '.join(WEIGHT_DTYPES)}"
            )
        return ",".join(dict.fromkeys(names))

    @model_validator(mode="after")
    def _some_slo(self) -> Any:
        f: Any = self
        if all(getattr(f, n) is None for n in ("slo_tps", "ttft_slo", "tpot_slo", "e2e_slo")):
            raise ValueError(
                "slo_tps: give a throughput SLO (slo_tps) or a latency SLO (ttft_slo, tpot_slo,"
                " e2e_slo)"
            )
        if getattr(f, "slo_confidence", None) and getattr(f, "perf_model", "v2") != "v2":
            raise ValueError(
                "slo_confidence: the error bands are those of perf model v2; drop"
                " slo_confidence or use perf_model v2"
            )
        return self

    @property
    def searched_batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes to evaluate: the fixed one, or all of ``batch_sizes``."""
        bs = getattr(self, "batch_size", None)
        return (bs,) if bs else getattr(self, "batch_sizes", ())

    def options(self) -> ModelOptions:
        """The modelling options this scenario asks for."""
        f: Any = self
        return ModelOptions(
            dtype=f.dtype,
            formulas=f.formulas,
            perf_model=f.perf_model,
            gpu_memory_utilization=f.gpu_memory_utilization,
            host_memory_utilization=f.host_memory_utilization,
            billing=f.billing,
            pricing=f.pricing,
            tensor_parallel=f.tensor_parallel,
            kv_dtype=f.kv_dtype,
            dtypes=tuple(f.dtypes.split(",")) if f.dtypes else None,
        )


def _pydantic_field(spec: FieldSpec) -> tuple[Any, Any]:
    default = ... if spec.default is REQUIRED else spec.default
    extra = {"unit": spec.unit} if spec.unit else None
    return spec.type, Field(default, description=spec.help, json_schema_extra=extra, **spec.bounds)


Scenario = create_model(  # type: ignore[call-overload]
    "Scenario",
    __base__=_ScenarioBase,
    __doc__="""One workload to size: the validated input of every solve (frozen).

Fields, types, defaults, units and bounds are :data:`infersave.solver.fields.FIELDS`: lengths
are tokens per request; ``slo_tps`` is the throughput target in tokens/s (input plus output
tokens, Eq. 1); ``max_price`` the price cap P_max in $/h per instance (None: no cap);
``batch_size`` fixes the batch size, otherwise every size in ``batch_sizes`` is searched.
Non-finite numbers (inf, nan) are rejected.

Raises (on construction): pydantic.ValidationError naming the field.
""",
    **{spec.name: _pydantic_field(spec) for spec in FIELDS},
)


E = TypeVar("E", bound=BaseException)


def without_traceback(exc: E) -> E:
    """``exc`` without its traceback, nor those of the exceptions it was raised from or
    during (``__cause__``, ``__context__``), to be kept as a row's outcome (an error row). A
    kept traceback holds the frames that raised and caught the exception, and with them their
    locals: a batch task's whole list of results became cyclic garbage, freed only by the
    garbage collector's full passes (22,795 objects per 2,500 rows; one such pass took 55 ms
    of a 10,000-row batch). The messages are unchanged."""
    todo: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        todo += [e.__cause__, e.__context__]
    return exc


def describe_validation_error(exc: Exception) -> str:
    """One line from a pydantic ValidationError: ``field: problem`` for the first error."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        msg = str(first.get("msg", str(exc))).removeprefix("Value error, ")
        value = first.get("input")
        shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
        if not loc:  # a check across fields names its field itself
            return msg
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
            hi = min(hi, MAX_BATCH_SIZE * 2)  # larger sizes are refused by the scenario
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
            f"batch_sizes: cannot read {text!r}; give a list like 1,2,4,8 or a range like 1-256"
        ) from None
