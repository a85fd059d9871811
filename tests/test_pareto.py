"""The Pareto view: the front against a brute-force definition, the points of a real scenario,
the pictures (PNG/SVG/HTML), the text chart and the ``pareto`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infersave.plots.pareto_plot import text_pareto, write_pareto
from infersave.solver import prepare as prepare_mod
from infersave.solver.pareto import COST_DECIMALS, ParetoResult, pareto, pareto_front
from infersave.solver.recommend import solve
from infersave.solver.scenario import InputError, Scenario

README = Scenario(
    model="opt-2.7b",
    input_len=1024,
    output_len=128,
    requests=1000,
    slo_tps=100,
    max_price=3,
    region="us-east-1",
    provider="aws",  # the AWS figures below (us-east-1 is also a Lambda region)
)


def brute_force_front(cost: list[float], tps: list[float]) -> list[bool]:
    """The definition, O(n^2): p is on the front unless some q costs no more, delivers no less,
    and is strictly better in one of the two."""
    c = [round(x, COST_DECIMALS) for x in cost]
    out = []
    for i in range(len(c)):
        dominated = any(
            c[j] <= c[i] and tps[j] >= tps[i] and (c[j] < c[i] or tps[j] > tps[i])
            for j in range(len(c))
        )
        out.append(not dominated)
    return out


# --- the front --------------------------------------------------------------------------------

small = st.integers(min_value=0, max_value=6).map(float)  # many ties
wide = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(small | wide, small | wide), max_size=40))
def test_front_matches_the_brute_force_definition(pairs: list[tuple[float, float]]) -> None:
    cost = [p[0] for p in pairs]
    tps = [p[1] for p in pairs]
    got = pareto_front(np.array(cost), np.array(tps))
    assert got.tolist() == brute_force_front(cost, tps)


def test_front_of_a_hand_made_table() -> None:
    #            A    B    C    D    E    F(=A)  G
    cost = [1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 4.0]
    tps = [10.0, 10.0, 20.0, 15.0, 30.0, 10.0, 30.0]
    # B is dominated by A (cheaper, same TPS), D by C, G by E; A and F tie and both stay.
    assert pareto_front(np.array(cost), np.array(tps)).tolist() == [
        True,
        False,
        True,
        False,
        True,
        True,
        False,
    ]


def test_front_edge_cases() -> None:
    assert pareto_front(np.array([]), np.array([])).tolist() == []
    assert pareto_front(np.array([5.0]), np.array([1.0])).tolist() == [True]
    # costs equal to 1e-9 are the same price: the faster one dominates
    assert pareto_front(np.array([1.0, 1.0 + 1e-12]), np.array([2.0, 1.0])).tolist() == [
        True,
        False,
    ]
    with pytest.raises(ValueError):
        pareto_front(np.array([1.0, 2.0]), np.array([1.0]))


# --- the points of a real scenario --------------------------------------------------------------


@pytest.fixture(scope="module")
def readme() -> ParetoResult:
    return pareto(README)


def test_points_are_the_max_performance_candidate_set(readme: ParetoResult) -> None:
    t = prepare_mod.prepare(README).table
    fits = t.memory_ok & t.ok["price_cap"]
    assert len(readme.points) == int(fits.sum()) > 0
    assert all(p.price_per_hour <= 3 for p in readme.points)
    tps = [p.tps for p in readme.points]
    assert tps == sorted(tps)
    assert sum(p.meets_slo for p in readme.points) == int((fits & t.ok["tps_slo"]).sum())
    front = pareto_front(
        np.array([p.total_cost_usd for p in readme.points]), np.array(tps)
    ).tolist()
    assert [p.on_front for p in readme.points] == front
    assert front == brute_force_front([p.total_cost_usd for p in readme.points], tps)


def test_recommendation_and_baseline_are_the_solve_and_on_the_front(readme: ParetoResult) -> None:
    solved = solve(README)
    assert readme.recommendation == solved.recommendation
    assert readme.max_performance == solved.baseline.max_performance
    rec, base = readme.recommendation, readme.max_performance
    assert rec is not None and base is not None
    assert rec.instance_type == "g5g.xlarge" and base.instance_type == "g6e.xlarge"

    def on_front(r: object) -> bool:
        return any(
            p.on_front
            and p.instance_type == r.instance_type  # type: ignore[attr-defined]
            and p.batch_size == r.batch_size  # type: ignore[attr-defined]
            and p.offload_ratio == r.offload_ratio  # type: ignore[attr-defined]
            for p in readme.points
        )

    assert on_front(rec) and on_front(base)
    assert readme.slo_tps == 100 and readme.max_price == 3


def test_cap_line_bounds_every_point(readme: ParetoResult) -> None:
    line = readme.cap_line
    xs = np.array([c.tps for c in line])
    ys = np.array([c.total_cost_usd for c in line])
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) <= 1e-9)  # cost falls as TPS rises
    rec = readme.recommendation
    assert rec is not None
    assert np.allclose(ys[xs >= README.slo_tps], 3 * rec.billed_hours)  # flat past the SLO
    for p in readme.points:
        cap_at = ys[np.searchsorted(xs, p.tps, side="right") - 1]
        assert p.total_cost_usd <= cap_at + 1e-9


def test_one_prepare_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = prepare_mod.prepare

    def counting(s: Scenario) -> object:
        calls.append(s)
        return real(s)

    monkeypatch.setattr(prepare_mod, "prepare", counting)
    pareto(README)
    assert len(calls) == 1


def test_infeasible_and_uncapped_scenarios() -> None:
    bad = pareto(README.model_copy(update={"slo_tps": 1e7}))
    assert bad.result.status == "infeasible" and bad.recommendation is None
    assert bad.points and not any(p.meets_slo for p in bad.points)
    assert bad.max_performance is not None
    assert "Nothing feasible" in text_pareto(bad)
    free = pareto(README.model_copy(update={"max_price": None, "region": "us-west-2"}))
    assert free.max_price is None and free.cap_line == []
    assert "no price cap" in text_pareto(free)


# --- pictures and text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "magic"),
    [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<?xml"), (".html", b"<!DOCTYPE html>")],
)
def test_pictures_are_written(
    readme: ParetoResult, tmp_path: Path, suffix: str, magic: bytes
) -> None:
    path = write_pareto(readme, tmp_path / f"p{suffix}")
    data = path.read_bytes()
    assert data.startswith(magic) and len(data) > 10_000
    if suffix != ".png":
        text = data.decode()
        assert "<svg" in text and text.rstrip().endswith(("</svg>", "</html>"))
    if suffix == ".html":
        assert "g5g.xlarge" in text and "recommended" in text and "<?xml" not in text


def test_unknown_extension_is_one_line_error(readme: ParetoResult, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.png, \.svg, \.html"):
        write_pareto(readme, tmp_path / "p.pdf")
    assert not (tmp_path / "p.pdf").exists()


def test_text_chart(readme: ParetoResult) -> None:
    text = text_pareto(readme, width=72)
    lines = text.splitlines()
    assert all(len(line) <= 72 for line in lines)
    rec_line = next(line for line in lines if line.startswith("*"))
    assert "g5g.xlarge" in rec_line and "$1.68" in rec_line and "█" in rec_line
    assert any(line.startswith("^") and "g6e.xlarge" in line for line in lines)
    front_rows = [line for line in lines if line[:1] in "*^ " and "█" in line]
    assert len(front_rows) == len(readme.front)
    assert "77.4% saved" in text.replace("\n", " ")


# --- the command --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    from infersave.cli.pareto_cmd import register

    a = typer.Typer(add_completion=False, rich_markup_mode=None)

    @a.callback()
    def root() -> None:
        """A fresh app with ``pareto`` registered (the real one is being rewritten)."""

    register(a)
    return a


ARGS = "pareto --model opt-2.7b --input-len 1024 --output-len 128 --requests 1000 --slo-tps 100"


def run(app: typer.Typer, extra: str) -> object:
    return CliRunner().invoke(app, (ARGS + " " + extra).split(), catch_exceptions=False)


def test_command_text_plot_json_csv(app: typer.Typer, tmp_path: Path) -> None:
    res = run(app, f"--max-price 3 --provider aws --plot {tmp_path / 'p.png'}")
    assert res.exit_code == 0 and "g5g.xlarge" in res.stdout  # type: ignore[attr-defined]
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    res = run(app, "--max-price 3 --provider aws -f json")
    data = json.loads(res.stdout)  # type: ignore[attr-defined]
    assert data["result"]["recommendation"]["instance_type"] == "g5g.xlarge"
    assert sum(p["on_front"] for p in data["points"]) == 4
    res = run(app, "--max-price 3 -f csv")
    assert res.stdout.splitlines()[0].startswith("instance_type,gpu,")  # type: ignore[attr-defined]


def test_command_errors(app: typer.Typer, tmp_path: Path) -> None:
    res = run(app, f"--max-price 3 --plot {tmp_path / 'p.jpg'}")
    assert res.exit_code == 2 and "--plot" in res.stderr  # type: ignore[attr-defined]
    res = run(app, "--max-price 3 --region mars-1")
    assert res.exit_code == 2  # type: ignore[attr-defined]
    res = run(app, "--max-price 0.01")
    assert res.exit_code == 1  # type: ignore[attr-defined]
    help_text = CliRunner().invoke(app, ["pareto", "--help"]).stdout
    assert "Example" in help_text and "--plot" in help_text


def test_command_modules_import_light() -> None:
    code = (
        "import sys, infersave.cli.pareto_cmd, infersave.cli.handoff;"
        "print(sorted(m for m in ('matplotlib', 'numpy', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
