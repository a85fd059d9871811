"""The ``vllm serve`` command that runs a recommendation (issue 13, part 4).

Written for one pinned vLLM release, :data:`VLLM_VERSION`; every flag emitted here is checked
against that release's flag list (tests/data/vllm_serve_flags_0.33.0.txt, taken from its
source). vLLM itself is not a dependency.

How the recommendation maps to flags:

============================  =================================================================
record / scenario             vLLM 0.33.0
============================  =================================================================
tensor_parallel of the record ``--tensor-parallel-size T`` (GPUs per replica) and, for
                              ``gpu_count / T`` > 1
                              replicas, ``--data-parallel-size N``: one API server on one port
                              balances requests over N engines of TP GPUs each (vLLM supports
                              this online data parallelism for dense models)
batch size                    ``--max-num-seqs`` (per engine, i.e. per replica) and
                              ``--max-num-batched-tokens max(2048, batch)``: the tokens of one
                              forward pass, whose activations the memory model reserves
                              (:func:`~infersave.formulations.memory_model.forward_pass_tokens`)
input_len + output_len        ``--max-model-len``
``gpu_memory_utilization``    ``--gpu-memory-utilization``
dtype fp16 / bf16 / fp32      ``--dtype float16`` / ``bfloat16`` / ``float32``
dtype fp8                     ``--quantization fp8 --kv-cache-dtype fp8``: weights quantized to
                              FP8 on load, FP8 KV cache (1 byte each, as modelled)
dtype int8                    ``--kv-cache-dtype int8_per_token_head`` and no ``--quantization``:
                              vLLM has no on-the-fly INT8 for dense linear layers (its
                              ``int8_per_channel_weight_only`` shorthand quantizes MoE experts
                              only), so the model must be an INT8 checkpoint (e.g. W8A8
                              compressed-tensors), whose quantization vLLM reads from its config
dtype int4                    ``--dtype float16`` and an AWQ/GPTQ checkpoint (quantization read
                              from its config)
kv_dtype fp16 / bf16 / fp8    ``--kv-cache-dtype float16`` / ``bfloat16`` / ``fp8``
KV offload ratio c > 0        ``--kv-offloading-backend native --kv-offloading-size G`` with G =
                              c x the replica's KV cache (all its GPUs), in GiB (rounded up
                              to 0.1)
============================  =================================================================

KV offload is the one approximate mapping. InferSave (like FlexGen) keeps the share c of every
running sequence's KV cache in host memory and streams it over PCIe at each decode step; no vLLM
release does that. The native KV offloading of 0.33.0 (``--kv-offloading-size``, the
OffloadingConnector) is a CPU tier of that size: KV blocks are saved to it and loaded back over
PCIe instead of being recomputed, e.g. when the scheduler preempts a sequence whose KV no longer
fits on the GPU at ``--max-num-seqs``. It is what matches "this much KV in host memory". Not
``--cpu-offload-gb``: that one offloads model WEIGHTS (UVA), not KV cache; and ``--swap-space``
(preempted sequences swapped to CPU in the old V0 engine) no longer exists in 0.33.0.
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from infersave.formulations import memory_model

if TYPE_CHECKING:
    from infersave.solver.records import Record, SolveResult
    from infersave.solver.scenario import Scenario

VLLM_VERSION = "0.33.0"
"""The vLLM release the emitted flags are written for and checked against."""

DEFAULT_PORT = 8000
GIB = 2**30

DTYPE_FLAGS: dict[str, tuple[str, ...]] = {
    "fp16": ("--dtype", "float16"),
    "bf16": ("--dtype", "bfloat16"),
    "fp32": ("--dtype", "float32"),
    "fp8": ("--quantization", "fp8", "--kv-cache-dtype", "fp8"),
    "int8": ("--kv-cache-dtype", "int8_per_token_head"),
    "int4": ("--dtype", "float16"),
}
"""infersave ``--dtype`` -> vLLM flags (see the module docstring); int4 adds no
``--quantization``: the model must be an AWQ or GPTQ checkpoint, whose quantization vLLM reads
from its config (``awq_marlin``/``gptq_marlin`` kernels on Ampere and later)."""

KV_DTYPE_FLAGS: dict[str, tuple[str, ...]] = {
    "fp16": ("--kv-cache-dtype", "float16"),
    "bf16": ("--kv-cache-dtype", "bfloat16"),
    "fp8": ("--kv-cache-dtype", "fp8"),
}
"""infersave ``--kv-dtype`` (other than ``auto``) -> vLLM's ``--kv-cache-dtype``."""


