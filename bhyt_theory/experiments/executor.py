"""Where the runs of a sweep are computed: in this process, or as tasks on Dask.

A sweep (``montecarlo.sweep``) is a list of independent tasks (each the runs
that share one weight draw); ``map_runs`` applies a task function to each
task's specification and returns the results in
the order of the specifications, whichever backend computes them:

- ``Serial`` (the default): one run after another, in this process;
- ``DaskBackend``: one Dask task per run, on a local cluster of worker
  processes (``backend(workers=N)``: one thread per worker) or on an existing
  cluster (``backend(scheduler="tcp://host:8786")``: ``dask scheduler`` on one
  machine, ``dask worker ADDRESS`` on each of the others).

``backend(...)`` is a context manager that makes its backend the one
``map_runs`` uses inside the ``with`` block, so a whole reproduction, or every
sweep of a command, runs on one cluster without passing it down every call.
Dask (the optional extra ``distributed``) is imported only by ``backend`` when
a cluster is asked for. A script that starts a local cluster needs the
``if __name__ == "__main__":`` guard: its worker processes are spawned, and
import the script's main module again (notebooks need nothing).

Results do not depend on the backend, bit for bit: every task runs with the
torch intra-op thread count of the process that called ``map_runs`` (float32
reductions are split across threads, so the last bits of a run's statistics
depend on that count), and the tables come back unchanged (pickled). Workers on
machines with other CPU kernels (another instruction set, another torch build)
may still differ in the last bits.

Resilience rests on the per-run cache of ``montecarlo`` (one file per run,
written atomically as soon as the run is finished): a task reads its runs from
the cache when their files exist, so a task that Dask recomputes — because its
worker died holding its result, or because the sweep is restarted — reads
instead of computing. A worker that dies mid-task loses the runs of that task not
yet stored; the scheduler gives its task to another worker, up
to ``distributed.scheduler.allowed-failures`` deaths of workers running it
(Dask's default, 3; then the task fails with ``KilledWorker``, which stops the
sweep: a run that kills every worker it touches is a bug to see, not to retry
forever). With several machines the cache folder must be one folder that every
worker and the submitting process see (a shared filesystem), or finished runs
are not shared.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch
from tqdm.auto import tqdm

Spec = TypeVar("Spec")
Result = TypeVar("Result")

# Seconds to wait for an existing scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 5
# Dask configuration of the local cluster's worker processes (Dask passes it on
# to them). Dask sets MALLOC_TRIM_THRESHOLD_=65536 in every worker it spawns; a
# fixed trim threshold also freezes glibc's mmap threshold, so every large
# activation buffer is a fresh mmap, page-faulted again: a streamed run took 1.9×
# the CPU time that way (width 256, depth 16, T 128, batch 4; 1.0e6 minor page
# faults against 1.4e5). None unsets it, leaving glibc's adaptive thresholds. The
# workers' sampling profiler (every 10 ms) costs CPU the runs could use. Workers
# of an existing cluster need the same settings in their own Dask configuration
# (README).
WORKER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
}


class SchedulerUnreachable(ConnectionError):
    """The Dask scheduler given by address did not answer within the timeout."""


class Serial:
    """Compute every run in this process, one after another (the default backend)."""

    in_process = True

    def map(
        self,
        function: Callable[[Spec], Result],
        specs: Sequence[Spec],
        desc: str,
        progress: bool,
        on_result: Callable[[int, Result], None] | None,
    ) -> list[Result]:
        results = []
        for index, spec in enumerate(tqdm(specs, desc=desc, unit="run", disable=None if progress else True)):
            results.append(function(spec))
            if on_result is not None:
                on_result(index, results[-1])
        return results


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` for the ``with`` block (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _with_threads(function: Callable[[Spec], Result], threads: int, spec: Spec) -> Result:
    """``function(spec)`` with ``threads`` torch intra-op threads (restored afterwards)."""
    with torch_threads(threads):
        return function(spec)


class DaskBackend:
    """Compute every run as one task of the Dask cluster behind ``client``.

    Results are collected as tasks finish (``as_completed``; the progress bar
    counts finished tasks) and returned in the order of the specifications.
    """

    in_process = False

    def __init__(self, client) -> None:
        self.client = client

    def map(
        self,
        function: Callable[[Spec], Result],
        specs: Sequence[Spec],
        desc: str,
        progress: bool,
        on_result: Callable[[int, Result], None] | None,
    ) -> list[Result]:
        from dask.distributed import as_completed

        threads = torch.get_num_threads()
        # pure=False: a task is a run to compute, keyed uniquely; two equal
        # specifications are two tasks (the second reads the first's cache file).
        futures = [self.client.submit(_with_threads, function, threads, spec, pure=False) for spec in specs]
        index_of = {future.key: index for index, future in enumerate(futures)}
        results: list = [None] * len(specs)
        bar = tqdm(total=len(specs), desc=desc, unit="run", disable=None if progress else True)
        try:
            for future, result in as_completed(futures, with_results=True):
                index = index_of[future.key]
                results[index] = result
                # Drop the finished task's result from the cluster's memory.
                futures[index] = None
                bar.update()
                if on_result is not None:
                    on_result(index, result)
        finally:
            bar.close()
            self.client.cancel([future for future in futures if future is not None])
        return results


# The innermost ``backend(...)`` block's backend; None outside every block.
_CURRENT: contextvars.ContextVar[Serial | DaskBackend | None] = contextvars.ContextVar("backend", default=None)


def current() -> Serial | DaskBackend:
    """The backend ``map_runs`` uses here: the innermost ``backend(...)`` block's, else ``Serial()``."""
    return _CURRENT.get() or Serial()


