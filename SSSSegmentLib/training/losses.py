"""Losses of the coarse head and the SAM-2 decoder, and box prompts from label components.

Shapes: coarse logits (B, 6, S/2, S/2) and their label maps (B, S/2, S/2) int64 (0 background,
1..5 classes); decoder mask logits (N, 1, S/4, S/4) and their label maps (B, S/4, S/4). Boxes are
(x0, y0, x1, y1) in model-input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf
from scipy import ndimage

from ..classes import NUM_LABELS

STRIDE = 4  # the SAM-2 decoder's mask stride (model-input pixels per mask cell)
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def pooled_labels(labels_bhw: torch.Tensor, factor: int) -> torch.Tensor:
    """Label maps (B, h, w) -> (B, h/factor, w/factor) int64: the majority label of each cell,
    a hemorrhage class covering >= half of the cell wins (a tight target keeps the coarse
    mask off the skull, where PCPG's blood-density rule would reject it)."""
    if factor == 1:
        return labels_bhw.long()
    onehot = nnf.one_hot(labels_bhw.long(), NUM_LABELS).permute(0, 3, 1, 2).float()
    frac = nnf.avg_pool2d(onehot, factor)
    fg_best, fg_label = frac[:, 1:].max(dim=1)
    return torch.where(fg_best >= 0.5, fg_label + 1, frac.argmax(dim=1))


def pooled_valid(valid_bhw: torch.Tensor, factor: int) -> torch.Tensor:
    """Validity maps (B, h, w) bool -> (B, h/factor, w/factor): a cell is valid when all its pixels are."""
    if factor == 1:
        return valid_bhw
    return nnf.max_pool2d((~valid_bhw).float()[:, None], factor)[:, 0] == 0


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean soft Dice over the hemorrhage classes present in ``target`` (0 when none is)."""
    probs = torch.softmax(logits.float(), dim=1)[:, 1:]
    onehot = nnf.one_hot(target, NUM_LABELS).permute(0, 3, 1, 2).float()[:, 1:]
    present = onehot.sum(dim=(0, 2, 3)) > 0
    if not bool(present.any()):
        return probs.sum() * 0.0
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return 1.0 - dice[present].mean()


def coarse_supervised_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice of coarse logits (B, 6, h, w) against labels (B, h, w)."""
    return nnf.cross_entropy(logits.float(), target) + soft_dice_loss(logits, target)


def masked_ce_loss(logits: torch.Tensor, pseudo: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to pseudo-labels (B, h, w), counted only where ``valid`` (mean over all pixels)."""
    ce = nnf.cross_entropy(logits.float(), pseudo, reduction="none")
    return (ce * valid.float()).sum() / valid.numel()


@dataclass(frozen=True)
class BoxPrompts:
    """N box prompts: slice index in the batch (N,), boxes (N, 4) model pixels, targets (N, 1, h, w)
    in [0, 1] and per-pixel loss weights (N, 1, h, w); one positive point per box, (N, 1, 2) model
    pixels with labels (N, 1), as inference sends a box with points (PCPG and interactive clicks)."""

    image_index: torch.Tensor
    boxes: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor
    points: torch.Tensor | None = None
    point_labels: torch.Tensor | None = None

    @property
    def count(self) -> int:
        return int(self.image_index.shape[0])


def component_prompts(labels_bhw: torch.Tensor, max_prompts: int, gen: torch.Generator,
                      valid_bhw: torch.Tensor | None = None, jitter: float = 0.1) -> BoxPrompts | None:
    """One box and one positive point (a random cell of the component) per 8-connected component of
    each class on each decoder-stride label map (B, S/4, S/4).

    The target of a box is its component's mask; ``valid_bhw`` (bool) sets which pixels count in
    the loss (all when None). Boxes are jittered by up to ``jitter`` of their size. At most
    ``max_prompts`` (random ones) are returned; None when there is no component.
    """
    labels = labels_bhw.cpu().numpy()
    found: list[tuple[int, np.ndarray]] = []
    for b in range(labels.shape[0]):
        for cls in np.unique(labels[b]):
            if cls == 0:
                continue
            comp, count = ndimage.label(labels[b] == cls, structure=_EIGHT_CONNECTED)
            found += [(b, comp == n) for n in range(1, count + 1)]
    if not found:
        return None
    order = torch.randperm(len(found), generator=gen)[:max_prompts].tolist()
    chosen = [found[i] for i in order]
    boxes = torch.tensor(np.stack([_box_xyxy(mask) for _, mask in chosen]), dtype=torch.float32)
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    noise = (torch.rand(boxes.shape, generator=gen) * 2 - 1) * jitter * size
    boxes = (boxes + noise).clamp(0, labels.shape[-1] * STRIDE - 1)
    index = torch.tensor([b for b, _ in chosen], dtype=torch.long)
    targets = torch.from_numpy(np.stack([mask for _, mask in chosen])).float()[:, None]
    weights = torch.ones_like(targets) if valid_bhw is None else valid_bhw.cpu()[index].float()[:, None]
    points = torch.stack([_random_cell_centre(mask, gen) for _, mask in chosen])[:, None]
    device = labels_bhw.device
    return BoxPrompts(index.to(device), boxes.to(device), targets.to(device), weights.to(device),
                      points.to(device), torch.ones(points.shape[:2], dtype=torch.long, device=device))


def _random_cell_centre(mask_hw: np.ndarray, gen: torch.Generator) -> torch.Tensor:
    """(x, y) model pixel at the centre of a random cell of a stride-4 mask (SAM samples its clicks so)."""
    cells = np.argwhere(mask_hw)
    y, x = cells[int(torch.randint(len(cells), (1,), generator=gen))]
    return torch.tensor([x * STRIDE + (STRIDE - 1) / 2, y * STRIDE + (STRIDE - 1) / 2], dtype=torch.float32)


def _box_xyxy(mask_hw: np.ndarray) -> np.ndarray:
    """Model-pixel box (x0, y0, x1, y1) around a stride-4 mask (cell c spans pixels 4c..4c+3)."""
    ys, xs = np.nonzero(mask_hw)
    return np.array([xs.min() * STRIDE, ys.min() * STRIDE, xs.max() * STRIDE + STRIDE - 1,
                     ys.max() * STRIDE + STRIDE - 1], dtype=np.float32)


def decoder_loss(mask_logits: torch.Tensor, prompts: BoxPrompts) -> torch.Tensor:
    """Weighted BCE + soft Dice of decoder masks (N, 1, h, w) against the prompts' targets."""
    logits = mask_logits.float()
    bce = nnf.binary_cross_entropy_with_logits(logits, prompts.targets, reduction="none")
    bce = (bce * prompts.weights).sum() / prompts.weights.sum().clamp(min=1.0)
    probs = torch.sigmoid(logits) * prompts.weights
    target = prompts.targets * prompts.weights
    inter = (probs * target).sum(dim=(1, 2, 3))
    dice = (2 * inter + 1.0) / (probs.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1.0)
    return bce + (1.0 - dice).mean()
