"""Where the cases run: in this process (one worker) or on Ray actors (on this machine or a cluster).

Both runners take the cases to do and call ``on_outcome`` in the driver's thread as each case
ends, in the order they end. Ray places the actors and carries the cases and their outcomes; the
driver only keeps every ready actor busy with one case at a time (so a killed batch loses at most
one case per worker) and replaces nothing by hand: an actor that dies is restarted by Ray
(``max_restarts``), the case it held is recorded as failed.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SSSSegError
from .cases import Case
from .worker import CaseOutcome, CaseWorker, ModelSpec

OnOutcome = Callable[[CaseOutcome], None]
RAY_PIN = "ray==2.60.0"
NEEDS_RAY = f"needs Ray, which is not installed: pip install 'sssseg[cluster]' (or pip install {RAY_PIN})"
LOCAL_OBJECT_STORE_BYTES = 128 << 20  # outcomes are a few hundred bytes: keep Ray's shared memory small
WAIT_TICK_S = 1.0
# Ray reads this at import: "0" makes a single-machine instance use 127.0.0.1, not the host's network address.
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True)
class RayOptions:
    """``workers``: actors to start (None: as many as the cluster's CPUs or GPUs allow);
    ``address``: an existing cluster (None: a private local one); ``cpus_per_worker``,
    ``gpus_per_worker``: Ray resources per actor; ``start_timeout_s``: how long to wait for the
    first actor to load its model before giving up."""

    workers: int | None = None
    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    start_timeout_s: float = 300.0


class InProcessRunner:
    """One worker in the batch's own process (no Ray needed)."""

    def __init__(self, spec: ModelSpec) -> None:
        self._worker = CaseWorker(spec)

    def start(self) -> str:
        """Load the model; raise its error (CheckpointError, ...) when it cannot be loaded."""
        message, code = self._worker.load()
        if message:
            raise _error(message, code)
        return "1 worker in this process"

    def run(self, cases: Sequence[Case], out_dir: Path, on_outcome: OnOutcome) -> None:
        for case in cases:
            on_outcome(self._worker.segment(case, str(out_dir)))

    def close(self) -> None:
        pass


class RayRunner:
    """Ray actors (``ray.remote(CaseWorker)``), each loading the model once."""

    def __init__(self, spec: ModelSpec, options: RayOptions) -> None:
        self._spec, self._options = spec, options
        if options.address is None:  # a private instance: keep it on the loopback address (read at import)
            os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
        self._ray = import_ray()
        self._loading: dict[object, object] = {}  # ready ref -> actor
        self._idle: list[object] = []

    def start(self) -> str:
        """Start or join Ray, start the actors, wait (bounded) until at least one has its model."""
        ray, options = self._ray, self._options
        if options.address:
            ray.init(address=options.address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=max(1, round(options.cpus_per_worker * (options.workers or 1))),
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False,
                     logging_level=logging.ERROR, log_to_driver=False)
        count = options.workers or self._workers_the_cluster_fits()
        actor_class = ray.remote(CaseWorker).options(
            num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker, max_restarts=-1, max_task_retries=0)
        actors = [actor_class.remote(self._spec) for _ in range(count)]
        self._loading = {actor.load.remote(): actor for actor in actors}
        self._collect_ready(options.start_timeout_s)
        if not self._idle:
            raise SSSSegError(f"no Ray worker was ready within {options.start_timeout_s:.0f} s: {count} worker(s) "
                              f"asked for {options.cpus_per_worker:g} CPU and {options.gpus_per_worker:g} GPU each; "
                              f"the cluster has {_resources(ray)}")
        where = options.address or "a local Ray instance"
        return f"{count} Ray worker(s) on {where} ({len(self._idle)} ready)"

    def run(self, cases: Sequence[Case], out_dir: Path, on_outcome: OnOutcome) -> None:
        ray = self._ray
        todo, running = deque(cases), {}
        while todo or running:
            while self._idle and todo:
                actor, case = self._idle.pop(), todo.popleft()
                running[actor.segment.remote(case, str(out_dir))] = (actor, case)
            if not running and not self._loading:
                raise SSSSegError("every Ray worker is gone; the cases not done stay to do: run the batch again")
            ready, _ = ray.wait([*running, *self._loading], num_returns=1, timeout=WAIT_TICK_S)
            for ref in ready:
                if ref in self._loading:
                    self._collect_ready(0.0)
                    continue
                actor, case = running.pop(ref)
                self._idle.append(actor)
                on_outcome(self._outcome(ref, case))

    def close(self) -> None:
        if self._ray.is_initialized():
            self._ray.shutdown()

    def _outcome(self, ref: object, case: Case) -> CaseOutcome:
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as error:  # the worker process died on this case (memory, crash)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return CaseOutcome(case, f"the worker died on this case ({type(error).__name__}: {reason})")

    def _collect_ready(self, timeout_s: float) -> None:
        """Move actors whose model is loaded to the idle list (waiting up to ``timeout_s`` for the first);
        a load error (bad checkpoint) ends the batch with that error."""
        if not self._loading:
            return
        first, _ = self._ray.wait(list(self._loading), num_returns=1, timeout=timeout_s)
        if not first:
            return
        ready, _ = self._ray.wait(list(self._loading), num_returns=len(self._loading), timeout=0)
        for ref in ready:
            actor = self._loading.pop(ref)
            message, code = self._ray.get(ref)
            if message:
                raise _error(message, code)
            self._idle.append(actor)

    def _workers_the_cluster_fits(self) -> int:
        resources = self._ray.cluster_resources()
        options = self._options
        if options.gpus_per_worker > 0:
            return max(1, int(resources.get("GPU", 0) // options.gpus_per_worker))
        return max(1, int(resources.get("CPU", 1) // options.cpus_per_worker))


def require_ray() -> None:
    """SSSSegError saying how to install Ray when it is not installed (checked before any work)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise SSSSegError(f"parallel workers and --ray-address {NEEDS_RAY}")


def import_ray():  # noqa: ANN201  (the ray module)
    """``ray``, or SSSSegError saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise SSSSegError(f"parallel workers and --ray-address {NEEDS_RAY}") from error
    return ray


def make_runner(spec: ModelSpec, options: RayOptions) -> InProcessRunner | RayRunner:
    """In-process for one local worker; Ray otherwise (SSSSegError naming the package when it is missing)."""
    if options.address is None and (options.workers or 1) == 1:
        return InProcessRunner(spec)
    return RayRunner(spec, options)


def default_cpus_per_worker(workers: int | None, address: str | None) -> float:
    """This machine's cores shared among the local workers; 1 per worker on a cluster."""
    if address is not None or not workers:
        return 1.0
    return float(max(1, (os.cpu_count() or 1) // workers))


def _resources(ray) -> str:  # noqa: ANN001
    total = ray.cluster_resources()
    return ", ".join(f"{k} {v:g}" for k, v in sorted(total.items()) if k in ("CPU", "GPU", "memory")) or "nothing"


def _error(message: str, code: int) -> SSSSegError:
    """The errors.py exception for a worker's load error (its exit code kept)."""
    from ..runner import ErrorEvent, error_from_event

    return error_from_event(ErrorEvent(message, code))
