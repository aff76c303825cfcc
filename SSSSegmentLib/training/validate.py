"""Validation with the full automatic pipeline (coarse head -> PCPG prompts -> decoder -> fusion)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..volumes.geometry import CTVolume


@dataclass(frozen=True)
class ValidationCase:
    case_id: str
    volume: CTVolume
    labels_zyx: np.ndarray


@dataclass(frozen=True)
class ValidationScores:
    """Per-class mean Dice (NaN = class absent from all cases and predictions), their mean, HD95."""

    dice_by_class: dict[str, float]
    mean_dice: float
    mean_hd95_mm: float

    @property
    def score(self) -> float:
        """What the best checkpoint is chosen by: mean Dice (NaN counts as 0)."""
        return 0.0 if math.isnan(self.mean_dice) else self.mean_dice


def evaluate_model(model: torch.nn.Module, cases: Sequence[ValidationCase], device: torch.device,
                   inference_config: object | None = None) -> ValidationScores:
    """Segment every case with ``segment_volume`` (no ground-truth prompts) and summarise."""
    from ..evaluation import evaluate_case, summarize
    from ..inference import segment_volume

    config = inference_config  # None: segment_volume uses the model's recommended settings
    results = []
    for case in cases:
        pred = segment_volume(case.volume, model, device, config).labels_zyx
        results.append(evaluate_case(pred, case.labels_zyx, case.volume.geometry.spacing_mm, case.case_id))
    summary = summarize(results)
    return ValidationScores({s.key: s.dice_mean for s in summary.per_class}, summary.mean_dice, summary.mean_hd95_mm)
