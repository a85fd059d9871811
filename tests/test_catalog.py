"""Tests of the catalog layer: curated data facts, loader API, error reporting, curation."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersave.catalog import (
    GPU,
    LLM,
    PRICE_SETS,
    CatalogError,
    Instance,
    count_parameters,
    curate,
    find_gpu,
    find_instance,
    find_model,
    gpus,
    instances,
    models,
    read_records,
    regions,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "catalog" / "data"


def _shared_data() -> Path | None:
    for cand in (REPO.parent / "shared" / "data",):
        if (cand / "gpus.csv").is_file():
            return cand
    return None


# ---------------------------------------------------------------- AWS facts


def test_g4dn_xlarge_us_east_1() -> None:
    inst = find_instance("g4dn.xlarge", "us-east-1")
    assert inst.on_demand_per_hour == pytest.approx(0.526)
    assert inst.gpu == "T4"
    assert inst.gpu_count == 1
    assert inst.gpu_memory_gib == 16
    assert inst.host_memory_gib == 16
    assert inst.vcpus == 4
    assert inst.spot_per_hour == pytest.approx(0.2)
    assert inst.spot_zone == "use1-az2"
    assert inst.excluded is None


def test_default_region_is_us_east_1() -> None:
    assert find_instance("g4dn.xlarge").region == "us-east-1"
    assert find_instance("G5.XLARGE").instance_type == "g5.xlarge"


def test_default_region_falls_back_to_first_offering() -> None:
    inst = find_instance("p5e.48xlarge")  # only listed in us-east-2
    assert inst.region == "us-east-2"
    assert inst.on_demand_per_hour is None
    assert inst.excluded == "no on-demand price"


def test_g5_12xlarge_has_four_a10g() -> None:
    inst = find_instance("g5.12xlarge", "us-east-1")
    assert (inst.gpu, inst.gpu_count, inst.gpu_memory_gib) == ("A10G", 4, 24)


def test_label_fixes() -> None:
    p4de = find_instance("p4de.24xlarge")
    assert p4de.gpu == "A100-SXM4-80GB"
    assert gpus()[p4de.gpu].memory_gib == 80
    assert find_instance("p4d.24xlarge").gpu == "A100-SXM4-40GB"
    g5g = find_instance("g5g.xlarge")
    assert g5g.gpu == "T4G"
    assert g5g.accelerator == "ARM Mali-G78MP12"
    assert find_instance("p3dn.24xlarge").gpu == "V100-SXM2-32GB"
    assert find_instance("p3.2xlarge").gpu == "V100-SXM2-16GB"


def test_unmodelled_accelerators_are_kept_but_excluded() -> None:
    inf1 = find_instance("inf1.xlarge")
    assert inf1.gpu is None
    assert inf1.excluded == "no GPU spec in catalog: AWS Inferentia"
    k80 = find_instance("p2.xlarge")
    assert k80.gpu is None
    assert k80.excluded is not None and "K80" in k80.excluded
    frac = find_instance("g6f.large")
    assert frac.gpu_count < 1
    assert frac.excluded == "fractional GPU (vGPU slice) not modelled"


def test_instance_table_invariants() -> None:
    table = instances()
    assert len(table) == 1158
    keys = {(i.instance_type, i.region) for i in table}
    assert len(keys) == len(table)
    gpu_table = gpus()
    for inst in table:
        assert inst.provider == "aws"
        if inst.excluded is None:
            assert inst.gpu in gpu_table
            assert inst.on_demand_per_hour is not None
            assert inst.gpu_count >= 1
            assert inst.gpu_memory_gib == gpu_table[inst.gpu].memory_gib
        if inst.spot_per_hour is not None:
            assert inst.region == "us-east-1"
            assert inst.spot_zone is not None and inst.spot_zone.startswith("use1-")
            assert inst.on_demand_per_hour is not None
            assert inst.spot_per_hour <= inst.on_demand_per_hour
    use1 = [i for i in table if i.region == "us-east-1"]
    assert len(use1) == 85
    assert sum(i.excluded is None for i in use1) == 60


def test_regions_sorted_and_contain_us_east_1() -> None:
    regs = regions()
    assert list(regs) == sorted(regs)
    assert "us-east-1" in regs and "eu-west-1" in regs
    assert regions("paper-2025") == ("us-east-1",)


def test_unknown_instance_and_region() -> None:
    with pytest.raises(CatalogError, match=r"did you mean: .*g4dn\.xlarge"):
        find_instance("g4dn.xlarg")
    with pytest.raises(CatalogError, match="not offered in region"):
        find_instance("g4dn.xlarge", "mars-north-1")
    with pytest.raises(CatalogError, match="unknown price set"):
        instances("oracle")  # "azure" is a provider table now (tests/test_providers.py)


# ---------------------------------------------------------------- GPUs


def test_gpu_table() -> None:
    table = gpus()
    assert len(table) == 22
    t4 = table["T4"]
    assert (t4.usable_memory_mib, t4.fp32_tflops, t4.pcie_bandwidth_gbs) == (15360, 8.1, 16)
    assert table["A10G"].usable_memory_mib == 22888
    assert table["L40S"].usable_memory_mib == 45776
    assert table["H200-SXM-141GB"].usable_memory_mib == 144384
    assert table["H100-SXM5-80GB"].pcie_bandwidth_gbs == 64
    assert not table["Radeon-Pro-V520"].is_nvidia
    assert table["Inferentia2"].vendor == "AWS"
    assert table["Inferentia2"].fp32_tflops is None
    assert all(g.source for g in table.values())


def test_find_gpu_aliases() -> None:
    assert find_gpu("A100").name == "A100-SXM4-40GB"
    assert find_gpu("a100-80gb").name == "A100-SXM4-80GB"
    assert find_gpu("H100").name == "H100-SXM5-80GB"
    assert find_gpu("V100").name == "V100-SXM2-16GB"
    assert find_gpu("L40s").name == "L40S"
    assert find_gpu("nvidia t4").name == "T4"
    with pytest.raises(CatalogError, match="did you mean"):
        find_gpu("L41S")


def test_gpus_returns_a_copy() -> None:
    table = gpus()
    table.clear()
    assert "T4" in gpus()


# ---------------------------------------------------------------- paper-2025 price set


def test_paper_2025_price_set() -> None:
    assert PRICE_SETS == ("cloud", "aws", "paper-2025")
    inst = find_instance("g4dn.xlarge", price_set="paper-2025")
    assert inst.on_demand_per_hour == pytest.approx(0.71)
    assert inst.region == "us-east-1"
    prices = {i.instance_type: i.on_demand_per_hour for i in instances("paper-2025")}
    assert prices == {
        "g4dn.xlarge": 0.71,
        "g5.xlarge": 1.466,
        "g6.xlarge": 1.167,
        "g6e.xlarge": 2.699,
    }
    paper = gpus("paper-2025")
    assert paper["T4"].fp16_dense_tflops == 8.24
    assert paper["T4"].fp32_tflops == 8.24
    assert paper["T4"].pcie_bandwidth_gbs == 6
    assert paper["A10G"].usable_memory_mib == 24 * 1024
    assert paper["L40S"].fp16_dense_tflops == 91.61
    # Other GPUs and the datasheet table are untouched.
    assert paper["H100-SXM5-80GB"] == gpus()["H100-SXM5-80GB"]
    assert gpus()["T4"].fp16_dense_tflops == 65
    assert find_gpu("t4", price_set="paper-2025").fp16_dense_tflops == 8.24


# ---------------------------------------------------------------- models


EXPECTED_MODELS = {
    "opt-125m", "opt-1.3b", "opt-2.7b", "opt-6.7b", "opt-13b", "opt-30b", "opt-66b",
    "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b",
    "llama-3.1-405b", "mistral-7b", "mixtral-8x7b", "qwen2.5-7b", "qwen2.5-14b",
    "qwen2.5-32b", "qwen2.5-72b", "gemma-2-9b", "gemma-2-27b", "phi-3-mini", "falcon-7b",
    "falcon-40b",
}  # fmt: skip


# The newer families of models_extra.csv (read from their config.json, see test_models.py).
EXPECTED_EXTRA_MODELS = {
    "llama-3.2-3b", "llama-3.3-70b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b",
    "qwen3-30b-a3b", "deepseek-v3", "gpt-oss-20b",
}  # fmt: skip


def test_all_models_present() -> None:
    table = models()
    assert set(table) == EXPECTED_MODELS | EXPECTED_EXTRA_MODELS
    for m in table.values():
        assert m.num_attention_heads % m.num_key_value_heads == 0
        assert m.ffn_matrices == (2 if m.family in ("OPT", "Falcon") else 3)


def test_model_facts() -> None:
    llama = find_model("llama-3.1-8b")
    assert llama.num_key_value_heads == 8
    assert llama.head_dim == 128
    assert llama.num_parameters == 8030261248
    assert find_model("falcon-7b").num_key_value_heads == 1
    mix = find_model("mixtral-8x7b")
    assert (mix.num_experts, mix.experts_per_token) == (8, 2)
    assert mix.num_active_parameters < mix.num_parameters
    assert find_model("gemma-2-9b").head_dim == 256


def test_find_model_by_hf_id() -> None:
    assert find_model("facebook/opt-2.7b").name == "opt-2.7b"
    assert find_model("meta-llama/Llama-3.1-8B").name == "llama-3.1-8b"
    assert find_model("META-LLAMA/llama-3.1-8b").name == "llama-3.1-8b"
    assert find_model("OPT-2.7B").name == "opt-2.7b"


def test_unknown_model_suggests_close_matches() -> None:
    with pytest.raises(CatalogError, match=r"unknown model 'opt-2\.8b'; did you mean: .*opt-2\.7b"):
        find_model("opt-2.8b")


_FAMILY_TO_MODEL_TYPE = {
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


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_count_parameters_matches_curated_counts(name: str) -> None:
    m = models()[name]
    mt = _FAMILY_TO_MODEL_TYPE[m.family]
    total, active = count_parameters(
        model_type=mt,
        hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size,
        num_hidden_layers=m.num_hidden_layers,
        num_attention_heads=m.num_attention_heads,
        num_key_value_heads=m.num_key_value_heads,
        head_dim=m.head_dim,
        vocab_size=m.vocab_size,
        ffn_matrices=m.ffn_matrices,
        tie_word_embeddings=mt in ("opt", "gemma2", "falcon"),
        max_position_embeddings=m.max_position_embeddings,
        num_experts=m.num_experts,
        experts_per_token=m.experts_per_token,
        new_decoder_architecture=name == "falcon-40b",
    )
    assert (total, active) == (m.num_parameters, m.num_active_parameters)


def _write(tmp_path: Path, cfg: dict[str, object], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def test_find_model_from_tiny_llama_config(tmp_path: Path) -> None:
    cfg = {
        "model_type": "llama",
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "vocab_size": 10,
        "max_position_embeddings": 32,
        "tie_word_embeddings": False,
    }
    m = find_model(str(_write(tmp_path, cfg, "tiny-llama.json")))
    # head_dim 4; per layer: q 8x8 + k,v 2x(8x4) + o 8x8 = 192, MLP 3x8x16 = 384, 2 norms 16
    # -> 592 x 2 layers = 1184; embed 80 + LM head 80 + final norm 8 -> 1352.
    assert m.num_parameters == 1352
    assert m.num_active_parameters == 1352
    assert (m.head_dim, m.num_key_value_heads, m.ffn_matrices) == (4, 1, 3)
    assert m.name == "tiny-llama"
    tied = find_model(_write(tmp_path, {**cfg, "tie_word_embeddings": True}, "t.json"))
    assert tied.num_parameters == 1352 - 80


def test_find_model_from_opt_config_dir(tmp_path: Path) -> None:
    d = tmp_path / "my-opt"
    d.mkdir()
    cfg = {
        "model_type": "opt",
        "hidden_size": 4,
        "ffn_dim": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "vocab_size": 10,
        "max_position_embeddings": 6,
    }
    _write(d, cfg)
    m = find_model(str(d))
    # embed 40 + positions (6+2)x4 = 32; attn 4x16 + biases 16 = 80; MLP 2x4x8 + biases 12 = 76;
    # 2 LayerNorms (w+b) 16; final LayerNorm 8; LM head tied -> 252.
    assert m.num_parameters == 252
    assert (m.intermediate_size, m.num_key_value_heads, m.ffn_matrices) == (8, 2, 2)
    assert m.name == "my-opt"


def test_find_model_from_moe_and_falcon_configs(tmp_path: Path) -> None:
    moe = {
        "_name_or_path": "tiny/moe",
        "model_type": "mixtral",
        "hidden_size": 4,
        "intermediate_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "vocab_size": 10,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
    }
    m = find_model(_write(tmp_path, moe))
    # embed 40 + head 40 + final norm 4; attn 64, router 16, norms 8; expert 3x4x8 = 96.
    assert (m.num_parameters, m.num_active_parameters) == (556, 364)
    assert m.name == "tiny/moe"
    falcon = {
        "model_type": "falcon",
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "multi_query": True,
        "vocab_size": 10,
    }
    f = find_model(_write(tmp_path, falcon, "falcon.json"))
    assert (f.num_key_value_heads, f.intermediate_size, f.ffn_matrices) == (1, 32, 2)


def test_bad_configs_name_file_and_key(tmp_path: Path) -> None:
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"broken\.json.*invalid JSON"):
        find_model(str(bad_json))
    missing = _write(tmp_path, {"model_type": "llama", "hidden_size": 8}, "missing.json")
    with pytest.raises(CatalogError, match=r"missing\.json: required key num_hidden_layers"):
        find_model(str(missing))
    with pytest.raises(CatalogError, match="cannot read"):
        find_model(str(tmp_path / "absent.json"))


# ---------------------------------------------------------------- parsing errors


def test_malformed_csv_names_file_row_and_field(tmp_path: Path) -> None:
    src = (DATA / "aws_instances.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    header = src[0].rstrip("\n").split(",")
    col = header.index("on_demand_per_hour")
    # Row 17 is the 17th data line; put a bad price there (first columns have no quotes).
    cells = src[17].split(",")
    cells[col] = "-1"
    src[17] = ",".join(cells)
    bad = tmp_path / "aws_instances.csv"
    bad.write_text("".join(src), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"aws_instances\.csv row 17, field on_demand_per_hour"):
        read_records(bad, Instance)
    # And the untouched file parses.
    assert len(read_records(DATA / "aws_instances.csv", Instance)) == 1158


def test_malformed_csv_other_errors(tmp_path: Path) -> None:
    path = tmp_path / "gpus.csv"
    shutil.copy(DATA / "gpus.csv", path)
    text = path.read_text(encoding="utf-8").replace("T4,NVIDIA,Turing (sm_75),16,", "T4,NVIDIA,", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=r"gpus\.csv row 1: \d+ cells"):
        read_records(path, GPU)
    with pytest.raises(CatalogError, match=r"x\.csv row 0, field bogus: unknown column"):
        read_records(["name,bogus\n", "a,b\n"], GPU, "x.csv")
    with pytest.raises(CatalogError, match=r"m\.csv row 2, field num_key_value_heads"):
        cols = "name,hf_id,num_parameters,num_active_parameters,hidden_size,intermediate_size,"
        cols += "num_hidden_layers,num_attention_heads,num_key_value_heads,head_dim,vocab_size"
        ok = "a,x/a,1,1,8,16,1,2,2,4,10"
        read_records([cols + "\n", ok + "\n", ok.replace(",2,4,", ",zero,4,") + "\n"], LLM, "m.csv")


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=12))
def test_lookups_either_succeed_or_raise_catalog_error(name: str) -> None:
    for lookup in (find_gpu, find_instance):
        with contextlib.suppress(CatalogError):
            lookup(name)
    try:
        m = find_model(name)
    except CatalogError:
        pass
    else:
        assert isinstance(m, LLM)


# ---------------------------------------------------------------- packaging & curation


def test_loading_is_cached() -> None:
    for ps in PRICE_SETS:
        gpus(ps)
        instances(ps)
        regions(ps)
    models()
    assert instances() is instances()


def test_package_does_not_read_shared_data() -> None:
    for name in ("load.py", "__init__.py", "schemas.py"):
        assert "shared" not in (REPO / "catalog" / name).read_text(encoding="utf-8")


def test_curation_regenerates_identical_files(tmp_path: Path) -> None:
    raw = _shared_data()
    if raw is None:
        pytest.skip("shared reference data not available")
    assert curate.main([str(raw), "--out", str(tmp_path)]) == 0
    produced = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert produced == [
        "aws_instances.csv",
        "azure_instances.csv",
        "gcp_instances.csv",
        "gpus.csv",
        "lambda_instances.csv",
        "models.csv",
        "paper_2025_gpus.csv",
        "paper_2025_instances.csv",
    ]
    for name in produced:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name
