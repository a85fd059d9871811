"""Hand-off: the vllm serve command (every flag checked against the pinned vLLM release's flag
list) and the SkyPilot task YAML (parsed back)."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
import yaml

from infersave.catalog import load
from infersave.cli import handoff
from infersave.exporters import skypilot, vllm
from infersave.solver.recommend import solve
from infersave.solver.records import Record, SolveResult
from infersave.solver.scenario import InputError, Scenario

FLAGS_FILE = Path(__file__).parent / "data" / f"vllm_serve_flags_{vllm.VLLM_VERSION}.txt"

README = Scenario(
    model="opt-2.7b",
    input_len=1024,
    output_len=128,
    requests=1000,
    slo_tps=100,
    max_price=3,
    region="us-east-1",
)


def pinned_flags() -> dict[str, set[str] | None]:
    """Flag -> its allowed values (None: any value) from the pinned list."""
    out: dict[str, set[str] | None] = {}
    for line in FLAGS_FILE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        flag, *choices = line.split()
        out[flag] = set(choices) or None
    return out


FLAGS = pinned_flags()


def check_against_pinned(args: list[str]) -> None:
    """Every ``--flag`` in ``args`` exists in the pinned release, with an allowed value."""
    for i, token in enumerate(args):
        if token.startswith("-"):
            assert token in FLAGS, f"{token} is not a vllm serve {vllm.VLLM_VERSION} flag"
            allowed = FLAGS[token]
            if allowed is not None:
                assert args[i + 1] in allowed, f"{token} {args[i + 1]}: not one of {allowed}"


@pytest.fixture(scope="module")
def readme() -> SolveResult:
    return solve(README)


def variant(result: SolveResult, record: Record | None = None, **scenario: object) -> SolveResult:
    """``result`` with scenario fields and/or the recommendation replaced (no re-solve); a
    ``dtype`` is the recommendation's too (the record says which precision it runs)."""
    update: dict[str, object] = {"scenario": result.scenario.model_copy(update=scenario)}
    rec = record if record is not None else result.recommendation
    if rec is not None and "dtype" in scenario:
        rec = rec.model_copy(update={"dtype": scenario["dtype"]})
    if rec is not None:
        update["recommendation"] = rec
    return result.model_copy(update=update)


def test_pinned_flag_list_names_its_source() -> None:
    first = FLAGS_FILE.read_text().splitlines()[0]
    assert first.startswith(f"# vLLM {vllm.VLLM_VERSION}")
    assert f"v{vllm.VLLM_VERSION}" in first and "arg_utils.py" in first
    assert re.search(r"\d{4}-\d{2}-\d{2}", first)
    assert len(FLAGS) > 200
    for flag in ("--max-num-seqs", "--tensor-parallel-size", "--kv-offloading-size", "--port"):
        assert flag in FLAGS
    assert "--swap-space" not in FLAGS  # gone with the V0 engine: not a KV-offload option
    with pytest.raises(AssertionError):  # the check bites
        check_against_pinned(["--swap-space", "4"])
    with pytest.raises(AssertionError):
        check_against_pinned(["--dtype", "fp16"])


def test_readme_command(readme: SolveResult) -> None:
    args = vllm.vllm_serve_args(readme)
    assert args == [
        "facebook/opt-2.7b",
        "--port",
        "8000",
        "--tensor-parallel-size",
        "1",
        "--max-num-seqs",
        "16",
        "--max-num-batched-tokens",
        "2048",
        "--max-model-len",
        "1152",
        "--gpu-memory-utilization",
        "0.9",
        "--dtype",
        "float16",
    ]
    check_against_pinned(args[1:])
    cmd = vllm.vllm_serve_command(readme)
    assert shlex.split(cmd) == ["vllm", "serve", *args]
    multi = vllm.vllm_serve_command(readme, host="0.0.0.0", multiline=True)
    assert shlex.split(multi.replace("\\\n", "")) == shlex.split(
        vllm.vllm_serve_command(readme, host="0.0.0.0")
    )


def test_model_ids_are_shell_quoted(readme: SolveResult) -> None:
    cmd = vllm.vllm_serve_command(readme, model_hf_id="/models/my model")
    assert shlex.split(cmd)[2] == "/models/my model"
    assert vllm.model_id(README.model_copy(update={"model": "/tmp/m/config.json"})) == "/tmp/m"


