"""Per-case results and their aggregation over a set of cases (per class and overall).

Label maps are BHSD label arrays indexed ``[k, j, i]`` with values 0 (background) .. 5 (see
``SSSSegmentLib.classes``); ``spacing_mm`` is in ITK order (i, j, k). Empty-mask conventions are
those of :mod:`.metrics` (Dice NaN when a class is absent from both; HD95 NaN / inf).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..classes import HEMORRHAGE_CLASSES, HemorrhageClass
from . import metrics


@dataclass(frozen=True)
class ClassResult:
    """Metrics of one class in one case. Volumes in mL, distances in mm; NaN = undefined."""

    label: int
    key: str
    dice: float
    hd95_mm: float
    pred_ml: float
    true_ml: float
    pred_present: bool  # detected: volume >= the minimum detection volume
    true_present: bool

    @property
    def abs_volume_error_ml(self) -> float:
        return abs(self.pred_ml - self.true_ml)

    @property
    def dice_defined(self) -> bool:
        """False when the class is absent from both prediction and truth (Dice is n/a)."""
        return not math.isnan(self.dice)


@dataclass(frozen=True)
class CaseResult:
    """All metrics of one case: one ClassResult per hemorrhage class, plus case-level detection."""

    case_id: str
    classes: tuple[ClassResult, ...]
    bleed_pred: bool  # any hemorrhage predicted (>= minimum detection volume)
    bleed_true: bool

    def dice_in_truth(self) -> list[float]:
        """Dice of each class present in the truth; their mean is the demo's measure (``sssseg demo``)."""
        return [r.dice for r in self.classes if r.true_ml > 0]

    def by_key(self, key: str) -> ClassResult:
        for result in self.classes:
            if result.key == key:
                return result
        raise KeyError(key)


@dataclass(frozen=True)
class ClassSummary:
    """One class over all cases. Means skip NaN (and, for HD95, inf); ``n_*`` say how many counted."""

    key: str
    name: str
    dice_mean: float
    dice_sd: float
    n_dice: int  # cases where Dice is defined
    n_dice_undefined: int  # cases where the class is absent from both (Dice n/a)
    hd95_mean_mm: float
    n_hd95: int  # cases with a finite HD95
    n_hd95_inf: int  # cases where exactly one of prediction/truth is empty
    abs_volume_error_mean_ml: float
    sensitivity: float  # case-level detection of this class
    specificity: float
    dice_mean_true: float = math.nan  # mean Dice over the cases whose truth has the class
    n_true: int = 0  # cases whose truth has the class


@dataclass(frozen=True)
class EvaluationSummary:
    """Results of a whole evaluation: per-case details, per-class and overall summaries.

    Overall Dice and HD95 are means over the classes whose own mean is defined (macro average).
    ``mean_dice`` counts, per class, every case where the class is in the truth or the prediction
    (a false-positive class scores 0); ``mean_dice_true`` counts only cases whose truth has the class
    (the usual BHSD convention; false-positive classes show in the per-class specificity instead).
    Overall detection is case-level "any hemorrhage" sensitivity and specificity.
    """

    cases: tuple[CaseResult, ...]
    per_class: tuple[ClassSummary, ...]
    mean_dice: float
    mean_hd95_mm: float
    mean_abs_volume_error_ml: float
    bleed_sensitivity: float
    bleed_specificity: float
    min_volume_ml: float = 0.0
    unmatched_predictions: tuple[str, ...] = ()
    mean_dice_true: float = math.nan


def evaluate_class(
    pred_zyx: np.ndarray,
    true_zyx: np.ndarray,
    spacing_mm: Sequence[float],
    cls: HemorrhageClass,
    min_volume_ml: float = 0.0,
) -> ClassResult:
    """Metrics of one class from two label maps [k, j, i] of equal shape."""
    pred_mask, true_mask = pred_zyx == cls.label, true_zyx == cls.label
    return ClassResult(
        label=cls.label,
        key=cls.key,
        dice=metrics.dice(pred_mask, true_mask),
        hd95_mm=metrics.hd95_mm(pred_mask, true_mask, spacing_mm),
        pred_ml=metrics.volume_ml(pred_mask, spacing_mm),
        true_ml=metrics.volume_ml(true_mask, spacing_mm),
        pred_present=metrics.is_present(pred_mask, spacing_mm, min_volume_ml),
        true_present=metrics.is_present(true_mask, spacing_mm, min_volume_ml),
    )


