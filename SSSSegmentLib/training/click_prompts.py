"""Prompts for training the SAM-2 decoder the way it is used interactively: a first prompt, then clicks
that correct the previous prediction (SAM-2's interactive training, on label maps).

Shapes and frames: label maps (B, S, S) int64 on the model grid (0 background, 1..5 classes); the
coarse head's labels (B, S/2, S/2); decoder mask logits (N, 1, S/4, S/4). Boxes (N, 4) are
(x0, y0, x1, y1) and points (N, P, 2) are (x, y), both in model pixel indices as ``SSSModel.decode``
takes them; point labels (N, P) are 1 positive, 0 negative, -1 padding.

The first prompt of an object is a box (the component's box jittered, or loosened as the interactive
engine's coarse-component and fixed-size click boxes are, or the coarse head's component box as
PCPG sends) with, most of the time, one positive point, and a negative point on another labelled
segment in the box now and then (the engine sends one per other-class segment). A share of the
prompts are PCPG-like false prompts: a coarse-head component that covers no label, whose target is
empty. Each corrective round adds one click in the error of the previous prediction, inside the box
grown by a margin (the engine keeps nothing outside it): positive on a miss, negative on a false
region; at the most interior cell of the largest error region (the benchmark's simulated user) or
at a random error cell (SAM-2's sampling).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as nnf
from scipy import ndimage

from ..prompts.components import largest_region
from ..prompts.prompting import interior_distance
from .losses import STRIDE

_EIGHT = np.ones((3, 3), dtype=bool)
_PAD = -1


@dataclass(frozen=True)
class ClickSampling:
    """How prompts are drawn (probabilities per prompt; sizes in model pixels).

    box_jitter: noise on each box edge, as a share of the box side (SAM-2: 0.1).
    p_loose_box / loose_box_max: a box grown on each side by up to ``loose_box_max`` of its side.
    p_coarse_box: the box of the coarse head's foreground component(s) over the target instead.
    p_first_point: the first prompt carries a positive point; p_interior: that point (and a
        corrective click) is the most interior one rather than a random one.
    p_other_negative: a negative point on another labelled segment inside the box.
    false_prompt_share: at most this share of a batch's prompts are coarse components without label.
    margin_px: how far outside its box a prediction counts (the engine's ``box_margin_px``).
    """

    box_jitter: float = 0.1
    p_loose_box: float = 0.3
    loose_box_max: float = 0.5
    p_coarse_box: float = 0.3
    p_first_point: float = 0.8
    p_interior: float = 0.5
    p_other_negative: float = 0.5
    false_prompt_share: float = 0.15
    margin_px: int = 4


@dataclass(frozen=True)
class ClickPrompts:
    """N prompts on a batch of slices and their targets.

    image_index (N,) slice in the batch; boxes (N, 4); points (N, P, 2) and point_labels (N, P);
    targets (N, 1, S, S) float in {0, 1}; windows (N, 4) int cells (r0, r1, c0, c1) of the
    stride-4 grid where a prediction counts (the box grown by the margin).
    """

    image_index: torch.Tensor
    boxes: torch.Tensor
    points: torch.Tensor
    point_labels: torch.Tensor
    targets: torch.Tensor
    windows: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.image_index.shape[0])


def first_prompts(labels_bss: torch.Tensor, coarse_bhh: torch.Tensor | None, max_prompts: int,
                  gen: torch.Generator, sampling: ClickSampling) -> ClickPrompts | None:
    """First prompts for up to ``max_prompts`` labelled components (and coarse false components)
    of a batch of label maps (B, S, S); None when the batch has neither."""
    labels = labels_bss.cpu().numpy()
    coarse_fg = None
    if coarse_bhh is not None:
        up = nnf.interpolate(coarse_bhh[:, None].float().cpu(), size=labels.shape[-2:], mode="nearest")[:, 0]
        coarse_fg = up.numpy() > 0
    objects = _labelled_components(labels)
    false = _false_components(labels, coarse_fg) if coarse_fg is not None else []
    n_false = min(len(false), int(round(sampling.false_prompt_share * max_prompts)))
    n_true = min(len(objects), max_prompts - n_false)
    if n_true + n_false == 0:
        return None
    chosen = [objects[i] for i in _perm(len(objects), gen)[:n_true]]
    chosen += [false[i] for i in _perm(len(false), gen)[:n_false]]
    rows = [_first_prompt(b, region, is_false, labels[b], coarse_fg, gen, sampling) for b, region, is_false in chosen]
    return _stack(rows, labels.shape[-1], sampling.margin_px)


def add_corrective_clicks(prompts: ClickPrompts, mask_logits: torch.Tensor, gen: torch.Generator,
                          sampling: ClickSampling) -> ClickPrompts:
    """``prompts`` with one more point each, in the error of ``mask_logits`` (N, 1, S/4, S/4), inside
    its window; a prompt whose prediction has no error there gets a padding point."""
    pred = (mask_logits.detach()[:, 0] > 0).cpu().numpy()
    truth = nnf.avg_pool2d(prompts.targets.cpu(), STRIDE)[:, 0].numpy() >= 0.5
    points = np.zeros((prompts.count, 1, 2), dtype=np.float32)
    labels = np.full((prompts.count, 1), _PAD, dtype=np.int64)
    for n, (r0, r1, c0, c1) in enumerate(prompts.windows.tolist()):
        inside = np.zeros_like(pred[n])
        inside[r0:r1, c0:c1] = True
        click = _error_click(truth[n] & ~pred[n] & inside, pred[n] & ~truth[n] & inside, gen, sampling)
        if click is not None:
            (row, col), positive = click
            points[n, 0] = (col * STRIDE + (STRIDE - 1) / 2, row * STRIDE + (STRIDE - 1) / 2)
            labels[n, 0] = int(positive)
    device = prompts.points.device
    return replace(prompts, points=torch.cat([prompts.points, torch.from_numpy(points).to(device)], dim=1),
                   point_labels=torch.cat([prompts.point_labels, torch.from_numpy(labels).to(device)], dim=1))


def _perm(n: int, gen: torch.Generator) -> list[int]:
    return torch.randperm(n, generator=gen).tolist() if n else []


def _rand(gen: torch.Generator) -> float:
    return float(torch.rand((), generator=gen))


def _labelled_components(labels: np.ndarray) -> list[tuple[int, np.ndarray, bool]]:
    """(slice, bool (S, S), False) per 8-connected component of each class on each slice."""
    found = []
    for b in range(labels.shape[0]):
        for cls in np.unique(labels[b]):
            if cls:
                comp, count = ndimage.label(labels[b] == cls, structure=_EIGHT)
                found += [(b, comp == n, False) for n in range(1, count + 1)]
    return found


def _false_components(labels: np.ndarray, coarse_fg: np.ndarray) -> list[tuple[int, np.ndarray, bool]]:
    """(slice, bool (S, S), True) per coarse foreground component of at least 16 pixels that touches
    no label (PCPG's false prompts: the component gives the box and point, the target is empty)."""
    found = []
    for b in range(labels.shape[0]):
        comp, count = ndimage.label(coarse_fg[b] & (labels[b] == 0), structure=_EIGHT)
        for n in range(1, count + 1):
            region = comp == n
            if np.count_nonzero(region) >= 16 and not (ndimage.binary_dilation(region) & (labels[b] > 0)).any():
                found.append((b, region, True))
    return found


def _first_prompt(b: int, region: np.ndarray, false_prompt: bool, labels: np.ndarray,
                  coarse_fg: np.ndarray | None, gen: torch.Generator, s: ClickSampling) -> tuple:
    """(slice, box (4,), points [(x, y)], labels [int], target bool (S, S)) of one object: ``region``
    is its component (the target, or for a false prompt the coarse component; its target is empty)."""
    target = np.zeros_like(region) if false_prompt else region
    box = _box(region)
    if not false_prompt and coarse_fg is not None and _rand(gen) < s.p_coarse_box:
        over = _components_touching(coarse_fg[b], region)
        if over.any():
            box = _union(_box(over), box)
    elif _rand(gen) < s.p_loose_box:
        box = _grow(box, gen, s.loose_box_max)
    box = _jitter(box, gen, s.box_jitter, labels.shape[-1])
    points, point_labels = [], []
    if false_prompt or _rand(gen) < s.p_first_point:
        points.append(_point_in(region, gen, s.p_interior))
        point_labels.append(1)
    other = _other_segment(labels, target, box)
    if other is not None and _rand(gen) < s.p_other_negative:
        points.append(_point_in(other, gen, 0.0))
        point_labels.append(0)
    return b, box, points, point_labels, target


def _box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float32)


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])


