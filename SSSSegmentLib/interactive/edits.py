"""What one interaction does to the label map: draw an object from its prompts, or remove a region.

An *object* is what consecutive prompts of one class on one slice describe: its clicks accumulate
(SAM's way), each new click decodes the object again from all of them, and the object is drawn onto
the labels as they were before its first click (``base_zyx``). Another class's voxels are never
overwritten. A negative click outside the current object removes the segment under it, on its slice
and through the slices it continues into.

Frames: the working (axial) grid, labels uint8 (K, J, I); voxel rows (j, i); boxes in pixel edges.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..inference.refine import box_window
from .cache import EmbeddingCache
from .config import InteractiveConfig
from .prompt import SlicePrompt
from .propagate import propagate
from .slice_masks import (
    DecoderInput,
    box_around,
    box_of,
    components_at,
    components_touching,
    decode_mask,
    other_class_negatives,
    predict_mask,
    union_box,
)


@dataclass(frozen=True, eq=False)
class ObjectState:
    """The prompts of the object being drawn and the labels it is drawn onto.

    box_xyxy: the box the decoder got last time (pixel edges), which also bounds where further
    clicks of this object may fall.
    """

    prompt: SlicePrompt
    base_zyx: np.ndarray
    box_xyxy: tuple[float, float, float, float] | None = None

    def takes(self, prompt: SlicePrompt, margin_px: int) -> bool:
        """True when ``prompt`` refines this object: same class and slice, points (and a new box's
        centre) inside its box grown by ``margin_px``."""
        mine = self.prompt
        if prompt.label != mine.label or prompt.slice_k != mine.slice_k or self.box_xyxy is None:
            return False
        rows, cols = box_window(self.box_xyxy, margin_px, self.base_zyx.shape[1:])
        points = np.concatenate([prompt.positive_ji, prompt.negative_ji])
        if prompt.box_ji is not None:  # a new box refines this object when its centre falls in its box
            j0, i0, j1, i1 = prompt.box_ji
            points = np.concatenate([points, [[(j0 + j1) // 2, (i0 + i1) // 2]]])
        return bool(all(rows.start <= j < rows.stop and cols.start <= i < cols.stop for j, i in points))

    def extended(self, prompt: SlicePrompt) -> ObjectState:
        """This object with ``prompt``'s points added (its box, when given, replaces the old one)."""
        mine = self.prompt
        merged = replace(mine, positive_ji=np.concatenate([mine.positive_ji, prompt.positive_ji]),
                         negative_ji=np.concatenate([mine.negative_ji, prompt.negative_ji]),
                         box_ji=prompt.box_ji if prompt.box_ji is not None else mine.box_ji)
        return replace(self, prompt=merged)


@dataclass(frozen=True)
class SliceContext:
    """What drawing needs besides the prompts: the model, the cache, the volume and the settings."""

    model: torch.nn.Module
    cache: EmbeddingCache
    device: torch.device
    hu_zyx: np.ndarray
    spacing_zyx: tuple[float, float, float]
    config: InteractiveConfig


def draw_object(ctx: SliceContext, state: ObjectState, labels_zyx: np.ndarray) -> ObjectState:
    """Decode ``state``'s object on its slice, propagate it, and write it into ``labels_zyx`` in place.

    ``labels_zyx`` is reset to the object's base first. Returns the state with the box used.
    """
    p, cfg = state.prompt, ctx.config
    ctx.cache.ensure([p.slice_k], p.slice_k)
    box = object_box(ctx, p)
    spacing_ji = ctx.spacing_zyx[1:]
    negatives = other_class_negatives(state.base_zyx[p.slice_k], p.label, box, spacing_ji, cfg.max_negatives)
    request = DecoderInput(p.label, p.slice_k, box, p.positive_ji, np.concatenate([p.negative_ji, negatives]))
    decoded = predict_mask(ctx.model, ctx.cache, ctx.device, ctx.hu_zyx[p.slice_k], request, cfg)
    mask = keep_prompted(ctx, p, decoded, box)
    masks = {p.slice_k: mask}
    if cfg.propagate and mask.any():
        masks.update(propagate(ctx.model, ctx.cache, ctx.device, ctx.hu_zyx, state.base_zyx, p.label,
                               p.slice_k, mask, ctx.spacing_zyx, cfg))
    np.copyto(labels_zyx, state.base_zyx)
    if len(p.negative_ji):  # a prompt with negative points redraws its class inside its box
        rows, cols = box_window(box, cfg.box_margin_px, mask.shape)
        window = labels_zyx[p.slice_k, rows, cols]
        window[window == p.label] = 0
    for k, m in masks.items():
        write_class(labels_zyx[k], m, p.label)
    return replace(state, box_xyxy=box)


