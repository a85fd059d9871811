"""``context_key`` groups batch rows exactly as the contexts they build (issue 12: the key is
read from the scenario's raw fields instead of building its placement and options)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from infersave.formulations.options import ModelOptions
from infersave.solver.placement import Placement
from infersave.solver.prepare import CONTEXT_FIELDS, context_key, placement_of
from infersave.solver.scenario import Scenario


def _what_a_context_is_made_of(s: Scenario) -> tuple[object, ...]:
    """What :func:`~infersave.solver.prepare.shared_context` reads from a scenario."""
    return (
        s.model,
        placement_of(s),
        s.options(),
        s.calibration,
        s.searched_batch_sizes,
        s.offload_step,
    )


_VARIED = {
    "model": st.sampled_from(["llama-3.1-8b", "opt-1.3b"]),
    "region": st.sampled_from(["us-east-1", "us-west-2"]),
    "pricing": st.sampled_from(["on-demand", "spot"]),
    "billing": st.sampled_from(["hourly", "per-second"]),
    "dtype": st.sampled_from(["fp16", "fp8"]),
    "dtypes": st.sampled_from([None, "fp16,int4", "int4,fp16"]),
    "tensor_parallel": st.sampled_from([None, 1, 2]),
    "gpu_memory_utilization": st.sampled_from([0.9, 0.8]),
    "offload_step": st.sampled_from([0.1, 0.25]),
    "batch_size": st.sampled_from([None, 8]),
    "batch_sizes": st.sampled_from([(1, 2, 4, 8), (8, 16)]),
    "max_gpus": st.sampled_from([None, 4]),
    "input_len": st.integers(1, 4096),
    "output_len": st.integers(1, 1024),
    "slo_tps": st.floats(1, 1e4),
}
_fields = st.fixed_dictionaries(_VARIED)


@settings(max_examples=300, deadline=None)
@given(_fields, _fields, st.sets(st.sampled_from(sorted(_VARIED))))
def test_equal_keys_exactly_when_the_contexts_are_made_of_the_same(
    base: dict[str, object], other: dict[str, object], changed: set[str]
) -> None:
    """Two scenarios that differ in the fields ``changed`` (which may leave the context as it
    is: a workload field, or a value drawn equal) have equal keys exactly when what their
    contexts are made of is equal."""
    a = Scenario(**base)
    b = Scenario(**{**base, **{k: other[k] for k in changed}})
    same_key = context_key(a) == context_key(b)
    assert same_key == (_what_a_context_is_made_of(a) == _what_a_context_is_made_of(b))
    if same_key:
        assert hash(context_key(a)) == hash(context_key(b))


def test_every_placement_and_option_field_is_a_scenario_field_in_the_key() -> None:
    names = set(Scenario.model_fields)
    for cls in (Placement, ModelOptions):
        for f in dataclasses.fields(cls):
            assert f.name in names, f"{cls.__name__}.{f.name} is not a Scenario field"
            assert f.name in CONTEXT_FIELDS
    # the workload's own fields never split a group
    assert not {"input_len", "output_len", "requests", "slo_tps", "max_price"} & set(CONTEXT_FIELDS)
