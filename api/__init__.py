"""infersave: which cloud GPU instance, batch size and KV-cache offload ratio serve an LLM
inference workload at its SLO for the lowest billed cost (after InferSave, arXiv 2504.11816).

The Python API is the front door; the command line and the HTTP service are thin layers over it::

    from infersave import Scenario, solve, predict

    result = solve(Scenario(model="opt-2.7b", input_len=1024, output_len=128,
                            requests=1000, slo_tps=100, max_price=3))
    result.recommendation.instance_type        # 'g5g.xlarge'
    result.model_dump_json()                   # the JSON that `infersave solve -f json` prints

Everything here is imported lazily (on first attribute access), so ``import infersave`` is cheap.

Raises (from every function): :class:`InputError` for bad input (a one-line message naming the
field and how to fix it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    # the scenario in, the records out
    "Scenario": "infersave.solver.scenario",
    "InputError": "infersave.solver.scenario",
    "SolveResult": "infersave.solver.records",
    "Record": "infersave.solver.records",
    "Baseline": "infersave.solver.records",
    "SolverInfo": "infersave.solver.records",
    "Prediction": "infersave.solver.predict",
    # the operations
    "solve": "infersave.solver.recommend",
    "predict": "infersave.solver.predict",
    "solve_many": "infersave.solver.batch",
    "compare": "infersave.solver.compare",
    "pareto": "infersave.solver.pareto",
    "ParetoResult": "infersave.solver.pareto",
    # fleet plans (``infersave plan``)
    "plan": "infersave.solver.plan",
    "PlanOptions": "infersave.solver.plan",
    "PlanResult": "infersave.solver.plan",
    "class_from_fields": "infersave.solver.plan",
    # workload files and result rows (``infersave batch``, the HTTP service's batch jobs)
    "read_workloads": "infersave.solver.batch_io",
    "scenario_from_fields": "infersave.solver.batch_io",
    "result_row": "infersave.solver.batch_io",
    "render_rows": "infersave.solver.batch_io",
    # the catalog
    "models": "infersave.catalog.load",
    "instances": "infersave.catalog.load",
    "gpus": "infersave.catalog.load",
    "Instance": "infersave.catalog.schemas",
    "LLM": "infersave.catalog.schemas",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import ``name`` from its module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'infersave' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports lazily
    from infersave.catalog.load import gpus, instances, models  # noqa: F401
    from infersave.catalog.schemas import LLM, Instance  # noqa: F401
    from infersave.solver.batch import solve_many  # noqa: F401
    from infersave.solver.batch_io import (  # noqa: F401
        read_workloads,
        render_rows,
        result_row,
        scenario_from_fields,
    )
    from infersave.solver.compare import compare  # noqa: F401
    from infersave.solver.pareto import ParetoResult, pareto  # noqa: F401
    from infersave.solver.plan import (  # noqa: F401
        PlanOptions,
        PlanResult,
        class_from_fields,
        plan,
    )
    from infersave.solver.predict import Prediction, predict  # noqa: F401
    from infersave.solver.recommend import solve  # noqa: F401
    from infersave.solver.records import Baseline, Record, SolveResult, SolverInfo  # noqa: F401
    from infersave.solver.scenario import InputError, Scenario  # noqa: F401
