"""Batch tasks on a dask.distributed cluster (``infersave batch --engine dask``).

The cluster runs the very tasks of the local engine (:func:`~infersave.solver.batch._solve_task`
on the same slices of the input, :func:`~infersave.solver.batch._tasks`), so its outcomes are
bit-identical to a single-process run: the task boundaries never change a result (each row is
solved on its own numbers), and results come back pickled, which keeps every float exact. The
input is read lazily and at most :data:`IN_FLIGHT_PER_THREAD` tasks per worker thread are in
flight, so memory stays flat in the number of workloads, as with the local engine; outcomes are
yielded in input order.

With an address (``tcp://HOST:PORT``) the work goes to an existing scheduler, whose workers must
have the same infersave version installed (checked before the first task); without one a local
cluster of ``workers`` processes is started on 127.0.0.1 and shut down at the end. On any exit
(the end, an exception, Ctrl-C, SIGTERM or closing the iterator) the tasks in flight are
cancelled and the client (and a cluster started here) closed.

``dask.distributed`` is an optional dependency (the ``cluster`` extra); this module imports it
only when a cluster is used.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from infersave.solver.scenario import InputError

if TYPE_CHECKING:
    from infersave.solver.batch import Item, Outcome, Progress
    from infersave.solver.records import BatchResult

CONNECT_TIMEOUT_S = 10.0
"""Seconds to wait for the scheduler (a refused connection fails at once)."""

IN_FLIGHT_PER_THREAD = 2
"""Tasks submitted ahead per worker thread of the cluster: enough to keep every worker busy
while one result travels back, few enough that memory stays flat."""


LOCAL_WORKER_CONFIG: dict[str, object] = {
    # the nanny's default MALLOC_TRIM_THRESHOLD_=65536 makes glibc return every freed numpy
    # buffer to the kernel: the exhaustive batch ran 1.7x slower (1.07 s instead of 0.64 s for
    # 4,700 workloads, measured with the variable set in one plain process)
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # no stack sampling every 10 ms and memory polling every 100 ms in a task's way
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
}
"""The dask settings of a local cluster's workers (a remote cluster keeps its own; the README
says which to set there)."""


class ClusterError(InputError):
    """The scheduler cannot be used (bad address, unreachable, workers without infersave, or
    ``dask.distributed`` not installed); a one-line message (exit code 2 on the command line)."""


def check_address(address: str) -> str:
    """``address`` (``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``HOST:PORT``) normalized to
    ``protocol://host:port``, without connecting.

    Raises:
        ClusterError: if the address cannot be parsed or has no port.
    """
    host, port, protocol = _split(address)
    return f"{protocol}://{host}:{port}"


def _split(address: str) -> tuple[str, int, str]:
    text = address.strip()
    protocol, sep, rest = text.partition("://")
    if not sep:
        protocol, rest = "tcp", text
    if protocol not in ("tcp", "tls"):
        raise ClusterError(
            f"scheduler: unsupported protocol {protocol!r} in {address!r}; use tcp://HOST:PORT"
        )
    host, sep, port_text = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ClusterError(f"scheduler: {address!r} is not an address; use tcp://HOST:PORT")
    return host, int(port_text), protocol


def _probe(address: str) -> None:
    """Fail at once (not after the client's timeout) when nothing listens at ``address``."""
    host, port, _ = _split(address)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(f"scheduler: cannot connect to {address}: {reason}") from None


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            "engine dask needs dask.distributed: pip install 'infersave[cluster]'"
        ) from None
    return distributed


def _worker_version() -> str:
    """The installed infersave version (run on a worker, and here)."""
    from importlib.metadata import version

    return version("infersave")


def _ignore_interrupt(distributed: Any) -> Any:
    """A worker plugin for the local cluster's workers: Ctrl-C reaches the whole process group,
    and the parent handles it (cancels, closes the cluster), so a worker ignores it rather than
    print a traceback; SIGTERM still stops it. (Built here: ``distributed`` is imported late.)"""

    class IgnoreInterrupt(distributed.WorkerPlugin):  # type: ignore[misc, name-defined]
        def setup(self, worker: Any) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupt()


