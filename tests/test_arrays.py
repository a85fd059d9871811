"""``formulations.arrays``: numpy's set operations without ``numpy.ma`` (issue 12, start-up)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from infersave.formulations import arrays

_ints = hnp.arrays(np.int64, st.integers(0, 40), elements=st.integers(-5, 5))
_floats = hnp.arrays(np.float64, st.integers(0, 40), elements=st.floats(-3, 3, width=16))


@settings(max_examples=300, deadline=None)
@given(st.one_of(_ints, _floats), st.one_of(_ints, _floats))
def test_same_values_and_dtype_as_numpy(a: np.ndarray, b: np.ndarray) -> None:
    want = np.unique(a)
    got = arrays.unique(a)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    want_diff = np.setdiff1d(a, b)
    got_diff = arrays.setdiff(a, b)
    assert got_diff.dtype == want_diff.dtype and np.array_equal(got_diff, want_diff)


def test_two_dimensional_input_is_flattened() -> None:
    assert arrays.unique(np.array([[3, 1], [1, 2]])).tolist() == [1, 2, 3]


def test_a_solve_and_a_batch_never_import_numpy_ma(tmp_path: object) -> None:
    """What the tool imports itself: numpy.ma costs 20 ms of a solve and of each worker."""
    code = (
        "import sys\n"
        "from infersave import Scenario, solve\n"
        "from infersave.solver.batch import solve_stream\n"
        "s = Scenario(model='llama-3.1-8b', input_len=512, output_len=128, slo_tps=800)\n"
        "solve(s)\n"
        "solve(s.model_copy(update={'backend': 'exhaustive'}))\n"
        "tight = s.model_copy(update={'backend': 'exhaustive', 'max_price': 0.01})\n"
        "list(solve_stream([s.model_copy(update={'backend': 'exhaustive'}), tight], lean='csv'))\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
