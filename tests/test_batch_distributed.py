"""``infersave batch --engine dask``: the same output on a dask.distributed cluster, streamed in
order with bounded tasks in flight, and one-line errors for unusable schedulers (issue 13
part 5). Every cluster here listens on 127.0.0.1 only."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infersave.cli.main import app
from infersave.solver import batch as batch_mod
from infersave.solver import distributed as dist
from infersave.solver.scenario import InputError, Scenario

distributed = pytest.importorskip("distributed")

EXAMPLE = Path(__file__).parent / "data" / "workloads_example.csv"

runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def workload_file(tmp_path: Path) -> Path:
    """The example workloads with error rows among them (unknown model, bad length, unknown
    field value), every backend column blank or exhaustive."""
    with EXAMPLE.open() as fh:
        rows = list(csv.DictReader(fh))
    cols = list(rows[0])
    bad = [
        {**rows[0], "model": "no-such-model"},
        {**rows[1], "input_len": "-3"},
        {**rows[2], "billing": "weekly"},
    ]
    for i, row in zip((3, 17, 40), bad, strict=True):
        rows.insert(i, row)
    path = tmp_path / "workloads.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A cluster of 2 single-threaded workers in this process, reached over TCP on 127.0.0.1
    (what an existing cluster looks like to the client, started in well under a second)."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as c:
        yield c


@pytest.mark.parametrize("backend", ["exhaustive", "milp"])
def test_existing_scheduler_writes_the_same_bytes(
    tmp_path: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Many small tasks (8 rows) on the 2 workers, reassembled in input order: the output file
    equals the single-process run's byte for byte, error rows included. With the MILP
    backend two threads of one process solve at once (they must not crash HiGHS)."""
    src = workload_file(tmp_path)
    local, remote = tmp_path / "local.csv", tmp_path / "dask.csv"
    res = cli("batch", str(src), "-o", str(local), "--backend", backend, "-q")
    assert res.exit_code == 0, res.output
    monkeypatch.setattr(batch_mod, "TASK_ROWS", 8)
    res = cli(
        "batch", str(src), "-o", str(remote), "--backend", backend, "--format", "json",
        "--engine", "dask", "--scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert remote.read_bytes() == local.read_bytes()
    summary = json.loads(res.stderr.strip().splitlines()[-1])
    assert summary["workloads"] == 65 and summary["errors"] == 3
    statuses = [r["status"] for r in csv.DictReader(remote.open())]
    assert [i for i, s in enumerate(statuses) if s == "error"] == [3, 17, 40]


def test_local_cluster_started_by_the_command_writes_the_same_bytes(tmp_path: Path) -> None:
    """No scheduler: infersave starts a local cluster of 2 worker processes (and stops it)."""
    src = workload_file(tmp_path)
    outs = []
    for extra in ([], ["--engine", "dask", "--workers", "2"]):
        out = tmp_path / f"out{len(extra)}.csv"
        proc = subprocess.run(
            [sys.executable, "-m", "infersave.cli.main", "batch", str(src), "-o", str(out),
             "-q", *extra],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("nonsense", "'nonsense' is not an address; use tcp://HOST:PORT"),
        ("tcp://127.0.0.1:http", "is not an address"),
        ("udp://127.0.0.1:8786", "unsupported protocol 'udp'"),
        ("refused", "cannot connect to tcp://127.0.0.1:"),
    ],
)
def test_bad_scheduler_address_exits_2_with_one_line(
    tmp_path: Path, address: str, message: str
) -> None:
    if address == "refused":
        address = f"tcp://127.0.0.1:{_refused_port()}"
    out = tmp_path / "out.csv"
    res = cli("batch", str(EXAMPLE), "-o", str(out), "--engine", "dask", "--scheduler", address)
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_scheduler_without_dask_engine_exits_2(tmp_path: Path) -> None:
    res = cli("batch", str(EXAMPLE), "-o", str(tmp_path / "o.csv"), "--scheduler", "x:1")
    assert res.exit_code == 2
    assert res.stderr == "infersave: error: --scheduler needs --engine dask\n"


