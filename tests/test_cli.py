"""End-to-end runs of the ``infersave`` command: output formats, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

EXAMPLE = [
    "solve",
    "--model", "opt-2.7b",
    "--input-len", "1024",
    "--output-len", "128",
    "--requests", "1000",
    "--slo-tps", "100",
    "--max-price", "3",
    "--region", "us-east-1",
]  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infersave.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_solve_example_json_contract() -> None:
    p = run(*EXAMPLE, "--format", "json", "--backend", "exhaustive")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out) >= {"scenario", "recommendation", "alternatives", "baseline"}
    rec = out["recommendation"]
    for key in (
        "instance_type", "provider", "region", "gpu", "gpu_count", "batch_size",
        "offload_ratio", "tps", "output_tps", "prefill_s", "decode_s", "task_hours",
        "billed_hours", "price_per_hour", "total_cost_usd", "cost_efficiency", "memory",
    ):  # fmt: skip
        assert key in rec, key
    assert set(rec["memory"]) == {
        "weights_bytes", "kv_cache_bytes", "activation_bytes", "gpu_memory_bytes",
        "host_memory_bytes",
    }  # fmt: skip
    assert rec["region"] == "us-east-1"
    assert rec["price_per_hour"] <= 3
    assert rec["tps"] >= 100
    assert rec["total_cost_usd"] == pytest.approx(rec["billed_hours"] * rec["price_per_hour"])
    assert 0 < len(out["alternatives"]) <= 5
    costs = [rec["total_cost_usd"]] + [a["total_cost_usd"] for a in out["alternatives"]]
    assert costs == sorted(costs)
    base = out["baseline"]["max_performance"]
    assert base["tps"] >= max(a["tps"] for a in out["alternatives"])
    expected = 100 * (base["total_cost_usd"] - rec["total_cost_usd"]) / base["total_cost_usd"]
    assert out["baseline"]["savings_pct"] == pytest.approx(expected)
    assert out["scenario"]["model"] == "opt-2.7b"


def test_solve_table_and_csv() -> None:
    p = run(*EXAMPLE, "--backend", "exhaustive", "--top", "2")
    assert p.returncode == 0, p.stderr
    assert "recommended" in p.stdout and "Max-Performance" in p.stdout
    p = run(*EXAMPLE, "--format", "csv", "--backend", "exhaustive", "--top", "2")
    assert p.returncode == 0
    lines = p.stdout.strip().splitlines()
    assert lines[0].startswith("role,instance_type")
    assert [line.split(",")[0] for line in lines[1:]] == [
        "recommendation", "alternative", "alternative", "max_performance",
    ]  # fmt: skip


@pytest.mark.parametrize("slo", ["400", "600"])
def test_paper_online_scenario(slo: str) -> None:
    p = run(
        "solve", "--model", "opt-2.7b", "--input-len", "128", "--output-len", "512",
        "--requests", "3000", "--slo-tps", slo, "--max-price", "3", "--format", "json",
        "--backend", "exhaustive",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)["recommendation"]
    assert rec["tps"] >= float(slo) and rec["price_per_hour"] <= 3


def test_infeasible_exits_1_with_closest_miss() -> None:
    p = run(
        "solve", "--model", "opt-2.7b", "--input-len", "1024", "--output-len", "128",
        "--slo-tps", "1e9", "--max-price", "3", "--backend", "exhaustive",
    )  # fmt: skip
    assert p.returncode == 1
    assert "best TPS reachable under $3/h" in p.stdout
    p = run(
        "solve", "--model", "llama-3.1-405b", "--input-len", "128", "--output-len", "128",
        "--slo-tps", "10", "--max-price", "5", "--format", "json", "--backend", "exhaustive",
    )  # fmt: skip
    assert p.returncode == 1
    assert json.loads(p.stdout)["status"] == "infeasible"
    assert "weights alone" in p.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "opt-2.8b"], "did you mean: opt-2.7b"),
        (["--input-len", "0"], "--input-len"),
        (["--output-len", "-5"], "--output-len"),
        (["--requests", "0"], "--requests"),
        (["--slo-tps", "-1"], "--slo-tps"),
        (["--max-price", "0"], "--max-price"),
        (["--region", "us-east-9"], "unknown region 'us-east-9'"),
        (["--model", "/nonexistent/config.json"], "config.json"),
        (["--offload-step", "0.3"], "offload step"),
        (["--batch-sizes", "a,b"], "--batch-sizes"),
        (["--catalog", "oracle"], "--catalog: unknown"),
        (["--bogus"], "No such option"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    base = {
        "--model": "opt-2.7b", "--input-len": "1024", "--output-len": "128",
        "--slo-tps": "100", "--max-price": "3",
    }  # fmt: skip
    argv = ["solve"]
    for k, v in base.items():
        if k not in args:
            argv += [k, v]
    p = run(*argv, *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert needle in lines[0]
    assert p.stdout == ""


def test_local_config_json(tmp_path) -> None:
    cfg = {
        "architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "intermediate_size": 5632,
        "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
        "vocab_size": 32000, "max_position_embeddings": 2048, "tie_word_embeddings": False,
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    p = run(
        "solve", "--model", str(path), "--input-len", "512", "--output-len", "128",
        "--slo-tps", "200", "--max-price", "2", "--format", "json", "--backend", "exhaustive",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    mem = json.loads(p.stdout)["recommendation"]["memory"]
    # Llama-shaped: 22 layers x (attention 2048*(2048+2*256+2048) + 3*2048*5632 + 2 norms)
    #   + embeddings and LM head 2 x 32000*2048 + final norm
    layer = 2048 * 2048 * 2 + 2 * 2048 * 256 + 3 * 2048 * 5632 + 2 * 2048
    params = 22 * layer + 2 * 32000 * 2048 + 2048
    assert mem["weights_bytes"] == 2 * params
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = run("solve", "--model", str(bad), "--input-len", "1", "--output-len", "1", "--slo-tps", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_predict_instance_and_gpu_json() -> None:
    p = run(
        "predict", "--model", "llama-3.1-8b", "--instance", "g6.xlarge", "--batch-size", "16",
        "--input-len", "512", "--output-len", "256", "--format", "json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["instance_type"] == "g6.xlarge" and rec["gpu"] == "L4"
    assert rec["e2e_s"] == pytest.approx(rec["prefill_s"] + rec["decode_s"])
    assert rec["memory"]["kv_cache_bytes"] == 16 * 768 * 131_072
    p = run(
        "predict", "--model", "opt-2.7b", "--gpu", "H100", "--batch-size", "32",
        "--input-len", "512", "--output-len", "128", "--format", "json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["gpu"] == "H100-SXM5-80GB" and rec["total_cost_usd"] is None
    p = run("predict", "--model", "opt-2.7b", "--batch-size", "1", "--input-len", "1",
            "--output-len", "1")  # fmt: skip
    assert p.returncode == 2 and "exactly one of --instance or --gpu" in p.stderr


def test_predict_reports_what_does_not_fit() -> None:
    p = run(
        "predict", "--model", "llama-2-70b", "--instance", "g5.xlarge", "--batch-size", "1",
        "--input-len", "128", "--output-len", "128",
    )  # fmt: skip
    assert p.returncode == 1
    assert "weights do not fit" in p.stderr


def test_instances_and_models_lists() -> None:
    p = run("instances", "--region", "us-east-1", "--gpu", "L4", "--format", "json")
    assert p.returncode == 0
    rows = json.loads(p.stdout)
    assert rows and all(r["gpu"] == "L4" and r["region"] == "us-east-1" for r in rows)
    assert "g6.xlarge" in {r["instance_type"] for r in rows}
    p = run("models", "--format", "csv")
    # header + 24 models.csv rows + 9 models_extra.csv rows (was 25 before the newer families)
    assert p.returncode == 0 and len(p.stdout.strip().splitlines()) == 34
    p = run("instances", "--region", "mars-1")
    assert p.returncode == 2 and "unknown region" in p.stderr


def test_help_shows_an_example() -> None:
    p = run("solve", "--help")
    assert p.returncode == 0 and "Example" in p.stdout and "--slo-tps" in p.stdout
