"""Where a scenario may run: which providers, regions, price markets and instance families.

:func:`select_instances` turns a scenario's placement fields into the eligible catalog rows,
one per (provider, region, instance type, market). Prices are never combined across places:
each row keeps the price its own region (or zone) offers. With ``pricing="both"`` every
instance with a spot price appears twice, once per market (``Instance.market``), so the search
weighs on-demand against spot like any other choice.

Filters (all optional, combined with AND):

* ``only`` / ``exclude``: comma-separated instance families or types. A family is the part of
  the type before the first ``.`` (``g5g`` of ``g5g.xlarge``) or, for names without a dot,
  before the first ``-`` or ``_`` (``n1`` of ``n1-standard-8+1xT4``, ``Standard`` is not used:
  Azure's family is the token after ``Standard_``, e.g. ``NC24ads`` -> ``NC``); a type matches
  itself exactly.
* ``arch``: host CPU architecture, ``x86_64`` or ``arm64`` (Graviton hosts such as g5g).
* ``max_gpus``: at most this many GPUs per instance.
* ``gpu``: comma-separated GPU names; ``A100`` matches every A100 variant (the catalog key or
  a key that starts with it and a dash, case-insensitive: ``L4`` is not ``L40S``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from infersave.catalog import load as catalog
from infersave.catalog.schemas import GPU, Instance
from infersave.solver.scenario import InputError

PAPER_PRICE_SET = "paper-2025"
CLOUD = "cloud"
"""The shipped cloud catalogs (every provider's curated prices), the default price set."""


@dataclass(frozen=True)
class Placement:
    """The placement fields of a scenario (hashable: selections are cached by it)."""

    catalog: str
    provider: str
    region: str
    pricing: str
    include_non_nvidia: bool
    only: str | None = None
    exclude: str | None = None
    arch: str | None = None
    max_gpus: int | None = None
    gpu: str | None = None
    prices: str | None = None

    @property
    def price_set(self) -> str:
        """``paper-2025`` or ``cloud``."""
        return PAPER_PRICE_SET if self.catalog == PAPER_PRICE_SET else CLOUD


def _closest(name: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f"; did you mean: {', '.join(close)}?" if close else ""


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def providers_of(p: Placement) -> tuple[str, ...]:
    """The providers searched: ``provider`` (``all`` or a comma list), narrowed by a legacy
    provider-named ``catalog`` (``aws``).

    Raises:
        InputError: an unknown provider, or a provider-named catalog outside ``provider``.
    """
    names = catalog.PROVIDERS if p.provider.strip() == "all" else tuple(_split(p.provider))
    unknown = [n for n in names if n not in catalog.PROVIDERS]
    if unknown or not names:
        raise InputError(
            f"provider: unknown {unknown[0] if unknown else p.provider!r}; use all or a comma"
            f" list of: {', '.join(catalog.PROVIDERS)}"
        )
    if p.catalog in catalog.PROVIDERS:
        if p.catalog not in names:
            raise InputError(
                f"catalog: {p.catalog!r} is not among the providers searched ({', '.join(names)})"
            )
        names = (p.catalog,)
    elif p.catalog not in (CLOUD, PAPER_PRICE_SET):
        choices = ", ".join((CLOUD, PAPER_PRICE_SET, *catalog.PROVIDERS))
        raise InputError(f"catalog: unknown {p.catalog!r}; use one of: {choices}")
    return names


def family(instance_type: str) -> str:
    """The instance family of a type name (see the module docstring)."""
    if instance_type.startswith("Standard_"):
        m = re.match(r"Standard_([A-Za-z]+)", instance_type)
        return m.group(1) if m else instance_type
    if "." in instance_type:
        return instance_type.split(".", 1)[0]
    return re.split(r"[-_+]", instance_type, maxsplit=1)[0]


def _matches(inst: Instance, names: list[str]) -> bool:
    return any(n in (inst.instance_type, family(inst.instance_type)) for n in names)


def gpu_matches(key: str, names: Sequence[str]) -> bool:
    """Whether catalog GPU ``key`` is one of ``names`` (lower case): the key itself, or a
    variant of it (``a100`` matches ``A100-SXM4-80GB`` and ``A100-PCIe-40GB``; ``l4`` does not
    match ``L40S``)."""
    k = key.lower()
    return any(k == n or k.startswith(n + "-") for n in names)


def gpu_price(inst: Instance) -> float | None:
    """The $/h of ``inst`` in its market."""
    return inst.spot_per_hour if inst.market == "spot" else inst.on_demand_per_hour


def eligible(inst: Instance, gpus: dict[str, GPU], include_non_nvidia: bool) -> bool:
    """Whether ``inst`` can be recommended: a GPU spec exists (with PCIe bandwidth), it is not
    excluded in the catalog, it is NVIDIA unless ``include_non_nvidia``, it has whole GPUs, and
    it has a price in its market."""
    if inst.excluded or inst.gpu is None or inst.gpu not in gpus:
        return False
    gpu = gpus[inst.gpu]
    if gpu.pcie_bandwidth_gbs is None or inst.gpu_count < 1:
        return False
    if not gpu.is_nvidia and not include_non_nvidia:
        return False
    return gpu_price(inst) is not None


def gpu_specs(p: Placement) -> dict[str, GPU]:
    """The GPU facts of the price set (the paper's own figures for ``paper-2025``)."""
    return catalog.gpus(PAPER_PRICE_SET if p.price_set == PAPER_PRICE_SET else "aws")


@functools.lru_cache(maxsize=64)
def select_instances(p: Placement) -> tuple[Instance, ...]:
    """The eligible instances of placement ``p``, one per (provider, region, type, market).

    Raises:
        InputError: unknown provider, region, catalog or filter value, an unreadable prices
            file, or nothing eligible (the message says which filter to loosen).
    """
    if p.pricing not in ("on-demand", "spot", "both"):
        raise InputError(f"pricing: unknown {p.pricing!r}; use on-demand, spot or both")
    regions = None if p.region.strip() == "all" else _split(p.region)
    if regions is not None and not regions:
        raise InputError("region: give a region, a comma list of regions, or all")
    try:
        if p.price_set == PAPER_PRICE_SET:
            rows = catalog.instances(PAPER_PRICE_SET)
            known = sorted({i.region for i in rows})
            for r in regions or []:
                if r not in known:
                    raise InputError(f"region: unknown {r!r} in catalog {PAPER_PRICE_SET!r}")
            rows = tuple(i for i in rows if regions is None or i.region in regions)
        else:
            names = providers_of(p)
            if regions is not None:
                offered = sorted(set().union(*(catalog.provider_regions(n) for n in names)))
                for r in regions:
                    if r not in offered:
                        raise InputError(
                            f"region: unknown region {r!r} for providers {', '.join(names)}"
                            f"{_closest(r, offered)} (list them: infersave instances --regions)"
                        )
            rows = catalog.instances_for(names, regions)
        if p.prices:
            from infersave.catalog.prices import apply_price_overrides

            rows = apply_price_overrides(rows, p.prices)
    except catalog.CatalogError as exc:
        raise InputError(str(exc)) from exc
    gpus = gpu_specs(p)
    rows = _filtered(rows, p, gpus)
    if p.pricing == "spot":
        rows = tuple(i.model_copy(update={"market": "spot"}) for i in rows)
    elif p.pricing == "both":
        rows = tuple(
            x
            for i in rows
            for x in (i, i.model_copy(update={"market": "spot"}))
            if x.market == "on-demand" or i.spot_per_hour is not None
        )
    found = tuple(i for i in rows if eligible(i, gpus, p.include_non_nvidia))
    if not found:
        where = "any region" if regions is None else ", ".join(regions)
        hints = []
        if p.pricing == "spot":
            hints.append("pricing on-demand or both")
        if any(x is not None for x in (p.only, p.exclude, p.arch, p.max_gpus, p.gpu)):
            hints.append("fewer filters (only, exclude, arch, max_gpus, gpu)")
        if regions is not None:
            hints.append("region all")
        hint = f"; try {' or '.join(hints)}" if hints else ""
        raise InputError(
            f"region: no instance in {where} has a GPU the model covers and a {p.pricing}"
            f" price{hint}"
        )
    return found


def _filtered(rows: Sequence[Instance], p: Placement, gpus: dict[str, GPU]) -> tuple[Instance, ...]:
    only, exclude, wanted = _split(p.only), _split(p.exclude), _split(p.gpu)
    if p.arch is not None and p.arch not in ("x86_64", "arm64"):
        raise InputError(f"arch: unknown {p.arch!r}; use x86_64 or arm64")
    if p.max_gpus is not None and p.max_gpus < 1:
        raise InputError(f"max_gpus: must be at least 1, got {p.max_gpus}")
    names = [w.lower() for w in wanted]
    if names and not any(gpu_matches(g, names) for g in gpus):
        raise InputError(f"gpu: no GPU in the catalog matches {p.gpu!r}")
    out = []
    for i in rows:
        if only and not _matches(i, only):
            continue
        if exclude and _matches(i, exclude):
            continue
        if p.arch is not None and i.arch != p.arch:
            continue
        if p.max_gpus is not None and i.gpu_count > p.max_gpus:
            continue
        if names and not (i.gpu and gpu_matches(i.gpu, names)):
            continue
        out.append(i)
    return tuple(out)
