"""SAM-2 refinement of PCPG prompts and fusion to one label per voxel.

Prompts are in slice pixel coordinates (x = column i, y = row j) of slice ``k``; the decoder works
in model pixels, so every box/point goes through ``SliceFrame.to_model_xy`` and every mask comes
back through ``SliceFrame.masks_to_slice``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from ..progress import ProgressCallback, silent
from .encode import autocast_for, map_features

_PAD_LABEL = -1  # SAM's "not a point" label, used to pad prompts to the same number of points


def _edge_to_index(xy: np.ndarray) -> np.ndarray:
    """PCPG gives continuous coordinates (pixel i spans [i, i+1)); SliceFrame takes pixel indices."""
    return np.asarray(xy, dtype=np.float32) - 0.5


def prompt_tensors(prompts: Sequence, frame: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes (N, 4), points (N, P, 2) and point labels (N, P) in model pixel indices for a prompt batch.

    SAM-2's prompt encoder adds half a pixel itself, so it receives pixel-index coordinates.
    """
    n_points = max((len(p.point_labels) for p in prompts), default=0)
    boxes = np.zeros((len(prompts), 4), dtype=np.float32)
    points = np.zeros((len(prompts), max(n_points, 1), 2), dtype=np.float32)
    labels = np.full((len(prompts), max(n_points, 1)), _PAD_LABEL, dtype=np.int64)
    for row, prompt in enumerate(prompts):
        corners = _edge_to_index(np.reshape(prompt.box_xyxy, (2, 2)))
        boxes[row] = np.asarray(frame.to_model_xy(corners), dtype=np.float32).reshape(4)
        if len(prompt.point_labels):
            pts = _edge_to_index(np.reshape(prompt.points_xy, (-1, 2)))
            points[row, : len(pts)] = np.asarray(frame.to_model_xy(pts), dtype=np.float32)
            labels[row, : len(pts)] = np.asarray(prompt.point_labels)
    return torch.from_numpy(boxes), torch.from_numpy(points), torch.from_numpy(labels)


def box_window(box_xyxy: Sequence[float], margin_px: int, shape_yx: tuple[int, int]) -> tuple[slice, slice]:
    """Row and column slices of a prompt box grown by ``margin_px``, clipped to the slice."""
    x0, y0, x1, y1 = box_xyxy
    rows = slice(max(0, int(np.floor(y0)) - margin_px), min(shape_yx[0], int(np.ceil(y1)) + margin_px))
    cols = slice(max(0, int(np.floor(x0)) - margin_px), min(shape_yx[1], int(np.ceil(x1)) + margin_px))
    return rows, cols


@torch.no_grad()
def decode_prompts(
    model: torch.nn.Module,
    features: object,
    frame: object,
    prompts: Sequence,
    device: torch.device,
    prompt_batch: int = 64,
    progress: ProgressCallback = silent,
) -> list[np.ndarray]:
    """Refined foreground probability (J, I) float32 for each prompt, in prompt order."""
    masks: list[np.ndarray] = []
    for lo in range(0, len(prompts), prompt_batch):
        chunk = prompts[lo : lo + prompt_batch]
        slice_ids = sorted({p.slice_k for p in chunk})
        local = {k: n for n, k in enumerate(slice_ids)}
        index = torch.tensor(slice_ids, dtype=torch.long)
        feats = map_features(features, lambda t, idx=index: t.index_select(0, idx).to(device))
        image_index = torch.tensor([local[p.slice_k] for p in chunk], dtype=torch.long, device=device)
        boxes, points, labels = prompt_tensors(chunk, frame)
        with autocast_for(device):
            logits, _ = model.decode(feats, image_index, boxes.to(device), points.to(device), labels.to(device))
        probs = torch.sigmoid(logits.float()[:, 0]).cpu()
        masks.extend(frame.masks_to_slice(probs).numpy().astype(np.float32))
        progress("refine", 0.8 + 0.15 * min(1.0, (lo + len(chunk)) / len(prompts)), f"{lo + len(chunk)} prompts")
    return masks


def fuse_refined(
    prompts: Sequence,
    masks: Sequence[np.ndarray],
    shape_zyx: tuple[int, int, int],
    threshold: float,
    margin_px: int,
    allowed_zyx: np.ndarray | None = None,
) -> np.ndarray:
    """One label per voxel from refined prompt masks.

    Each class's score on a slice is the highest probability any of its prompts gives a voxel,
    inside that prompt's box grown by ``margin_px``. A voxel takes the class with the highest
    score if that score reaches ``threshold``; otherwise it is background. ``allowed_zyx`` (bool
    (K, J, I), e.g. the PCPG's physically plausible voxels) confines every mask to it.
    Returns uint8 (K, J, I).
    """
    labels_zyx = np.zeros(shape_zyx, dtype=np.uint8)
    by_slice: dict[int, list[int]] = defaultdict(list)
    for n, prompt in enumerate(prompts):
        by_slice[prompt.slice_k].append(n)
    for k, members in by_slice.items():
        scores = np.zeros((6, *shape_zyx[1:]), dtype=np.float32)
        for n in members:
            rows, cols = box_window(prompts[n].box_xyxy, margin_px, shape_zyx[1:])
            label = prompts[n].label
            np.maximum(scores[label, rows, cols], masks[n][rows, cols], out=scores[label, rows, cols])
        if allowed_zyx is not None:
            scores *= allowed_zyx[k]
        best = scores.argmax(axis=0)
        labels_zyx[k] = np.where(scores.max(axis=0) >= threshold, best, 0).astype(np.uint8)
    return labels_zyx
