"""Carry a slice's mask to its neighbours (box carry-over) until the lesion ends.

Each next slice is prompted with the box around the previous slice's mask and a positive point at
its most interior pixel (the prompt shape the one-click refine sends), other classes' segments as
negative points. The lesion ends where the decoded mask is a speck, shrinks below a share of the
previous one, or is not blood by its mean HU (:class:`InteractiveConfig`).

Frames: the working (axial) array, slices k; masks bool (J, I); ``spacing_zyx`` in mm.

SAM-2's memory attention is not used: the bundled model never trained its memory modules (training
decodes single slices), so carrying the box is the only propagation it supports.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ..inference.refine import box_window
from .cache import EmbeddingCache
from .config import InteractiveConfig
from .slice_masks import (
    DecoderInput,
    box_of,
    components_touching,
    interior_point,
    other_class_negatives,
    predict_mask,
)


def propagate(model: torch.nn.Module, cache: EmbeddingCache, device: torch.device, hu_zyx: np.ndarray,
              labels_zyx: np.ndarray, label: int, start_k: int, start_mask: np.ndarray,
              spacing_zyx: tuple[float, float, float], config: InteractiveConfig) -> dict[int, np.ndarray]:
    """Masks (bool (J, I)) by slice for the slices above and below ``start_k`` the lesion reaches."""
    masks: dict[int, np.ndarray] = {}
    for step in (-1, 1):
        prev = start_mask
        for n in range(1, config.max_propagation_slices + 1):
            k = start_k + step * n
            if not 0 <= k < hu_zyx.shape[0]:
                break
            _encode_ahead(cache, k, step, hu_zyx.shape[0], config.encode_batch, start_k)
            mask = _next_mask(model, cache, device, hu_zyx[k], labels_zyx[k], label, k, prev, spacing_zyx, config)
            if lesion_ended(mask, prev, hu_zyx[k], spacing_zyx, config):
                break
            masks[k] = mask
            prev = mask
    return masks


def _encode_ahead(cache: EmbeddingCache, k: int, step: int, n_slices: int, batch: int, focus: int) -> None:
    """Make sure slice ``k`` is encoded; when it is not, encode the next ``batch`` slices of the walk."""
    if cache.has(k):
        return
    ahead = [s for s in range(k, k + step * batch, step) if 0 <= s < n_slices]
    cache.ensure(ahead, focus)


def _next_mask(model: torch.nn.Module, cache: EmbeddingCache, device: torch.device, hu_ji: np.ndarray,
               labels_ji: np.ndarray, label: int, k: int, prev: np.ndarray, spacing_zyx: tuple[float, float, float],
               config: InteractiveConfig) -> np.ndarray:
    spacing_ji = (spacing_zyx[1], spacing_zyx[2])
    box = box_of(prev, config.box_pad_px)
    negatives = other_class_negatives(labels_ji, label, box, spacing_ji, config.max_negatives)
    request = DecoderInput(label, k, box, interior_point(prev, spacing_ji), negatives)
    mask = predict_mask(model, cache, device, hu_ji, request, config)  # nothing outside the window
    rows, cols = box_window(box, config.box_margin_px, prev.shape)
    kept = np.zeros_like(mask)
    kept[rows, cols] = components_touching(mask[rows, cols], ndimage.binary_dilation(prev[rows, cols], iterations=2))
    return kept


def lesion_ended(mask: np.ndarray, prev: np.ndarray, hu_ji: np.ndarray, spacing_zyx: tuple[float, float, float],
                 config: InteractiveConfig) -> bool:
    """True when ``mask`` (bool (J, I)) is not the lesion of ``prev`` continued (see module docstring)."""
    area = int(np.count_nonzero(mask))
    if area == 0 or area * spacing_zyx[1] * spacing_zyx[2] < config.min_area_mm2:
        return True
    if area < config.min_area_ratio * np.count_nonzero(prev):
        return True
    mean_hu = float(hu_ji[mask].mean())  # masks hold no bone (predict_mask)
    return not config.blood_hu[0] <= mean_hu <= config.blood_hu[1]
