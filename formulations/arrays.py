"""Set operations on arrays without NaN, as numpy's, without importing ``numpy.ma``.

numpy 2.x's plain ``np.unique(a)`` (no ``return_*``) and ``np.setdiff1d`` check for a masked
array with ``np.ma.is_masked``, which imports ``numpy.ma`` on first use: about 20 ms of every
``infersave solve`` and of every batch worker (measured with ``python -X importtime``), for
arrays that are never masked. These give the same values from a sort.
"""

from __future__ import annotations

import numpy as np


def unique(a: np.ndarray | list[int]) -> np.ndarray:
    """The sorted distinct values of ``a`` (flattened), as ``np.unique(a)`` gives for arrays
    without NaN: shape ``(U,)``, ``a``'s dtype."""
    s = np.sort(np.asarray(a).reshape(-1))
    if s.size == 0:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def setdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``a`` not in ``b``, as ``np.setdiff1d(a, b)``."""
    u = unique(a)
    return u[~np.isin(u, b)]
