"""Run independent tasks locally (processes) or on a dask.distributed cluster. Results come
back as they finish; callers key them, so completion order never shows in the outputs."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from dse import install_hint
from dse.errors import SpecError


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_tasks(fn: Callable, tasks: list, jobs: int = 1, executor: str = "local",
              scheduler: str | None = None, batch: int = 1) -> Iterator[tuple]:
    """Yield (task, result) pairs as tasks finish. `batch` tasks go to a dask worker at a time
    (so each submitted unit is worth scheduling)."""
    if not tasks:
        return
    if executor == "dask":
        yield from _run_dask(fn, tasks, scheduler, max(1, batch))
        return
    if jobs <= 1 or len(tasks) == 1:
        for t in tasks:
            yield t, fn(t)
        return
    with ProcessPoolExecutor(jobs, initializer=_ignore_sigint) as pool:
        futures = {pool.submit(fn, t): t for t in tasks}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _batch_call(fn: Callable, tasks: list) -> list:
    return [fn(t) for t in tasks]


def _run_dask(fn: Callable, tasks: list, scheduler: str | None, size: int):
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise SpecError("the dask executor needs the optional extra `dask`",
                        hint=install_hint("dask")) from None
    client = Client(scheduler) if scheduler else Client(processes=False)
    try:
        groups = [tasks[i:i + size] for i in range(0, len(tasks), size)]
        futures = {client.submit(_batch_call, fn, g, pure=False): g for g in groups}
        for fut in dask_completed(list(futures)):
            yield from zip(futures[fut], fut.result(), strict=True)
    finally:
        client.close()
