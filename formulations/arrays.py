"""numpy's set operations, called so that they do not import ``numpy.ma``.

numpy 2.x's plain ``np.unique(a)`` (no ``return_*``, its hash-table path) and
``np.setdiff1d`` first check for a masked array with ``np.ma.is_masked``, which imports
``numpy.ma``: about 20 ms of every ``infersave solve`` and of every batch worker (measured with
``python -X importtime``), for arrays that are never masked. Asking numpy's ``unique`` for the
first indices too takes its sorting path, which has no such check; the values are the same.
"""

from __future__ import annotations

import numpy as np


def unique(a: np.ndarray | list[int]) -> np.ndarray:
    """``np.unique(a)``: the sorted distinct values of ``a`` (flattened), shape ``(U,)``,
    ``a``'s dtype (NaNs collapse to one, as there)."""
    return np.unique(np.asarray(a).reshape(-1), return_index=True)[0]


def setdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.setdiff1d(a, b)``: the sorted distinct values of ``a`` not in ``b``."""
    u = unique(a)
    return u[~np.isin(u, b)]
