"""Curate the Helix per-layer measurements into the calibration measurement format.

Run by hand (deterministic; the output, ``catalog/data/measurements_helix.csv``, is committed,
so a clone or an installed package never needs the raw data)::

    python -m infersave.catalog.curate_measurements SHARED_DATA \
        [-o catalog/data/measurements_helix.csv]

``SHARED_DATA`` is the project's reference-data folder (``shared/data`` beside the repository
in the project workspace, e.g. ``../shared/data``; see ``catalog/data/SOURCES.md`` and
``shared/data/README.md``). It is not part of the repository: without it the script says what is
missing and exits 2.

Input: ``<shared>/measurements/helix_per_layer_times.csv`` (Thesys-lab/Helix-ASPLOS25,
``simulator/model_manager/*/{prompt,decode}_bs2time.csv``): time of ONE decoder layer in ms,
fp16, vLLM-based, for LLaMA-1-30B and Llama-2-70B layer shapes on T4, L4, V100-16GB and
A100-40GB, and 2/4-GPU tensor-parallel T4/L4.

Mapping (each assumption is also recorded in ``calibration.json``):

* GPU names -> catalog keys (:data:`GPU_MAP`): V100-16GB -> V100-SXM2-16GB (Helix does not say
  SXM2 or PCIe; SXM2 is what clouds rent), A100-40GB -> A100-SXM4-40GB; ``T4 x2 (TP2)`` -> T4
  with ``tensor_parallel=2``.
* Models: Llama-2-70B -> ``llama-2-70b`` (catalog); LLaMA-1-30B -> ``llama-30b``, shipped in
  ``catalog/data/calibration_models.json`` because the recommendation catalog does not list it.
* prefill rows give the time for ``n`` prompt tokens in the batch. The per-token time is flat in
  ``n`` (no n^2 attention growth up to 15,000 tokens), so the batch is many short prompts, not
  one long prompt: we map ``n`` to ``batch_size = n / 250`` prompts of ``input_len = 250``
  (every ``n`` is a multiple of 250). Attention is < 2% of a layer's FLOPs at 250 tokens, so the
  exact split matters little.
* decode rows give one decode step per batch size; the context is not stated. We assume the
  conversation-like context of :data:`DECODE_CONTEXT` = 750 tokens (shared/data README:
  "roughly 750 in / 240 out").
* ``layers = 1`` (one decoder layer); ``time_s = value / 1000``; ``engine = vllm``.

Engine input: ``<shared>/measurements/engine_e2e_times.csv`` (InternLM/lmdeploy
``docs/en/benchmark/a100_fp16.md`` and NVIDIA/TensorRT-LLM ``docs/source/performance.md``, one
commit per row in ``source``), 80 whole-model times of Llama-2-7B/13B, written to
``catalog/data/measurements_engine.csv`` (:func:`curate_engine`):

* models by Hugging Face id -> catalog names (:data:`ENGINE_MODEL_MAP`); ``layers`` empty (the
  whole model); ``engine`` = ``lmdeploy`` or ``trtllm`` (the version stays in ``source``);
* ``e2e`` and ``prefill`` rows as published (``e2e`` = batch x output_len / output TPS);
* ``decode`` rows are the mean per-step latency over a generation of ``output_len`` tokens after
  a prompt of ``input_len``: mapped to ONE step at the mean context,
  ``input_len + output_len // 2`` (the format's decode row), ``output_len = 0``.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from infersave.catalog.measurements import Measurement, write_measurements
from infersave.catalog.output_files import check_output_path

SOURCE = "Thesys-lab/Helix-ASPLOS25 simulator/model_manager (vLLM-based, fp16, one decoder layer)"
RAW_FILE = "measurements/helix_per_layer_times.csv"
DATA_ORIGIN = (
    "give the project's reference-data folder shared/data (not in the repository; see"
    " catalog/data/SOURCES.md)"
)
RAW_ORIGIN = (
    "the raw file comes from github.com/Thesys-lab/Helix-ASPLOS25"
    " simulator/model_manager/*/{prompt,decode}_bs2time.csv"
)
ENGINE_RAW_FILE = "measurements/engine_e2e_times.csv"
ENGINE_MODEL_MAP: dict[str, str] = {
    "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "meta-llama/Llama-2-13b-hf": "llama-2-13b",
}
ENGINE_NAMES: dict[str, str] = {
    "lmdeploy": "lmdeploy",
    "trtllm-0.5": "trtllm",
    "trtllm-0.6": "trtllm",
}
ENGINE_GPUS: tuple[str, ...] = ("A100-SXM4-80GB", "H100-SXM5-80GB", "L40S")
PREFILL_PROMPT_LEN = 250
DECODE_CONTEXT = 750
GPU_MAP: dict[str, str] = {
    "T4": "T4",
    "L4": "L4",
    "V100-16GB": "V100-SXM2-16GB",
    "A100-40GB": "A100-SXM4-40GB",
}
MODEL_MAP: dict[str, str] = {
    "LLaMA-1-30B (single decoder layer)": "llama-30b",
    "Llama-2-70B (single decoder layer)": "llama-2-70b",
}
ASSUMPTIONS: tuple[str, ...] = (
    f"prefill: n prompt tokens -> batch_size = n/{PREFILL_PROMPT_LEN} prompts of"
    f" {PREFILL_PROMPT_LEN} tokens (per-token time is flat in n, so no single long prompt)",
    f"decode: context length not stated by Helix; assumed {DECODE_CONTEXT} tokens"
    " (conversation-like, ~750 in / 240 out)",
    "V100-16GB taken as V100-SXM2-16GB; A100-40GB as A100-SXM4-40GB",
    "LLaMA-1-30B shape from catalog/data/calibration_models.json (llama-30b)",
    "tensor-parallel rows (T4/L4 x2, T4 x4) kept with tensor_parallel=N, excluded from fitting;"
    " validated as an ideal split (N x FLOPS, N x bandwidth)",
    "prefill times are whole milliseconds in the source (rounding error up to 50% at 1 ms)",
)

_DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "measurements_helix.csv"
_DEFAULT_ENGINE_OUT = Path(__file__).resolve().parent / "data" / "measurements_engine.csv"
_TP = re.compile(r"^(?P<gpu>\S+) x(?P<n>\d+) \(TP(?P=n)\)$")


def curate(raw_csv: Path) -> list[Measurement]:
    """Map every row of the raw Helix CSV to a :class:`Measurement` (sorted, deterministic).

    Raises:
        ValueError: an unknown GPU, model, phase, unit or precision in the raw file.
    """
    out: list[Measurement] = []
    with open(raw_csv, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"gpu", "model", "phase", "batch_size", "input_len", "value", "unit", "precision"}
        if missing := sorted(need - set(reader.fieldnames or ())):
            raise ValueError(f"{raw_csv.name}: missing column(s) {', '.join(missing)}")
        for n, r in enumerate(reader, start=1):
            if r["unit"] != "ms" or r["precision"] != "fp16":
                raise ValueError(f"{raw_csv.name} row {n}: unexpected unit/precision")
            gpu, tp = r["gpu"], 1
            if match := _TP.match(gpu):
                gpu, tp = match["gpu"], int(match["n"])
            if gpu not in GPU_MAP or r["model"] not in MODEL_MAP:
                raise ValueError(
                    f"{raw_csv.name} row {n}: unknown GPU/model {gpu!r}/{r['model']!r}"
                )
            if r["phase"] == "prefill":
                tokens = int(r["input_len"])
                if tokens % PREFILL_PROMPT_LEN:
                    raise ValueError(f"{raw_csv.name} row {n}: {tokens} tokens not a multiple")
                bs, lin = tokens // PREFILL_PROMPT_LEN, PREFILL_PROMPT_LEN
            elif r["phase"] == "decode":
                bs, lin = int(r["batch_size"]), DECODE_CONTEXT
            else:
                raise ValueError(f"{raw_csv.name} row {n}: unknown phase {r['phase']!r}")
            out.append(
                Measurement(
                    gpu=GPU_MAP[gpu],
                    model=MODEL_MAP[r["model"]],
                    phase=r["phase"],
                    batch_size=bs,
                    input_len=lin,
                    output_len=0,
                    time_s=float(r["value"]) / 1000.0,
                    layers=1,
                    source=SOURCE,
                    tensor_parallel=tp,
                    engine="vllm",
                )
            )
    out.sort(key=lambda m: (m.gpu, m.tensor_parallel, m.model, m.phase, m.batch_size))
    return out


def curate_engine(raw_csv: Path) -> list[Measurement]:
    """Map every row of the raw engine CSV to a :class:`Measurement` (file order kept).

    Raises:
        ValueError: a missing column, or an unknown GPU, model, engine or phase.
    """
    out: list[Measurement] = []
    with open(raw_csv, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"gpu", "model", "phase", "batch_size", "input_len", "output_len", "time_s"}
        need |= {"dtype", "engine", "source"}
        if missing := sorted(need - set(reader.fieldnames or ())):
            raise ValueError(f"{raw_csv.name}: missing column(s) {', '.join(missing)}")
        for n, r in enumerate(reader, start=1):
            if r["gpu"] not in ENGINE_GPUS or r["model"] not in ENGINE_MODEL_MAP:
                raise ValueError(f"{raw_csv.name} row {n}: unknown GPU/model {r['gpu']!r}")
            if r["engine"] not in ENGINE_NAMES:
                raise ValueError(f"{raw_csv.name} row {n}: unknown engine {r['engine']!r}")
            lin, lout = int(r["input_len"]), int(r["output_len"])
            if r["phase"] == "decode":
                lin, lout = lin + lout // 2, 0
            elif r["phase"] not in ("prefill", "e2e"):
                raise ValueError(f"{raw_csv.name} row {n}: unknown phase {r['phase']!r}")
            out.append(
                Measurement(
                    gpu=r["gpu"],
                    model=ENGINE_MODEL_MAP[r["model"]],
                    phase=r["phase"],  # type: ignore[arg-type]
                    batch_size=int(r["batch_size"]),
                    input_len=lin,
                    output_len=lout,
                    time_s=float(r["time_s"]),
                    layers=None,
                    source=r["source"],
                    dtype=r["dtype"],  # type: ignore[arg-type]
                    engine=ENGINE_NAMES[r["engine"]],
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry: ``python -m infersave.catalog.curate_measurements SHARED_DATA [-o OUT]``.

    Exit 2 with one line on stderr (no traceback) when the data folder or the raw file is
    missing, the raw file is malformed, or ``OUT`` may not be written (checked before reading).
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shared_data", type=Path, help="the shared data directory (shared/data)")
    p.add_argument("-o", "--output", type=Path, default=_DEFAULT_OUT)
    p.add_argument(
        "--engine-output",
        type=Path,
        default=None,
        help=f"default: {_DEFAULT_ENGINE_OUT.name} beside --output",
    )
    args = p.parse_args(argv)
    if args.engine_output is None:
        args.engine_output = args.output.with_name(_DEFAULT_ENGINE_OUT.name)
    raw = args.shared_data / RAW_FILE
    engine_raw = args.shared_data / ENGINE_RAW_FILE

    def fail(message: str) -> int:
        print(f"curate_measurements: error: {message}", file=sys.stderr)
        return 2

    if not args.shared_data.is_dir():
        return fail(f"data directory not found: {args.shared_data}; {DATA_ORIGIN}")
    if not raw.is_file():
        return fail(f"raw measurements not found: {raw}; {RAW_ORIGIN}")
    has_engine = engine_raw.is_file()
    engine_rows: list[Measurement] = []
    try:
        check_output_path(args.output, inputs=(raw, engine_raw))
        if has_engine:
            check_output_path(args.engine_output, inputs=(raw, engine_raw))
        rows = curate(raw)
        if has_engine:
            engine_rows = curate_engine(engine_raw)
        write_measurements(rows, args.output)
        if has_engine:
            write_measurements(engine_rows, args.engine_output)
    except OSError as exc:
        return fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    except (ValueError, KeyError, TypeError) as exc:
        return fail(f"{raw}: {' '.join(str(exc).split())}")
    print(f"wrote {len(rows)} measurements to {args.output}", file=sys.stderr)
    if has_engine:
        print(f"wrote {len(engine_rows)} measurements to {args.engine_output}", file=sys.stderr)
    else:
        print(f"note: {engine_raw} not found; {args.engine_output} left as is", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
