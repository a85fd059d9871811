"""What the provider readers share: the row builder, exclusion reasons, counting, CSV reading."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ANYCLOUD_SOURCE = "github.com/anycloud-sh/catalog (SkyPilot catalog format)"
ANYCLOUD_DATE = "2026-05-20"

FRACTIONAL = "fractional GPU (vGPU slice) not modelled"
NO_ON_DEMAND = "no on-demand price"


def no_spec(label: str) -> str:
    """The exclusion reason of an accelerator without a row in gpus.csv."""
    return f"no GPU spec in catalog: {label}"


@dataclass
class Tally:
    """What a reader did with a raw file: rows read, curated rows kept, the rest by reason.

    ``dropped`` counts raw rows left out of the curated file (reason -> rows); ``excluded``
    counts curated rows kept with an ``excluded`` reason; ``notes`` counts other decisions
    (spot prices set aside, rows repaired), each in the unit its text names.
    """

    provider: str
    file: str
    read: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    excluded: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    types: int = 0
    regions: int = 0

    def finish(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Count the curated rows: kept, excluded by reason, distinct types and regions."""
        self.kept = len(rows)
        self.excluded = Counter(str(r["excluded"]) for r in rows if r["excluded"] is not None)
        self.types = len({r["instance_type"] for r in rows})
        self.regions = len({r["region"] for r in rows})

    def lines(self) -> list[str]:
        """A human-readable summary, one fact per line (printed by the curation command)."""
        usable = self.kept - sum(self.excluded.values())
        out = [
            f"{self.provider}: {self.file}: {self.read} rows read -> {self.kept} rows kept "
            f"({usable} usable), {self.types} instance types, {self.regions} regions"
        ]
        out += [f"  dropped {n}: {why}" for why, n in sorted(self.dropped.items())]
        out += [f"  excluded {n}: {why}" for why, n in sorted(self.excluded.items())]
        out += [f"  note {n}: {why}" for why, n in sorted(self.notes.items())]
        return out


def read_csv(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, cells)`` of a raw CSV after checking its header is ``columns``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for an
    unexpected header. Rows are returned as read (the caller checks their length).
    """
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != list(columns):
            raise ValueError(f"{path}: header {header} is not the expected {list(columns)}")
        for line, cells in enumerate(reader, start=2):
            if cells:
                yield line, cells


def num(text: str) -> float | None:
    """A number cell: ``None`` when empty."""
    text = text.strip()
    return float(text) if text else None


def price(value: float) -> float:
    """A price rounded to 6 decimals, so sums like host + accelerator print as the data does."""
    return round(value, 6)


def interconnect(gpu_count: float, nvidia: bool, nvlink: bool) -> str | None:
    """``nvlink`` or ``pcie`` for a multi-GPU NVIDIA instance, else ``None``."""
    if gpu_count <= 1 or not nvidia:
        return None
    return "nvlink" if nvlink else "pcie"


def instance_row(
    *,
    provider: str,
    instance_type: str,
    region: str,
    accelerator: str,
    gpu: str | None,
    gpu_count: float,
    vcpus: int,
    host_memory_gib: float,
    on_demand: float | None,
    spot: float | None,
    gpu_specs: Mapping[str, Mapping[str, object]],
    source: str,
    price_source: str,
    price_date: str,
    zone: str | None = None,
    spot_zone: str | None = None,
    arch: str = "x86_64",
    nvlink: bool = False,
) -> dict[str, object]:
    """One curated row in the ``Instance`` columns; ``excluded`` is derived here.

    Exclusion reasons (joined with "; "): a fractional GPU count, a ``gpu`` that is ``None`` or
    not in ``gpu_specs`` (reason names the raw ``accelerator`` label), no on-demand price.
    ``gpu`` is cleared for excluded-for-spec and fractional rows, like the AWS rows.
    """
    reasons: list[str] = []
    if gpu_count < 1:
        reasons.append(FRACTIONAL)
        gpu = None
    elif gpu is None or gpu not in gpu_specs:
        reasons.append(no_spec(accelerator))
        gpu = None
    if on_demand is None:
        reasons.append(NO_ON_DEMAND)
    spec = gpu_specs.get(gpu) if gpu else None
    vendor = str(spec["vendor"]) if spec else ("NVIDIA" if _nvidia_label(accelerator) else "")
    return {
        "instance_type": instance_type,
        "provider": provider,
        "region": region,
        "accelerator": accelerator,
        "gpu": gpu,
        "gpu_count": float(gpu_count),
        "gpu_memory_gib": spec["memory_gib"] if spec else None,
        "vcpus": vcpus,
        "host_memory_gib": float(host_memory_gib),
        "on_demand_per_hour": on_demand,
        "spot_per_hour": spot,
        "spot_zone": spot_zone if spot is not None else None,
        "excluded": "; ".join(reasons) or None,
        "source": source,
        "zone": zone,
        "arch": arch,
        "interconnect": interconnect(gpu_count, vendor.upper() == "NVIDIA", nvlink),
        "price_source": price_source,
        "price_date": price_date,
    }


# Accelerator labels of the raw files that are not NVIDIA parts (interconnect stays None).
_NON_NVIDIA = ("AMD", "Radeon", "MI25", "MI300", "Inferentia", "Trainium", "Qualcomm", "tpu")


def _nvidia_label(label: str) -> bool:
    return not any(word.lower() in label.lower() for word in _NON_NVIDIA)


def sort_rows(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Rows in the curated files' order: (region, instance_type)."""
    return sorted(rows, key=lambda r: (str(r["region"]), str(r["instance_type"])))
