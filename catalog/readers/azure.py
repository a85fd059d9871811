"""Azure: one row per (VM size, region); GPU rows only.

Quirks of the SkyPilot-format file and what is done with them:

* 27,141 rows carry an unquoted ``V1,V2`` in the last column, Generation (11 fields for a
  10-column header): ``Standard_B12ms,,,12,48,,0.634,,australiacentral,V1,V2``. Such a row is
  read as Generation ``V1,V2`` when, and only when, its last two fields are exactly ``V1`` and
  ``V2``; any other field count is an error. The repaired rows are counted.
* Prices are regional (no AvailabilityZone column): ``zone`` stays empty.
* ``AcceleratorCount`` can be fractional: NVadsA10 v5 sizes are 1/6, 1/3 and 1/2 of an A10
  (0.167, 0.333, 0.5). Kept, excluded as a fractional GPU, like AWS's g6f. (The NVv4 sizes
  are also slices of an MI25, but listed with count 1; they are excluded for having no spec.)
* A missing SpotPrice means no spot offer: ``spot_per_hour`` is empty. A spot price above the
  on-demand price would be set aside (none in the 2026-05-20 data; counted if one appears).
* Rows without an accelerator (VMs without GPU, the large majority) are dropped and counted.
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

FILE = Path("catalog") / "azure" / "azure_vms.csv"
COLUMNS = (
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "GpuInfo",
    "Price",
    "SpotPrice",
    "Region",
    "Generation",
)
PRICE_SOURCE = f"{ANYCLOUD_SOURCE} azure/vms.csv"
SPLIT_GENERATION = ["V1", "V2"]


def gpu_key(size: str, accelerator: str) -> str | None:
    """Key into gpus.csv for an Azure GPU VM size, or ``None`` when the catalog has no spec.

    Azure's catalog names both the PCIe A100 80 GB of NC A100 v4 and the SXM4 one of
    ND A100 v4 "A100-80GB"; NC H100 v5 carries the H100 NVL (94 GB, PCIe), not the 80 GB
    H100 of gpus.csv; NCv3 (NC*s_v3) carries PCIe V100s (no NVLink; ND40rs_v2 is the SXM2
    NVLink V100 size).
    """
    if accelerator == "A100-80GB":
        return "A100-SXM4-80GB" if size.startswith("Standard_ND") else "A100-PCIe-80GB"
    if accelerator == "H100":
        return "H100-SXM5-80GB" if size.startswith("Standard_ND") else None
    if accelerator == "V100":
        return "V100-PCIe-16GB"
    return {
        "T4": "T4",
        "A10": "A10",
        "V100-32GB": "V100-SXM2-32GB",
        "A100": "A100-SXM4-40GB",
        "H200": "H200-SXM-141GB",
    }.get(accelerator)


def accelerator_label(size: str, accelerator: str) -> str:
    """The raw label, made explicit where Azure's name hides a different part."""
    if accelerator == "H100" and not size.startswith("Standard_ND"):
        return "H100 NVL (94 GB, PCIe)"
    return accelerator


def nvlink(size: str) -> bool:
    """NVLink between the GPUs: the ND sizes (HGX boards; ND40rs_v2's V100 SXM2 hybrid cube
    mesh) and NC80adis_H100_v5, whose two H100 NVL are NVLink-bridged; other sizes: PCIe."""
    return size.startswith("Standard_ND") or size == "Standard_NC80adis_H100_v5"


def curate(
    raw: Path, gpu_specs: Mapping[str, Mapping[str, object]]
) -> tuple[list[dict[str, object]], Tally]:
    """Curated Azure GPU rows from ``raw``/catalog/azure/azure_vms.csv, and the tally."""
    path = raw / FILE
    tally = Tally("azure", str(FILE))
    rows: list[dict[str, object]] = []
    seen: set[tuple[str, str]] = set()
    for line, cells in read_csv(path, COLUMNS):
        tally.read += 1
        if len(cells) == len(COLUMNS) + 1 and cells[-2:] == SPLIT_GENERATION:
            cells = [*cells[:-2], ",".join(SPLIT_GENERATION)]
            tally.notes["rows with unquoted 'V1,V2' Generation (11 fields) read as one"] += 1
        if len(cells) != len(COLUMNS):
            raise ValueError(f"{path} line {line}: {len(cells)} fields, expected {len(COLUMNS)}")
        r = dict(zip(COLUMNS, cells, strict=True))
        if not r["AcceleratorName"]:
            tally.dropped["no accelerator (VM without GPU)"] += 1
            continue
        size, region, name = r["InstanceType"], r["Region"], r["AcceleratorName"]
        if (size, region) in seen:
            raise ValueError(f"{path} line {line}: second row for {size} in {region}")
        seen.add((size, region))
        od, spot = num(r["Price"]), num(r["SpotPrice"])
        if spot is None:
            tally.notes["GPU rows without SpotPrice: no spot price"] += 1
        elif od is not None and spot > od:
            tally.notes["GPU rows with spot above on-demand: spot set aside"] += 1
            spot = None
        rows.append(
            instance_row(
                provider="azure",
                instance_type=size,
                region=region,
                accelerator=accelerator_label(size, name),
                gpu=gpu_key(size, name),
                gpu_count=float(r["AcceleratorCount"]),
                vcpus=int(float(r["vCPUs"])),
                host_memory_gib=float(r["MemoryGiB"]),
                on_demand=od,
                spot=spot,
                gpu_specs=gpu_specs,
                nvlink=nvlink(size),
                source=PRICE_SOURCE,
                price_source=PRICE_SOURCE,
                price_date=ANYCLOUD_DATE,
            )
        )
    rows = sort_rows(rows)
    tally.finish(rows)
    return rows, tally