@pytest.mark.parametrize(
    ("dtype", "present", "absent"),
    [
        ("fp16", ["--dtype", "float16"], ["--quantization", "--kv-cache-dtype"]),
        ("bf16", ["--dtype", "bfloat16"], ["--quantization", "--kv-cache-dtype"]),
        ("fp32", ["--dtype", "float32"], ["--quantization", "--kv-cache-dtype"]),
        ("fp8", ["--quantization", "fp8", "--kv-cache-dtype", "fp8"], ["--dtype"]),
        ("int8", ["--kv-cache-dtype", "int8_per_token_head"], ["--quantization", "--dtype"]),
        ("int4", ["--dtype", "float16"], ["--quantization", "--kv-cache-dtype"]),
    ],
)
def test_dtype_mapping(
    readme: SolveResult, dtype: str, present: list[str], absent: list[str]
) -> None:
    args = vllm.engine_args(variant(readme, dtype=dtype))
    pairs = list(itertools.pairwise(args))
    for flag, value in zip(present[::2], present[1::2], strict=True):
        assert (flag, value) in pairs
    assert not set(absent) & set(args)
    check_against_pinned(args)


def test_kv_offload_maps_to_native_kv_offloading(readme: SolveResult) -> None:
    rec = readme.recommendation
    assert rec is not None
    mem = rec.memory.model_copy(update={"kv_cache_bytes": 12_079_595_520})
    off = rec.model_copy(update={"offload_ratio": 0.3, "memory": mem})
    args = vllm.engine_args(variant(readme, off))
    # 0.3 x 12.08e9 B = 3.375 GiB of one replica's KV cache, rounded up to 0.1 GiB
    i = args.index("--kv-offloading-size")
    assert args[i + 1] == "3.4"
    assert args[args.index("--kv-offloading-backend") + 1] == "native"
    assert "--cpu-offload-gb" not in args  # that one offloads weights
    check_against_pinned(args)
    assert "--kv-offloading-size" not in vllm.engine_args(readme)
    notes = vllm.vllm_notes(variant(readme, off))
    assert any("KV offload 30%" in n for n in notes)


def test_real_offloaded_recommendation_is_emitted() -> None:
    r = solve(README.model_copy(update={"max_price": 0.45, "batch_size": 32}))
    assert r.recommendation is not None and r.recommendation.offload_ratio == pytest.approx(0.3)
    args = vllm.engine_args(r)
    assert args[args.index("--kv-offloading-size") + 1] == "3.4"
    check_against_pinned(args)


def test_batch_length_memory_and_parallelism(readme: SolveResult) -> None:
    rec = readme.recommendation
    assert rec is not None
    eight = rec.model_copy(update={"gpu_count": 8.0, "batch_size": 64})
    r = variant(readme, eight, input_len=300, output_len=700, gpu_memory_utilization=0.85)
    args = vllm.engine_args(r)

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert value("--max-num-seqs") == "64"
    assert value("--max-model-len") == "1000"
    assert value("--gpu-memory-utilization") == "0.85"
    assert value("--tensor-parallel-size") == "1"
    assert value("--data-parallel-size") == "8"
    check_against_pinned(args)
    assert "--data-parallel-size" not in vllm.engine_args(readme)


def test_batched_tokens_are_the_pass_the_memory_model_reserves(readme: SolveResult) -> None:
    """--max-num-batched-tokens is the forward pass whose activations the memory model counts:
    2,048 tokens, or the batch size when larger (vLLM needs a token per sequence)."""
    rec = readme.recommendation
    assert rec is not None
    for batch, tokens in ((16, "2048"), (2048, "2048"), (3000, "3000")):
        args = vllm.engine_args(variant(readme, rec.model_copy(update={"batch_size": batch})))
        assert args[args.index("--max-num-batched-tokens") + 1] == tokens
        check_against_pinned(args)


def test_a_later_tensor_parallel_field_is_used(readme: SolveResult) -> None:
    class TPRecord(Record):
        tensor_parallel: int = 1

    rec = readme.recommendation
    assert rec is not None
    tp = TPRecord(**{**rec.model_dump(), "gpu_count": 8.0, "tensor_parallel": 2})
    args = vllm.engine_args(variant(readme, tp))
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[args.index("--data-parallel-size") + 1] == "4"


def test_no_recommendation_is_an_input_error(readme: SolveResult) -> None:
    empty = readme.model_copy(update={"recommendation": None, "status": "infeasible"})
    with pytest.raises(InputError, match="nothing feasible"):
        vllm.vllm_serve_args(empty)
    with pytest.raises(InputError):
        skypilot.skypilot_yaml(empty)


# --- SkyPilot ----------------------------------------------------------------------------------


