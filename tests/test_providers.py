"""GCP, Azure and Lambda in the catalog: each provider's quirks on rows copied from the raw
files of shared/data (github.com/anycloud-sh/catalog @ 2026-05-20), the shipped tables, one
table across providers, a user's own prices, and the curation command's failure modes.

Expected prices are worked out by hand from the quoted raw rows (the sums are in comments).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infersave.catalog import (
    PRICE_SETS,
    PROVIDERS,
    CatalogError,
    Instance,
    all_instances,
    apply_price_overrides,
    curate,
    find_instance,
    gpus,
    instances,
    instances_for,
    providers,
    regions,
)
from infersave.catalog.readers import azure, gcp, lambda_cloud
from infersave.catalog.readers.common import FRACTIONAL

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECS = {name: g.model_dump() for name, g in gpus().items()}


def _write(root: Path, rel: Path, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return root


def _by_name(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(r["instance_type"]): r for r in rows}


# ---------------------------------------------------------------- GCP

GCP_HEADER = (
    "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,"
    "AvailabilityZone,Price,SpotPrice\n"
)
# gcp_vms.csv lines 13, 15, 88, 89, 9698, 13988, 13990, 15460, 16808, 28902, 28904, 28988,
# 28989, 29205, 29207, 29471, 29473, 31117.
GCP_ROWS = """
a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-a,0.73948,0.36975
a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-c,0.73948,0.36975
a2-ultragpu-1g,12.0,170.0,,,,us-central1,us-central1-a,1.09962,0.54978
a2-ultragpu-1g,12.0,170.0,,,,us-central1,us-central1-c,1.09962,0.54978
c4-standard-8,8.0,30.0,,,,us-central1,us-central1-a,0.39534,0.1976
g2-standard-4,4.0,16.0,,,,us-central1,us-central1-a,0.14679,0.06168
g2-standard-4,4.0,16.0,,,,us-central1,us-central1-c,0.14679,0.06168
n1-highcpu-8,8.0,7.2001953125,,,,us-central1,us-central1-a,0.2834,0.10511
n1-standard-8,8.0,30.0,,,,us-central1,us-central1-a,0.38,0.13954
,,,A100,1,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 40960}}]},us-central1,us-central1-a,2.93391,1.4341
,,,A100,1,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 40960}}]},us-central1,us-central1-c,2.93391,1.4341
,,,A100-80GB,1,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 81920}}]},us-central1,\
us-central1-a,1.8462,1.964
,,,A100-80GB,1,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 81920}}]},us-central1,\
us-central1-c,1.8462,1.964
,,,L4,1,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 24576}}]},us-central1,us-central1-a,0.56004,0.2343
,,,L4,1,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 24576}}]},us-central1,us-central1-c,0.56004,0.2343
,,,T4,1,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 16384}}]},us-central1,us-central1-a,0.35,0.1654
,,,T4,1,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 16384}}]},us-central1,us-central1-c,0.35,0.1654
,,,tpu-v6e-1,1,tpu-v6e-1,southamerica-west1,southamerica-west1-a,2.7,700.0
"""


def _gcp(tmp_path: Path, rows: str = GCP_ROWS) -> tuple[dict[str, dict[str, object]], object]:
    root = _write(tmp_path, gcp.FILE, GCP_HEADER + rows.lstrip("\n"))
    out, tally = gcp.curate(root, SPECS)
    for r in out:
        Instance.model_validate(r)
    return _by_name(out), tally


def test_gcp_raw_excerpt_matches_the_real_file() -> None:
    if not (SHARED / gcp.FILE).is_file():
        pytest.skip("shared reference data not available")
    real = set((SHARED / gcp.FILE).read_text(encoding="utf-8").splitlines())
    for line in GCP_ROWS.strip().splitlines():
        assert line in real, line


def test_gcp_gpu_vm_is_host_plus_accelerator_of_the_same_zone(tmp_path: Path) -> None:
    rows, tally = _gcp(tmp_path)
    a2 = rows["a2-highgpu-1g"]
    assert a2["on_demand_per_hour"] == 3.67339  # 0.73948 + 2.93391
    assert a2["spot_per_hour"] == 1.80385  # 0.36975 + 1.4341
    assert (a2["gpu"], a2["gpu_count"], a2["vcpus"], a2["host_memory_gib"]) == (
        "A100-SXM4-40GB",
        1,
        12,
        85,
    )
    assert a2["zone"] == a2["spot_zone"] == "us-central1-a"  # a and c tie: first by name
    g2 = rows["g2-standard-4"]
    assert (g2["gpu"], g2["on_demand_per_hour"], g2["spot_per_hour"]) == ("L4", 0.70683, 0.29598)
    # N1 carries T4 as an attached GPU; the row is named after host and GPU.
    t4 = rows["n1-standard-8+1xT4"]
    assert t4["on_demand_per_hour"] == 0.73  # 0.38 + 0.35
    assert t4["spot_per_hour"] == 0.30494  # 0.13954 + 0.1654
    assert (t4["vcpus"], t4["host_memory_gib"], t4["gpu"]) == (8, 30, "T4")
    assert t4["zone"] == "us-central1-a"  # the only zone with the host
    assert all(r["price_date"] == "2026-05-20" for r in rows.values())
    assert set(rows) == {"a2-highgpu-1g", "a2-ultragpu-1g", "g2-standard-4", "n1-standard-8+1xT4"}
    assert tally.read == 18
    assert tally.dropped["TPU (not a GPU)"] == 1
    assert tally.dropped["host row: machine family takes no GPU"] == 1  # c4-standard-8
    n1_outside = "host row: n1 host outside the offered sizes (n1-standard/highmem, >= 4 vCPUs)"
    assert tally.dropped[n1_outside] == 1  # n1-highcpu-8
    # The T4 of us-central1-c has no n1 host in the excerpt.
    assert tally.dropped["accelerator row: no matching host row in its zone"] == 1


def test_gcp_spot_above_on_demand_is_set_aside(tmp_path: Path) -> None:
    rows, tally = _gcp(tmp_path)
    a2u = rows["a2-ultragpu-1g"]
    assert a2u["on_demand_per_hour"] == 2.94582  # 1.09962 + 1.8462
    assert a2u["spot_per_hour"] is None  # the A100-80GB row lists spot 1.964 > 1.8462
    assert a2u["excluded"] is None  # still usable on demand
    assert a2u["gpu"] == "A100-SXM4-80GB"
    assert tally.notes["accelerator rows with spot above on-demand: spot set aside"] == 2


def test_gcp_zone_rule_never_mixes_zones(tmp_path: Path) -> None:
    # Made-up variation of the real rows: zone c's host is cheaper on demand but lists no
    # spot price. Both prices must come from zone c: no spot, NOT zone a's spot.
    rows = GCP_ROWS.replace(
        "a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-c,0.73948,0.36975",
        "a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-c,0.7,",
    )
    a2 = _gcp(tmp_path, rows)[0]["a2-highgpu-1g"]
    assert a2["zone"] == "us-central1-c"
    assert a2["on_demand_per_hour"] == 3.63391  # 0.7 + 2.93391
    assert a2["spot_per_hour"] is None and a2["spot_zone"] is None


def test_gcp_bundled_and_n1_hosts() -> None:
    assert gcp.bundled_accelerator("a2-highgpu-8g") == ("A100", 8)
    assert gcp.bundled_accelerator("a2-megagpu-16g") == ("A100", 16)
    assert gcp.bundled_accelerator("a3-megagpu-8g") == ("H100-MEGA", 8)
    assert gcp.bundled_accelerator("g2-standard-24") == ("L4", 2)
    assert gcp.bundled_accelerator("g2-standard-32") == ("L4", 1)
    assert gcp.bundled_accelerator("n1-standard-8") is None
    # V100 x1 allows at most 12 vCPUs and 78 GB; T4 x1 48 vCPUs and 312 GB.
    assert ("V100", 1) not in gcp.n1_accelerators("n1-standard-16", 16, 60)
    assert ("V100", 2) in gcp.n1_accelerators("n1-standard-16", 16, 60)
    assert ("T4", 1) in gcp.n1_accelerators("n1-highmem-32", 32, 208)
    assert gcp.n1_accelerators("n1-standard-2", 2, 7.5) == []  # below 4 vCPUs
    assert gcp.n1_accelerators("n1-highcpu-8", 8, 7.2) == []


def test_gcp_shipped_rows() -> None:
    a2 = find_instance("a2-highgpu-1g", "us-central1", "gcp")
    assert (a2.on_demand_per_hour, a2.spot_per_hour) == (3.67339, 1.80385)
    assert a2.zone == "us-central1-a" and a2.provider == "gcp"
    assert find_instance("a2-highgpu-8g", "us-central1", "gcp").interconnect == "nvlink"
    assert find_instance("a3-highgpu-8g", "us-central1", "gcp").gpu == "H100-SXM5-80GB"
    assert find_instance("g2-standard-48", "us-central1", "gcp").interconnect == "pcie"
    assert find_instance("n1-standard-32+4xT4", "us-central1", "gcp").interconnect == "pcie"
    assert find_instance("n1-standard-8+1xT4", "us-central1", "gcp").interconnect is None
    with pytest.raises(CatalogError):
        find_instance("n1-standard-16+1xV100", "us-central1", "gcp")  # over V100 x1's limit
    p4 = find_instance("n1-standard-8+1xP4", "us-central1", "gcp")
    assert p4.excluded == "no GPU spec in catalog: P4"
    for inst in instances("gcp"):
        assert inst.zone is not None and inst.zone.startswith(inst.region + "-")
        assert inst.arch == "x86_64"
    assert "us-central1" in regions("gcp")


# ---------------------------------------------------------------- Azure

AZURE_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,"
    "Region,Generation\n"
)
# azure_vms.csv lines 408, 55785, 55860, 55946, 56111, 56486, 56571, and the jioindiacentral
# A100 row (no SpotPrice).
AZURE_ROWS = """
Standard_B12ms,,,12,48,,0.499,,eastus,V1,V2
Standard_NC24ads_A100_v4,A100-80GB,1,24,220,A100-80GB,3.673,0.746721,eastus,V2
Standard_NC40ads_H100_v5,H100,1,40,320,H100,6.98,2.192418,eastus,V2
Standard_NC64as_T4_v3,T4,4,64,440,T4,4.352,1.689882,eastus,V1,V2
Standard_ND96amsr_A100_v4,A100-80GB,8,96,1800,A100-80GB,32.77,8.5202,eastus,V2
Standard_NV36ads_A10_v5,A10,1,36,440,A10,3.2,0.59136,eastus,V1,V2
Standard_NV6ads_A10_v5,A10,0.167,6,55,A10,0.454,0.083899,eastus,V1,V2
Standard_NC24ads_A100_v4,A100-80GB,1,24,220,A100-80GB,5.142,,jioindiacentral,V2
"""


def _azure(tmp_path: Path, rows: str = AZURE_ROWS) -> tuple[list[dict[str, object]], object]:
    root = _write(tmp_path, azure.FILE, AZURE_HEADER + rows.lstrip("\n"))
    out, tally = azure.curate(root, SPECS)
    for r in out:
        Instance.model_validate(r)
    return out, tally


def test_azure_raw_excerpt_matches_the_real_file() -> None:
    if not (SHARED / azure.FILE).is_file():
        pytest.skip("shared reference data not available")
    real = set((SHARED / azure.FILE).read_text(encoding="utf-8").splitlines())
    for line in AZURE_ROWS.strip().splitlines():
        assert line in real, line


def test_azure_unquoted_v1_v2_rows_are_read(tmp_path: Path) -> None:
    rows, tally = _azure(tmp_path)
    by_key = {(r["instance_type"], r["region"]): r for r in rows}
    t4 = by_key[("Standard_NC64as_T4_v3", "eastus")]  # an 11-field row
    assert (t4["gpu"], t4["gpu_count"], t4["vcpus"], t4["host_memory_gib"]) == ("T4", 4, 64, 440)
    assert (t4["on_demand_per_hour"], t4["spot_per_hour"]) == (4.352, 1.689882)
    assert t4["interconnect"] == "pcie" and t4["zone"] is None
    assert tally.notes["rows with unquoted 'V1,V2' Generation (11 fields) read as one"] == 4
    assert tally.dropped["no accelerator (VM without GPU)"] == 1  # Standard_B12ms
    assert tally.read == 8 and tally.kept == 7


def test_azure_other_field_counts_are_errors(tmp_path: Path) -> None:
    bad = "Standard_NC6s_v3,V100,1,6,112,V100,3.06,0.565488,eastus,V1,V3\n"
    with pytest.raises(ValueError, match=r"azure_vms\.csv line 2: 11 fields"):
        _azure(tmp_path, bad)


def test_azure_fractional_gpu_is_excluded(tmp_path: Path) -> None:
    by_key = {(r["instance_type"], r["region"]): r for r in _azure(tmp_path)[0]}
    slice_ = by_key[("Standard_NV6ads_A10_v5", "eastus")]
    assert slice_["gpu_count"] == 0.167
    assert slice_["excluded"] == FRACTIONAL and slice_["gpu"] is None
    whole = by_key[("Standard_NV36ads_A10_v5", "eastus")]
    assert (whole["gpu"], whole["excluded"], whole["gpu_memory_gib"]) == ("A10", None, 24)


def test_azure_missing_spot_is_none(tmp_path: Path) -> None:
    rows, tally = _azure(tmp_path)
    by_key = {(r["instance_type"], r["region"]): r for r in rows}
    jio = by_key[("Standard_NC24ads_A100_v4", "jioindiacentral")]
    assert jio["spot_per_hour"] is None and jio["on_demand_per_hour"] == 5.142
    assert jio["excluded"] is None
    assert tally.notes["GPU rows without SpotPrice: no spot price"] == 1


def test_azure_spot_above_on_demand_is_set_aside(tmp_path: Path) -> None:
    # The 2026-05-20 Azure file has no such row; a made-up one (spot 4.0 > 3.673) shows the rule.
    row = "Standard_NC24ads_A100_v4,A100-80GB,1,24,220,A100-80GB,3.673,4.0,eastus,V2\n"
    rows, tally = _azure(tmp_path, row)
    assert rows[0]["spot_per_hour"] is None and rows[0]["on_demand_per_hour"] == 3.673
    assert tally.notes["GPU rows with spot above on-demand: spot set aside"] == 1


def test_azure_a100_and_h100_parts(tmp_path: Path) -> None:
    by_key = {(r["instance_type"], r["region"]): r for r in _azure(tmp_path)[0]}
    nc = by_key[("Standard_NC24ads_A100_v4", "eastus")]
    assert (nc["gpu"], nc["interconnect"]) == ("A100-PCIe-80GB", None)
    nd = by_key[("Standard_ND96amsr_A100_v4", "eastus")]
    assert (nd["gpu"], nd["gpu_count"], nd["interconnect"]) == ("A100-SXM4-80GB", 8, "nvlink")
    nvl = by_key[("Standard_NC40ads_H100_v5", "eastus")]
    assert nvl["gpu"] is None and "H100 NVL" in str(nvl["excluded"])


def test_azure_lookup_lists_real_a100_rows() -> None:
    a100 = [i for i in instances("azure") if i.gpu and i.gpu.startswith("A100")]
    assert {i.instance_type for i in a100} == {
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        "Standard_NC96ads_A100_v4",
        "Standard_ND96amsr_A100_v4",
        "Standard_ND96asr_v4",
    }
    nd = find_instance("Standard_ND96amsr_A100_v4", "eastus", "azure")
    assert (nd.on_demand_per_hour, nd.spot_per_hour) == (32.77, 8.5202)
    assert nd.price_source is not None and "anycloud-sh/catalog" in nd.price_source
    assert all(i.provider == "azure" for i in instances_for(["azure"]))
    assert "eastus" in regions("azure")
    # No fractional row is usable.
    assert all(i.gpu_count >= 1 for i in instances("azure") if i.excluded is None)


# ---------------------------------------------------------------- Lambda

LAMBDA_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
)


def _lambda_row(itype: str, acc: str, count: float, vcpus: float, mem: float, usd: float,
                mib: int) -> str:  # fmt: skip
    info = (
        f"\"{{'Gpus': [{{'Name': '{acc}', 'Manufacturer': 'NVIDIA', 'Count': {count}, "
        f"'MemoryInfo': {{'SizeInMiB': {mib}}}}}], 'TotalGpuMemoryInMiB': {mib}}}\""
    )
    return f"{itype},{acc},{count},{vcpus},{mem},{usd},us-east-1,{info},"


LAMBDA_ROWS = "\n".join(
    [
        "cpu_4x_general,,,4.0,16.0,0.2,us-east-1,,",
        _lambda_row("gpu_2x_a100", "A100", 2.0, 60.0, 400.0, 3.98, 40960),
        _lambda_row("gpu_1x_rtx6000", "RTX6000", 1.0, 14.0, 46.0, 0.69, 24576),
        _lambda_row("gpu_1x_a10", "A10", 1.0, 30.0, 200.0, 1.29, 24576),
        _lambda_row("gpu_1x_h100_pcie", "H100", 1.0, 26.0, 200.0, 3.29, 81920),
        _lambda_row("gpu_8x_h100_sxm5", "H100", 8.0, 208.0, 1800.0, 31.92, 81920),
        _lambda_row("gpu_1x_gh200", "GH200", 1.0, 64.0, 432.0, 2.29, 98304),
    ]
)


def test_lambda_raw_excerpt_matches_the_real_file() -> None:
    if not (SHARED / lambda_cloud.FILE).is_file():
        pytest.skip("shared reference data not available")
    real = set((SHARED / lambda_cloud.FILE).read_text(encoding="utf-8").splitlines())
    for line in LAMBDA_ROWS.splitlines():
        assert line in real, line


def test_lambda_rows(tmp_path: Path) -> None:
    root = _write(tmp_path, lambda_cloud.FILE, LAMBDA_HEADER + LAMBDA_ROWS + "\n")
    out, tally = lambda_cloud.curate(root, SPECS)
    rows = _by_name(out)
    assert tally.dropped["no accelerator (CPU-only type)"] == 1
    a10 = rows["gpu_1x_a10"]
    assert (a10["gpu"], a10["on_demand_per_hour"], a10["spot_per_hour"]) == ("A10", 1.29, None)
    assert (a10["vcpus"], a10["host_memory_gib"], a10["zone"]) == (30, 200, None)
    two = rows["gpu_2x_a100"]
    assert (two["gpu"], two["interconnect"]) == ("A100-PCIe-40GB", "pcie")
    assert rows["gpu_1x_h100_pcie"]["gpu"] == "H100-PCIe-80GB"
    eight = rows["gpu_8x_h100_sxm5"]
    assert (eight["gpu"], eight["gpu_count"], eight["interconnect"]) == (
        "H100-SXM5-80GB",
        8,
        "nvlink",
    )
    gh = rows["gpu_1x_gh200"]
    assert gh["arch"] == "arm64" and gh["excluded"] == "no GPU spec in catalog: GH200"
    assert rows["gpu_1x_rtx6000"]["excluded"] == "no GPU spec in catalog: RTX6000"
    assert all(r["arch"] == "x86_64" for n, r in rows.items() if n != "gpu_1x_gh200")


def test_lambda_shipped_table() -> None:
    table = instances("lambda")
    assert len(regions("lambda")) == 17
    assert all(i.spot_per_hour is None and i.zone is None for i in table)
    assert find_instance("gpu_8x_a100_80gb_sxm4", "us-east-1", "lambda").gpu == "A100-SXM4-80GB"


# ---------------------------------------------------------------- AWS: new fields


def test_aws_arch_interconnect_and_price_source() -> None:
    assert find_instance("g5g.xlarge").arch == "arm64"  # Graviton2
    assert find_instance("g5g.16xlarge").interconnect == "pcie"  # 2 T4G
    assert find_instance("g5.xlarge").arch == "x86_64"
    assert find_instance("g4dn.xlarge").interconnect is None  # one GPU
    assert find_instance("g5.12xlarge").interconnect == "pcie"
    assert find_instance("g6e.48xlarge").interconnect == "pcie"
    assert find_instance("p4d.24xlarge").interconnect == "nvlink"
    assert find_instance("p5.48xlarge").interconnect == "nvlink"
    assert find_instance("p3.8xlarge").interconnect == "nvlink"
    assert find_instance("inf2.48xlarge").interconnect is None  # not NVIDIA
    g4 = find_instance("g4dn.xlarge")
    assert g4.price_date == "2026-01-21" and g4.zone is None
    assert g4.price_source is not None and "spot: SkyPilot" in g4.price_source
    assert "spot" not in str(find_instance("g4dn.xlarge", "eu-west-1").price_source)
    paper = find_instance("g4dn.xlarge", price_set="paper-2025")
    assert paper.price_date == "2025-04" and "Table IV" in str(paper.price_source)


# ---------------------------------------------------------------- one table


def test_providers_and_price_sets() -> None:
    assert providers() == PROVIDERS == ("aws", "gcp", "azure", "lambda")
    assert PRICE_SETS == ("cloud", "aws", "paper-2025")  # what the solver and CLI accept
    assert instances("aws") == instances()  # AWS alone, as before
    assert {i.provider for i in instances()} == {"aws"}


def test_instances_for_filters_providers_and_regions() -> None:
    both = instances_for(["gcp", "lambda"], ["us-east-1"])
    assert both and {i.provider for i in both} == {"lambda"}  # GCP has no us-east-1
    east = instances_for(None, ["us-east-1"])
    assert {i.provider for i in east} == {"aws", "lambda"}
    assert len(all_instances()) == sum(len(instances(p)) for p in PROVIDERS)
    assert instances_for(["LAMBDA", "aws"])[0].provider == "aws"  # PROVIDERS order
    with pytest.raises(CatalogError, match="did you mean: azure"):
        instances_for(["azur"])
    with pytest.raises(CatalogError, match="unknown region"):
        instances_for(["gcp"], ["eastus"])


def test_every_provider_row_keeps_the_rules() -> None:
    keys = set()
    for inst in all_instances():
        keys.add((inst.provider, inst.instance_type, inst.region))
        assert inst.price_source and inst.price_date
        if inst.spot_per_hour is not None:
            assert inst.on_demand_per_hour is not None
            assert inst.spot_per_hour <= inst.on_demand_per_hour
        if inst.excluded is None:
            assert inst.gpu is not None and inst.gpu_count >= 1
            assert inst.on_demand_per_hour is not None
        if inst.gpu_count <= 1:
            assert inst.interconnect is None
    assert len(keys) == len(all_instances())


# ---------------------------------------------------------------- user prices


def _prices(tmp_path: Path, text: str, name: str = "mine.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_price_overrides_happy_path(tmp_path: Path) -> None:
    path = _prices(
        tmp_path,
        "provider,instance_type,region,on_demand_per_hour,spot_per_hour,source,date\n"
        "aws,G5.XLARGE,us-east-1,0.72,,3-year savings plan,2026-02-01\n"
        "gcp,a2-highgpu-1g,us-central1,2.5,1.1,,\n"
        "aws,p5e.48xlarge,us-east-2,30,,reserved,2026-03\n",
    )
    os.utime(path, (1767225600, 1767225600))  # 2026-01-01 00:00 UTC
    before = all_instances()
    after = apply_price_overrides(before, path)
    assert len(after) == len(before)
    changed = {
        (i.provider, i.instance_type, i.region): i
        for b, i in zip(before, after, strict=True)
        if i is not b
    }
    g5 = changed[("aws", "g5.xlarge", "us-east-1")]
    assert g5.on_demand_per_hour == 0.72
    assert g5.spot_per_hour == find_instance("g5.xlarge").spot_per_hour  # kept
    assert (g5.price_source, g5.price_date) == ("3-year savings plan", "2026-02-01")
    a2 = changed[("gcp", "a2-highgpu-1g", "us-central1")]
    assert (a2.on_demand_per_hour, a2.spot_per_hour, a2.spot_zone) == (2.5, 1.1, None)
    assert a2.price_source == "user prices mine.csv row 2"
    assert a2.price_date == "2026-01-01"  # the file's modification date
    p5e = changed[("aws", "p5e.48xlarge", "us-east-2")]
    assert p5e.excluded is None and p5e.on_demand_per_hour == 30  # now usable
    assert len(changed) == 3
    assert find_instance("g5.xlarge").on_demand_per_hour == 1.006  # the catalog is untouched


HEADER = "provider,instance_type,region,on_demand_per_hour\n"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            HEADER + "aws,g5.xlarg,us-east-1,1\n",
            r"row 1, field instance_type: .*did you mean: g5\.xlarge",
        ),
        (HEADER + "aws,g5.xlarge,mars-1,1\n", r"row 1, field region: g5\.xlarge not offered"),
        (
            HEADER + "aws,g5.xlarge,us-east-1,1\naws,g6.xlarge,us-east-1,-2\n",
            r"row 2, field on_demand_per_hour: must be a positive",
        ),
        (
            HEADER + "aws,g5.xlarge,us-east-1,cheap\n",
            r"row 1, field on_demand_per_hour: not a number",
        ),
        (HEADER + "aws,g5.xlarge,us-east-1,\n", r"row 1, field on_demand_per_hour: empty"),
        (HEADER + "oracle,g5.xlarge,us-east-1,1\n", r"row 1, field provider: unknown provider"),
        (
            HEADER + "aws,g5.xlarge,us-east-1,1\naws,g5.xlarge,us-east-1,2\n",
            r"row 2, field instance_type: same instance and region as row 1",
        ),
        (HEADER + "aws,g5.xlarge,us-east-1\n", r"row 1: 3 cells, header has 4"),
        (
            "provider,instance_type,on_demand_per_hour\naws,g5.xlarge,1\n",
            r"row 0, field region: required column missing",
        ),
        (
            HEADER.strip() + ",discount\n" + "aws,g5.xlarge,us-east-1,1,5\n",
            r"row 0, field discount: unknown column",
        ),
        (
            HEADER.strip() + ",spot_per_hour\naws,g5.xlarge,us-east-1,1,0\n",
            r"row 1, field spot_per_hour: must be a positive",
        ),
        (
            HEADER.strip() + ",date\naws,g5.xlarge,us-east-1,1,last week\n",
            r"row 1, field date: 'last week'",
        ),
        ("", r": empty file"),
    ],
)
def test_price_override_errors_name_file_row_and_field(
    tmp_path: Path, text: str, where: str
) -> None:
    path = _prices(tmp_path, text)
    with pytest.raises(CatalogError, match=r"mine\.csv" + (r" " if "row" in where else "") + where):
        apply_price_overrides(instances(), path)


def test_price_override_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"absent\.csv: cannot read prices"):
        apply_price_overrides(instances(), tmp_path / "absent.csv")


# ---------------------------------------------------------------- curation


def test_curation_tallies_of_the_real_files() -> None:
    if not (SHARED / azure.FILE).is_file():
        pytest.skip("shared reference data not available")
    files, tallies = curate.build_with_report(SHARED)
    by = {t.provider: t for t in tallies}
    # Row counts and quirks as shared/data/README.md states them.
    assert (by["gcp"].read, by["azure"].read, by["lambda"].read) == (31285, 56671, 425)
    v1v2 = "rows with unquoted 'V1,V2' Generation (11 fields) read as one"
    assert by["azure"].notes[v1v2] == 27141
    # Azure and Lambda: one curated row per raw GPU row; every other row dropped and counted.
    for t in (by["azure"], by["lambda"]):
        assert t.read == t.kept + sum(t.dropped.values())
    assert by["azure"].kept == files["azure_instances.csv"].count("\n") - 1
    assert by["azure"].excluded[FRACTIONAL] == 108  # 36 regions x 3 NVadsA10 v5 slices


def test_curation_without_data_fails_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert curate.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shared/data" in err and "Traceback" not in err
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "gpus.csv").write_text("name\n", encoding="utf-8")
    assert curate.main([str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "catalog/gcp/gcp_vms.csv" in err
    assert not (tmp_path / "out").exists()
