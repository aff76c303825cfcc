"""Small, fast training runs on CPU for the training tests (the dataset is conftest's ``tiny_dataset``)."""

from __future__ import annotations

from pathlib import Path

from SSSSegmentLib.training import TrainConfig

FAST = {"batch_labeled": 2, "batch_unlabeled": 2, "warmup_steps": 1, "device": "cpu", "max_prompts": 4,
        "log_every": 1}


def train_config(dataset: Path, out: Path, **changes: object) -> TrainConfig:
    """A TrainConfig on ``dataset`` writing to ``out``, with the FAST settings and ``changes``."""
    return TrainConfig(dataset_dir=str(dataset), output_dir=str(out), **{**FAST, **changes})
