"""Get every layer result a run needs: from the store, from another process sharing the store,
or computed here. Only complete searches are stored; Ctrl-C stops the work with Interrupted,
keeping everything finished so far."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dse.pipeline.executor import run_tasks
from dse.pipeline.layer import LayerTask, map_layer, row_problem
from dse.pipeline.store import ResultStore

WAIT_POLL_S = 0.5


class Interrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C) before every result was in; finished results are stored.
    A KeyboardInterrupt, so callers that do not look for it still treat it as Ctrl-C."""

    def __init__(self, done: dict) -> None:
        super().__init__("interrupted")
        self.done = done
        self.missing: list[str] = []  # what the caller could not finish, for the message


@dataclass
class Work:
    results: dict = field(default_factory=dict)
    computed: set = field(default_factory=set)
    reused: set = field(default_factory=set)


def stored(store: ResultStore, task: LayerTask) -> dict | None:
    """A stored result for the task, checked to be one map_layer writes (StoreError if not)."""
    value = store.get(task.key)
    if value is None:
        return None
    problem = row_problem(value, [lv.name for lv in task.arch.levels if not lv.is_dummy])
    if problem is not None:
        raise store.bad_row(task.key, *problem)
    return value


def gather(tasks: list[LayerTask], store: ResultStore, jobs: int = 1,
           executor: str = "local", scheduler: str | None = None, batch: int = 1,
           local_fn: Callable | None = None,
           on_result: Callable[[LayerTask, dict, bool], None] | None = None) -> Work:
    """Results for all `tasks` (unique keys). A task is claimed in the store just before it
    is computed, so processes sharing the store split the work; tasks claimed by a live
    process are waited for. `local_fn` replaces map_layer for in-process runs (progress).
    KeyboardInterrupt (or a search cut short by it) raises Interrupted."""
    work = Work()
    fn = local_fn if (local_fn is not None and jobs <= 1 and executor == "local") else map_layer

    def take(task: LayerTask, value: dict, computed: bool) -> None:
        work.results[task.key] = value
        (work.computed if computed else work.reused).add(task.key)
        if on_result:
            on_result(task, value, computed)

    pending = list(tasks)
    try:
        while pending:
            elsewhere: list[LayerTask] = []

            def claimed(batch_of=pending, elsewhere=elsewhere):
                for t in batch_of:
                    value = stored(store, t)
                    if value is not None:
                        take(t, value, False)
                    elif store.claim(t.key):
                        yield t
                    else:
                        elsewhere.append(t)

            for task, value in run_tasks(fn, claimed(), jobs, executor, scheduler, batch):
                if value.get("interrupted"):
                    raise KeyboardInterrupt
                store.put(task.key, value)
                take(task, value, True)
            if elsewhere:
                time.sleep(WAIT_POLL_S)  # another process is computing these: look again
            pending = elsewhere
    except KeyboardInterrupt:
        raise Interrupted(work.results) from None
    finally:
        store.release()
    return work
