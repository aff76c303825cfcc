"""The gate's figures for one model on the site's cases (full automatic pipeline, no GT prompts)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..classes import HEMORRHAGE_CLASSES
from ..datasets import CasePaths
from ..registry import SiteMetrics


def _quiet(_message: str) -> None:
    """PCPG's per-component lines are not wanted in a fine-tune log."""


def dice_over_present(pred_zyx: np.ndarray, truth_zyx: np.ndarray) -> list[float]:
    """Dice of each class present in ``truth_zyx`` (empty list for a normal case)."""
    scores = []
    for hclass in HEMORRHAGE_CLASSES:
        truth = truth_zyx == hclass.label
        if truth.any():
            pred = pred_zyx == hclass.label
            scores.append(2.0 * np.count_nonzero(pred & truth) / (np.count_nonzero(pred) + np.count_nonzero(truth)))
    return scores


def site_metrics(model, device, heldout: Sequence[CasePaths], normal: Sequence[CasePaths]) -> SiteMetrics:  # noqa: ANN001
    """Dice over classes present on ``heldout`` and mL called bleed on ``normal`` (see ``SiteMetrics``)."""
    from ..inference import segment_volume
    from ..training.cases import read_case

    scores: list[float] = []
    for case in heldout:
        volume, truth = read_case(case)
        scores += dice_over_present(segment_volume(volume, model, device, log=_quiet).labels_zyx, truth)
    normal_ml = 0.0
    for case in normal:
        volume, _ = read_case(case)
        pred = segment_volume(volume, model, device, log=_quiet).labels_zyx
        normal_ml += float(np.count_nonzero(pred)) * volume.geometry.voxel_volume_ml
    dice = float(np.mean(scores)) if scores else None
    return SiteMetrics(dice, round(normal_ml, 3), len(heldout), len(normal))
