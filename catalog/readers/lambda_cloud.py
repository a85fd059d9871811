"""Lambda (Lambda Labs cloud): one row per (instance type, region); GPU rows only.

The file lists every instance type in each of its 17 regions at one price (listing is not
availability: Lambda's capacity changes by the hour). No spot market: ``spot_per_hour`` is
always empty; prices are regional (no zones). CPU-only types are dropped and counted.

Which GPU each type carries: the name says it where it can (``*_h100_pcie``, ``*_h100_sxm5``,
``gpu_8x_a100_80gb_sxm4``, ``gpu_1x_a100_sxm4``). The plain ``gpu_1x_a100`` / ``gpu_2x_a100`` /
``gpu_4x_a100`` are taken to be A100 40 GB PCIe, since a separate SXM4 single-GPU type exists
(medium confidence); ``gpu_8x_a100`` to be 8 A100 40 GB SXM4 (an HGX board) and ``gpu_8x_v100``
/ ``gpu_8x_v100_n`` 8 V100 SXM2 16 GB (the file gives 16,384 MiB per GPU). A6000 is the RTX
A6000.
RTX6000 (Quadro RTX 6000, Turing), GH200 and B200 have no spec in gpus.csv: excluded.
GH200's host CPU is an NVIDIA Grace (arm64); every other type is x86_64.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from infersave.catalog.readers.common import (
    ANYCLOUD_DATE,
    ANYCLOUD_SOURCE,
    Tally,
    instance_row,
    num,
    read_csv,
    sort_rows,
)

FILE = Path("catalog") / "lambda" / "lambda_vms.csv"
COLUMNS = (
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "Price",
    "Region",
    "GpuInfo",
    "SpotPrice",
)
PRICE_SOURCE = f"{ANYCLOUD_SOURCE} lambda/vms.csv"

_A100_PCIE = frozenset({"gpu_1x_a100", "gpu_2x_a100", "gpu_4x_a100"})
_NVLINK_TYPES = frozenset({"gpu_8x_a100", "gpu_8x_v100", "gpu_8x_v100_n"})


def gpu_key(instance_type: str, accelerator: str) -> str | None:
    """Key into gpus.csv for a Lambda instance type, or ``None`` when there is no spec."""
    if accelerator == "A100":
        return "A100-PCIe-40GB" if instance_type in _A100_PCIE else "A100-SXM4-40GB"
    if accelerator == "H100":
        return "H100-PCIe-80GB" if instance_type.endswith("_pcie") else "H100-SXM5-80GB"
    return {
        "A10": "A10",
        "A100-80GB": "A100-SXM4-80GB",
        "A6000": "RTX-A6000",
        "V100": "V100-SXM2-16GB",
    }.get(accelerator)


def nvlink(instance_type: str) -> bool:
    """NVLink between the GPUs: the SXM types (A100, H100, B200; V100 8x); A100 PCIe and
    A6000 multi-GPU types are counted as PCIe (Lambda documents no NVLink bridge for them)."""
    return "_sxm" in instance_type or instance_type in _NVLINK_TYPES


def arch(instance_type: str) -> str:
    """``arm64`` for the Grace-Hopper type, else ``x86_64``."""
    return "arm64" if "gh200" in instance_type else "x86_64"


def curate(
    raw: Path, gpu_specs: Mapping[str, Mapping[str, object]]
) -> tuple[list[dict[str, object]], Tally]:
    """Curated Lambda GPU rows from ``raw``/catalog/lambda/lambda_vms.csv, and the tally."""
    path = raw / FILE
    tally = Tally("lambda", str(FILE))
    rows: list[dict[str, object]] = []
    seen: set[tuple[str, str]] = set()
    for line, cells in read_csv(path, COLUMNS):
        tally.read += 1
        if len(cells) != len(COLUMNS):
            raise ValueError(f"{path} line {line}: {len(cells)} fields, expected {len(COLUMNS)}")
        r = dict(zip(COLUMNS, cells, strict=True))
        if not r["AcceleratorName"]:
            tally.dropped["no accelerator (CPU-only type)"] += 1
            continue
        itype, region = r["InstanceType"], r["Region"]
        if (itype, region) in seen:
            raise ValueError(f"{path} line {line}: second row for {itype} in {region}")
        seen.add((itype, region))
        if num(r["SpotPrice"]) is not None:
            raise ValueError(f"{path} line {line}: Lambda has no spot market, yet a SpotPrice")
        rows.append(
            instance_row(
                provider="lambda",
                instance_type=itype,
                region=region,
                accelerator=r["AcceleratorName"],
                gpu=gpu_key(itype, r["AcceleratorName"]),
                gpu_count=float(r["AcceleratorCount"]),
                vcpus=int(float(r["vCPUs"])),
                host_memory_gib=float(r["MemoryGiB"]),
                on_demand=num(r["Price"]),
                spot=None,
                gpu_specs=gpu_specs,
                arch=arch(itype),
                nvlink=nvlink(itype),
                source=PRICE_SOURCE,
                price_source=PRICE_SOURCE,
                price_date=ANYCLOUD_DATE,
            )
        )
    rows = sort_rows(rows)
    tally.finish(rows)
    return rows, tally
