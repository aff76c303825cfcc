"""Slices of a volume processed on a thread pool.

scipy's distance transforms and labelling release the GIL, so per-slice anatomy (closing the skull
ring, slice by slice) runs on several cores at once. The pool has one thread per usable core, at most
``MAX_THREADS``, no more than ``OMP_NUM_THREADS`` when that is set (as torch reads it) and no more
than the count ``threads.use_threads`` chose (``--threads``, ``$SSSSEG_THREADS``), so a batch job
that runs one process per core keeps one thread each.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

MAX_THREADS = 8

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def slice_threads() -> int:
    """Threads for per-slice work: usable cores, capped by ``MAX_THREADS``, ``OMP_NUM_THREADS`` and the
    process's chosen thread count."""
    from ..threads import chosen_threads, usable_cores

    cores = min(usable_cores(), chosen_threads() or MAX_THREADS)
    limit = os.environ.get("OMP_NUM_THREADS", "")
    if limit.strip().isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return max(1, min(cores, MAX_THREADS))


def map_slices(fn: Callable[[_In], _Out], items: Sequence[_In]) -> list[_Out]:
    """``[fn(x) for x in items]``, in order, on ``slice_threads()`` threads (in this thread when 1)."""
    workers = min(slice_threads(), len(items))
    if workers < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers, thread_name_prefix="sssseg-slices") as pool:
        return list(pool.map(fn, items))