@contextlib.contextmanager
def open_client(address: str | None, workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address``, or of a local cluster of
    ``workers`` single-threaded processes on 127.0.0.1 when ``address`` is
    None; closed (the local cluster too) on exit.

    Raises:
        ClusterError: bad or unreachable address, workers that cannot run infersave or run
            another version of it, ``dask.distributed`` missing.
    """
    distributed = _import_distributed()
    here = _worker_version()

    with contextlib.ExitStack() as stack:
        # the client logs a lost scheduler with tracebacks; the one-line error says it instead
        # (dask's logging config gives some of its loggers levels of their own)
        names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]
        for log in map(logging.getLogger, ["distributed", *names]):
            stack.callback(log.setLevel, log.level)
            log.setLevel(logging.CRITICAL)
        if address is None:
            import dask

            with dask.config.set(LOCAL_WORKER_CONFIG):
                cluster = distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    # its HTTP server on a free loopback port: never 8787 of another cluster
                    dashboard_address="127.0.0.1:0",
                    # the workers' own logs: a worker whose heartbeat races the scheduler's
                    # shutdown logs an ERROR with a traceback (seen on a loaded machine); what
                    # matters reaches the parent as a failed task and its one-line error
                    silence_logs=logging.CRITICAL,
                )
            stack.callback(cluster.close)
            client = distributed.Client(cluster, set_as_default=False)
            stack.callback(client.close)
            client.register_plugin(_ignore_interrupt(distributed), name="infersave-ignore-sigint")
        else:
            address = check_address(address)
            _probe(address)
            client = _connect(distributed, address)
            stack.callback(client.close)
            try:
                version = client.submit(_worker_version, pure=False).result()
            except Exception as exc:
                raise ClusterError(
                    f"scheduler: the workers of {address} cannot run infersave"
                    f" ({type(exc).__name__}: {exc}); install infersave {here} on every worker"
                ) from None
            if version != here:
                raise ClusterError(
                    f"scheduler: the workers of {address} run infersave {version}, this is"
                    f" {here}; install the same version on every worker"
                )
        yield client


def _connect(distributed: Any, address: str) -> Any:
    """``Client(address)``; a failed attempt's half-built client is collected here, so that
    its finalizer's complaint does not reach stderr after the one-line error."""
    import gc
    import sys

    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, ValueError, TimeoutError) as exc:
        message = f"scheduler: cannot connect to {address}: {exc}"
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise ClusterError(message)


def _threads(client: Any) -> int:
    """Worker threads of the cluster (at least 1)."""
    info = client.scheduler_info()
    return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))


_LOST = frozenset(
    {"FutureCancelledError", "CancelledError", "KilledWorker", "CommClosedError", "TimeoutError"}
)
"""Names of the exceptions (or their bases) that mean the cluster, not the task, failed."""


def _result(future: Any, where: str) -> Any:
    """``future.result()``; a lost scheduler or worker is a one-line :class:`ClusterError`."""
    try:
        return future.result()
    except Exception as exc:
        names = {c.__name__ for c in type(exc).__mro__}
        if isinstance(exc, OSError) or names & _LOST:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterError(
                f"scheduler: {where} failed mid-run ({type(exc).__name__}: {reason});"
                " nothing was written"
            ) from None
        raise


def stream_on(
    client: Any,
    scenarios: Iterable[Item],
    progress: Progress | None,
    lean: bool,
    size: int,
    in_flight: int,
    where: str = "the cluster",
) -> Iterator[Outcome | BatchResult]:
    """Outcomes of ``scenarios`` in input order, solved on ``client`` (anything with
    ``submit(fn, *args, pure=False)`` returning a future with ``result()``, and
    ``cancel(futures)``) in tasks of about ``size`` rows, at most ``in_flight`` tasks ahead.
    The input's exceptions are their own outcome and never travel. Tasks still in flight are
    cancelled on any exit.

    Raises:
        ClusterError: the scheduler or a worker was lost (``where`` names it).
    """
    from infersave.solver.batch import _solve_task, _tasks

    pending: deque[tuple[list[Item], Any]] = deque()

    def collect() -> Iterator[Outcome | BatchResult]:
        task, future = pending.popleft()
        solved = iter(_result(future, where))
        if progress is not None:
            progress(len(task))
        for s in task:
            yield s if isinstance(s, Exception) else next(solved)

    try:
        for task in _tasks(scenarios, size):
            todo = [s for s in task if not isinstance(s, Exception)]
            pending.append((task, client.submit(_solve_task, todo, lean, pure=False)))
            if len(pending) >= in_flight:
                yield from collect()
        while pending:
            yield from collect()
    finally:
        if pending:
            client.cancel([f for _, f in pending])


def dask_stream(
    scenarios: Iterable[Item],
    address: str | None,
    workers: int,
    progress: Progress | None,
    lean: bool,
    task_size: Callable[[int], int],
) -> Iterator[Outcome | BatchResult]:
    """The outcomes of :func:`~infersave.solver.batch.solve_stream` with ``engine="dask"``:
    ``task_size(threads)`` gives the rows per task for the cluster's worker threads.

    Raises:
        ClusterError: as :func:`open_client` (on the first ``next``).
    """
    with open_client(address, workers) as client:
        threads = _threads(client)
        stream = stream_on(
            client,
            scenarios,
            progress,
            lean,
            task_size(threads),
            IN_FLIGHT_PER_THREAD * threads + 1,
            where=address or "the local cluster",
        )
        with contextlib.closing(stream):
            yield from stream
