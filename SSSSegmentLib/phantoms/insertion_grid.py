"""Grid and random helpers of lesion insertion: index boxes, LPS points of voxels, draws."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..prompts.anatomy import spacing_zyx
from ..volumes.geometry import Geometry
from .insertion_config import Crop, Range

# ---------------------------------------------------------------- grid helpers


def _box(geometry: Geometry, shape: tuple[int, ...], centre_kji: Sequence[int], radius_mm: float) -> Crop:
    """Index box (K, J, I slices, clipped) holding a ball of ``radius_mm`` around a voxel."""
    reach = [int(np.ceil(radius_mm / s)) + 1 for s in spacing_zyx(geometry)]
    return tuple(
        slice(max(int(c) - r, 0), min(int(c) + r + 1, n)) for c, r, n in zip(centre_kji, reach, shape, strict=True)
    )  # type: ignore[return-value]


def _points(geometry: Geometry, crop: Crop, dk: float = 0.0) -> np.ndarray:
    """LPS mm of the crop's voxel centres shifted by ``dk`` slices along k: float32 (3, k, j, i)."""
    m = geometry.ijk_to_lps()
    k = np.arange(crop[0].start, crop[0].stop, dtype=np.float64)[:, None, None] + dk
    j = np.arange(crop[1].start, crop[1].stop, dtype=np.float64)[None, :, None]
    i = np.arange(crop[2].start, crop[2].stop, dtype=np.float64)[None, None, :]
    return np.stack([(m[a, 3] + m[a, 0] * i + m[a, 1] * j + m[a, 2] * k).astype(np.float32) for a in range(3)])


def _index_to_lps(geometry: Geometry, kji: np.ndarray) -> np.ndarray:
    """LPS mm (..., 3) of voxel indices (..., 3) given as (k, j, i)."""
    m = geometry.ijk_to_lps()
    k, j, i = (kji[..., a].astype(np.float64) for a in range(3))
    return np.stack([m[r, 3] + m[r, 0] * i + m[r, 1] * j + m[r, 2] * k for r in range(3)], axis=-1)


def _inplane_mm(geometry: Geometry) -> float:
    return float(max(geometry.spacing_mm[0], geometry.spacing_mm[1]))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _pick(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray | None:
    """A random voxel index (k, j, i) of ``mask``, or None when it is empty."""
    flat = np.flatnonzero(mask)
    return None if flat.size == 0 else np.asarray(np.unravel_index(rng.choice(flat), mask.shape))


def _in_range(values: np.ndarray, bounds: Range) -> np.ndarray:
    return (values >= bounds[0]) & (values <= bounds[1])