def object_box(ctx: SliceContext, p: SlicePrompt) -> tuple[float, float, float, float]:
    """The box the decoder gets: the user's box; else the coarse head's component under the positive
    clicks (when not wider than ``max_click_box_mm``); else a ``click_box_mm`` square around them."""
    cfg, shape_ji = ctx.config, ctx.hu_zyx.shape[1:]
    if p.box_ji is not None:
        j0, i0, j1, i1 = p.box_ji
        return float(i0), float(j0), float(i1 + 1), float(j1 + 1)
    clicks = p.positive_ji
    spacing_ji = ctx.spacing_zyx[1:]
    fg = components_at(ctx.cache.fg_prob(p.slice_k) >= cfg.coarse_fg_threshold, clicks)
    if fg.any() and _extent_mm(fg, spacing_ji) <= cfg.max_click_box_mm:
        return union_box(box_of(fg, cfg.box_pad_px), box_around(clicks, (cfg.box_pad_px,) * 2, shape_ji))
    half = tuple(cfg.click_box_mm / 2.0 / s for s in spacing_ji)
    return box_around(clicks, half, shape_ji)


def keep_prompted(ctx: SliceContext, p: SlicePrompt, mask: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """The decoded components the positive clicks point at, without those only negatives point at.

    When the decoder misses every positive click, the coarse head's component under the clicks
    (inside the box) stands in for it. A box without clicks keeps the whole decoded mask.
    """
    if len(p.positive_ji):
        kept = components_at(mask, p.positive_ji)
        if not kept.any():
            fg = components_at(ctx.cache.fg_prob(p.slice_k) >= ctx.config.coarse_fg_threshold, p.positive_ji)
            rows, cols = box_window(box, 0, mask.shape)
            kept = np.zeros_like(mask)
            kept[rows, cols] = fg[rows, cols]
        mask = kept
    if len(p.negative_ji):
        mask = mask & ~(components_at(mask, p.negative_ji) & ~components_at(mask, p.positive_ji))
        mask[p.negative_ji[:, 0], p.negative_ji[:, 1]] = False
    return mask


def separate_region(ctx: SliceContext, labels_zyx: np.ndarray, p: SlicePrompt) -> bool:
    """A negative click on a segment, answered by the decoder: the segment's box with the click (and
    one point per other-class segment in it) as negatives and no positive. When the decoder keeps a
    part of the segment apart from the click (at least ``min_area_mm2``), only that part stays on the
    clicked slice (in place; True). False, with nothing changed, when it keeps nothing of it."""
    k, cfg = p.slice_k, ctx.config
    region = components_at(labels_zyx[k] == p.label, p.negative_ji)
    if not region.any():
        return False
    ctx.cache.ensure([k], k)
    box = box_of(region, cfg.box_pad_px)
    spacing_ji = ctx.spacing_zyx[1:]
    others = other_class_negatives(labels_zyx[k], p.label, box, spacing_ji, cfg.max_negatives)
    request = DecoderInput(p.label, k, box, np.zeros((0, 2), dtype=np.int64), np.concatenate([p.negative_ji, others]))
    kept = region & decode_mask(ctx.model, ctx.cache, ctx.device, request, cfg.mask_threshold, cfg.box_margin_px)
    kept &= ~components_at(kept, p.negative_ji)
    if np.count_nonzero(kept) * spacing_ji[0] * spacing_ji[1] < max(cfg.min_area_mm2, 1e-9):
        return False
    labels_zyx[k][region & ~kept] = 0
    return True


def write_class(labels_ji: np.ndarray, mask_ji: np.ndarray, label: int) -> None:
    """Set ``label`` where ``mask_ji`` is, except on voxels of another class (in place)."""
    labels_ji[mask_ji & ((labels_ji == 0) | (labels_ji == label))] = label


def remove_region(labels_zyx: np.ndarray, p: SlicePrompt, max_growth: float = 1.5) -> bool:
    """Remove the ``p.label`` segment under ``p``'s negative points on its slice and where it continues
    on the slices above and below (8-connected in-plane, overlapping slice to slice). The walk stops
    at a slice whose overlapping segment is more than ``max_growth`` times the area removed on the
    slice before: a false region that touches a larger lesion there does not take the lesion with it.
    In place; False when no voxel of that class lies under the points."""
    k, label = p.slice_k, p.label
    region = components_at(labels_zyx[k] == label, p.negative_ji)
    if not region.any():
        return False
    labels_zyx[k][region] = 0
    for step in (-1, 1):
        prev, s = region, k + step
        while 0 <= s < labels_zyx.shape[0]:
            cur = components_touching(labels_zyx[s] == label, prev)
            if not cur.any() or np.count_nonzero(cur) > max_growth * np.count_nonzero(prev):
                break
            labels_zyx[s][cur] = 0
            prev, s = cur, s + step
    return True


def _extent_mm(mask_ji: np.ndarray, spacing_ji: tuple[float, float]) -> float:
    rows, cols = np.flatnonzero(mask_ji.any(axis=1)), np.flatnonzero(mask_ji.any(axis=0))
    return max((rows[-1] - rows[0] + 1) * spacing_ji[0], (cols[-1] - cols[0] + 1) * spacing_ji[1])
