"""Shared fixtures: small synthetic models, GPUs and instances with round numbers, so that
expected values can be worked out by hand."""

from __future__ import annotations

import pytest

from infersave.catalog.schemas import GPU, LLM, Instance
from infersave.formulations.options import ModelOptions

MIB = 2**20


def tiny_model(**overrides: object) -> LLM:
    """1e9 parameters (2e9 bytes fp16); 10 layers x 4 KV heads x 64 = 10,240 KV bytes/token."""
    fields: dict[str, object] = dict(
        name="tiny",
        hf_id="test/tiny",
        num_parameters=1_000_000_000,
        num_active_parameters=1_000_000_000,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=10,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=64,
        vocab_size=1000,
    )
    fields.update(overrides)
    return LLM(**fields)  # type: ignore[arg-type]


def gpu(name: str, usable_bytes: float, tflops: float = 100.0, bw_gbs: float = 1000.0) -> GPU:
    """A GPU whose usable memory is exactly ``usable_bytes`` (with utilization 1.0)."""
    return GPU(
        name=name,
        vendor="NVIDIA",
        memory_gib=usable_bytes / 2**30,
        usable_memory_mib=usable_bytes / MIB,
        memory_bandwidth_gbs=bw_gbs,
        fp16_dense_tflops=tflops,
        fp32_tflops=tflops / 8,
        pcie_bandwidth_gbs=16.0,
        source="test",
    )


def instance(name: str, gpu_name: str, price: float, host_bytes: float, count: int = 1) -> Instance:
    """An instance with ``host_bytes`` of host memory (with utilization 1.0)."""
    return Instance(
        instance_type=name,
        region="test-1",
        accelerator=gpu_name,
        gpu=gpu_name,
        gpu_count=count,
        vcpus=4,
        host_memory_gib=host_bytes / 2**30,
        on_demand_per_hour=price,
        source="test",
    )


@pytest.fixture
def exact_options() -> ModelOptions:
    """Physics formulas with all of GPU and host memory usable, so hand numbers stay round."""
    return ModelOptions(gpu_memory_utilization=1.0, host_memory_utilization=1.0)
