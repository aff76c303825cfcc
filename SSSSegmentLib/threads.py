"""How many CPU threads torch uses: ``--threads N``, else ``$SSSSEG_THREADS``, else a default by use.

torch's own default is one thread per core. Its threads wait for each other at every operation, so
when another busy process holds one of a 2-core machine's cores, a 2-thread torch waits on its
descheduled thread again and again: an interactive click went from 50-100 ms to 1.4-3.2 s. Defaults
(measured: docs/results.md, *Threads*):

- interactive refinement (Slicer's *Refine* panel, ``InteractiveSession``), which runs inside
  Slicer's own process: the usable cores less one (at least 1), leaving a core to Slicer's UI;
- ``sssseg segment`` / ``demo`` and the Slicer module's engine process: the usable cores less those
  the 1-minute load average says are busy (rounded), at least 1: every core on an idle machine
  (torch's default, the fastest there), one thread on a 2-core machine with another job running.

``SSSSEG_THREADS`` (a whole number >= 1) sets both; ``--threads`` sets one command's.
"""

from __future__ import annotations

import os

from .errors import InputError

THREADS_ENV = "SSSSEG_THREADS"
_chosen: list[int] = []  # the count use_threads set in this process (read by prompts.parallel)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads(interactive: bool = False) -> int:
    """The default when neither ``--threads`` nor ``$SSSSEG_THREADS`` is given (see the module doc)."""
    cores = usable_cores()
    return max(1, cores - 1) if interactive else max(1, cores - busy_cores())


def busy_cores() -> int:
    """Cores other work keeps busy now: the 1-minute load average, rounded (0 where the system has none)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this platform
        return 0
    return int(load + 0.5)


def resolve_threads(requested: int | None = None, interactive: bool = False) -> int:
    """``requested``, else ``$SSSSEG_THREADS``, else :func:`default_threads`; InputError for a value below 1
    or an environment value that is not a whole number."""
    if requested is not None:
        if requested < 1:
            raise InputError(f"--threads must be at least 1, got {requested}")
        return requested
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return default_threads(interactive)
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"${THREADS_ENV} must be a whole number of threads >= 1, got {text!r}")
    return int(text)


def use_threads(requested: int | None = None, interactive: bool = False) -> int:
    """Set torch's intra-op thread count by :func:`resolve_threads`; returns it."""
    import torch

    threads = resolve_threads(requested, interactive)
    torch.set_num_threads(threads)
    _chosen[:] = [threads]
    return threads


def chosen_threads() -> int | None:
    """The thread count :func:`use_threads` set in this process, or None when it was never called."""
    return _chosen[0] if _chosen else None
