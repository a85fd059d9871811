"""Fuzz every endpoint of a running ``infersave serve`` against its own OpenAPI document:
valid and invalid requests generated from the schema (schemathesis on hypothesis), asserting
no 5xx and no NaN/Infinity in a JSON answer.

Bounded for CI (``FUZZ_EXAMPLES`` per operation and mode, derandomized so a run is
repeatable); ``INFERSAVE_FUZZ_EXAMPLES=500 INFERSAVE_FUZZ_RANDOM=1 pytest
tests/test_service_fuzz.py`` fuzzes longer with fresh examples."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from service_server import running_server

import infersave

FUZZ_EXAMPLES = int(os.environ.get("INFERSAVE_FUZZ_EXAMPLES", "25"))
RANDOM = os.environ.get("INFERSAVE_FUZZ_RANDOM", "") not in ("", "0")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve-fuzz") / "server.log"
    with running_server(log, "--max-jobs", "2", "--max-rows", "2000") as url:
        yield url


def _no_non_finite(text: str) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in a JSON answer")

    json.loads(text, parse_constant=refuse)


def test_no_endpoint_answers_5xx(base: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert len(labels) == 12, labels  # 11 paths; /v1/jobs/{job_id} has GET and DELETE
    t0 = time.perf_counter()
    calls = 0
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=FUZZ_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=not RANDOM,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=base, timeout=60)
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} -> {response.status_code}:"
                    f" {response.text[:500]}\nbody: {case.body!r:.500}\nquery: {case.query}"
                )
                kind = response.headers.get("content-type") or [""]  # header: list of values
                if str(kind[0]).startswith("application/json"):
                    _no_non_finite(response.text)

            try:
                call()
            except Unsatisfiable:  # no parameters or body to make invalid (GET /healthz, ...)
                assert mode is GenerationMode.NEGATIVE, op.label
    print(
        f"fuzz: {calls} requests over {len(labels)} operations in {time.perf_counter() - t0:.1f} s"
    )


# --- deeper: scenarios the catalog knows, with extreme numbers ----------------------------
# Schema-driven cases rarely name a real model, so most stop at 422; these reach the solver.

MODELS = sorted(infersave.models())
BIG = 2**63


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


SCENARIOS = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "input_len": st.integers(1, 8192) | st.integers(1, BIG),
        "output_len": st.integers(1, 2048) | st.integers(1, BIG),
        "requests": st.integers(1, 100_000) | st.integers(1, 10**30),
        "slo_tps": _floats(1, 10_000) | _floats(1e-300, 1e308),
    },
    optional={
        "max_price": _floats(0.1, 100) | _floats(1e-300, 1e308),
        "region": st.sampled_from(["us-east-1", "eu-central-1", "ap-south-1", "mars-1"]),
        "catalog": st.sampled_from(["aws", "paper-2025"]),
        "batch_sizes": st.lists(st.integers(1, 512) | st.integers(1, BIG), min_size=1, max_size=9),
        "offload_step": st.sampled_from([0.1, 0.25, 0.5, 1.0, 0.05, 0.3, 0.01]) | _floats(1e-9, 1),
        "billing": st.sampled_from(["hourly", "per-second"]),
        "pricing": st.sampled_from(["on-demand", "spot"]),
        "dtype": st.sampled_from(["fp16", "bf16", "fp32", "int8", "fp8"]),
        "formulas": st.sampled_from(["physics", "paper"]),
        "perf_model": st.sampled_from(["paper", "roofline"]),
        "gpu_memory_utilization": _floats(1e-9, 1),
        "host_memory_utilization": _floats(1e-9, 1),
        "include_non_nvidia": st.booleans(),
        "calibration": st.sampled_from(["default", "none"]),
        "backend": st.sampled_from(["exhaustive", "milp", "cp"]),
        "top": st.integers(0, 20),
    },
).map(lambda s: {**s, "time_limit": 0.3} if s.get("backend") == "cp" else s)


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    if response.headers.get("content-type", "").startswith("application/json"):
        _no_non_finite(response.text)


def test_solve_and_predict_on_extreme_scenarios(base: str) -> None:
    @settings(
        max_examples=FUZZ_EXAMPLES * 2,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        scenario=SCENARIOS,
        batch_size=st.integers(1, 256) | st.integers(1, BIG),
        target=st.sampled_from([{"gpu": "L4"}, {"gpu": "H100"}, {"instance": "g5.xlarge"}]),
        offload=st.none() | _floats(0, 1),
    )
    def run(scenario: dict, batch_size: int, target: dict, offload: float | None) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            _check(c.post("/v1/solve", json=scenario))
            body = {"scenario": {**scenario, "batch_size": batch_size}, **target}
            if offload is not None:
                body["offload_ratio"] = offload
            _check(c.post("/v1/predict", json=body))

    run()
