"""Views for weak-to-strong training, on batches of model inputs (B, 3, S, S) (normalised).

Weak view (``img_x``, ``img_u_w``): random left-right flip and a small affine (rotation, scale,
shift), applied identically to the label maps. Strong views (``img_u_s1``, ``img_u_s2``): the weak
view plus intensity jitter of each HU-window channel (window shift and width), Gaussian blur and
noise, then CutMix with another slice of the batch; the mix box is returned so the pseudo-labels
are mixed the same way. All randomness comes from the given ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf

from ..errors import SSSSegError
from ..model.preprocess import PIXEL_MEAN, PIXEL_STD
from .config import MIN_CUTMIX_BATCH

MAX_ROTATION_DEG = 10.0
SCALE_RANGE = (0.9, 1.1)
MAX_SHIFT = 0.05  # fraction of the image (normalised coordinates span 2)
STRIDE = 4  # coarse-logit stride: CutMix boxes are aligned to it


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def random_affine(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) affine_grid matrices: flip, rotation, scale and shift."""
    angle = _uniform(gen, n, -MAX_ROTATION_DEG, MAX_ROTATION_DEG) * math.pi / 180.0
    scale = _uniform(gen, n, *SCALE_RANGE)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    shift = _uniform(gen, 2 * n, -2 * MAX_SHIFT, 2 * MAX_SHIFT).view(n, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * flip, -sin, shift[:, 0]
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * flip, cos, shift[:, 1]
    return theta


def weak_view(images: torch.Tensor, labels: torch.Tensor | None, gen: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flip + small affine of images (B, 3, S, S) and labels (B, S, S) (nearest), same transform."""
    theta = random_affine(images.shape[0], gen).to(images.device)
    grid = nnf.affine_grid(theta, list(images.shape), align_corners=False)
    out = nnf.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if labels is None:
        return out, None
    lab = nnf.grid_sample(labels[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out, lab[:, 0].round().to(labels.dtype)


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma (pixels)."""
    radius = 3
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    out = []
    for img, s in zip(images, sigma, strict=True):
        k = torch.exp(-(x**2) / (2 * float(s) ** 2))
        k = (k / k.sum()).view(1, 1, 1, -1).expand(3, 1, 1, -1)
        img = nnf.conv2d(img[None], k, padding=(0, radius), groups=3)
        img = nnf.conv2d(img, k.transpose(2, 3), padding=(radius, 0), groups=3)
        out.append(img[0])
    return torch.stack(out)


def photometric(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Intensity jitter per window channel (shift +-0.1 of the window, width x0.8..1.25), blur, noise."""
    n = images.shape[0]
    mean = torch.tensor(PIXEL_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=images.device).view(1, 3, 1, 1)
    unit = images * std + mean
    shift = _uniform(gen, n * 3, -0.1, 0.1).view(n, 3, 1, 1).to(images.device)
    gain = torch.exp(_uniform(gen, n * 3, math.log(0.8), math.log(1.25))).view(n, 3, 1, 1).to(images.device)
    unit = ((unit - 0.5) * gain + 0.5 + shift).clamp(0.0, 1.0)
    blur = torch.rand(n, generator=gen) < 0.5
    sigma = _uniform(gen, n, 0.3, 1.5)
    if bool(blur.any()):
        blurred = _gaussian_blur(unit, sigma)
        unit = torch.where(blur.view(n, 1, 1, 1).to(images.device), blurred, unit)
    noise_std = _uniform(gen, n, 0.0, 0.03).view(n, 1, 1, 1).to(images.device)
    noise = torch.randn(unit.shape, generator=gen).to(images.device) * noise_std
    return ((unit + noise).clamp(0.0, 1.0) - mean) / std


@dataclass(frozen=True)
class CutMix:
    """A CutMix of a batch: pixel (b, y, x) inside ``box`` (B, S, S) bool comes from ``partner[b]``."""

    box: torch.Tensor
    partner: torch.Tensor

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """Mix images (B, C, S, S) or maps (B, h, w) at any stride dividing S."""
        box = self.box_at(images.shape[-1]).to(images.device)
        if images.ndim == 4:
            box = box[:, None]
        return torch.where(box, images[self.partner.to(images.device)], images)

    def box_at(self, size: int) -> torch.Tensor:
        """The mix box at resolution ``size`` (boxes are aligned to the coarse stride)."""
        stride = self.box.shape[-1] // size
        return self.box[:, ::stride, ::stride] if stride > 1 else self.box


def random_cutmix(n: int, size: int, gen: torch.Generator, p: float = 0.5,
                  area: tuple[float, float] = (0.02, 0.4)) -> CutMix:
    """Boxes of ``area`` fraction of the S x S image (aspect 0.3..3.3), with probability ``p``; slice b
    takes the box's pixels from slice b - 1 (slice 0 from the last). SSSSegError for fewer than
    ``MIN_CUTMIX_BATCH`` slices: a slice mixed with itself is no CutMix at all."""
    if n < MIN_CUTMIX_BATCH:
        raise SSSSegError(f"CutMix needs at least {MIN_CUTMIX_BATCH} slices in a batch, got {n}")
    box = torch.zeros(n, size, size, dtype=torch.bool)
    cells = size // STRIDE
    do_mix = torch.rand(n, generator=gen) < p
    frac = _uniform(gen, n, *area)
    aspect = torch.exp(_uniform(gen, n, math.log(0.3), math.log(1 / 0.3)))
    corner = torch.rand(n, 2, generator=gen)
    for b in range(n):
        if not bool(do_mix[b]):
            continue
        h = max(1, min(cells, round(cells * math.sqrt(float(frac[b] * aspect[b])))))
        w = max(1, min(cells, round(cells * math.sqrt(float(frac[b] / aspect[b])))))
        y0 = int(corner[b, 0] * (cells - h + 1))
        x0 = int(corner[b, 1] * (cells - w + 1))
        box[b, y0 * STRIDE:(y0 + h) * STRIDE, x0 * STRIDE:(x0 + w) * STRIDE] = True
    partner = torch.roll(torch.arange(n), 1)
    return CutMix(box, partner)