def map_runs(
    function: Callable[[Spec], Result],
    specs: Sequence[Spec],
    desc: str = "runs",
    progress: bool = True,
    on_result: Callable[[int, Result], None] | None = None,
) -> list[Result]:
    """``[function(spec) for spec in specs]`` on the current backend.

    Parameters
    ----------
    function : callable
        The task: one run from its specification. On Dask it must be picklable
        (a module-level function or a ``functools.partial`` of one).
    specs : sequence
        One specification per run (picklable on Dask).
    desc : str
        Label of the progress bar.
    progress : bool
        Progress bar over finished runs (on a terminal only).
    on_result : callable, optional
        Called as ``on_result(index, result)`` in this process as each run
        finishes (in order serially, in order of completion on Dask).

    Returns
    -------
    list
        ``function(spec)`` for every spec, in the order of ``specs``.
    """
    return current().map(function, list(specs), desc, progress, on_result)


@contextlib.contextmanager
def backend(
    workers: int | None = None, scheduler: str | None = None, connect_timeout: float = CONNECT_TIMEOUT_S
) -> Iterator[Serial | DaskBackend]:
    """Make a backend current for the ``with`` block (and close its cluster after it).

    Parameters
    ----------
    workers : int, optional
        Start a local Dask cluster of ``workers`` processes, one thread each.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) to send tasks to.
    connect_timeout : float
        Seconds to wait for ``scheduler`` to answer.

    Neither: the serial in-process backend. Both: ``ValueError``.

    Raises
    ------
    SchedulerUnreachable
        ``scheduler`` did not answer within ``connect_timeout`` seconds.
    ImportError
        A cluster was asked for and Dask is not installed.
    """
    if workers is not None and scheduler is not None:
        raise ValueError("give workers (a local cluster) or scheduler (an existing one), not both")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an integer ≥ 1; got {workers!r}")
    with contextlib.ExitStack() as stack:
        if workers is None and scheduler is None:
            chosen: Serial | DaskBackend = Serial()
        else:
            chosen = DaskBackend(stack.enter_context(_client(workers, scheduler, connect_timeout)))
        token = _CURRENT.set(chosen)
        stack.callback(_CURRENT.reset, token)
        yield chosen


@contextlib.contextmanager
def _client(workers: int | None, scheduler: str | None, connect_timeout: float):
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError as error:
        raise ImportError(
            'Dask is needed for workers/scheduler: pip install -e ".[distributed]"'
        ) from error
    if scheduler is None:
        with (
            dask.config.set(WORKER_CONFIG),
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(scheduler, timeout=connect_timeout)
    except (OSError, TimeoutError) as error:
        raise SchedulerUnreachable(
            f"cannot reach the Dask scheduler at {scheduler} within {connect_timeout:g} s ({error})"
        ) from error
    with client:
        yield client
