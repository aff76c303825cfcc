"""Wall time per pipeline stage, accumulated over batches (for ``SegmentationResult.timings_s``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageClock:
    """Seconds per stage name; a stage entered several times (once per batch) adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as (part of) stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    @contextmanager
    def module(self, module: object, name: str) -> Iterator[None]:
        """Inside the block, every forward call of ``module`` (a torch ``nn.Module``) counts as stage
        ``name`` (forward hooks, removed on exit); the caller subtracts it from its own enclosing stage."""
        starts: list[float] = []
        pre = module.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
        post = module.register_forward_hook(lambda *_: self.add(name, time.perf_counter() - starts.pop()))
        try:
            yield
        finally:
            pre.remove()
            post.remove()
