"""Slice cache and batch sampling for training.

Every volume is read once and turned into model inputs at the preset size S: the three windowed
channels in [0, 1] stored as uint8 (K, 3, S, S) (exactly what ``ct_to_model_input`` feeds the model
before SAM's mean/std normalisation), and for labeled cases the label map on the model grid
(K, S, S) uint8 (nearest neighbour of each model pixel centre, padding = background).
Unlabeled cases have no labels, so their "blood slices" are slices with a blood-density region in
the raw CT (``blood_like_slices``): a sampling prior, never a training target.
Batches are drawn with a ``torch.Generator`` seeded from (seed, step, rank, micro-batch), so a
resumed run draws exactly the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..model.preprocess import PIXEL_MEAN, PIXEL_STD, SliceFrame, ct_to_model_input
from ..progress import ProgressCallback, silent
from .cases import CasePaths, read_case

# Acute blood after a 3x3 median (phantoms and real scans: 50-90 HU, partial volume aside); denser
# voxels are calcification or bone. A slice needs this much blood-like area to be a candidate.
BLOOD_LIKE_HU = (55.0, 95.0)
BLOOD_LIKE_MIN_AREA_MM2 = 25.0

_MEAN = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)


def labels_to_model_grid(labels_kyx: np.ndarray, frame: SliceFrame) -> np.ndarray:
    """Label slices (K, J, I) -> (K, S, S) uint8 on the model grid (nearest; padding = 0)."""
    rows, cols = frame.resized_hw
    size = frame.padded_size
    ys = np.clip(np.floor((np.arange(rows) + 0.5) * labels_kyx.shape[1] / rows).astype(int), 0, labels_kyx.shape[1] - 1)
    xs = np.clip(np.floor((np.arange(cols) + 0.5) * labels_kyx.shape[2] / cols).astype(int), 0, labels_kyx.shape[2] - 1)
    out = np.zeros((labels_kyx.shape[0], size, size), dtype=np.uint8)
    out[:, :rows, :cols] = labels_kyx[:, ys][:, :, xs]
    return out


def to_unit_uint8(images: torch.Tensor) -> torch.Tensor:
    """Normalised model input (K, 3, S, S) -> windowed channels in [0, 1] as uint8."""
    unit = images * _STD + _MEAN
    return (unit.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def from_unit_uint8(stored: torch.Tensor) -> torch.Tensor:
    """uint8 channels (B, 3, S, S) -> normalised float32 model input."""
    return (stored.float() / 255.0 - _MEAN.to(stored.device)) / _STD.to(stored.device)


@dataclass
class SliceCache:
    """All training slices of one set of cases at model size.

    ``images`` uint8 (N, 3, S, S); ``labels`` uint8 (N, S, S) or None (unlabeled set);
    ``case_of_slice`` int (N,); ``blood_slices`` indices of slices with any hemorrhage label
    (labeled set) or with a blood-like region in the CT (unlabeled set, ``blood_like_slices``).
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    case_of_slice: np.ndarray
    blood_slices: np.ndarray

    @property
    def num_slices(self) -> int:
        return int(self.images.shape[0])


def blood_like_slices(hu_zyx: np.ndarray, spacing_mm: tuple[float, ...],
                      min_area_mm2: float = BLOOD_LIKE_MIN_AREA_MM2) -> np.ndarray:
    """Bool (K,): axial slices k with at least ``min_area_mm2`` of blood-density tissue.

    ``hu_zyx`` (K, J, I) raw HU; ``spacing_mm`` (s_i, s_j, ...). Per slice: 3x3 median (noise),
    ``BLOOD_LIKE_HU`` window, then a 3x3 opening that removes the thin partial-volume rim inside
    the skull and isolated pixels.
    """
    pixel_mm2 = float(spacing_mm[0]) * float(spacing_mm[1])
    found = np.zeros(hu_zyx.shape[0], dtype=bool)
    lo, hi = BLOOD_LIKE_HU
    for k, hu_yx in enumerate(hu_zyx):
        smooth = ndimage.median_filter(hu_yx, size=3)
        blood = ndimage.binary_opening((smooth >= lo) & (smooth <= hi), structure=np.ones((3, 3), bool))
        found[k] = np.count_nonzero(blood) * pixel_mm2 >= min_area_mm2
    return found


def build_cache(cases: Sequence[CasePaths], image_size: int, with_labels: bool,
                progress: ProgressCallback = silent, find_blood_like: bool = False) -> SliceCache | None:
    """Read and preprocess ``cases`` once (None for an empty list). Without labels, ``blood_slices``
    are the ``blood_like_slices`` when ``find_blood_like`` (else none: the prior costs a median
    filter per slice, spent only when a run samples from it)."""
    if not cases:
        return None
    images, labels, owners, blood_like = [], [], [], []
    for n, case in enumerate(cases):
        volume, label_zyx = read_case(case)
        model_input, frame = ct_to_model_input(volume.hu_zyx, image_size)
        images.append(to_unit_uint8(model_input))
        if with_labels and label_zyx is not None:
            labels.append(torch.from_numpy(labels_to_model_grid(label_zyx, frame)))
        elif find_blood_like:
            blood_like.append(blood_like_slices(volume.hu_zyx, volume.geometry.spacing_mm))
        owners.append(np.full(model_input.shape[0], n))
        progress("data", (n + 1) / len(cases), f"case {n + 1}/{len(cases)}")
    label_tensor = torch.cat(labels) if with_labels else None
    blood = np.empty(0, int)
    if label_tensor is not None:
        blood = np.flatnonzero(label_tensor.flatten(1).amax(1).numpy() > 0)
    elif blood_like:
        blood = np.flatnonzero(np.concatenate(blood_like))
    return SliceCache(torch.cat(images), label_tensor, np.concatenate(owners), blood)


def step_generator(seed: int, step: int, rank: int, micro: int) -> torch.Generator:
    """A generator that depends only on (seed, step, rank, micro-batch)."""
    mixed = np.random.SeedSequence([int(seed), int(step), int(rank), int(micro)]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(mixed))


def sample_slices(cache: SliceCache, n: int, blood_fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Indices of ``n`` slices; each is drawn from ``cache.blood_slices`` with ``blood_fraction``,
    otherwise uniformly (with fraction 0 the generator advances exactly as a uniform draw)."""
    idx = torch.randint(cache.num_slices, (n,), generator=gen)
    if len(cache.blood_slices) and blood_fraction > 0:
        from_blood = torch.rand(n, generator=gen) < blood_fraction
        pick = torch.randint(len(cache.blood_slices), (n,), generator=gen)
        idx = torch.where(from_blood, torch.from_numpy(cache.blood_slices)[pick], idx)
    return idx
