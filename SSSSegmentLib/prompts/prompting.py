"""SAM-2 prompts (box + points per slice) from kept components.

Slice-image coordinates: x = column i, y = row j, in pixel units of the volume slice, pixel (j, i)
covering x in [i, i + 1) and y in [j, j + 1). Boxes are (x0, y0, x1, y1) with the upper edges
exclusive, so they enclose the component's pixels exactly (plus any padding); points are pixel
centres (i + 0.5, j + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SSSSegmentLib.prompts.components import ComponentView

POSITIVE, NEGATIVE = 1, 0


@dataclass(frozen=True, eq=False)
class Prompt:
    """One SAM-2 prompt on volume slice ``slice_k`` for component ``component_id`` of class ``label``.

    ``box_xyxy``: (x0, y0, x1, y1) floats, inclusive-exclusive pixel edges (module docstring).
    ``points_xy``: float32 (P, 2) pixel centres (x, y); ``point_labels``: int32 (P,), 1 = positive,
    0 = negative. Positives come first.
    """

    label: int
    component_id: int
    slice_k: int
    box_xyxy: tuple[float, float, float, float]
    points_xy: np.ndarray
    point_labels: np.ndarray


def interior_distance(mask_ji: np.ndarray, spacing_ji: tuple[float, float]) -> np.ndarray:
    """Float (J, I): in-plane distance in mm of each mask pixel to the nearest pixel outside it."""
    padded = np.pad(mask_ji, 1)
    return ndimage.distance_transform_edt(padded, sampling=spacing_ji)[1:-1, 1:-1]


def spread_points(mask_ji: np.ndarray, spacing_ji: tuple[float, float], count: int) -> np.ndarray:
    """Int (P, 2) rows (j, i), P <= count: the most interior pixel, then farthest-point picks.

    Later points are chosen among the "core" pixels (at least half the maximal interior distance)
    as far as possible from the points already chosen, so they stay inside and spread out.
    Ties go to the first pixel in raster order (deterministic).
    """
    depth = interior_distance(mask_ji, spacing_ji)
    first = np.unravel_index(int(np.argmax(depth)), depth.shape)
    chosen = [first]
    core = np.argwhere(depth >= 0.5 * depth.max())
    gap = np.full(len(core), np.inf)
    while len(chosen) < min(count, len(core)):
        step = (core - np.asarray(chosen[-1])) * np.asarray(spacing_ji)
        gap = np.minimum(gap, np.hypot(step[:, 0], step[:, 1]))
        if gap.max() <= 0:
            break
        chosen.append(tuple(core[int(np.argmax(gap))]))
    return np.asarray(chosen, dtype=np.int64).reshape(-1, 2)


def slice_box(
    mask_ji: np.ndarray, offset_ji: tuple[int, int], pad_px: int, shape_ji: tuple[int, int]
) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of ``mask_ji`` placed at ``offset_ji`` in the slice, padded, clipped to the slice."""
    rows, cols = np.flatnonzero(mask_ji.any(axis=1)), np.flatnonzero(mask_ji.any(axis=0))
    y0, y1 = offset_ji[0] + rows[0] - pad_px, offset_ji[0] + rows[-1] + 1 + pad_px
    x0, x1 = offset_ji[1] + cols[0] - pad_px, offset_ji[1] + cols[-1] + 1 + pad_px
    return (float(max(x0, 0)), float(max(y0, 0)), float(min(x1, shape_ji[1])), float(min(y1, shape_ji[0])))


@dataclass(frozen=True, eq=False)
class SlicePart:
    """A kept component on one slice: its box and positive points (global pixel indices (j, i))."""

    label: int
    component_id: int
    slice_k: int
    area_px: int
    box_xyxy: tuple[float, float, float, float]
    points_ji: np.ndarray


def slice_parts(view: ComponentView, shape_ji: tuple[int, int], pad_px: int, n_points: int) -> list[SlicePart]:
    """One ``SlicePart`` per slice the component occupies, ascending k."""
    offset = (view.box[1].start, view.box[2].start)
    spacing_ji = (view.spacing_zyx[1], view.spacing_zyx[2])
    parts = []
    for local_k, mask_ji in enumerate(view.mask):
        area = int(np.count_nonzero(mask_ji))
        if area == 0:
            continue
        points = spread_points(mask_ji, spacing_ji, n_points) + np.asarray(offset)
        box = slice_box(mask_ji, offset, pad_px, shape_ji)
        parts.append(SlicePart(view.label, view.component_id, view.box[0].start + local_k, area, box, points))
    return parts


def key_part(parts: list[SlicePart]) -> SlicePart:
    """The largest-area part (ties: lowest k)."""
    return max(parts, key=lambda p: (p.area_px, -p.slice_k))


def build_prompt(part: SlicePart, others_on_slice: list[SlicePart], max_negatives: int) -> Prompt:
    """The prompt of ``part``; ``others_on_slice``: parts of other classes on the same slice (negatives)."""
    negatives = [o.points_ji[0] for o in others_on_slice if o.label != part.label][:max_negatives]
    points_ji = np.concatenate([part.points_ji, np.asarray(negatives, np.int64).reshape(-1, 2)])
    labels = np.array([POSITIVE] * len(part.points_ji) + [NEGATIVE] * len(negatives), dtype=np.int32)
    points_xy = (points_ji[:, ::-1] + 0.5).astype(np.float32)
    points_xy.flags.writeable = False
    labels.flags.writeable = False
    return Prompt(part.label, part.component_id, part.slice_k, part.box_xyxy, points_xy, labels)
