"""Fleet and job plans (issue 10): hand-worked cases on small synthetic models, agreement of the
exact backends with brute force on random small problems, and ``infersave plan`` end to end."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infersave.catalog.schemas import Instance
from infersave.cli.main import run
from infersave.formulations import fleet
from infersave.formulations.fleet import ClassSpec, Offer, PlanParams
from infersave.solver import plan_search
from infersave.solver.plan import PlanClass, PlanOptions, class_from_fields, plan_data

DATA = Path(__file__).parent / "data"
EXAMPLE = DATA / "plan_example.csv"
SMALL = DATA / "plan_small.csv"
EXACT = ("highs", "cbc", "cp", "brute")


def inst(name: str, price: float, vcpus: int = 4, spot: float | None = None) -> Instance:
    return Instance(
        instance_type=name,
        region="test-1",
        accelerator="X",
        gpu="X",
        gpu_count=1,
        vcpus=vcpus,
        host_memory_gib=16,
        on_demand_per_hour=price,
        spot_per_hour=spot,
        source="test",
    )


def solve_all(data: fleet.FleetData) -> dict[str, plan_search.FleetSolution]:
    return {be: plan_search.search(data, be) for be in EXACT}


def usd(data: fleet.FleetData, sol: plan_search.FleetSolution) -> float:
    assert sol.objective is not None
    return sol.objective / data.cost_scale


def the_plan(data: fleet.FleetData) -> tuple[float, dict[str, int]]:
    """Every backend's cost must be equal; returns it ($/h or $) and HiGHS's counts by type."""
    sols = solve_all(data)
    costs = {be: s.objective for be, s in sols.items()}
    assert len(set(costs.values())) == 1, costs
    counts: dict[str, int] = {}
    h = sols["highs"]
    assert h.counts is not None
    for j in np.flatnonzero(h.counts):
        key = data.info[j].instance.instance_type + (" spot" if data.info[j].spot else "")
        counts[key] = counts.get(key, 0) + int(h.counts[j])
    return usd(data, h), counts


# -- hand-worked cases -----------------------------------------------------------------------


def test_one_class_fits_one_type_exactly() -> None:
    # 6 rps; A sustains 3 rps at $1/h: 2 x A = $2/h, exactly full. B: 5 rps at $1.5/h needs 2
    # ($3/h). The plan is 2 x A at 100% utilisation.
    a, b = inst("g6.xlarge", 1.0), inst("g6e.xlarge", 1.5)
    data = fleet.assemble(
        PlanParams(), [ClassSpec("chat", 6.0)], [Offer(0, a, 3.0), Offer(0, b, 5.0)]
    )
    cost, counts = the_plan(data)
    assert cost == pytest.approx(2.0)
    assert counts == {"g6.xlarge": 2}
    cls = PlanClass(name="chat", scenario=None, rate_rps=6.0)
    res = plan_data(data, [_stub(cls)], PlanOptions())
    (line,) = res.lines
    assert line.share == 1.0 and line.utilisation == pytest.approx(1.0)
    assert res.classes[0].headroom_pct == pytest.approx(0.0)


def _stub(cls: PlanClass) -> PlanClass:
    """A class with a minimal scenario (for reports on synthetic data)."""
    from infersave.solver.scenario import Scenario

    s = Scenario(model="opt-2.7b", input_len=100, output_len=10, slo_tps=1)
    return cls.model_copy(update={"scenario": s})


def test_a_split_beats_any_single_type() -> None:
    # 10 rps. A: 4 rps at $1/h -> alone 3 x A = $3; B: 7 rps at $1.5/h -> alone 2 x B = $3.
    # Split: 1 A + 1 B = 11 rps >= 10 for $2.5/h. Pinned (--no-split): $3/h.
    a, b = inst("g6.xlarge", 1.0), inst("g6e.xlarge", 1.5)
    offers = [Offer(0, a, 4.0), Offer(0, b, 7.0)]
    cost, counts = the_plan(fleet.assemble(PlanParams(), [ClassSpec("chat", 10.0)], offers))
    assert cost == pytest.approx(2.5)
    assert counts == {"g6.xlarge": 1, "g6e.xlarge": 1}
    pinned = fleet.assemble(PlanParams(split=False), [ClassSpec("chat", 10.0)], offers)
    cost, counts = the_plan(pinned)
    assert cost == pytest.approx(3.0) and len(counts) == 1
    greedy = plan_search.solve_greedy(pinned)
    assert greedy.objective == 3_000_000  # micro-$/h: the greedy baseline is pinned too


def test_a_quota_forces_a_second_type() -> None:
    # 10 rps. A = g6.xlarge (G family, 4 vCPUs): 4 rps at $1/h; B = p3.2xlarge (P, 8 vCPUs):
    # 7 rps at $3.06/h. Unconstrained: 3 x A = $3/h (12 G vCPUs). With G = 8 vCPUs at most
    # 2 x A: 1 A + 1 B = 11 rps for $4.06/h (2 A + 1 B = $5.06 is dearer). G = 0: 2 x B.
    a, b = inst("g6.xlarge", 1.0, 4), inst("p3.2xlarge", 3.06, 8)
    offers = [Offer(0, a, 4.0), Offer(0, b, 7.0)]
    specs = [ClassSpec("chat", 10.0)]
    assert the_plan(fleet.assemble(PlanParams(), specs, offers)) == (3.0, {"g6.xlarge": 3})
    cost, counts = the_plan(fleet.assemble(PlanParams(quotas={"G": 8}), specs, offers))
    assert cost == pytest.approx(4.06) and counts == {"g6.xlarge": 1, "p3.2xlarge": 1}
    cost, counts = the_plan(fleet.assemble(PlanParams(quotas={"G": 0}), specs, offers))
    assert cost == pytest.approx(6.12) and counts == {"p3.2xlarge": 2}


def test_a_budget_makes_the_plan_infeasible_and_is_named() -> None:
    # The split case costs $2.5/h at best: a $2.4/h budget is infeasible; $2.5/h is enough.
    a, b = inst("g6.xlarge", 1.0), inst("g6e.xlarge", 1.5)
    offers = [Offer(0, a, 4.0), Offer(0, b, 7.0)]
    data = fleet.assemble(PlanParams(budget=2.4), [ClassSpec("chat", 10.0)], offers)
    for be, sol in solve_all(data).items():
        assert sol.status == "infeasible" and sol.counts is None, be
    res = plan_data(
        data, [_stub(PlanClass(name="chat", scenario=None, rate_rps=10))], PlanOptions()
    )
    assert res.status == "infeasible"
    assert "budget $2.4/h is binding" in res.message and "$2.5/h" in res.message
    ok = fleet.assemble(PlanParams(budget=2.5), [ClassSpec("chat", 10.0)], offers)
    assert the_plan(ok)[0] == pytest.approx(2.5)


def test_max_count_and_quota_together_are_named() -> None:
    a, b = inst("g6.xlarge", 1.0, 4), inst("p3.2xlarge", 3.06, 8)
    offers = [Offer(0, a, 4.0), Offer(0, b, 7.0)]
    data = fleet.assemble(
        PlanParams(quotas={"P": 0}, max_count=2), [ClassSpec("chat", 10.0)], offers
    )
    res = plan_data(
        data, [_stub(PlanClass(name="chat", scenario=None, rate_rps=10))], PlanOptions()
    )
    assert res.status == "infeasible"
    assert "quota P" in res.message and "max count per type is binding" in res.message


def test_an_offline_deadline_needs_two_instances() -> None:
    # A job of 36,000 requests at 3 rps per instance, deadline 2 h, start-up 900 s (billed, not
    # working). Hourly: an instance billed 2 h works 6,300 s = 18,900 requests, one billed 1 h
    # 2,700 s = 8,100. One instance cannot finish in time; 2 x 2 h = 37,800 requests for
    # 4 instance-hours = $4 (2 h + 3 x 1 h = 43,200 costs $5; 5 x 1 h = 40,500 costs $5).
    a = inst("g6.xlarge", 1.0)
    specs, offers = [ClassSpec("extract", 36_000)], [Offer(0, a, 3.0)]
    hourly = fleet.assemble(
        PlanParams(mode="offline", deadline_h=2.0, startup_s=900), specs, offers
    )
    cost, counts = the_plan(hourly)
    assert cost == pytest.approx(4.0) and counts == {"g6.xlarge": 2}
    assert sorted(int(h) for h in hourly.line_hours) == [1, 2]
    # Per second with a 120 s start-up: each instance holds floor(3 x 7,080) = 21,240 requests,
    # so two: 2 x 120 s + 36,000 / 3 s of work at $1/h = (240 + 12,000) / 3600 = $3.40.
    per_s = PlanParams(mode="offline", deadline_h=2.0, startup_s=120, billing="per-second")
    cost, counts = the_plan(fleet.assemble(per_s, specs, offers))
    assert cost == pytest.approx(3.40, abs=1e-3) and counts == {"g6.xlarge": 2}
    # With 4 h one instance finishes (12,000 s of work): one start-up, (120 + 12,000) / 3600
    cost, counts = the_plan(
        fleet.assemble(PlanParams(**{**per_s.__dict__, "deadline_h": 4.0}), specs, offers)
    )
    assert cost == pytest.approx(12_120 / 3600, abs=1e-3) and counts == {"g6.xlarge": 1}


def test_spot_share_with_an_interruption_allowance() -> None:
    # 10 rps; A: 4 rps at $1/h, spot $0.40/h; up to half of the line on spot, 25% of spot
    # capacity may be lost: a spot instance counts 3 rps. 1 A + 2 spot = 10 rps but 2/3 on spot
    # (> 1/2); 2 A + 1 spot = 11 rps for $2.40/h is the cheapest (3 A = $3; 2 A + 2 spot = $2.80).
    a = inst("g6.xlarge", 1.0, spot=0.40)
    data = fleet.assemble(
        PlanParams(spot_share=0.5, spot_interruption=0.25),
        [ClassSpec("chat", 10.0)],
        [Offer(0, a, 4.0)],
    )
    cost, counts = the_plan(data)
    assert cost == pytest.approx(2.40) and counts == {"g6.xlarge": 2, "g6.xlarge spot": 1}


def test_unit_rounding_is_conservative() -> None:
    # capacity is rounded down, in millionths of the class's rate: 3 instances of 1/3 rps
    # (each 333,333 ppm of 1 rps) do not make 1 rps (999,999 ppm); 4 are planned.
    a = inst("g6.xlarge", 1.0)
    data = fleet.assemble(PlanParams(), [ClassSpec("c", 1.0)], [Offer(0, a, 1 / 3)])
    assert int(data.line_cap[0]) == 333_333
    assert the_plan(data) == (4.0, {"g6.xlarge": 4})


# -- exact backends agree with brute force ---------------------------------------------------

TYPES = [("g6.xlarge", 4), ("g5.2xlarge", 8), ("p3.2xlarge", 8)]


@st.composite
def small_problems(draw: st.DrawFn) -> fleet.FleetData:
    n_types = draw(st.integers(1, 3))
    n_classes = draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["online", "online", "offline"]))
    spot = n_types <= 2 and mode == "online" and draw(st.booleans())
    prices = st.integers(20, 400).map(lambda c: c / 100)
    insts = []
    for name, vcpus in TYPES[:n_types]:
        p = draw(prices)
        sp = round(p * draw(st.sampled_from([0.3, 0.5])), 4) if spot else None
        insts.append(inst(name, p, vcpus, sp))
    specs, offers = [], []
    for c in range(n_classes):
        if mode == "online":
            specs.append(ClassSpec(f"c{c}", draw(st.integers(1, 120)) / 10))
        else:
            specs.append(ClassSpec(f"c{c}", draw(st.integers(1000, 60_000))))
        for i in insts:
            if draw(st.integers(0, 4)):  # most types serve most classes
                offers.append(Offer(c, i, draw(st.integers(5, 80)) / 10))
    hourly = mode == "offline" and n_types == 1 and draw(st.booleans())
    params = PlanParams(
        mode=mode,
        deadline_h=draw(st.sampled_from([1.0, 1.5, 2.0])) if mode == "offline" else None,
        startup_s=draw(st.sampled_from([0.0, 120.0])),
        billing="hourly" if hourly else "per-second",
        budget=draw(st.none() | st.integers(50, 1500).map(lambda c: c / 100)),
        quotas=draw(st.sampled_from([{}, {"G": 8}, {"G": 12, "P": 8}, {"P": 0}])),
        max_count=draw(st.integers(1, 4)),
        split=draw(st.booleans()),
        spot_share=draw(st.sampled_from([0.5, 1.0])) if spot else 0.0,
        spot_interruption=0.1,
    )
    return fleet.assemble(params, specs, offers)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=small_problems())
def test_exact_backends_equal_the_brute_force_optimum(data: fleet.FleetData) -> None:
    sols = solve_all(data)
    brute = sols["brute"]
    for be in ("highs", "cbc", "cp"):
        assert sols[be].objective == brute.objective, (be, sols[be], brute)
        if brute.counts is None:
            assert sols[be].status == "infeasible"
        else:
            assert sols[be].status == "optimal"
            assert fleet.violations(data, sols[be].counts, sols[be].shares) == []
    served = {int(c) for c in data.line_class}
    if brute.counts is not None and len(served) == data.num_classes:
        greedy = plan_search.solve_greedy(data)
        if not greedy.note:  # the greedy plan is a valid plan: it cannot beat the optimum
            assert greedy.objective >= brute.objective


def test_brute_force_refuses_large_problems() -> None:
    a, b, c = inst("g6.xlarge", 1.0), inst("g5.2xlarge", 1.2), inst("p3.2xlarge", 3.0)
    data = fleet.assemble(
        PlanParams(), [ClassSpec("c", 1000.0)], [Offer(0, a, 1), Offer(0, b, 1), Offer(0, c, 1)]
    )
    with pytest.raises(plan_search.TooLarge, match="count vectors"):
        plan_search.solve_brute(data)


# -- input ------------------------------------------------------------------------------------


def test_class_rows_and_bad_input() -> None:
    from infersave.solver.scenario import InputError

    c = class_from_fields(
        {"name": "chat", "model": "llama-3.1-8b", "input_len": "512", "output_len": "256",
         "rate_rps": "4", "ttft_slo": "2", "instances": "g6.xlarge, g6e.xlarge"}, 1
    )  # fmt: skip
    assert c.demand("online") == 4 and c.instances == ("g6.xlarge", "g6e.xlarge")
    c2 = class_from_fields(
        {"model": "llama-3.1-8b", "input_len": 512, "output_len": 256, "slo_tps": 7680}, 2
    )
    assert c2.name == "class2" and c2.demand("online") == pytest.approx(10.0)
    with pytest.raises(InputError, match="row 3: rate_rps"):
        class_from_fields({"model": "x", "input_len": 1, "output_len": 1, "rate_rps": "-1"}, 3)
    with pytest.raises(InputError, match="rate_rps"):
        class_from_fields({"model": "opt-2.7b", "input_len": 1, "output_len": 1}, 4).demand(
            "online"
        )


# -- end to end ------------------------------------------------------------------------------


def invoke(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_argv, old_out = sys.argv, sys.stdout
    sys.argv = ["infersave", *argv]
    code: int | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
    finally:
        sys.argv, sys.stdout = old_argv, old_out
    return int(code or 0), out.getvalue(), err.getvalue()


def test_example_prints_a_mixed_fleet_cheaper_than_greedy() -> None:
    code, out, err = invoke("plan", str(EXAMPLE))
    assert code == 0, err
    assert "fleet:" in out and "Greedy baseline" in out and "less than greedy" in out
    code, out, err = invoke("plan", str(EXAMPLE), "--format", "json")
    assert code == 0, err
    res = json.loads(out)
    assert res["status"] == "ok" and len(res["classes"]) == 5
    assert len({ln["instance_type"] for ln in res["lines"]}) >= 2  # mixed fleet
    assert len({ln["class_name"] for ln in res["lines"]}) == 5
    for c in res["classes"]:
        mine = [ln for ln in res["lines"] if ln["class_name"] == c["name"]]
        assert sum(ln["share"] for ln in mine) == pytest.approx(1.0)
        assert c["capacity_rps"] >= c["rate_rps"] * (1 - 1e-6)
        if c["ttft_slo"] is not None:
            assert c["ttft_s"] <= c["ttft_slo"]
        if c["tpot_slo"] is not None:
            assert c["tpot_s"] <= c["tpot_slo"]
    assert res["fleet_usd_per_hour"] == pytest.approx(
        sum(ln["usd_per_hour"] for ln in res["lines"])
    )
    assert res["savings_pct"] > 0
    assert res["greedy"]["usd_per_hour"] > res["fleet_usd_per_hour"]
    assert all(ln["utilisation"] <= 1 + 1e-9 for ln in res["lines"])


def test_csv_output_and_backends_agree_on_the_example() -> None:
    code, out, err = invoke("plan", str(EXAMPLE), "--format", "csv", "--backend", "cbc")
    assert code == 0, err
    header = out.splitlines()[0].split(",")
    assert {"role", "class_name", "instance_type", "count", "share", "utilisation"} <= set(header)
    costs = set()
    for be in ("highs", "cbc", "cp"):
        code, out, err = invoke("plan", str(EXAMPLE), "-f", "json", "--backend", be)
        assert code == 0, err
        costs.add(json.loads(out)["solver"]["objective"])
    assert len(costs) == 1


def test_budget_infeasible_exit_1_names_it() -> None:
    code, out, err = invoke("plan", str(EXAMPLE), "--budget", "15")
    assert code == 1
    # $15.7/h before issue 8's spec fixes (A10G 125 TFLOPS makes g5 cheaper per token)
    assert "budget $15/h is binding" in out and "$15.28/h" in out
    code, out, err = invoke("plan", str(EXAMPLE), "--budget", "15", "-f", "json")
    assert code == 1 and "budget" in err and json.loads(out)["status"] == "infeasible"


def test_quota_forces_other_families_on_the_example() -> None:
    code, out, err = invoke("plan", str(EXAMPLE), "--quota", "G=16", "-f", "json")
    assert code == 0, err
    res = json.loads(out)
    g_vcpus = sum(
        ln["count"] * 4 for ln in res["lines"] if ln["family"] == "G"
    )  # all G lines of the example are xlarge (4 vCPUs)
    assert g_vcpus <= 16
    assert any(ln["family"] == "P" for ln in res["lines"])


def test_a_class_nothing_can_serve(tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text(  # big: 70B in fp16 on one GPU (tensor parallelism fixed at 1)
        "service,model,input_len,output_len,rate_rps,ttft_slo,tensor_parallel\n"
        "chat,llama-3.1-8b,512,256,1,,\n"
        "big,llama-3.1-70b,512,256,1,,1\n"
        "fast,llama-3.1-8b,4096,16,1,0.001,\n"
    )
    code, out, _ = invoke("plan", str(src))
    assert code == 1
    assert "class 'big' (llama-3.1-70b)" in out and "does not fit" in out
    src.write_text(
        "service,model,input_len,output_len,rate_rps,ttft_slo\nfast,llama-3.1-8b,4096,16,1,0.001\n"
    )
    code, out, _ = invoke("plan", str(src))
    assert code == 1 and "ttft_slo" in out and "fastest prefill" in out


@pytest.mark.parametrize(
    ("text", "args", "needle"),
    [
        ("service,model,input_len,output_len,rate_rps\nchat,llama-3.1-8b,512,256,abc\n", (),
         "row 1: rate_rps"),
        ("service,model,input_len,output_len,rate_rps\nchat,nope,512,256,1\n", (), "nope"),
        ("service,model,input_len,output_len,rate_rps\nchat,llama-3.1-8b,512,256,1\n",
         ("--quota", "Q=1"), "quota"),
        ("service,model,input_len,output_len,rate_rps\nchat,llama-3.1-8b,512,256,1\n",
         ("--mode", "offline"), "deadline"),
        ("service,model,input_len,output_len,rate_rps,instances\n"
         "chat,llama-3.1-8b,512,256,1,g9.huge\n", (), "g9.huge"),
        ("service,model,input_len,output_len\nchat,llama-3.1-8b,512,256\n", (), "rate_rps"),
        ("service,model,input_len,output_len,rate_rps\nchat,llama-3.1-8b,512,256,1\n"
         "chat,llama-3.1-8b,512,256,1\n", (), "repeats row 1"),
    ],
)  # fmt: skip
def test_bad_input_exit_2_one_line(tmp_path: Path, text: str, args: tuple, needle: str) -> None:
    src = tmp_path / "p.csv"
    src.write_text(text)
    code, out, err = invoke("plan", str(src), *args)
    assert code == 2, (code, out, err)
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_write_model_is_readable(tmp_path: Path) -> None:
    lp = tmp_path / "plan.lp"
    args = ("--budget", "20", "--quota", "G=64", "--max-count", "4", "--no-split")
    code, _, err = invoke("plan", str(EXAMPLE), "--write-model", str(lp), *args)
    assert code == 0, err
    text = lp.read_text()
    # chat's g6e.xlarge bs32 column became g5.xlarge bs16 with issue 8's A10G fix
    for name in ("fleet_cost", "serve_class_chat", "capacity_chat_g5_xlarge_bs16_off0",
                 "count_chat_g5_xlarge_bs16_off0", "share_chat_g5_xlarge_bs16_off0",
                 "budget", "quota_G", "max_count_g5_xlarge", "pin_class_chat",
                 "pin_chat_g5_xlarge"):  # fmt: skip
        assert name in text, name
    cp = tmp_path / "plan.txt"
    code, _, err = invoke("plan", str(EXAMPLE), "--backend", "cp", "--write-model", str(cp))
    assert code == 0, err
    assert "serve_class_chat" in cp.read_text()


def test_offline_job_plan_on_the_example() -> None:
    code, out, err = invoke(
        "plan", str(EXAMPLE), "--mode", "offline", "--deadline", "2", "--startup-s", "300",
        "--billing", "per-second", "-f", "json",
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert res["mode"] == "offline" and res["total_cost_usd"] > 0
    for c in res["classes"]:
        assert c["finish_h"] <= 2.0 and c["requests"] == 1000


def test_compare_plan_agrees_with_brute_force() -> None:
    code, out, err = invoke("compare", "--plan", str(SMALL), "--format", "json")
    assert code == 0, err
    res = json.loads(out)
    assert res["reference"] == "brute" and res["agreement"] is True
    assert all(res["backends"][be]["agrees"] for be in ("highs", "cbc", "cp", "brute"))
    assert res["savings_pct"] >= 0
    code, out, err = invoke("compare", "--plan", str(SMALL))
    assert code == 0 and "Exact backends agree with brute: True" in out


def test_family_mapping() -> None:
    assert fleet.family_of("g6.xlarge") == "G" and fleet.family_of("vt1.3xlarge") == "G"
    assert fleet.family_of("gr6.4xlarge") == "G" and fleet.family_of("p5.48xlarge") == "P"
    assert fleet.family_of("p6-b200.48xlarge") == "P" and fleet.family_of("inf2.xlarge") == "Inf"
    assert fleet.family_of("trn1.2xlarge") == "Trn" and fleet.family_of("m5.large") == "Standard"
    assert fleet.family_of("g6.xlarge", spot=True) == "G-spot"
    assert math.isclose(PPM_CHECK, 1.0)


PPM_CHECK = fleet.PPM / 1_000_000


def test_a_class_searching_precisions_reports_the_line_precision(tmp_path: Path) -> None:
    src = tmp_path / "q.csv"
    src.write_text(
        "service,model,provider,dtypes,input_len,output_len,rate_rps\n"
        'big,llama-3.1-70b,aws,"fp16,int4",1024,256,2\n'
    )
    code, out, err = invoke("plan", str(src), "--format", "json")
    assert code == 0, err
    line = json.loads(out)["lines"][0]
    assert line["dtype"] == "int4"  # 70B in int4 fits one 80 GB GPU; fp16 would need TP
    assert line["tp"] == 1 and line["gpu_count"] == 1
