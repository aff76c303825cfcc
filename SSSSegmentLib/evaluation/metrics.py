"""Segmentation metrics on boolean masks and BHSD label maps: pure functions, numpy in, floats out.

Arrays are indexed ``[k, j, i]`` (z, y, x). Every function that needs physical units takes
``spacing_mm`` in ITK order ``(i, j, k)``, exactly as ``Geometry.spacing_mm`` holds it, and converts
it to the array order itself (:func:`spacing_zyx`).

Conventions for empty masks (tables show NaN as "n/a"):

- Dice: both empty -> NaN (undefined; excluded from means and counted separately);
  truth empty but prediction not (or the reverse) -> 0.0.
- HD95: both empty -> NaN (undefined); exactly one empty -> ``inf`` (a missed or hallucinated
  structure has no finite surface distance). Means of HD95 are taken over finite values only and
  the number of infinite values is reported beside them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..classes import BACKGROUND_LABEL, HEMORRHAGE_CLASSES

_FACE_CONNECTED = ndimage.generate_binary_structure(3, 1)


def spacing_zyx(spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    """Voxel spacing in array order (k, j, i) from ITK order (i, j, k), in mm."""
    if len(spacing_mm) != 3:
        raise ValueError(f"spacing_mm must have 3 values (i, j, k), got {tuple(spacing_mm)}")
    i, j, k = (float(s) for s in spacing_mm)
    return (k, j, i)


def voxel_volume_ml(spacing_mm: Sequence[float]) -> float:
    """Volume of one voxel in mL (1 mL = 1000 mm^3); ``spacing_mm`` in ITK order (i, j, k)."""
    return float(np.prod(spacing_zyx(spacing_mm))) / 1000.0


def volume_ml(mask_zyx: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Volume of a boolean mask [k, j, i] in mL."""
    return float(np.count_nonzero(mask_zyx)) * voxel_volume_ml(spacing_mm)


def class_volumes_ml(labels_zyx: np.ndarray, spacing_mm: Sequence[float]) -> dict[str, float]:
    """Volume in mL of each hemorrhage class in a BHSD label map [k, j, i], keyed by class key (all five)."""
    counts = np.bincount(np.asarray(labels_zyx, np.uint8).ravel(), minlength=256)
    return {c.key: float(counts[c.label]) * voxel_volume_ml(spacing_mm) for c in HEMORRHAGE_CLASSES}


def dice(pred_zyx: np.ndarray, true_zyx: np.ndarray) -> float:
    """Dice overlap 2|P∩T| / (|P|+|T|) of two boolean masks of equal shape.

    NaN when both masks are empty (undefined: exclude it from means); 0.0 when only one is.
    """
    _check_same_shape(pred_zyx, true_zyx)
    n_pred, n_true = int(np.count_nonzero(pred_zyx)), int(np.count_nonzero(true_zyx))
    if n_pred + n_true == 0:
        return math.nan
    n_both = int(np.count_nonzero(np.logical_and(pred_zyx, true_zyx)))
    return 2.0 * n_both / (n_pred + n_true)


def hd95_mm(pred_zyx: np.ndarray, true_zyx: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance between mask surfaces, in mm.

    Surfaces are the mask voxels with a face neighbour outside the mask (or on the array border).
    The distances from every predicted surface voxel to the nearest true surface voxel and from
    every true surface voxel to the nearest predicted one are pooled, and their 95th percentile
    is returned (the medpy definition). Distances use the physical ``spacing_mm`` (ITK order
    i, j, k), so anisotropic voxels are measured correctly. Work is confined to the bounding box
    of both masks (plus one voxel), which keeps it fast on whole CT volumes.

    Returns NaN when both masks are empty and ``inf`` when exactly one is.
    """
    _check_same_shape(pred_zyx, true_zyx)
    pred_any, true_any = bool(np.any(pred_zyx)), bool(np.any(true_zyx))
    if not (pred_any or true_any):
        return math.nan
    if not (pred_any and true_any):
        return math.inf
    box = _union_bounding_box(pred_zyx, true_zyx)
    pred_surface = _surface(np.asarray(pred_zyx[box], dtype=bool))
    true_surface = _surface(np.asarray(true_zyx[box], dtype=bool))
    sampling = spacing_zyx(spacing_mm)
    to_true = ndimage.distance_transform_edt(~true_surface, sampling=sampling)[pred_surface]
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=sampling)[true_surface]
    return float(np.percentile(np.concatenate([to_true, to_pred]), 95))


def any_hemorrhage(labels_zyx: np.ndarray) -> np.ndarray:
    """Boolean mask of voxels with any hemorrhage label (label != background)."""
    return labels_zyx != BACKGROUND_LABEL


def is_present(mask_zyx: np.ndarray, spacing_mm: Sequence[float], min_volume_ml: float = 0.0) -> bool:
    """True when the mask is non-empty and its volume is at least ``min_volume_ml`` (mL)."""
    n_voxels = int(np.count_nonzero(mask_zyx))
    return n_voxels > 0 and n_voxels * voxel_volume_ml(spacing_mm) >= min_volume_ml


def sensitivity_specificity(pred_flags: Sequence[bool], true_flags: Sequence[bool]) -> tuple[float, float]:
    """Case-level (sensitivity, specificity) of yes/no detections.

    ``pred_flags[c]`` / ``true_flags[c]``: whether case ``c`` was detected / truly positive.
    Sensitivity is NaN when no case is truly positive, specificity NaN when none is negative.
    """
    pred = np.asarray(pred_flags, dtype=bool)
    true = np.asarray(true_flags, dtype=bool)
    if pred.shape != true.shape:
        raise ValueError(f"{pred.size} predicted flags for {true.size} true flags")
    return _ratio(pred & true, true), _ratio(~pred & ~true, ~true)


def mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample sd, n) over the finite values; NaN mean/sd when there are none (sd NaN if n<2)."""
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return math.nan, math.nan, 0
    sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    return float(finite.mean()), sd, int(finite.size)


def _ratio(hits: np.ndarray, of: np.ndarray) -> float:
    n = int(np.count_nonzero(of))
    return math.nan if n == 0 else int(np.count_nonzero(hits)) / n


def _surface(mask_zyx: np.ndarray) -> np.ndarray:
    """Mask voxels that touch the outside through a face (the array border counts as outside)."""
    eroded = ndimage.binary_erosion(mask_zyx, structure=_FACE_CONNECTED, border_value=0)
    return mask_zyx & ~eroded


def _union_bounding_box(a_zyx: np.ndarray, b_zyx: np.ndarray) -> tuple[slice, ...]:
    """Slices of the bounding box of ``a | b``, grown by one voxel where the array allows.

    The margin keeps surfaces identical to those of the full array: a voxel on the crop border is
    only treated as a surface voxel when it is also on the array border.
    """
    union = np.logical_or(a_zyx, b_zyx)
    box = []
    for axis in range(union.ndim):
        other_axes = tuple(a for a in range(union.ndim) if a != axis)
        hits = np.flatnonzero(union.any(axis=other_axes))
        box.append(slice(max(int(hits[0]) - 1, 0), min(int(hits[-1]) + 2, union.shape[axis])))
    return tuple(box)


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