def evaluate_case(
    pred_zyx: np.ndarray,
    true_zyx: np.ndarray,
    spacing_mm: Sequence[float],
    case_id: str = "",
    min_volume_ml: float = 0.0,
) -> CaseResult:
    """Metrics of every hemorrhage class for one case (label maps [k, j, i], spacing ITK order).

    ``min_volume_ml``: a class (or the case's hemorrhage as a whole) counts as detected/present
    only from this volume on; it affects detection only, not Dice, HD95 or volumes.
    """
    if pred_zyx.shape != true_zyx.shape:
        raise ValueError(f"case {case_id!r}: label maps differ in shape {pred_zyx.shape} vs {true_zyx.shape}")
    classes = tuple(
        evaluate_class(pred_zyx, true_zyx, spacing_mm, cls, min_volume_ml) for cls in HEMORRHAGE_CLASSES
    )
    return CaseResult(
        case_id=case_id,
        classes=classes,
        bleed_pred=metrics.is_present(metrics.any_hemorrhage(pred_zyx), spacing_mm, min_volume_ml),
        bleed_true=metrics.is_present(metrics.any_hemorrhage(true_zyx), spacing_mm, min_volume_ml),
    )


def summarize_class(cases: Sequence[CaseResult], cls: HemorrhageClass) -> ClassSummary:
    """Aggregate one class over cases."""
    results = [case.by_key(cls.key) for case in cases]
    dice_mean, dice_sd, n_dice = metrics.mean_sd([r.dice for r in results])
    dice_mean_true, _, n_true = metrics.mean_sd([r.dice for r in results if r.true_ml > 0])
    hd95_mean, _, n_hd95 = metrics.mean_sd([r.hd95_mm for r in results])
    vol_err_mean, _, _ = metrics.mean_sd([r.abs_volume_error_ml for r in results])
    sens, spec = metrics.sensitivity_specificity(
        [r.pred_present for r in results], [r.true_present for r in results]
    )
    return ClassSummary(
        key=cls.key,
        name=cls.name,
        dice_mean=dice_mean,
        dice_sd=dice_sd,
        n_dice=n_dice,
        n_dice_undefined=sum(not r.dice_defined for r in results),
        hd95_mean_mm=hd95_mean,
        n_hd95=n_hd95,
        n_hd95_inf=sum(math.isinf(r.hd95_mm) for r in results),
        abs_volume_error_mean_ml=vol_err_mean,
        sensitivity=sens,
        specificity=spec,
        dice_mean_true=dice_mean_true,
        n_true=n_true,
    )


def summarize(
    cases: Sequence[CaseResult], min_volume_ml: float = 0.0, unmatched_predictions: Sequence[str] = ()
) -> EvaluationSummary:
    """Per-class and overall summary of per-case results (see EvaluationSummary for the overall means)."""
    per_class = tuple(summarize_class(cases, c) for c in HEMORRHAGE_CLASSES)
    sens, spec = metrics.sensitivity_specificity([c.bleed_pred for c in cases], [c.bleed_true for c in cases])
    return EvaluationSummary(
        cases=tuple(cases),
        per_class=per_class,
        mean_dice=metrics.mean_sd([s.dice_mean for s in per_class])[0],
        mean_hd95_mm=metrics.mean_sd([s.hd95_mean_mm for s in per_class])[0],
        mean_abs_volume_error_ml=metrics.mean_sd([s.abs_volume_error_mean_ml for s in per_class])[0],
        bleed_sensitivity=sens,
        bleed_specificity=spec,
        min_volume_ml=float(min_volume_ml),
        unmatched_predictions=tuple(unmatched_predictions),
        mean_dice_true=metrics.mean_sd([s.dice_mean_true for s in per_class])[0],
    )
