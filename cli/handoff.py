"""What ``solve --emit skypilot|vllm [--emit-file F]`` and ``solve --plot F`` do, as plain
functions for the command to call (heavy imports stay inside them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from infersave.cli import render

if TYPE_CHECKING:
    from infersave.solver.pareto import ParetoResult
    from infersave.solver.records import SolveResult
    from infersave.solver.scenario import Scenario

EMIT_KINDS = ("skypilot", "vllm")


def emit_text(result: SolveResult, kind: str) -> str:
    """The hand-off text of ``result``'s recommendation: a SkyPilot task YAML (``skypilot``)
    or the ``vllm serve`` command (``vllm``), newline-terminated.

    Raises:
        InputError: unknown ``kind``, or no recommendation to hand off.
    """
    from infersave.solver.scenario import InputError

    if kind == "skypilot":
        from infersave.exporters.skypilot import skypilot_yaml

        return skypilot_yaml(result)
    if kind == "vllm":
        from infersave.exporters.vllm import vllm_serve_command

        return vllm_serve_command(result, multiline=True) + "\n"
    raise InputError(f"--emit: unknown target {kind!r}; use one of: {', '.join(EMIT_KINDS)}")


def emit(result: SolveResult, kind: str, path: str | None) -> None:
    """Write the hand-off of ``result`` to ``path`` (stdout when None); the caveats of running
    it go to stderr as ``infersave: note: ...`` lines. Nothing is written when ``result`` has
    no recommendation (the caller reports the infeasible solve and its exit code).

    Raises:
        InputError: unknown ``kind``.
        OSError: if ``path`` cannot be written.
    """
    from infersave.exporters.vllm import vllm_notes

    if result.recommendation is None:
        if kind not in EMIT_KINDS:
            emit_text(result, kind)  # raises the unknown-kind error
        sys.stderr.write("infersave: note: nothing feasible, so nothing to emit\n")
        return
    text = emit_text(result, kind)
    if path is None:
        render.echo(text)
    else:
        from infersave.catalog.output_files import write_text_atomic

        write_text_atomic(text, path)
    for note in vllm_notes(result):
        sys.stderr.write(f"infersave: note: {note}\n")


def plot(result_or_scenario: ParetoResult | SolveResult | Scenario, path: str) -> Path:
    """Write the Pareto picture (``.png``, ``.svg`` or ``.html``) of a Pareto result, or of the
    scenario of a solve result or a scenario (which builds the candidate table again: a
    command that also solves can call :func:`infersave.solver.pareto.pareto` first and use its
    ``.result``). Returns the path written.

    Raises:
        InputError: unknown extension (checked before any work), or bad scenario input.
        OSError: if ``path`` cannot be written.
    """
    from infersave.plots.pareto_plot import check_plot_path, write_pareto
    from infersave.solver.pareto import ParetoResult, pareto
    from infersave.solver.records import SolveResult

    check_plot_path(path)
    if isinstance(result_or_scenario, ParetoResult):
        pr = result_or_scenario
    elif isinstance(result_or_scenario, SolveResult):
        pr = pareto(result_or_scenario.scenario)
    else:
        pr = pareto(result_or_scenario)
    return write_pareto(pr, path)
