"""A SkyPilot task YAML that launches the recommendation behind a vLLM server (issue 13, part 4).

``resources`` pins the cloud, region and instance type of the recommendation, with its GPUs in
SkyPilot's accelerator naming (``sky show-gpus``: ``T4g``, ``A10G``, ``A100-80GB``, ...) and
``use_spot`` from the scenario's pricing; ``setup`` installs the pinned vLLM release; ``run``
starts ``vllm serve`` (see :mod:`infersave.exporters.vllm`) on the exposed port. Launch it with
``sky launch -c NAME task.yaml`` (or ``sky serve up`` after adding a ``service`` section).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from infersave.exporters.vllm import DEFAULT_PORT, VLLM_VERSION, vllm_serve_command

if TYPE_CHECKING:
    from infersave.solver.records import SolveResult

SKYPILOT_ACCELERATORS: dict[str, str] = {
    "T4": "T4",
    "T4G": "T4g",
    "A10G": "A10G",
    "A10": "A10",
    "L4": "L4",
    "L40S": "L40S",
    "L40": "L40",
    "V100-SXM2-16GB": "V100",
    "V100-PCIe-16GB": "V100",
    "V100-SXM2-32GB": "V100-32GB",
    "A100-SXM4-40GB": "A100",
    "A100-PCIe-40GB": "A100",
    "A100-SXM4-80GB": "A100-80GB",
    "A100-PCIe-80GB": "A100-80GB",
    "H100-SXM5-80GB": "H100",
    "H100-PCIe-80GB": "H100",
    "H200-SXM-141GB": "H200",
    "RTX-A6000": "RTXA6000",
}
"""Catalog GPU name -> SkyPilot accelerator name (SkyPilot's docs/source/compute/
show-gpus-all.txt, the output of ``sky show-gpus -a``); other names pass through."""


def accelerators(gpu: str, count: float) -> str:
    """SkyPilot's ``NAME:COUNT`` for ``count`` GPUs of catalog type ``gpu``."""
    return f"{SKYPILOT_ACCELERATORS.get(gpu, gpu)}:{count:g}"


def skypilot_task(
    result: SolveResult,
    model_hf_id: str | None = None,
    port: int = DEFAULT_PORT,
    name: str | None = None,
) -> dict[str, Any]:
    """The SkyPilot task (as a dict) that serves the recommendation of ``result`` with vLLM
    on ``port``. ``model_hf_id`` defaults to the scenario's model.

    Raises:
        InputError: if ``result`` has no recommendation.
    """
    command = vllm_serve_command(result, model_hf_id, port=port, host="0.0.0.0", multiline=True)
    rec = result.recommendation
    assert rec is not None  # vllm_serve_command raised otherwise
    s = result.scenario
    task_name = name or "infersave-" + re.sub(r"[^a-z0-9]+", "-", s.model.lower()).strip("-")
    return {
        "name": task_name[:63],
        "resources": {
            "cloud": rec.provider,
            "region": rec.region,
            "instance_type": rec.instance_type,
            "accelerators": accelerators(rec.gpu, rec.gpu_count),
            "use_spot": s.pricing == "spot",
            "ports": port,
        },
        "setup": f"pip install vllm=={VLLM_VERSION}\n",
        "run": command + "\n",
    }


def _dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        """Multi-line strings as ``|`` blocks, so the run command reads as it is typed."""

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def skypilot_yaml(
    result: SolveResult,
    model_hf_id: str | None = None,
    port: int = DEFAULT_PORT,
    name: str | None = None,
) -> str:
    """:func:`skypilot_task` as YAML text, headed by comments on what it runs and was predicted.

    Raises:
        InputError: if ``result`` has no recommendation.
    """
    import yaml

    task = skypilot_task(result, model_hf_id, port, name)
    rec = result.recommendation
    assert rec is not None
    s = result.scenario
    head = (
        f"# infersave recommendation for {s.model}: {rec.instance_type} ({rec.gpu}"
        f" x{rec.gpu_count:g}), batch {rec.batch_size}, KV offload {rec.offload_ratio:.0%}\n"
        f"# predicted {rec.tps:,.0f} TPS"
        f"{f' (SLO {s.slo_tps:g})' if s.slo_tps else ''}, {rec.billed_hours:g} billed h,"
        f" ${rec.total_cost_usd:,.2f} total at ${rec.price_per_hour:.4g}/h ({s.pricing})\n"
        f"# launch: sky launch -c {task['name']} THIS_FILE.yaml"
        " (gated models: add --env HF_TOKEN)\n"
    )
    body = yaml.dump(task, Dumper=_dumper(), sort_keys=False, default_flow_style=False)
    return head + body
