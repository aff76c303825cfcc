"""The gate's figures for one model (full automatic pipeline, no GT prompts): ``ModelFigures``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..classes import HEMORRHAGE_CLASSES
from ..datasets import CasePaths
from ..phantoms.config import Phantom
from ..registry import ModelFigures


def _quiet(_message: str) -> None:
    """PCPG's per-component lines are not wanted in a fine-tune log."""


def dice_by_class(pred_zyx: np.ndarray, truth_zyx: np.ndarray) -> dict[str, float]:
    """Dice of each class present in ``truth_zyx`` (K, J, I label maps), by class key (empty: normal)."""
    from ..evaluation.metrics import dice

    present = (h for h in HEMORRHAGE_CLASSES if np.any(truth_zyx == h.label))
    return {h.key: dice(pred_zyx == h.label, truth_zyx == h.label) for h in present}


def model_figures(model, device, reference: Sequence[Phantom], heldout: Sequence[CasePaths],  # noqa: ANN001
                  normal: Sequence[CasePaths]) -> ModelFigures:
    """Per-case Dice on the ``reference`` phantoms and the ``heldout`` cases with a bleed, and mL called
    bleed on each ``normal`` case (see ``ModelFigures``)."""
    from ..inference import segment_volume
    from ..training.cases import read_case

    def labels_of(volume) -> np.ndarray:  # noqa: ANN001
        return segment_volume(volume, model, device, log=_quiet).labels_zyx

    by_class: dict[str, list[float]] = {}
    reference_dice = []
    for phantom in reference:
        scores = dice_by_class(labels_of(phantom.to_ct_volume()), phantom.labels_zyx)
        for key, value in scores.items():
            by_class.setdefault(key, []).append(value)
        reference_dice.append(float(np.mean(list(scores.values()))) if scores else 0.0)
    heldout_dice = []
    for case in heldout:
        volume, truth = read_case(case)
        scores = dice_by_class(labels_of(volume), truth)
        if scores:
            heldout_dice.append(float(np.mean(list(scores.values()))))
    normal_ml = []
    for case in normal:
        volume, _ = read_case(case)
        normal_ml.append(round(float(np.count_nonzero(labels_of(volume))) * volume.geometry.voxel_volume_ml, 3))
    class_means = tuple((h.key, float(np.mean(by_class[h.key]))) for h in HEMORRHAGE_CLASSES if h.key in by_class)
    return ModelFigures(tuple(reference_dice), class_means, tuple(heldout_dice), tuple(normal_ml))