def test_readme_skypilot_yaml_parses_back(readme: SolveResult) -> None:
    text = skypilot.skypilot_yaml(readme)
    task = yaml.safe_load(text)
    assert task["resources"] == {
        "cloud": "aws",
        "region": "us-east-1",
        "instance_type": "g5g.xlarge",
        "accelerators": "T4g:1",
        "use_spot": False,
        "ports": 8000,
    }
    assert task["setup"].strip() == f"pip install vllm=={vllm.VLLM_VERSION}"
    argv = shlex.split(task["run"].replace("\\\n", ""))
    assert argv[:3] == ["vllm", "serve", "facebook/opt-2.7b"]
    assert argv[argv.index("--port") + 1] == "8000"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    check_against_pinned(argv[3:])
    assert task == skypilot.skypilot_task(readme)
    assert text.startswith("# infersave recommendation for opt-2.7b: g5g.xlarge")


def test_spot_pricing_sets_use_spot(readme: SolveResult) -> None:
    task = yaml.safe_load(skypilot.skypilot_yaml(variant(readme, pricing="spot"), port=9000))
    assert task["resources"]["use_spot"] is True and task["resources"]["ports"] == 9000
    assert "--port 9000" in task["run"]


def test_every_catalog_nvidia_gpu_has_a_skypilot_name() -> None:
    for name, gpu in load.gpus("aws").items():
        if gpu.is_nvidia:
            assert name in skypilot.SKYPILOT_ACCELERATORS, name
    assert skypilot.accelerators("A100-SXM4-80GB", 8.0) == "A100-80GB:8"
    assert skypilot.accelerators("Unknown-GPU", 1.0) == "Unknown-GPU:1"


# --- the solve command's hooks ------------------------------------------------------------------


def test_emit_to_stdout_and_file(
    readme: SolveResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handoff.emit(readme, "vllm", None)
    out, err = capsys.readouterr()
    assert out.startswith("vllm serve facebook/opt-2.7b")
    assert "Graviton" in err and err.startswith("infersave: note: ")
    handoff.emit(readme, "skypilot", str(tmp_path / "task.yaml"))
    assert yaml.safe_load((tmp_path / "task.yaml").read_text())["name"] == "infersave-opt-2-7b"
    with pytest.raises(InputError, match="--emit"):
        handoff.emit(readme, "docker", None)
    empty = readme.model_copy(update={"recommendation": None, "status": "infeasible"})
    handoff.emit(empty, "vllm", str(tmp_path / "none.txt"))
    assert not (tmp_path / "none.txt").exists()
    assert "nothing to emit" in capsys.readouterr().err


def test_plot_hook(readme: SolveResult, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        handoff.plot(README, str(tmp_path / "p.gif"))
    path = handoff.plot(readme, str(tmp_path / "p.svg"))
    assert path.read_text().startswith("<?xml")


def test_kv_dtype_and_a_searched_precision_come_from_the_record(readme: SolveResult) -> None:
    rec = readme.recommendation
    assert rec is not None
    int4 = variant(readme, rec.model_copy(update={"dtype": "int4"}), kv_dtype="fp8")
    args = vllm.engine_args(int4)  # the scenario still says fp16: the record decides
    pairs = list(itertools.pairwise(args))
    assert ("--dtype", "float16") in pairs and ("--kv-cache-dtype", "fp8") in pairs
    fp8 = vllm.engine_args(variant(readme, dtype="fp8", kv_dtype="fp16"))
    assert ("--quantization", "fp8") in list(itertools.pairwise(fp8))
    assert (
        fp8.count("--kv-cache-dtype") == 1 and fp8[fp8.index("--kv-cache-dtype") + 1] == "float16"
    )
    check_against_pinned(args)
    check_against_pinned(fp8)


def test_tensor_parallel_record_maps_to_tp_and_dp(readme: SolveResult) -> None:
    rec = readme.recommendation
    assert rec is not None
    mem = rec.memory.model_copy(update={"kv_cache_bytes": 10 * 2**30})
    tp = rec.model_copy(
        update={"gpu_count": 8.0, "tensor_parallel": 4, "offload_ratio": 0.25, "memory": mem}
    )
    args = vllm.engine_args(variant(readme, tp))
    pairs = list(itertools.pairwise(args))
    assert ("--tensor-parallel-size", "4") in pairs and ("--data-parallel-size", "2") in pairs
    # 0.25 x 10 GiB per GPU x 4 GPUs of the replica = 10 GiB, summed over the TP ranks
    assert ("--kv-offloading-size", "10") in pairs
    check_against_pinned(args)
