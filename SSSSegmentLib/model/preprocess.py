"""CT slices -> SAM-2 model input, and model-space outputs -> slice space.

Frames: a slice is indexed [j, i] (row, column) like ``CTVolume.hu_zyx[k]``. Point/box
coordinates are (x, y) = (column i, row j) in pixel-index units (the centre of pixel i is x = i),
in the slice or in the model input. The model input is the slice resized (bilinear, aspect kept)
so that its longer side is S, placed at the top-left of an S x S canvas (padding bottom/right).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf

from ..errors import InputError

# (centre, width) in HU: brain, subdural, bone windows -> the three input channels.
DEFAULT_WINDOWS: tuple[tuple[float, float], ...] = ((40.0, 80.0), (80.0, 200.0), (600.0, 2800.0))
# SAM / ImageNet normalisation of [0, 1] RGB channels.
PIXEL_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
PIXEL_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CHUNK_SLICES = 8  # slices processed at once (bounds the float intermediates)


@dataclass(frozen=True)
class SliceFrame:
    """How one slice shape (J, I) maps into the S x S model input.

    ``scale`` = S / max(J, I); the resized slice occupies rows [0, resized_hw[0]) and columns
    [0, resized_hw[1]) of the model input, the rest is padding.
    """

    slice_shape: tuple[int, int]  # (J, I) = (rows, columns)
    scale: float
    padded_size: int  # S

    @classmethod
    def for_slice(cls, slice_shape: tuple[int, int], image_size: int) -> SliceFrame:
        """The frame of slices of shape (J, I) for model input size S = ``image_size``."""
        rows, cols = int(slice_shape[0]), int(slice_shape[1])
        if rows < 1 or cols < 1:
            raise InputError(f"empty slice shape {slice_shape}")
        return cls((rows, cols), image_size / max(rows, cols), int(image_size))

    @property
    def resized_hw(self) -> tuple[int, int]:
        """(rows, columns) of the resized slice inside the model input."""
        rows, cols = self.slice_shape
        size = self.padded_size
        return (min(size, max(1, round(rows * self.scale))), min(size, max(1, round(cols * self.scale))))

    @property
    def _scale_yx(self) -> tuple[float, float]:
        """Exact per-axis scale (resized / original), which the resampling uses."""
        (rows, cols), (rrows, rcols) = self.slice_shape, self.resized_hw
        return rrows / rows, rcols / cols

    def to_model_xy(self, ij_xy: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Slice pixel coordinates (..., 2) as (x=i, y=j) -> model-input pixel coordinates (x, y)."""
        sy, sx = self._scale_yx
        return _affine_xy(ij_xy, (sx, sy), forward=True)

    def to_slice_xy(self, xy: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Model-input pixel coordinates (..., 2) as (x, y) -> slice pixel coordinates (x=i, y=j)."""
        sy, sx = self._scale_yx
        return _affine_xy(xy, (sx, sy), forward=False)

    def masks_to_slice(self, mask_khw: torch.Tensor) -> torch.Tensor:
        """Model-space maps (K, h, w) at any resolution of the S x S input -> slice maps (K, J, I).

        The un-padded region is resampled bilinearly (align_corners=False geometry) onto the
        slice grid, so pass logits or probabilities, not hard labels. Float32 output.
        """
        if mask_khw.ndim != 3:
            raise ValueError(f"masks_to_slice expects (K, h, w), got shape {tuple(mask_khw.shape)}")
        grid = self._sampling_grid(mask_khw.device)
        out = torch.empty((mask_khw.shape[0], *self.slice_shape), dtype=torch.float32, device=mask_khw.device)
        for k0 in range(0, mask_khw.shape[0], CHUNK_SLICES):
            chunk = mask_khw[k0 : k0 + CHUNK_SLICES, None].float()
            g = grid.expand(chunk.shape[0], -1, -1, -1)
            out[k0 : k0 + chunk.shape[0]] = nnf.grid_sample(
                chunk, g, mode="bilinear", padding_mode="border", align_corners=False
            )[:, 0]
        return out

    def _sampling_grid(self, device: torch.device) -> torch.Tensor:
        """(1, J, I, 2) grid_sample coordinates of slice pixel centres in the normalised model frame."""
        rows, cols = self.slice_shape
        sy, sx = self._scale_yx
        size = self.padded_size
        gy = (torch.arange(rows, dtype=torch.float32, device=device) + 0.5) * (2.0 * sy / size) - 1.0
        gx = (torch.arange(cols, dtype=torch.float32, device=device) + 0.5) * (2.0 * sx / size) - 1.0
        yy, xx = torch.meshgrid(gy, gx, indexing="ij")
        return torch.stack((xx, yy), dim=-1)[None]


def _affine_xy(xy: np.ndarray | torch.Tensor, scale_xy: tuple[float, float], forward: bool):
    """Pixel-centre-correct resampling map: model = (slice + 0.5) * s - 0.5, or its inverse."""
    if xy.shape[-1] != 2:
        raise ValueError(f"coordinates must have a last axis of 2 (x, y), got shape {tuple(xy.shape)}")
    is_torch = isinstance(xy, torch.Tensor)
    pts = xy.float() if is_torch else np.asarray(xy, dtype=np.float64)
    scale = torch.tensor(scale_xy, dtype=pts.dtype, device=pts.device) if is_torch else np.array(scale_xy)
    return (pts + 0.5) * scale - 0.5 if forward else (pts + 0.5) / scale - 0.5


def window_channels(hu: torch.Tensor, windows: Sequence[tuple[float, float]]) -> torch.Tensor:
    """HU slices (k, J, I) -> windowed channels (k, len(windows), J, I) in [0, 1].

    A (centre c, width w) window maps c - w/2 -> 0 and c + w/2 -> 1, clipped.
    """
    out = torch.empty((hu.shape[0], len(windows), *hu.shape[1:]), dtype=torch.float32)
    for n, (c, w) in enumerate(windows):  # written in place: no per-window temporaries, no stack copy
        torch.sub(hu, c - w / 2.0, out=out[:, n])
        out[:, n].div_(w).clamp_(0.0, 1.0)
    return out


def ct_to_model_input(
    hu_kyx: np.ndarray,
    image_size: int,
    windows: Sequence[tuple[float, float]] = DEFAULT_WINDOWS,
) -> tuple[torch.Tensor, SliceFrame]:
    """HU slices (K, J, I) -> SAM-2 input (K, 3, S, S) float32 and the SliceFrame of the slices.

    Channels are the three HU windows (brain, subdural, bone by default) in [0, 1], resized
    bilinearly (antialiased when shrinking) so the longer side is S, normalised with SAM's
    ImageNet mean/std, then zero-padded bottom/right (zero = the mean colour after normalisation).
    """
    hu_kyx = np.asarray(hu_kyx)
    if hu_kyx.ndim != 3 or min(hu_kyx.shape) < 1:
        raise InputError(f"expected HU slices shaped (K, J, I), got shape {hu_kyx.shape}")
    if len(windows) != 3:
        raise InputError(f"SAM-2 needs exactly 3 windows (one per input channel), got {len(windows)}")
    frame = SliceFrame.for_slice(hu_kyx.shape[1:], image_size)
    rows, cols = frame.resized_hw
    out = torch.zeros((hu_kyx.shape[0], 3, image_size, image_size), dtype=torch.float32)
    mean = torch.tensor(PIXEL_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, dtype=torch.float32).view(1, 3, 1, 1)
    shrinking = rows < hu_kyx.shape[1] or cols < hu_kyx.shape[2]
    for k0 in range(0, hu_kyx.shape[0], CHUNK_SLICES):
        chunk = np.ascontiguousarray(hu_kyx[k0 : k0 + CHUNK_SLICES], dtype=np.float32)
        if not np.isfinite(chunk).all():
            raise InputError(f"HU slices {k0}..{k0 + chunk.shape[0] - 1} contain NaN or infinite values")
        chans = window_channels(torch.from_numpy(chunk), windows)
        if (rows, cols) != chunk.shape[1:]:
            chans = nnf.interpolate(chans, size=(rows, cols), mode="bilinear", align_corners=False,
                                  antialias=shrinking)
        out[k0 : k0 + chunk.shape[0], :, :rows, :cols] = chans.sub_(mean).div_(std)
    return out, frame
