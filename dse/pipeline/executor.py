"""Run independent tasks locally (processes) or on a dask.distributed cluster. Results come
back as they finish; callers key them, so completion order never shows in the outputs.

Local workers never outlive the run: they ignore SIGINT (the parent handles Ctrl-C and
terminates them at once, in-flight searches included), and each watches its parent and exits
when the parent is gone, so `kill -9` of `dse` leaves no worker behind. Tasks are taken from
the iterable only when a worker is free, so a caller can claim work lazily.
"""

from __future__ import annotations

import errno
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from dse import install_hint
from dse.errors import SpecError
from dse.pipeline.store import process_exists

PARENT_POLL_S = 0.2


def _init_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="dse-parent-watch").start()


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone: this worker was re-parented, or the pid of `dse` no
    longer exists (with a fork server in between, the direct parent is not `dse`)."""
    first = os.getppid()
    while os.getppid() == first and process_exists(parent):
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def run_tasks(fn: Callable, tasks: Iterable, jobs: int = 1, executor: str = "local",
              scheduler: str | None = None, batch: int = 1) -> Iterator[tuple]:
    """Yield (task, result) pairs as tasks finish. `batch` tasks go to a dask worker at a time
    (so each submitted unit is worth scheduling)."""
    if executor == "dask":
        tasks = list(tasks)
        if tasks:
            yield from _run_dask(fn, tasks, scheduler, max(1, batch))
        return
    if jobs <= 1:
        for t in tasks:
            yield t, fn(t)
        return
    yield from _run_pool(fn, iter(tasks), jobs)


def _run_pool(fn: Callable, tasks: Iterator, jobs: int) -> Iterator[tuple]:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    first = next(tasks, None)
    if first is None:
        return
    pool = ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(os.getpid(),))
    inflight = {pool.submit(fn, first): first}
    for task in itertools.islice(tasks, jobs - 1):
        inflight[pool.submit(fn, task)] = task
    try:
        while inflight:
            finished, _ = wait(inflight, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in finished:
                task = inflight.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    raise OSError(errno.ECHILD, "worker process died") from None
                yield task, result
                nxt = next(tasks, None)
                if nxt is not None:
                    inflight[pool.submit(fn, nxt)] = nxt
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _stop_workers(pool) -> None:
    """Stop in-flight work at once (Ctrl-C, an error): shutdown() alone waits for it."""
    kill = getattr(pool, "kill_workers", None)  # Python >= 3.14
    if kill is not None:
        kill()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.kill()


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
