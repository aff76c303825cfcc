"""Blending an inserted lesion into the scan: partial-volume occupancy, the clot's texture, the scan's
noise for the replaced part, and the composite ``HU = (1 - f) background + f blood + noise``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from ..classes import CLASS_BY_KEY
from ..prompts.anatomy import spacing_zyx
from ..volumes.geometry import Geometry
from .insertion_config import Background, InsertedLesion, InsertionConfig, NoiseModel, _Rendered


def _occupancy(phi_at: Callable[[float], np.ndarray], n_sub: int, ramp_mm: float) -> np.ndarray:
    """Mean over ``n_sub`` positions across the slice of the covered fraction ``clip(0.5 - phi / ramp)``."""
    offsets = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    total = sum(np.clip(0.5 - phi_at(float(dk)) / ramp_mm, 0.0, 1.0) for dk in offsets)
    return (total / n_sub).astype(np.float32)


def _texture(rng: np.random.Generator, shape: tuple[int, ...], geometry: Geometry, grain_mm: float) -> np.ndarray:
    """Smooth random field in (-1, 1), float32 of ``shape``, grain about ``grain_mm``."""
    white = rng.standard_normal(shape).astype(np.float32)
    field_ = ndimage.gaussian_filter(white, [grain_mm / s for s in spacing_zyx(geometry)], mode="reflect")
    return np.tanh(field_ / max(float(field_.std()), 1e-6)).astype(np.float32)


def _blood(rng: np.random.Generator, shape: tuple[int, ...], bg: Background, config: InsertionConfig):  # noqa: ANN202
    """(mean, textured float32 field of ``shape``) of one lesion's acute blood."""
    lo, hi = config.blood_hu
    mean = rng.uniform(min(lo + config.texture_hu, hi), max(hi - config.texture_hu, lo))
    tex = _texture(rng, shape, bg.geometry, config.texture_grain_mm)
    return float(mean), (mean + config.texture_hu * tex).astype(np.float32)


# ---------------------------------------------------------------- compositing


def _correlated_noise(rng: np.random.Generator, shape: tuple[int, ...], noise: NoiseModel) -> np.ndarray:
    """Float32 noise of ``shape`` with the scan's std and in-plane grain."""
    white = rng.standard_normal(shape).astype(np.float32)
    grain = ndimage.gaussian_filter(white, (0, noise.grain_px, noise.grain_px))
    return (grain * np.float32(noise.std_hu / max(float(grain.std()), 1e-6))).astype(np.float32)


def _accepted(rendered: _Rendered, free: np.ndarray, voxel_ml: float, config: InsertionConfig) -> bool:
    f = np.minimum(rendered.occupancy, free[rendered.crop])
    labelled = np.count_nonzero(f > 0.5) * voxel_ml
    return labelled >= max(config.min_lesion_ml, config.min_placed_fraction * rendered.expected_ml)


def _composite(
    hu: np.ndarray, labels: np.ndarray, free: np.ndarray, rendered: _Rendered, key: str,
    noise: NoiseModel, rng: np.random.Generator, voxel_ml: float,
) -> InsertedLesion:
    """In place: blend one lesion into ``hu`` (float32), label it, and take its share of ``free``."""
    crop = rendered.crop
    f = np.minimum(rendered.occupancy, free[crop])
    background = hu[crop]
    if rendered.oedema is not None:
        background = background - rendered.oedema_drop_hu * rendered.oedema * (free[crop] > 0.5)
    extra = np.sqrt(np.clip(1 - (1 - f) ** 2, 0, 1)) * _correlated_noise(rng, f.shape, noise)
    hu[crop] = (1 - f) * background + f * rendered.blood_hu + extra
    mine = f > 0.5
    labels[crop][mine] = CLASS_BY_KEY[key].label
    free[crop] -= f
    return InsertedLesion(
        key, tuple(float(c) for c in rendered.centre_lps), float(np.count_nonzero(mine) * voxel_ml),
        float(f.sum() * voxel_ml), float(rendered.blood_hu[mine].mean()) if mine.any() else 0.0,
        dict(rendered.size),
    )