def test_workers_of_another_version_are_refused(
    tmp_path: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    real = dist._worker_version

    def other() -> str:  # another version on the workers (threads of this process) only
        return real() if threading.current_thread() is threading.main_thread() else "0.0.1"

    other.__qualname__ = other.__name__ = "_worker_version"
    other.__module__ = dist.__name__
    monkeypatch.setattr(dist, "_worker_version", other)
    res = cli(
        "batch", str(EXAMPLE), "-o", str(tmp_path / "o.csv"), "--engine", "dask",
        "--scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert res.exit_code == 2
    assert "run infersave 0.0.1, this is" in res.stderr and res.stderr.count("\n") == 1


def test_check_address_normalizes() -> None:
    assert dist.check_address("127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert dist.check_address(" tls://[::1]:8786 ") == "tls://::1:8786"
    for bad in ("tcp://127.0.0.1:0", "tcp://:8786", "tcp://127.0.0.1:65536"):
        with pytest.raises(InputError):
            dist.check_address(bad)
    with pytest.raises(ValueError, match="engine"):
        batch_mod.solve_stream([], engine="ray")


# --- the streaming itself, on a client that runs tasks when asked ---------------------------


class _Future:
    def __init__(self, client: _Client, fn: Any, args: tuple[Any, ...]) -> None:
        self.client, self.fn, self.args = client, fn, args

    def result(self) -> Any:
        self.client.running -= 1
        return self.fn(*self.args)


class _Client:
    """Counts the tasks in flight (submitted, result not yet taken) and the cancelled ones."""

    def __init__(self) -> None:
        self.running = self.peak = self.submitted = 0
        self.cancelled: list[Any] = []

    def submit(self, fn: Any, *args: Any, pure: bool = True) -> _Future:
        assert pure is False  # the same task twice must run twice (no result cache)
        self.running += 1
        self.submitted += 1
        self.peak = max(self.peak, self.running)
        return _Future(self, fn, args)

    def cancel(self, futures: list[Any]) -> None:
        self.cancelled.extend(futures)


def _scenarios(n: int) -> list[Scenario | Exception]:
    out: list[Scenario | Exception] = []
    for i in range(n):
        if i % 7 == 3:
            out.append(InputError(f"row {i}: bad"))
        else:
            out.append(
                Scenario(model="opt-1.3b", input_len=64 + 5 * i, output_len=1 + i,
                         requests=100, slo_tps=50, region="us-east-1", backend="exhaustive")
            )  # fmt: skip
    return out


def test_stream_on_keeps_order_bounds_tasks_and_reads_lazily() -> None:
    items = _scenarios(40)
    read: list[int] = []

    def lazily() -> Iterator[Scenario | Exception]:
        for i, s in enumerate(items):
            read.append(i)
            yield s

    client, done = _Client(), []
    stream = dist.stream_on(client, lazily(), done.append, lean=True, size=3, in_flight=4)
    first = next(stream)
    assert len(read) == 12  # 4 tasks of 3 rows submitted before the first result
    out = [first, *stream]
    assert client.peak == 4 and client.submitted == 14 and not client.cancelled
    assert sum(done) == 40
    ref = list(batch_mod.solve_stream(items, lean=True))
    assert out == ref
    assert [i for i, o in enumerate(out) if isinstance(o, Exception)] == list(range(3, 40, 7))


def test_stream_on_cancels_the_tasks_in_flight_when_closed() -> None:
    client = _Client()
    stream = dist.stream_on(client, _scenarios(40), None, lean=True, size=3, in_flight=4)
    next(stream)
    stream.close()
    assert len(client.cancelled) == 3  # the first task's result was taken; 3 others pending


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_sigterm_closes_the_local_cluster_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """SIGTERM while a local cluster works: exit 143, no process of the cluster is left, no
    temporary file, and an existing OUTPUT is unchanged."""
    src = tmp_path / "big.csv"
    models = ["opt-1.3b", "llama-3.1-8b", "mistral-7b", "qwen2.5-14b", "mixtral-8x7b"]
    with src.open("w") as fh:
        fh.write("model,input_len,output_len,requests,slo_tps,backend\n")
        for i in range(150_000):
            fh.write(f"{models[i % 5]},{100 + i % 1900},{1 + i % 500},1000,500,exhaustive\n")
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infersave.cli.main", "batch", str(src), "-o", str(out),
         "--engine", "dask", "--workers", "2", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        family: set[int] = set()
        while time.monotonic() < deadline and len(_workers(family)) < 2 and proc.poll() is None:
            family = _descendants(proc.pid)  # 2 worker processes (and a resource tracker)
            time.sleep(0.05)
        assert len(_workers(family)) == 2, "the cluster never started"
        time.sleep(1.5)
        assert proc.poll() is None, "finished before the signal"
        family |= _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and [p for p in family if _alive(p)]:
        time.sleep(0.1)
    assert not [p for p in family if _alive(p)]
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "out.csv"]


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def _workers(pids: set[int]) -> list[int]:
    """The dask worker processes among ``pids`` (spawned by multiprocessing)."""
    out = []
    for p in pids:
        try:
            if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes():
                out.append(p)
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status and os.path.exists(f"/proc/{pid}")


def _worker_settings() -> tuple[str | None, bool]:
    import dask

    profile = dask.config.get("distributed.worker.profile.enabled")
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), bool(profile)


def test_local_cluster_workers_keep_malloc_and_skip_profiling() -> None:
    """The nanny's MALLOC_TRIM_THRESHOLD_=65536 slows the numpy work 1.7x: not in our workers,
    and neither the stack sampling."""
    with dist.open_client(None, 1) as client:
        (settings,) = client.run(_worker_settings).values()
    assert tuple(settings) == (None, False)


class _Lost(Exception):
    """Stands for distributed's exceptions, matched by class name."""


class FutureCancelledError(_Lost):
    pass


class _BrokenFuture:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def result(self) -> Any:
        raise self.exc


class _BrokenClient(_Client):
    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    def submit(self, fn: Any, *args: Any, pure: bool = True) -> Any:
        super().submit(fn, *args, pure=pure)
        return _BrokenFuture(self.exc)


@pytest.mark.parametrize(
    "exc",
    [
        FutureCancelledError("_solve_task-1 cancelled for reason: scheduler-connection-lost."),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_a_lost_cluster_is_one_line_naming_it(exc: Exception) -> None:
    client = _BrokenClient(exc)
    stream = dist.stream_on(client, _scenarios(10), None, True, 3, 2, where="tcp://127.0.0.1:9")
    with pytest.raises(dist.ClusterError) as info:
        next(stream)
    message = str(info.value)
    assert message.startswith("scheduler: tcp://127.0.0.1:9 failed mid-run (")
    assert type(exc).__name__ in message and "\n" not in message
    assert len(client.cancelled) == 1  # the other task in flight


def test_a_bug_in_a_task_is_not_blamed_on_the_cluster() -> None:
    stream = dist.stream_on(_BrokenClient(KeyError("oops")), _scenarios(4), None, True, 3, 2)
    with pytest.raises(KeyError):
        next(stream)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_sigterm_swallowed_inside_a_finalizer_still_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SystemExit of the SIGTERM handler is lost when it fires inside a finalizer or a gc
    callback (dask's client installs one); the run must still stop at the next row, exit 143,
    and leave no output."""

    class Finalizer:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs in here: swallowed

    from infersave.solver import batch_io

    calls = []

    def counted(real: Any) -> Any:
        def one_row(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 5:
                Finalizer()  # collected at once: __del__ runs and sends the signal
            return real(*args, **kwargs)

        return one_row

    # a CSV row is made by rendered_line (rendered in the solver), else by result_row
    for name in ("result_row", "rendered_line"):
        monkeypatch.setattr(batch_io, name, counted(getattr(batch_io, name)))
    out = tmp_path / "out.csv"
    res = cli("batch", str(EXAMPLE), "-o", str(out), "-q", "--backend", "exhaustive")
    assert res.exit_code == 143
    assert len(calls) == 5  # stopped at the row after the signal
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_help_and_local_batch_do_not_import_dask(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from infersave.cli import main\n"
        f"for args in (['--help'], ['batch', '--help'], ['batch', {str(EXAMPLE)!r}, '-o',"
        f" {str(tmp_path / 'o.csv')!r}, '-q', '--backend', 'exhaustive']):\n"
        "    try:\n"
        "        main.app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('DASK=' + ','.join(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip().splitlines()[-1] == "DASK=", proc.stdout
    assert "--engine" in proc.stdout and "--scheduler" in proc.stdout
    assert (tmp_path / "o.csv").exists()
