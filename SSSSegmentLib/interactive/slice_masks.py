"""One SAM-2 prompt on one slice -> one binary mask, through the one-click refine's decoder call.

Frames: masks are bool (J, I) on the slice grid; boxes ``box_xyxy`` are (x0, y0, x1, y1) pixel
edges (x = column i, y = row j; pixel (j, i) covers [i, i + 1) x [j, j + 1)), points are pixel
centres (i + 0.5, j + 0.5), as in :mod:`prompts.prompting`. Voxel rows (j, i) are ints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..inference.refine import box_window, decode_prompts
from ..prompts.prompting import NEGATIVE, POSITIVE, Prompt, slice_box, spread_points
from .cache import EmbeddingCache
from .config import InteractiveConfig

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class DecoderInput:
    """What the decoder gets for one slice: a box and points, in slice pixel edges / centres."""

    label: int
    slice_k: int
    box_xyxy: tuple[float, float, float, float]
    positive_ji: np.ndarray  # int (P, 2)
    negative_ji: np.ndarray  # int (N, 2)


def decode_mask(model: torch.nn.Module, cache: EmbeddingCache, device: torch.device, request: DecoderInput,
                threshold: float, margin_px: int) -> np.ndarray:
    """Bool (J, I): decoder probability >= ``threshold`` inside the box grown by ``margin_px``."""
    points_ji = np.concatenate([request.positive_ji, request.negative_ji]).reshape(-1, 2)
    labels = np.array([POSITIVE] * len(request.positive_ji) + [NEGATIVE] * len(request.negative_ji), np.int32)
    prompt = Prompt(request.label, 0, 0, request.box_xyxy, (points_ji[:, ::-1] + 0.5).astype(np.float32), labels)
    features = cache.features([request.slice_k])
    prob = decode_prompts(model, features, cache.frame, [prompt], device)[0]
    mask = np.zeros(prob.shape, dtype=bool)
    rows, cols = box_window(request.box_xyxy, margin_px, prob.shape)
    mask[rows, cols] = prob[rows, cols] >= threshold
    return mask


def predict_mask(model: torch.nn.Module, cache: EmbeddingCache, device: torch.device, hu_ji: np.ndarray,
                 request: DecoderInput, config: InteractiveConfig) -> np.ndarray:
    """Bool (J, I): the decoder's mask for ``request``, joined by the coarse head's bleed pixels
    when ``config.coarse_union``, inside the box grown by ``box_margin_px``; bone (HU above
    ``config.bone_hu``) is never part of it."""
    mask = decode_mask(model, cache, device, request, config.mask_threshold, config.box_margin_px)
    if config.coarse_union:
        rows, cols = box_window(request.box_xyxy, config.box_margin_px, mask.shape)
        mask[rows, cols] |= cache.fg_prob(request.slice_k)[rows, cols] >= config.coarse_fg_threshold
    return mask & (hu_ji <= config.bone_hu)


def box_of(mask_ji: np.ndarray, pad_px: int) -> tuple[float, float, float, float]:
    """Box (pixel edges) around a non-empty bool (J, I) mask, padded and clipped to the slice."""
    return slice_box(mask_ji, (0, 0), pad_px, mask_ji.shape)


def box_around(points_ji: np.ndarray, half_px: tuple[float, float], shape_ji: tuple[int, int]) -> tuple[float, ...]:
    """Box (pixel edges) around int (P, 2) voxel rows, grown by ``half_px`` (rows, cols), clipped."""
    lo, hi = points_ji.min(axis=0), points_ji.max(axis=0) + 1
    y0, y1 = max(0.0, lo[0] - half_px[0]), min(float(shape_ji[0]), hi[0] + half_px[0])
    x0, x1 = max(0.0, lo[1] - half_px[1]), min(float(shape_ji[1]), hi[1] + half_px[1])
    return float(x0), float(y0), float(x1), float(y1)


def union_box(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float]:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def components_at(mask_ji: np.ndarray, points_ji: np.ndarray) -> np.ndarray:
    """Bool (J, I): the 8-connected components of ``mask_ji`` that hold one of the points."""
    if not len(points_ji) or not mask_ji.any():
        return np.zeros_like(mask_ji, dtype=bool)
    comp, _ = ndimage.label(mask_ji, structure=_EIGHT)
    ids = {int(comp[j, i]) for j, i in points_ji} - {0}
    return np.isin(comp, list(ids)) if ids else np.zeros_like(mask_ji, dtype=bool)


def components_touching(mask_ji: np.ndarray, region_ji: np.ndarray) -> np.ndarray:
    """Bool (J, I): the 8-connected components of ``mask_ji`` that overlap ``region_ji``."""
    comp, _ = ndimage.label(mask_ji, structure=_EIGHT)
    ids = np.unique(comp[region_ji & mask_ji])
    return np.isin(comp, ids[ids > 0])


def other_class_negatives(labels_ji: np.ndarray, label: int, box_xyxy: tuple[float, ...],
                          spacing_ji: tuple[float, float], limit: int) -> np.ndarray:
    """Int (N, 2) rows (j, i): one interior point per other-class segment inside the box, N <= limit."""
    rows, cols = box_window(box_xyxy, 0, labels_ji.shape)
    window = labels_ji[rows, cols]
    found: list[np.ndarray] = []
    for other in np.unique(window):
        if other in (0, label):
            continue
        comp, count = ndimage.label(window == other, structure=_EIGHT)
        for n in range(1, count + 1):
            found.append(spread_points(comp == n, spacing_ji, 1)[0] + (rows.start, cols.start))
    return np.asarray(found[:limit], dtype=np.int64).reshape(-1, 2)


def interior_point(mask_ji: np.ndarray, spacing_ji: tuple[float, float]) -> np.ndarray:
    """Int (1, 2): the most interior pixel (j, i) of a non-empty mask (measured on its bounding box)."""
    rows, cols = ndimage.find_objects(mask_ji.astype(np.uint8))[0]
    return spread_points(mask_ji[rows, cols], spacing_ji, 1)[:1] + (rows.start, cols.start)
