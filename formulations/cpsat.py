"""The joint choice of instance, batch size and offload level as a CP-SAT model (OR-Tools).

Same variables and named constraints as :mod:`.milp` (``x_k``, ``y_i``, ``z_b``, ``w_c``;
``exactly_one_configuration``, ``link_*``, ``exactly_one_*``, ``memory_feasibility``,
``per_layer_kv``, ``host_memory_for_offloaded_kv``, ``price_cap``, ``tps_slo``), with integer
coefficients since CP-SAT is an integer solver.

**Scaling (why it cannot flip a comparison).**

- Constraint rows: memory in KiB, price in micro-$/h, TPS in milli-tokens/s, each rounded to
  the nearest integer and then nudged by at most the rounding (:func:`.encoding.guard_int`) so
  that ``coef_k <= limit`` (or ``>=``) holds exactly where ``table.ok[name][k]`` does. Each row
  therefore accepts exactly the candidates the table accepts, whatever the rounding did, and the
  feasible set of the model is ``table.feasible`` on the kept candidates.
- Cost: integer nano-dollars ``C_k = rint(cost_k x 1e9)``, the same number the ranker compares
  as ``round(cost_k, 9)`` (``COST_DECIMALS`` = 9). ``C_a < C_b`` iff
  ``round(cost_a, 9) < round(cost_b, 9)`` and ``C_a == C_b`` iff they are equal, for costs below
  $1e6 (see :mod:`.encoding`; tested in ``tests/test_cpsat.py``). Hence minimizing ``C`` orders
  any two candidates as the ranker does.
- Ties: objective ``M * cost + pos`` with ``cost = sum_k (C_k - C_min) x_k``,
  ``pos = sum_k P_k x_k`` and ``M = max P + 1``. Since ``0 <= pos < M``, the objective orders
  candidates by cost first and by tie-break position second, exactly (int64 arithmetic; when
  ``M x (max cost + 1)`` would exceed 2^62 the model is solved in two stages instead: minimize
  cost, then fix it and minimize ``pos``).
"""

from __future__ import annotations

import time

import numpy as np

from infersave.formulations.candidates import CandidateTable
from infersave.formulations.encoding import Encoding, Prefilter, empty_note, encode, int_rows
from infersave.formulations.milp import ExactResult, _inst_name, _label

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
        x = [
            m.new_bool_var(
                f"x_{_inst_name(t, t.instance_idx[k])}_bs{int(t.batch_size[k])}"
                f"_off{_label(t.offload_ratio[k])}"
            )
            for k in kept
        ]
        m.add_exactly_one(x).with_name("exactly_one_configuration")
        groups = (
            ("instance", "y", enc.instance_of, lambda g: _inst_name(t, g)),
            ("batch_size", "z", enc.batch_of, lambda g: f"bs{int(t.batch_sizes[g])}"),
            ("offload_level", "w", enc.level_of, lambda g: f"off{_label(t.levels[g])}"),
        )
        ysel: dict[int, object] = {}
        for kind, prefix, of, label in groups:
            chosen = []
            for g in np.unique(of):
                v = m.new_bool_var(f"{prefix}_{label(g)}")
                members = [x[j] for j in np.flatnonzero(of == g)]
                m.add(sum(members) == v).with_name(f"link_{kind}_{label(g)}")
                chosen.append(v)
                if kind == "instance":
                    ysel[int(g)] = v
            m.add_exactly_one(chosen).with_name(f"exactly_one_{kind}")
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


_STATUS = {"OPTIMAL": "optimal", "FEASIBLE": "time_limit", "INFEASIBLE": "infeasible"}


def _run(cp: CpModel, time_limit: float | None) -> tuple[int | None, str]:
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    # CP-SAT catches SIGINT by default and ends the process on it; let Ctrl-C reach Python so
    # the CLI can clean up (batch output stays whole-or-nothing) and say "interrupted".
    solver.parameters.catch_sigint_signal = False
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = float(time_limit)
    st = solver.solve(cp.model)
    name = solver.status_name(st)
    if name == "INFEASIBLE":
        return None, "infeasible"
    if name == "UNKNOWN":
        if time_limit is not None:
            return None, "no_solution"
        raise RuntimeError("CP-SAT stopped without a solution or a proof of infeasibility")
    if name not in _STATUS:
        raise RuntimeError(f"CP-SAT returned {name}")
    vals = [solver.boolean_value(v) for v in cp.x]
    j = vals.index(True)
    return j, _STATUS[name]


def solve(
    table: CandidateTable, time_limit: float | None = None, prefilter: Prefilter = "feasible"
) -> ExactResult:
    """The cheapest feasible candidate by CP-SAT, ties broken as the ranker.

    Like the MILP, it solves over the candidates that satisfy every constraint on their own
    (issue #3: "after removing candidates that are infeasible on their own"); the named
    constraints stay in the model, and :func:`write_model` keeps the structural prefilter.

    Args:
        table: the candidate table.
        time_limit: wall seconds; on expiry the best pick so far is returned with status
            ``time_limit`` (or ``no_solution``).
        prefilter: see :func:`.encoding.kept_candidates`.

    Raises:
        ValueError: unknown prefilter, or a cost too large for exact scaling.
        ImportError: OR-Tools is not installed.
        RuntimeError: CP-SAT failed (invalid model, unexpected status).
    """
    t0 = time.perf_counter()
    enc = encode(table, prefilter)
    if enc.kept.size == 0:
        return ExactResult(
            None,
            "infeasible",
            None,
            time.perf_counter() - t0,
            note=empty_note(prefilter),
        )
    cp = CpModel(enc)
    proto = cp.model.proto
    nvar, ncon = len(proto.variables), len(proto.constraints)
    j, status = _run(cp, time_limit)
    note = ""
    if j is not None and not cp.single and status == "optimal":
        best = int(enc.cost_nano[j])
        cp.model.add(cp.cost == best)
        cp.model.minimize(cp.pos)
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.01)
        j2, st2 = _run(cp, left)
        if j2 is not None:
            j = j2
            if st2 != "optimal":
                status, note = "time_limit", "tie-break stage stopped at the time limit"
    if status == "time_limit" and not note:
        note = "time limit reached: best configuration found so far, not proven cheapest"
    if j is None:
        return ExactResult(None, status, None, time.perf_counter() - t0, note, nvar, ncon)
    return ExactResult(
        int(enc.kept[j]), status, enc.cost_usd(j), time.perf_counter() - t0, note, nvar, ncon
    )


def write_model(table: CandidateTable, path: str, prefilter: Prefilter = "structural") -> None:
    """Write the CP-SAT model proto as text to ``path``.

    Raises:
        OSError: if the file cannot be written.
    """
    cp = CpModel(encode(table, prefilter))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(str(cp.model.proto))