def _grow(box: np.ndarray, gen: torch.Generator, most: float) -> np.ndarray:
    side = np.maximum(box[2:] - box[:2], 4.0)
    grow = torch.rand(4, generator=gen).numpy() * most * np.tile(side, 2)
    return box + np.array([-1, -1, 1, 1], np.float32) * grow


def _jitter(box: np.ndarray, gen: torch.Generator, share: float, size: int) -> np.ndarray:
    side = np.tile(np.maximum(box[2:] - box[:2], 1.0), 2)
    noise = (torch.rand(4, generator=gen).numpy() * 2 - 1) * share * side
    out = np.clip(box + noise, 0, size - 1).astype(np.float32)
    return np.concatenate([np.minimum(out[:2], out[2:]), np.maximum(out[:2], out[2:])])


def _components_touching(mask: np.ndarray, region: np.ndarray) -> np.ndarray:
    comp, _ = ndimage.label(mask, structure=_EIGHT)
    ids = np.unique(comp[region & mask])
    return np.isin(comp, ids[ids > 0])


def _other_segment(labels: np.ndarray, target: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """Bool (S, S): labelled pixels inside ``box`` that are not the target, or None."""
    x0, y0, x1, y1 = (int(v) for v in box)
    inside = np.zeros_like(target)
    inside[y0:y1 + 1, x0:x1 + 1] = True
    other = (labels > 0) & ~target & inside
    return other if other.any() else None


def _point_in(mask: np.ndarray, gen: torch.Generator, p_interior: float) -> tuple[float, float]:
    """(x, y) of the most interior pixel of ``mask`` (with ``p_interior``) or of a random one."""
    if _rand(gen) < p_interior:
        depth = interior_distance(mask, (1.0, 1.0))
        y, x = np.unravel_index(int(depth.argmax()), depth.shape)
    else:
        cells = np.argwhere(mask)
        y, x = cells[int(torch.randint(len(cells), (1,), generator=gen))]
    return float(x), float(y)


def _error_click(missed: np.ndarray, false: np.ndarray, gen: torch.Generator,
                 s: ClickSampling) -> tuple[tuple[int, int], bool] | None:
    """((row, col), positive) of a click in the error (cells of the stride-4 grid), or None."""
    if not missed.any() and not false.any():
        return None
    if _rand(gen) < s.p_interior:
        best = max(((largest_region(m), positive) for m, positive in ((missed, True), (false, False)) if m.any()),
                   key=lambda item: np.count_nonzero(item[0]))
        depth = interior_distance(best[0], (1.0, 1.0))
        return tuple(int(v) for v in np.unravel_index(int(depth.argmax()), depth.shape)), best[1]
    cells = np.argwhere(missed | false)
    row, col = cells[int(torch.randint(len(cells), (1,), generator=gen))]
    return (int(row), int(col)), bool(missed[row, col])


def _stack(rows: list[tuple], size: int, margin_px: int) -> ClickPrompts:
    """ClickPrompts from per-object (slice, box, points, labels, target) rows (points padded)."""
    width = max(1, max(len(r[2]) for r in rows))
    points = np.zeros((len(rows), width, 2), dtype=np.float32)
    labels = np.full((len(rows), width), _PAD, dtype=np.int64)
    for n, (_, _, pts, lbl, _) in enumerate(rows):
        if pts:
            points[n, : len(pts)] = pts
            labels[n, : len(lbl)] = lbl
    boxes = np.stack([r[1] for r in rows])
    cells = size // STRIDE
    lo = np.floor((boxes[:, :2] - margin_px) / STRIDE).clip(0, cells).astype(np.int64)
    hi = np.ceil((boxes[:, 2:] + 1 + margin_px) / STRIDE).clip(0, cells).astype(np.int64)
    windows = np.stack([lo[:, 1], hi[:, 1], lo[:, 0], hi[:, 0]], axis=1)
    return ClickPrompts(torch.tensor([r[0] for r in rows]), torch.from_numpy(boxes), torch.from_numpy(points),
                        torch.from_numpy(labels), torch.from_numpy(np.stack([r[4] for r in rows])).float()[:, None],
                        torch.from_numpy(windows))
