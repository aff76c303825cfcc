"""Semi-supervised training (supervised, FixMatch, UniMatch V2, SSS) in one harness.

Import as ``SSSSegmentLib.training`` (the sam2 wheel installs an unrelated top-level ``training``).
``TrainConfig`` / ``load_train_config`` import without torch; ``run_training`` and ``main_train``
import the engine when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import METHODS, TrainConfig, load_train_config

if TYPE_CHECKING:
    from .loop import TrainResult

__all__ = ["METHODS", "TrainConfig", "load_train_config", "main_train", "run_training"]


def run_training(config: TrainConfig, resume: bool = False, progress=None) -> TrainResult:  # noqa: ANN001
    """Train as ``config`` says; see ``loop.run_training``."""
    from ..progress import silent
    from .loop import run_training as _run

    return _run(config, resume=resume, progress=progress or silent)


def main_train(argv: list[str] | None = None) -> int:
    """``sssseg train --config CONFIG.yaml [--resume]``; see ``entry.main_train``."""
    from .entry import main_train as _main

    return _main(argv)
