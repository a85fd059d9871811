"""GCP: GPU VMs priced as the host VM row plus the accelerator row of the same zone and count.

In the SkyPilot-format file a GPU is a row of its own with an empty ``InstanceType``
(``,,,T4,1,...,us-central1,us-central1-a,0.35,0.1654``). The host row's price does NOT include
the GPU, not even for the families whose machine type fixes the GPU (a2, a3, a4, g2): in
us-central1-a, a2-highgpu-1g is 0.73948 and one A100 2.93391, together 3.67339 $/h, GCP's
published a2-highgpu-1g price; g2-standard-4 0.14679 + one L4 0.56004 = 0.70683, GCP's
g2-standard-4 price. So every GPU VM here is priced host + accelerator, zone by zone.

Which host goes with which accelerator:

* a2/a3/a4/g2 machine types carry a fixed GPU (:func:`bundled_accelerator`); the row keeps the
  machine type's name.
* T4, V100, P4 and P100 attach to N1 VMs. Offered hosts: n1-standard-* and n1-highmem-* with at
  least 4 vCPUs and at most GCP's maximum vCPUs and memory for that GPU and count
  (:data:`N1_LIMITS`, as in SkyPilot's gcp_catalog.py, from cloud.google.com/compute/docs/gpus).
  The row is named ``<host>+<count>x<GPU>``, e.g. ``n1-standard-8+1xT4``.

Zone rule: a row per (instance, region) takes BOTH prices from ONE zone, the zone with the
lowest on-demand price, ties broken by the lowest spot price (a zone with a spot price before
one without), then by zone name; ``zone`` names it. A raw row whose spot price exceeds its
own on-demand price has its spot price set aside (counted); a VM whose host or accelerator
spot price is missing or set aside has no spot price in that zone.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from infersave.catalog.readers.common import (
    ANYCLOUD_DATE,
    ANYCLOUD_SOURCE,
    Tally,
    instance_row,
    num,
    price,
    read_csv,
    sort_rows,
)

FILE = Path("catalog") / "gcp" / "gcp_vms.csv"
COLUMNS = (
    "InstanceType",
    "vCPUs",
    "MemoryGiB",
    "AcceleratorName",
    "AcceleratorCount",
    "GpuInfo",
    "Region",
    "AvailabilityZone",
    "Price",
    "SpotPrice",
)
PRICE_SOURCE = f"{ANYCLOUD_SOURCE} gcp/vms.csv"

# SkyPilot accelerator name -> key into gpus.csv. P4, P100 and B200 have no spec (excluded).
ACCELERATOR_TO_GPU: dict[str, str] = {
    "T4": "T4",
    "L4": "L4",
    "V100": "V100-SXM2-16GB",  # GCP's V100s are SXM2 16 GB
    "A100": "A100-SXM4-40GB",  # a2-highgpu / a2-megagpu
    "A100-80GB": "A100-SXM4-80GB",  # a2-ultragpu
    "H100": "H100-SXM5-80GB",  # a3-highgpu / a3-edgegpu
    "H100-MEGA": "H100-SXM5-80GB",  # a3-megagpu: the same GPU, more network bandwidth
    "H200": "H200-SXM-141GB",  # a3-ultragpu
}

# GPU -> {count: (max vCPUs, max memory GB)} of an N1 host (SkyPilot gcp_catalog.py).
N1_LIMITS: dict[str, dict[int, tuple[int, int]]] = {
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
}
N1_HOST = re.compile(r"n1-(standard|highmem)-(\d+)")
MIN_N1_VCPUS = 4

# g2-standard-<vCPUs> -> L4 count (cloud.google.com/compute/docs/gpus#l4-gpus).
_G2_L4 = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}
_BUNDLED = (
    (re.compile(r"a2-highgpu-(\d+)g"), "A100"),
    (re.compile(r"a2-megagpu-(\d+)g"), "A100"),
    (re.compile(r"a2-ultragpu-(\d+)g"), "A100-80GB"),
    (re.compile(r"a3-highgpu-(\d+)g"), "H100"),
    (re.compile(r"a3-edgegpu-(\d+)g(?:-nolssd)?"), "H100"),
    (re.compile(r"a3-megagpu-(\d+)g"), "H100-MEGA"),
    (re.compile(r"a3-ultragpu-(\d+)g(?:-nolssd)?"), "H200"),
    (re.compile(r"a4-highgpu-(\d+)g"), "B200"),
)
# NVLink inside the VM: A100/H100/H200/B200 HGX boards of a2/a3/a4; V100 only with 8 GPUs
# (GCP documents the NVLink hybrid cube-mesh for 8 V100s; fewer are treated as PCIe, the
# conservative choice). T4, P4, P100 on N1 and L4 on g2: PCIe.
_NVLINK_FAMILIES = ("a2-", "a3-", "a4-")


class _Offer(NamedTuple):
    """A GPU VM as one zone offers it: host + accelerator prices of that zone."""

    on_demand: float
    spot: float | None
    zone: str
    host: str
    accelerator: str
    count: int
    vcpus: int
    memory_gib: float

    def rank(self) -> tuple[float, bool, float, str]:
        """The zone rule: lowest on-demand, then a spot price, the lowest, then zone name."""
        return (self.on_demand, self.spot is None, self.spot or 0.0, self.zone)


def bundled_accelerator(machine_type: str) -> tuple[str, int] | None:
    """(accelerator name, count) fixed by an a2/a3/a4/g2 machine type, else ``None``."""
    m = re.fullmatch(r"g2-standard-(\d+)", machine_type)
    if m:
        count = _G2_L4.get(int(m.group(1)))
        return ("L4", count) if count else None
    for pattern, name in _BUNDLED:
        m = pattern.fullmatch(machine_type)
        if m:
            return name, int(m.group(1))
    return None


def n1_accelerators(machine_type: str, vcpus: float, memory_gib: float) -> list[tuple[str, int]]:
    """The (GPU, count) pairs an N1 host of the offered sizes may carry (see module doc)."""
    m = N1_HOST.fullmatch(machine_type)
    if not m or int(m.group(2)) < MIN_N1_VCPUS:
        return []
    return [
        (name, count)
        for name, limits in N1_LIMITS.items()
        for count, (max_cpu, max_mem) in limits.items()
        if vcpus <= max_cpu and memory_gib <= max_mem
    ]


def curate(
    raw: Path, gpu_specs: Mapping[str, Mapping[str, object]]
) -> tuple[list[dict[str, object]], Tally]:
    """Curated GCP GPU rows from ``raw``/catalog/gcp/gcp_vms.csv, and the tally."""
    path = raw / FILE
    tally = Tally("gcp", str(FILE))
    hosts: dict[str, list[tuple[str, str, float, float, float, float | None]]] = defaultdict(list)
    accs: dict[tuple[str, int, str], tuple[str, float, float | None]] = {}
    spot_above = Counter[str]()
    for line, cells in read_csv(path, COLUMNS):
        tally.read += 1
        if len(cells) != len(COLUMNS):
            raise ValueError(f"{path} line {line}: {len(cells)} fields, expected {len(COLUMNS)}")
        r = dict(zip(COLUMNS, cells, strict=True))
        od, spot = num(r["Price"]), num(r["SpotPrice"])
        if not r["InstanceType"]:
            name = r["AcceleratorName"]
            if name.startswith("tpu-"):
                tally.dropped["TPU (not a GPU)"] += 1
                continue
            key = (name, int(float(r["AcceleratorCount"])), r["AvailabilityZone"])
            if key in accs:
                raise ValueError(f"{path} line {line}: second accelerator row for {key}")
            if od is None:
                tally.dropped["accelerator row without on-demand price"] += 1
                continue
            if spot is not None and spot > od:
                spot_above["accelerator"] += 1
                spot = None
            accs[key] = (r["Region"], od, spot)
            continue
        mtype = r["InstanceType"]
        vcpus, mem = float(r["vCPUs"]), float(r["MemoryGiB"])
        if bundled_accelerator(mtype) is None and not n1_accelerators(mtype, vcpus, mem):
            family = mtype.split("-")[0]
            if family in ("a2", "a3", "a4", "g2"):
                raise ValueError(f"{path} line {line}: unknown GPU machine type {mtype!r}")
            why = (
                "n1 host outside the offered sizes (n1-standard/highmem, >= 4 vCPUs)"
                if family == "n1"
                else "machine family takes no GPU"
            )
            tally.dropped[f"host row: {why}"] += 1
            continue
        if od is None:
            tally.dropped["host row without on-demand price"] += 1
            continue
        if spot is not None and spot > od:
            spot_above["host"] += 1
            spot = None
        hosts[mtype].append((r["Region"], r["AvailabilityZone"], vcpus, mem, od, spot))

    # One zone offer per (row name, region, zone): host + accelerator of that zone.
    offers: dict[tuple[str, str], list[_Offer]] = defaultdict(list)
    used_accs: set[tuple[str, int, str]] = set()
    hosts_unpaired = 0
    for mtype in sorted(hosts):
        for region, zone, vcpus, mem, h_od, h_spot in hosts[mtype]:
            bundled = bundled_accelerator(mtype)
            pairs = [bundled] if bundled else n1_accelerators(mtype, vcpus, mem)
            paired = False
            for name, count in pairs:
                acc = accs.get((name, count, zone))
                if acc is None:
                    continue
                a_region, a_od, a_spot = acc
                if a_region != region:
                    raise ValueError(f"{path}: zone {zone} in regions {region} and {a_region}")
                used_accs.add((name, count, zone))
                paired = True
                row_name = mtype if bundled else f"{mtype}+{count}x{name}"
                spot = price(h_spot + a_spot) if h_spot is not None and a_spot is not None else None
                offers[(row_name, region)].append(
                    _Offer(price(h_od + a_od), spot, zone, mtype, name, count, int(vcpus), mem)
                )
            if not paired:
                hosts_unpaired += 1
    tally.dropped["host row: no matching accelerator row in its zone"] += hosts_unpaired
    tally.dropped["accelerator row: no matching host row in its zone"] += len(accs) - len(used_accs)
    for what, n in sorted(spot_above.items()):
        tally.notes[f"{what} rows with spot above on-demand: spot set aside"] = n

    rows: list[dict[str, object]] = []
    no_spot = 0
    for (row_name, region), cands in offers.items():
        o = min(cands, key=_Offer.rank)
        no_spot += o.spot is None
        rows.append(
            instance_row(
                provider="gcp",
                instance_type=row_name,
                region=region,
                accelerator=o.accelerator,
                gpu=ACCELERATOR_TO_GPU.get(o.accelerator),
                gpu_count=o.count,
                vcpus=o.vcpus,
                host_memory_gib=o.memory_gib,
                on_demand=o.on_demand,
                spot=o.spot,
                spot_zone=o.zone,
                zone=o.zone,
                gpu_specs=gpu_specs,
                nvlink=o.host.startswith(_NVLINK_FAMILIES)
                or (o.accelerator, o.count) == ("V100", 8),
                source=f"{PRICE_SOURCE}: host {o.host} + accelerator {o.accelerator} x{o.count}, "
                f"zone {o.zone}",
                price_source=PRICE_SOURCE,
                price_date=ANYCLOUD_DATE,
            )
        )
    tally.notes["curated rows without a spot price in their zone"] = no_spot
    rows = sort_rows(rows)
    tally.finish(rows)
    return rows, tally
