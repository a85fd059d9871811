"""The joint choice of instance, batch size and offload level as a CP-SAT model (OR-Tools).

Same variables, names and rows as :mod:`.milp`, both from :mod:`.exact_model` (``x_k``,
``y_i``, ``z_b``, ``w_c``; ``exactly_one_configuration``, ``link_*``, ``exactly_one_*``,
``memory_feasibility``, ``per_layer_kv``, ``host_memory_for_offloaded_kv``, ``price_cap``,
``tps_slo``), with integer coefficients since CP-SAT is an integer solver.

**Scaling (why it cannot flip a comparison).**

- Constraint rows: memory in KiB, price in micro-$/h, TPS in milli-tokens/s, each rounded to
  the nearest integer and then nudged by at most the rounding (:func:`.encoding.guard_int`) so
  that ``coef_k <= limit`` (or ``>=``) holds exactly where ``table.ok[name][k]`` does. Each row
  therefore accepts exactly the candidates the table accepts, whatever the rounding did, and the
  feasible set of the model is ``table.feasible`` on the kept candidates.
- Cost: integer nano-dollars ``C_k = rint(cost_k x 1e9)``, the same number the ranker compares
  as ``round(cost_k, 9)`` (``COST_DECIMALS`` = 9). ``C_a < C_b`` iff
  ``round(cost_a, 9) < round(cost_b, 9)`` and ``C_a == C_b`` iff they are equal, for costs below
  $1e6 (see :mod:`.exact_model`; tested in ``tests/test_cpsat.py``). Hence minimizing ``C`` orders
  any two candidates as the ranker does.
- Ties: objective ``M * cost + pos`` with ``cost = sum_k (C_k - C_min) x_k``,
  ``pos = sum_k P_k x_k`` and ``M = max P + 1``. Since ``0 <= pos < M``, the objective orders
  candidates by cost first and by tie-break position second, exactly (int64 arithmetic; when
  ``M x (max cost + 1)`` would exceed 2^62 the model is solved in two stages instead: minimize
  cost, then fix it and minimize ``pos``).

This module is the formulation; :mod:`infersave.solver.cpsat_backend` solves it.
"""

from __future__ import annotations

import numpy as np

from infersave.formulations import arrays
from infersave.formulations.exact_model import Encoding, candidate_name, groups, int_rows

INT_LIMIT = 2**62


class CpModel:
    """A built CP-SAT model with its candidate variables and objective parts."""

    def __init__(self, enc: Encoding) -> None:
        """Build the model of ``enc``.

        Raises:
            ImportError: if OR-Tools is not installed.
        """
        from ortools.sat.python import cp_model

        self.enc = enc
        t = enc.table
        m = cp_model.CpModel()
        m.name = "infersave_joint_choice"
        kept = enc.kept
        x = [m.new_bool_var(candidate_name(t, int(k))) for k in kept]
        m.add_exactly_one(x).with_name("exactly_one_configuration")
        ysel: dict[int, object] = {}
        for grp in groups(enc):
            chosen = []
            for g in arrays.unique(grp.of):
                label = grp.label(t, g)
                v = m.new_bool_var(f"{grp.prefix}_{label}")
                members = [x[j] for j in np.flatnonzero(grp.of == g)]
                m.add(sum(members) == v).with_name(f"link_{grp.kind}_{label}")
                chosen.append(v)
                if grp.kind == "instance":
                    ysel[int(g)] = v
            m.add_exactly_one(chosen).with_name(f"exactly_one_{grp.kind}")
        for row in int_rows(enc):
            if row.over == "instance":
                pos = {int(i): n for n, i in enumerate(enc.instances)}
                vs = list(ysel.values())
                cs = [int(row.coef[pos[i]]) for i in ysel]
            else:
                vs, cs = x, [int(a) for a in row.coef]
            lhs = cp_model.LinearExpr.weighted_sum(vs, cs)
            ct = m.add(lhs <= int(row.rhs)) if row.sense == "<=" else m.add(lhs >= int(row.rhs))
            ct.with_name(row.name)
        cmax = int(enc.cost_nano.max()) if kept.size else 0
        pmax = int(enc.position.max()) if kept.size else 0
        self.cost = m.new_int_var(0, cmax, "billed_cost_nano_usd")
        self.pos = m.new_int_var(0, pmax, "tiebreak_position")
        m.add(self.cost == cp_model.LinearExpr.weighted_sum(x, [int(c) for c in enc.cost_nano]))
        m.add(self.pos == cp_model.LinearExpr.weighted_sum(x, [int(p) for p in enc.position]))
        self.mult = pmax + 1
        self.single = (cmax + 1) * self.mult < INT_LIMIT
        if self.single:
            m.minimize(self.mult * self.cost + self.pos)
        else:
            m.minimize(self.cost)
        self.model = m
        self.x = x


def write_model(enc: Encoding, path: str) -> None:
    """Write the CP-SAT model proto of ``enc`` as text to ``path``.

    Raises:
        OSError: if the file cannot be written.
    """
    cp = CpModel(enc)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(str(cp.model.proto))
