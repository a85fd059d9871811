"""The HTTP service over real HTTP: ``infersave serve`` in its own process on a free loopback
port, called with httpx. Every wait is bounded."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_server import running_server, wait_job

import infersave

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CSV = REPO / "tests" / "data" / "workloads_example.csv"

README = {
    "model": "opt-2.7b",
    "input_len": 1024,
    "output_len": 128,
    "requests": 1000,
    "slo_tps": 100,
    "max_price": 3,
    "region": "us-east-1",
}
README_ARGS = [
    "--model", "opt-2.7b",
    "--input-len", "1024",
    "--output-len", "128",
    "--requests", "1000",
    "--slo-tps", "100",
    "--max-price", "3",
    "--region", "us-east-1",
]  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with the default limits."""
    with running_server(tmp_path_factory.mktemp("serve") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with tiny limits: 20 kB bodies, 5,000 rows per job, one job at a time."""
    log = tmp_path_factory.mktemp("serve-small") / "server.log"
    with running_server(
        log, "--max-body-mb", "0.02", "--max-rows", "5000", "--max-jobs", "1"
    ) as url:
        yield url


@pytest.fixture
def client(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=60) as c:
        yield c


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infersave.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def without_timing(result: dict[str, Any]) -> dict[str, Any]:
    solver = dict(result.get("solver") or {})
    solver.pop("solve_seconds", None)
    return {**result, "solver": solver}


def rows_of(n: int) -> list[dict[str, Any]]:
    models = ["opt-2.7b", "llama-3.1-8b", "opt-6.7b"]
    return [
        {
            "id": i,
            "model": models[i % 3],
            "input_len": 128 * (1 + i % 8),
            "output_len": 64 * (1 + i % 4),
            "requests": 1000 + i,
            "slo_tps": 50 + i % 200,
            "max_price": [None, 3, 10][i % 3],
            "backend": "exhaustive",
        }
        for i in range(n)
    ]


# --- the done criteria ------------------------------------------------------------------


def test_solve_readme_example_is_the_cli_json(client: httpx.Client) -> None:
    t0 = time.perf_counter()
    r = client.post("/v1/solve", json=README)
    round_trip = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    p = cli("solve", *README_ARGS, "--format", "json")
    assert p.returncode == 0, p.stderr
    assert without_timing(r.json()) == without_timing(json.loads(p.stdout))
    assert r.json()["recommendation"]["instance_type"] == "g5g.xlarge"
    print(f"POST /v1/solve round trip: {round_trip * 1000:.1f} ms")


def test_batch_job_of_10000_rows(client: httpx.Client) -> None:
    t0 = time.perf_counter()
    r = client.post("/v1/batch", json={"rows": rows_of(10_000), "name": "ten-thousand"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["rows"] == 10_000 and job["state"] in ("queued", "running")
    status = wait_job(client, job["id"])
    wall = time.perf_counter() - t0
    assert status["state"] == "done", status
    assert status["done"] == 10_000
    assert status["feasible"] + status["infeasible"] + status["errors"] == 10_000
    with client.stream("GET", f"/v1/jobs/{job['id']}/results") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        rows = [json.loads(line) for line in resp.iter_lines() if line]
    assert [row["row"] for row in rows] == list(range(1, 10_001))
    assert [row["id"] for row in rows] == list(range(10_000))
    csv_text = client.get(f"/v1/jobs/{job['id']}/results", params={"format": "csv"}).text
    assert len(csv_text.splitlines()) == 10_001
    print(f"10,000-row job: submitted, solved and downloaded in {wall:.1f} s")


def test_job_survives_the_client_disconnecting(client: httpx.Client, base: str) -> None:
    body = json.dumps({"rows": rows_of(3000), "name": "orphan"}).encode()
    host, port = base.removeprefix("http://").split(":")
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
    # gone before reading the answer; the job is the server's now
    deadline = time.monotonic() + 60
    orphan = None
    while orphan is None and time.monotonic() < deadline:
        orphan = next((j for j in client.get("/v1/jobs").json() if j["name"] == "orphan"), None)
        time.sleep(0.05)
    assert orphan is not None, "the job was not created"
    status = wait_job(client, orphan["id"])
    assert status["state"] == "done" and status["done"] == 3000


# --- solve, predict, compare ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**README, "slo_tps": -1}, "slo_tps"),
        ({**README, "input_len": "many"}, "input_len"),
        ({**README, "slo": 100}, "slo"),
        ({k: v for k, v in README.items() if k != "model"}, "model"),
        ({**README, "backend": "simplex"}, "backend"),
        ({**README, "batch_sizes": []}, "batch_sizes"),
    ],
)
def test_bad_field_is_422_naming_it(client: httpx.Client, body: dict, field: str) -> None:
    r = client.post("/v1/solve", json=body)
    assert r.status_code == 422
    out = r.json()
    assert out["message"].startswith(f"{field}:")
    assert any(field in e["loc"] for e in out["detail"])


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('"slo_tps": Infinity', "slo_tps"),
        ('"slo_tps": NaN', "slo_tps"),
        ('"slo_tps": 1e999', "slo_tps"),
        ('"slo_tps": 100, "max_price": -Infinity', "max_price"),
    ],
)
def test_non_finite_numbers_are_422(client: httpx.Client, text: str, field: str) -> None:
    body = '{"model": "opt-2.7b", "input_len": 1024, "output_len": 128, "requests": 10, ' + text
    r = client.post("/v1/solve", content=body + "}", headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(f"{field}:")
    assert "NaN" not in r.text and "Infinity" not in r.text


@pytest.mark.parametrize(
    ("update", "needle"),
    [
        ({"model": "opt-2.7"}, "model: unknown model 'opt-2.7'; did you mean"),
        ({"model": "/etc/passwd"}, "model: unknown model"),
        ({"calibration": "/etc/passwd"}, "calibration:"),
        ({"region": "mars-1"}, "unknown region 'mars-1'"),
        ({"offload_step": 0.3}, "offload step must divide 1 evenly"),
        ({"offload_step": 1e-6}, "offload_step:"),
        ({"backend": "milp", "time_limit": 1e6}, "time_limit:"),
    ],
)
def test_solver_and_service_refusals_are_422(
    client: httpx.Client, update: dict, needle: str
) -> None:
    r = client.post("/v1/solve", json={**README, **update})
    assert r.status_code == 422, r.text
    assert needle in r.json()["message"]
    assert "\n" not in r.json()["message"]


def test_nothing_feasible_is_200_with_the_closest_miss(client: httpx.Client) -> None:
    r = client.post("/v1/solve", json={**README, "max_price": 0.01})
    assert r.status_code == 200
    out = r.json()
    assert out["status"] == "infeasible" and out["recommendation"] is None
    p = cli("solve", *README_ARGS[:-4], "--max-price", "0.01", "--format", "json")
    assert p.returncode == 1
    assert out["message"] == json.loads(p.stdout)["message"]


def test_predict_is_the_front_door_prediction(client: httpx.Client) -> None:
    scenario = {**README, "batch_size": 16}
    r = client.post("/v1/predict", json={"scenario": scenario, "instance": "g5.xlarge"})
    assert r.status_code == 200, r.text
    expected = infersave.predict(infersave.Scenario(**scenario), instance="g5.xlarge")
    assert r.json() == {"record": expected.record.model_dump(), "problems": expected.problems}
    r = client.post("/v1/predict", json={"scenario": scenario, "gpu": "L4", "offload_ratio": 0.5})
    assert r.status_code == 200 and r.json()["record"]["offload_ratio"] == 0.5
    r = client.post("/v1/predict", json={"scenario": README, "gpu": "L4"})
    assert r.status_code == 422 and "batch_size" in r.json()["message"]
    r = client.post(
        "/v1/predict", json={"scenario": scenario, "gpu": "L4", "instance": "g5.xlarge"}
    )
    assert r.status_code == 422 and "exactly one of instance or gpu" in r.json()["message"]
    r = client.post("/v1/predict", json={"scenario": scenario, "gpu": "Z9000"})
    assert r.status_code == 422 and "Z9000" in r.json()["message"]


def test_compare(client: httpx.Client) -> None:
    r = client.post("/v1/compare", json={"scenarios": [README, {**README, "slo_tps": 50}]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["summary"]["scenarios"] == 2 and out["summary"]["agreement_rate"] == 1.0
    r = client.post("/v1/compare", json={"scenarios": [README, {**README, "model": "x"}]})
    assert r.status_code == 422 and r.json()["message"].startswith("scenarios.1.model:")


# --- batch jobs -------------------------------------------------------------------------


def test_batch_of_a_workloads_file_matches_the_cli(client: httpx.Client, tmp_path: Path) -> None:
    r = client.post(
        "/v1/batch",
        json={"file": EXAMPLE_CSV.read_text(), "format": "csv", "backend": "exhaustive"},
    )
    assert r.status_code == 202, r.text
    status = wait_job(client, r.json()["id"])
    assert status["state"] == "done"
    http_rows = [
        json.loads(line) for line in client.get(status["results"]).text.splitlines() if line.strip()
    ]
    out = tmp_path / "out.jsonl"
    p = cli("batch", str(EXAMPLE_CSV), "-o", str(out), "--backend", "exhaustive", "-q")
    assert p.returncode == 0, p.stderr
    cli_rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert http_rows == cli_rows


def test_bad_rows_are_error_rows_not_a_failed_job(client: httpx.Client) -> None:
    rows = [
        {**README, "backend": "exhaustive"},
        {**README, "slo_tps": "fast"},
        {**README, "model": "/etc/passwd"},
        {**README, "slo_tps": "inf"},
        {**README, "colour": "blue"},
    ]
    r = client.post("/v1/batch", json={"rows": rows})
    assert r.status_code == 202
    status = wait_job(client, r.json()["id"])
    assert (status["state"], status["feasible"], status["errors"]) == ("done", 1, 4)
    out = [json.loads(x) for x in client.get(status["results"]).text.splitlines()]
    assert [o["status"] for o in out] == ["ok", "error", "error", "error", "error"]
    assert out[1]["message"].startswith("row 2: slo_tps:")
    assert out[2]["message"].startswith("row 3: model: unknown model")
    assert out[3]["message"].startswith("row 4: slo_tps:") and "finite" in out[3]["message"]
    assert out[4]["message"].startswith("row 5: unknown field 'colour'")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"rows": [], "file": "x", "format": "csv"}, "exactly one of rows or file"),
        ({"file": "model\nopt-2.7b\n"}, "format is required"),
        ({"file": "a: &x [1]\nb: *x\n", "format": "yaml"}, "YAML aliases"),
        ({"file": "", "format": "csv"}, "file: the CSV file is empty"),
    ],
)
def test_bad_batch_request_is_422(client: httpx.Client, body: dict, needle: str) -> None:
    r = client.post("/v1/batch", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["message"]


SCENARIO_TEXT = '"model": "opt-2.7b", "input_len": 1, "output_len": 1, "requests": 1, "slo_tps": 1'


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/batch", json.dumps({"file": "[" * 100_000, "format": "jsonl"}), 422, "jsonl"),
        ("/v1/batch", json.dumps({"file": "- " * 5000 + "a", "format": "yaml"}), 422, "yaml"),
        ("/v1/batch", '{"file": "model\\n\\ud800\\n", "format": "csv"}', 422, "UTF-8"),
        ("/v1/solve", '{"model": "\\ud800"}', 422, "model"),
        ("/v1/solve", "{" + SCENARIO_TEXT + ', "solver": "\\ud800"}', 422, "solver: not valid"),
        ("/v1/solve", "[" * 100_000, 400, "parsing the body"),
        ("/v1/solve", "{" + SCENARIO_TEXT, 422, "JSON decode error"),
    ],
)
def test_hostile_bodies_are_4xx(
    client: httpx.Client, path: str, body: str, status: int, needle: str
) -> None:
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.text


def test_text_that_is_not_unicode_streams_escaped(client: httpx.Client) -> None:
    body = '{"rows": [{' + SCENARIO_TEXT + ', "backend": "exhaustive", "id": "\\ud800"}]}'
    r = client.post("/v1/batch", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 202
    status = wait_job(client, r.json()["id"])
    assert status["errors"] == 1
    assert "id: not valid Unicode text" in client.get(status["results"]).text
    csv_text = client.get(status["results_csv"]).text
    assert "\\ud800" in csv_text


def test_unknown_job_is_404_and_delete_forgets_a_finished_job(client: httpx.Client) -> None:
    assert client.get("/v1/jobs/nope").status_code == 404
    assert client.get("/v1/jobs/nope/results").status_code == 404
    assert client.delete("/v1/jobs/nope").status_code == 404
    job = client.post("/v1/batch", json={"rows": rows_of(10)}).json()
    assert wait_job(client, job["id"])["state"] == "done"
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 200
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404


# --- limits -----------------------------------------------------------------------------


def test_body_too_large_is_413(small: str) -> None:
    big = {"rows": [{**README, "name": "x" * 100} for _ in range(200)]}  # ~50 kB > 20 kB
    with httpx.Client(base_url=small, timeout=30) as c:
        r = c.post("/v1/batch", json=big)
        assert r.status_code == 413 and "limit" in r.json()["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            data = json.dumps(big).encode()
            for i in range(0, len(data), 4096):
                yield data[i : i + 4096]

        r = c.post("/v1/batch", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
    assert httpx.get(f"{small}/healthz", timeout=10).status_code == 200


def test_too_many_jobs_is_429_and_a_cancel_frees_the_slot(small: str) -> None:
    slow = [{**README, "backend": "cp", "requests": 1000 + i} for i in range(20)]  # ~1 s a row
    with httpx.Client(base_url=small, timeout=30) as c:
        r = c.post("/v1/batch", json={"rows": slow, "name": "slow"})
        assert r.status_code == 202, r.text
        first = r.json()
        r = c.post("/v1/batch", json={"rows": [README]})
        assert r.status_code == 429, r.text
        assert r.headers["Retry-After"] and "1 batch jobs are queued or running" in r.text
        early = c.get(first["results_csv"])
        assert early.status_code == 409 and "CSV is ready when it is done" in early.text
        assert c.delete(f"/v1/jobs/{first['id']}").status_code == 200
        status = wait_job(c, first["id"], timeout_s=30)
        assert status["state"] == "cancelled" and status["done"] < 20
        r = c.post("/v1/batch", json={"rows": [{**README, "backend": "exhaustive"}]})
        assert r.status_code == 202
        assert wait_job(c, r.json()["id"])["state"] == "done"


def test_too_many_rows_is_413(small: str) -> None:
    text = "model,input_len,output_len,slo_tps\n" + "opt-2.7b,512,128,100\n" * 5001
    body = {"file": text[:100] + "\n", "format": "csv"}
    with httpx.Client(base_url=small, timeout=30) as c:
        big = c.post("/v1/batch", json={"file": "model\n" + "x\n" * 5001, "format": "csv"})
        assert big.status_code == 413, big.text
        assert big.json()["message"] == "5001 rows; this service takes 5000 per job"
        assert c.post("/v1/batch", json=body).status_code in (202, 429)


def test_answers_do_not_wait_for_delayed_acks(client: httpx.Client) -> None:
    # without TCP_NODELAY on accepted sockets every answer took ~40 ms (Nagle + delayed ACK)
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        times.append(time.perf_counter() - t0)
    assert sorted(times)[7] < 0.030, times


def test_healthz_stays_quick_during_a_job(client: httpx.Client) -> None:
    r = client.post("/v1/batch", json={"rows": rows_of(2000)})
    assert r.status_code == 202
    t0 = time.perf_counter()
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
    assert (time.perf_counter() - t0) / 5 < 1.0
    wait_job(client, r.json()["id"])


# --- catalog, documents -----------------------------------------------------------------


def test_catalog_endpoints(client: httpx.Client) -> None:
    assert len(client.get("/v1/models").json()) == len(infersave.models())
    rows = client.get("/v1/instances", params={"region": "us-east-1", "gpu": "l4"}).json()
    assert rows and all(r["gpu"] == "L4" and r["region"] == "us-east-1" for r in rows)
    assert "g6.xlarge" in {r["instance_type"] for r in rows}
    r = client.get("/v1/instances", params={"region": "mars-1"})
    assert r.status_code == 422 and r.json()["message"].startswith("region:")
    r = client.get("/v1/instances", params={"catalog": "oracle"})
    assert r.status_code == 422 and r.json()["message"].startswith("catalog:")


def test_openapi_uses_the_front_door_models(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert set(doc["paths"]) == {
        "/healthz",
        "/v1/solve",
        "/v1/predict",
        "/v1/compare",
        "/v1/plan",
        "/v1/batch",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/results",
        "/v1/models",
        "/v1/instances",
    }
    solve = doc["paths"]["/v1/solve"]["post"]
    body = solve["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Scenario"}
    ok = solve["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/SolveResult"}
    plan = doc["paths"]["/v1/plan"]["post"]["responses"]["200"]["content"]["application/json"]
    assert plan["schema"] == {"$ref": "#/components/schemas/PlanResult"}
    schemas = doc["components"]["schemas"]
    assert set(schemas["Scenario"]["properties"]) == set(infersave.Scenario.model_fields)
    assert set(schemas["Record"]["properties"]) == set(infersave.Record.model_fields)


# --- in process: the 500 path, the command, the layering --------------------------------


def test_unexpected_error_is_a_one_line_500(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from infersave.service import create_app

    def broken(s: Any) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(infersave, "solve", broken)

    async def calls() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
            return await c.post("/v1/solve", json=README), await c.get("/healthz")

    r, health = asyncio.run(calls())
    assert r.status_code == 500
    assert r.json()["message"] == "internal error: RuntimeError: boom"
    assert health.status_code == 200


def test_too_many_requests_at_once_is_429() -> None:
    import asyncio

    from infersave.service import Limits, create_app

    slow = {**README, "backend": "cp"}  # CP-SAT: about a second

    async def calls() -> list[int]:
        app = create_app(Limits(max_pending=1, solve_threads=1))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s", timeout=60) as c:
            first = asyncio.create_task(c.post("/v1/solve", json=slow))
            await asyncio.sleep(0.2)
            second = await c.post("/v1/solve", json=README)
            return [(await first).status_code, second.status_code]

    assert asyncio.run(calls()) == [200, 429]


def test_a_job_that_breaks_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from infersave.service import jobs

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("bug\nmore")

    monkeypatch.setattr(jobs, "solve_many", broken)
    store = jobs.JobStore(max_jobs=1, max_kept=1)
    try:
        job = store.submit([(1, {}, infersave.Scenario(**README))])
        deadline = time.monotonic() + 30
        while job.active and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (job.state, job.message) == ("failed", "ZeroDivisionError: bug")
        store.submit([])  # the slot is free again
    finally:
        store.shutdown()


def test_serve_help_shows_an_example_and_the_cli_stays_light() -> None:
    import typer
    from typer.testing import CliRunner

    from infersave.cli import serve_cmd

    app = typer.Typer()
    serve_cmd.register(app)
    app.command("noop")(lambda: None)
    out = CliRunner().invoke(app, ["serve", "--help"])
    assert out.exit_code == 0
    assert "Example" in out.output and "--max-rows" in out.output and "--port" in out.output
    code = (
        "import sys, infersave.cli.main, infersave.cli.serve_cmd;"
        " print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "[]", p.stderr


def test_service_uses_only_the_front_door() -> None:
    for path in sorted((REPO / "service").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("infersave."):
                    assert name.startswith("infersave.service"), f"{path.name} imports {name}"


# --- fleet plans -------------------------------------------------------------------------


def _plan_rows() -> list[dict[str, Any]]:
    """The rows of the shipped plan example, as a JSON client sends them (blank cells left out)."""
    import csv

    path = Path(__file__).parent / "data" / "plan_example.csv"
    with path.open(newline="") as fh:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def _plan_without_timing(result: dict[str, Any]) -> dict[str, Any]:
    solver = dict(result["solver"])
    solver.pop("seconds", None)
    solver.pop("solve_seconds", None)
    return {**result, "solver": solver}


def test_plan_over_http_is_the_cli_json(client: httpx.Client) -> None:
    body = {"classes": _plan_rows(), "options": {"budget": 40, "quotas": {"G": 256}}}
    r = client.post("/v1/plan", json=body)
    assert r.status_code == 200, r.text
    p = cli("plan", str(Path(__file__).parent / "data" / "plan_example.csv"), "--budget", "40",
            "--quota", "G=256", "--format", "json")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert _plan_without_timing(r.json()) == _plan_without_timing(json.loads(p.stdout))
    assert r.json()["status"] == "ok" and len(r.json()["classes"]) == 5
    tight = client.post("/v1/plan", json={**body, "options": {"budget": 15}})
    assert tight.status_code == 200 and tight.json()["status"] == "infeasible"
    assert "budget $15/h is binding" in tight.json()["message"]


def test_plan_bad_input_is_422_naming_the_field(client: httpx.Client) -> None:
    rows = _plan_rows()
    bad = client.post("/v1/plan", json={"classes": [{**rows[0], "rate_rps": "fast"}]})
    assert bad.status_code == 422 and "rate_rps" in bad.text
    unknown = client.post("/v1/plan", json={"classes": rows, "options": {"budgett": 3}})
    assert unknown.status_code == 422 and "budgett" in unknown.text
    many = client.post("/v1/plan", json={"classes": [rows[0]] * 201})
    assert many.status_code == 413 and "200" in many.text