def tensor_parallel(rec: Record) -> int:
    """GPUs per replica: the record's ``tensor_parallel`` when it has one, else 1."""
    return max(1, int(getattr(rec, "tensor_parallel", 1) or 1))


def replicas(rec: Record) -> int:
    """Model replicas on the instance: its GPUs over the GPUs per replica (at least 1)."""
    return max(1, int(rec.gpu_count) // tensor_parallel(rec))


def kv_offload_gib(rec: Record) -> float:
    """The host-memory share of one replica's KV cache, GiB, rounded up to 0.1 (0: none): the
    record's KV cache is one GPU's, so times the replica's GPUs (vLLM's
    ``--kv-offloading-size`` is the buffer summed over the TP ranks)."""
    share = rec.offload_ratio * rec.memory.kv_cache_bytes * tensor_parallel(rec) / GIB
    return math.ceil(share * 10 - 1e-9) / 10 if share > 0 else 0.0


def model_id(scenario: Scenario) -> str:
    """What to pass to ``vllm serve``: the catalog model's Hugging Face id, or the folder of a
    local ``config.json`` (vLLM loads a local model from its folder)."""
    from infersave.catalog import load

    name = scenario.model.strip()
    path = Path(name).expanduser()
    if name.endswith(".json") or path.exists():
        return str(path.parent if path.suffix == ".json" else path)
    return load.find_model(name).hf_id


def _recommendation(result: SolveResult) -> Record:
    from infersave.solver.scenario import InputError

    if result.recommendation is None:
        raise InputError(f"nothing to hand off: nothing feasible ({result.message})")
    return result.recommendation


def _precision_flags(dtype: str, kv_dtype: str) -> list[str]:
    """The flags of the weight precision ``dtype`` (the record's: searched or fixed) and of an
    explicit KV-cache precision, which replaces the dtype's own ``--kv-cache-dtype``."""
    flags = list(DTYPE_FLAGS[dtype])
    if kv_dtype in KV_DTYPE_FLAGS:
        if "--kv-cache-dtype" in flags:
            at = flags.index("--kv-cache-dtype")
            del flags[at : at + 2]
        flags += KV_DTYPE_FLAGS[kv_dtype]
    return flags


def engine_args(result: SolveResult) -> list[str]:
    """The engine options for the recommendation of ``result`` (parallelism, batch, lengths,
    memory, dtype, KV offload), as the module docstring maps them.

    Raises:
        InputError: if ``result`` has no recommendation.
    """
    rec = _recommendation(result)
    s = result.scenario
    args = ["--tensor-parallel-size", str(tensor_parallel(rec))]
    if replicas(rec) > 1:
        args += ["--data-parallel-size", str(replicas(rec))]
    args += [
        "--max-num-seqs",
        str(rec.batch_size),
        "--max-num-batched-tokens",
        str(int(memory_model.forward_pass_tokens(rec.batch_size))),
        "--max-model-len",
        str(s.input_len + s.output_len),
        "--gpu-memory-utilization",
        f"{s.gpu_memory_utilization:g}",
        *_precision_flags(getattr(rec, "dtype", None) or s.dtype, s.kv_dtype),
    ]
    gib = kv_offload_gib(rec)
    if gib > 0:
        args += ["--kv-offloading-backend", "native", "--kv-offloading-size", f"{gib:g}"]
    return args


def vllm_serve_args(
    result: SolveResult,
    model_hf_id: str | None = None,
    port: int = DEFAULT_PORT,
    host: str | None = None,
) -> list[str]:
    """Everything after ``vllm serve``: the model, ``[--host H] --port P`` and
    :func:`engine_args`. ``model_hf_id`` defaults to :func:`model_id` of the scenario.

    Raises:
        InputError: if ``result`` has no recommendation.
    """
    engine = engine_args(result)
    args = [model_hf_id or model_id(result.scenario)]
    if host is not None:
        args += ["--host", host]
    return [*args, "--port", str(port), *engine]


def vllm_serve_command(
    result: SolveResult,
    model_hf_id: str | None = None,
    port: int = DEFAULT_PORT,
    host: str | None = None,
    multiline: bool = False,
) -> str:
    """The shell-quoted ``vllm serve MODEL ...`` command for the recommendation of ``result``;
    with ``multiline``, one option per line joined by backslash-newlines.

    Raises:
        InputError: if ``result`` has no recommendation.
    """
    args = vllm_serve_args(result, model_hf_id, port, host)
    if not multiline:
        return shlex.join(["vllm", "serve", *args])
    parts = [shlex.join(["vllm", "serve", args[0]])]
    rest = args[1:]
    i = 0
    while i < len(rest):
        if i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            parts.append(shlex.join(rest[i : i + 2]))
            i += 2
        else:
            parts.append(shlex.quote(rest[i]))
            i += 1
    return " \\\n  ".join(parts)


def _compute_capability(gpu: str, catalog: str) -> int | None:
    from infersave.catalog import load

    spec = load.gpus(catalog).get(gpu)
    m = re.search(r"sm_(\d+)", spec.architecture) if spec is not None else None
    return int(m.group(1)) if m else None


def vllm_notes(result: SolveResult) -> list[str]:
    """What the user should know before running the command (one sentence each)."""
    rec = _recommendation(result)
    s = result.scenario
    notes: list[str] = []
    n = replicas(rec)
    if n > 1:
        notes.append(
            f"{rec.instance_type} has {rec.gpu_count:g} GPUs: --data-parallel-size {n} runs one"
            f" engine per {tensor_parallel(rec)} GPU(s) behind one API server, each with"
            f" --max-num-seqs {rec.batch_size} (infersave models one replica per GPU)."
        )
    if rec.offload_ratio > 0:
        notes.append(
            f"KV offload {rec.offload_ratio:.0%}: vLLM {VLLM_VERSION} gets a"
            f" {kv_offload_gib(rec):g} GiB CPU KV tier (--kv-offloading-size); it saves and"
            " reloads KV blocks over PCIe instead of recomputing them, close to but not the"
            " per-step streaming infersave models, so measure the TPS."
        )
    cc = _compute_capability(rec.gpu, s.catalog)
    if s.dtype == "bf16" and cc is not None and cc < 80:
        notes.append(f"{rec.gpu} (sm_{cc}) has no bfloat16: use --dtype fp16.")
    if s.dtype == "fp8" and cc is not None and cc < 80:
        notes.append(f"{rec.gpu} (sm_{cc}): vLLM's FP8 needs sm_80 or newer; use fp16.")
    elif s.dtype == "fp8" and cc is not None and cc < 89:
        notes.append(
            f"{rec.gpu} (sm_{cc}) has no FP8 tensor cores: vLLM runs the FP8 weights"
            " weight-only (Marlin), so compute stays 16-bit."
        )
    if s.dtype == "int8":
        notes.append(
            "int8: pass an INT8 checkpoint (e.g. a W8A8 compressed-tensors model) as the model;"
            " vLLM reads its quantization from the checkpoint and has no on-the-fly INT8 for"
            " dense layers."
        )
    if rec.provider == "aws" and re.match(r"^[a-z]+\d+g[a-z]*\.", rec.instance_type):
        notes.append(
            f"{rec.instance_type} has an Arm (Graviton) host: `pip install vllm=={VLLM_VERSION}`"
            " needs an aarch64 CUDA build of that release; otherwise build vLLM from source."
        )
    return notes
