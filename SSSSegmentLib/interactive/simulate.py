"""A simulated user for benchmarks and tests: one click at the centre of the largest error.

Frames: label maps uint8 (K, J, I) on one grid; ``spacing_zyx`` in mm; clicks are voxel indices.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_TWENTY_SIX = np.ones((3, 3, 3), dtype=bool)
_REGIONS_PER_KIND = 3  # error regions considered per class and kind (miss / false alarm)


@dataclass(frozen=True)
class SimulatedClick:
    """Class ``label`` at voxel (i, j) of slice ``slice_k``; positive on a miss, negative on a false alarm.

    error_voxels: the size of the error region it was placed in.
    """

    label: int
    slice_k: int
    i: int
    j: int
    positive: bool
    error_voxels: int


def largest_error_click(truth_zyx: np.ndarray, pred_zyx: np.ndarray, spacing_zyx: tuple[float, float, float],
                        skip: Collection[SimulatedClick] = ()) -> SimulatedClick | None:
    """The click a user would make next: in the largest 26-connected error region of any class
    (missed voxels of a class, or voxels wrongly given it), at its most interior voxel (3D distance
    to the region's edge in mm). None when prediction and truth agree.

    A miss whose centre another class holds is clicked as a negative of that class: segments of other
    classes are never overwritten, so the user removes the wrong class first. Clicks in ``skip`` (ones
    that changed nothing) are not repeated: the next largest region is taken instead.
    """
    regions = []
    for label in range(1, 6):
        truth, pred = truth_zyx == label, pred_zyx == label
        for positive, error in ((True, truth & ~pred), (False, pred & ~truth)):
            regions += [(size, label, positive, mask) for size, mask in _largest_components(error)]
    for size, label, positive, mask in sorted(regions, key=lambda r: -r[0]):
        k, j, i = _most_interior(mask, spacing_zyx)
        held = int(pred_zyx[k, j, i])
        if positive and held not in (0, label):
            label, positive = held, False
        click = SimulatedClick(label, k, i, j, positive, size)
        if click not in skip:
            return click
    return None


def case_dice(truth_zyx: np.ndarray, pred_zyx: np.ndarray) -> float:
    """Mean Dice over the classes in the truth or the prediction (a false class scores 0); NaN if none."""
    scores = []
    for label in range(1, 6):
        truth, pred = truth_zyx == label, pred_zyx == label
        total = int(truth.sum()) + int(pred.sum())
        if total:
            scores.append(2.0 * int((truth & pred).sum()) / total)
    return float(np.mean(scores)) if scores else float("nan")


def _largest_components(mask: np.ndarray, count: int = _REGIONS_PER_KIND) -> list[tuple[int, np.ndarray]]:
    """(voxels, bool mask) of the ``count`` largest 26-connected components, largest first."""
    if not mask.any():
        return []
    comp, n = ndimage.label(mask, structure=_TWENTY_SIX)
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    sizes[0] = 0
    order = np.argsort(-sizes)[: min(count, n)]
    return [(int(sizes[c]), comp == c) for c in order]


def _most_interior(mask: np.ndarray, spacing_zyx: tuple[float, float, float]) -> tuple[int, int, int]:
    """(k, j, i) of the voxel of ``mask`` farthest (mm) from its outside."""
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    crop = np.pad(mask[box], 1)
    depth = ndimage.distance_transform_edt(crop, sampling=spacing_zyx)[1:-1, 1:-1, 1:-1]
    local = np.unravel_index(int(depth.argmax()), depth.shape)
    return tuple(int(s.start + n) for s, n in zip(box, local, strict=True))  # type: ignore[return-value]
