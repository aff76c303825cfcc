"""A bleed-free head CT prepared for lesion insertion: cavity, depth below the inner table, smoothed
HU, tissue levels, ventricles, the calvaria's inner table and the scan's noise (``prepare_background``)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..prompts.anatomy import inner_table_distance_mm, intracranial_cavity, spacing_zyx
from ..volumes.geometry import Geometry
from .insertion_config import Background, InsertionConfig, NoiseModel
from .insertion_grid import _in_range, _index_to_lps, _inplane_mm

# ---------------------------------------------------------------- background


def _simulated_noise(grain_px: float, hp_sigma_px: float) -> tuple[float, float]:
    """(std, lag-1 correlation along i) of the high-pass residual of unit noise of a given grain."""
    white = np.random.default_rng(0).standard_normal((4, 160, 160)).astype(np.float32)
    noise = ndimage.gaussian_filter(white, (0, grain_px, grain_px), mode="wrap")
    noise /= noise.std()
    hp = noise - ndimage.gaussian_filter(noise, (0, hp_sigma_px, hp_sigma_px), mode="wrap")
    return float(hp.std()), float(np.mean(hp[..., 1:] * hp[..., :-1]) / hp.var())


@lru_cache(maxsize=4)
def _noise_table(hp_sigma_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grains (px) and, per grain, the high-pass std and lag-1 correlation of unit noise."""
    grains = np.linspace(0.3, 2.5, 23)
    stats = np.asarray([_simulated_noise(float(g), hp_sigma_px) for g in grains])
    return grains, stats[:, 0], stats[:, 1]


def estimate_noise(hu_zyx: np.ndarray, region: np.ndarray, hp_sigma_px: float = 2.0) -> NoiseModel:
    """Noise std (HU) and grain of a scan from the high-pass residual inside ``region`` (K, J, I bool).

    ``region`` should be homogeneous tissue (deep parenchyma). The residual's robust std (MAD) and its
    lag-1 correlation along i are matched against gaussian-filtered white noise of known grain.
    """
    if np.count_nonzero(region) < 100:
        return NoiseModel(0.0, 0.6)
    box = ndimage.find_objects(region.astype(np.uint8))[0]
    hu = hu_zyx[box].astype(np.float32)
    hp = hu - ndimage.gaussian_filter(hu, (0, hp_sigma_px, hp_sigma_px))
    inside = region[box]
    values = hp[inside]
    robust = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    pairs = inside[..., 1:] & inside[..., :-1]
    rho = float(np.mean(hp[..., 1:][pairs] * hp[..., :-1][pairs]) / max(float(values.var()), 1e-6))
    grains, gains, rhos = _noise_table(hp_sigma_px)
    best = int(np.argmin(np.abs(rhos - rho)))
    return NoiseModel(float(robust / gains[best]), float(grains[best]))


def _smooth_inplane(hu_zyx: np.ndarray, geometry: Geometry, cavity: np.ndarray, sigma_mm: float) -> np.ndarray:
    """Float32 (K, J, I) HU smoothed in-plane by a gaussian of ``sigma_mm`` (inside the cavity's box)."""
    out = hu_zyx.astype(np.float32, copy=True)
    if not cavity.any() or sigma_mm <= 0:
        return out
    _, s_j, s_i = spacing_zyx(geometry)
    box = ndimage.find_objects(cavity.astype(np.uint8))[0]
    out[box] = ndimage.gaussian_filter(out[box], (0, sigma_mm / s_j, sigma_mm / s_i))
    return out


def _cavity_centre(geometry: Geometry, cavity: np.ndarray) -> tuple[float, float, float]:
    idx = np.argwhere(cavity)[:: max(int(np.count_nonzero(cavity)) // 20000, 1)]
    return tuple(float(c) for c in _index_to_lps(geometry, idx).mean(axis=0))  # type: ignore[return-value]


def prepare_background(
    hu_zyx: np.ndarray, geometry: Geometry, config: InsertionConfig = InsertionConfig(), source: str = ""  # noqa: B008
) -> Background:
    """Cavity, depth, smoothed HU, noise and tissue levels of a bleed-free head CT (HU, (K, J, I)).

    Raises InputError when no intracranial cavity is found (no skull in the scan).
    """
    hu = np.asarray(hu_zyx, dtype=np.float32)
    cavity = intracranial_cavity(hu, geometry, config.cavity)
    if np.count_nonzero(cavity) * geometry.voxel_volume_ml < 50:
        raise InputError(f"{source or 'background'}: no intracranial cavity found (is this a head CT with skull?)")
    depth = inner_table_distance_mm(hu, geometry, cavity)
    smooth = _smooth_inplane(hu, geometry, cavity, config.smooth_mm)
    lo, hi = config.parenchyma_hu
    parenchyma = cavity & (depth >= config.iph_min_depth_mm) & (smooth >= lo - 5) & (smooth <= hi + 5)
    brain = float(np.median(smooth[parenchyma])) if parenchyma.any() else 30.0
    deep = cavity & (depth >= config.ivh_min_depth_mm)
    sure_csf = deep & _in_range(smooth, (config.csf_hu[0], config.csf_hu[1] / 2))
    csf_hu = float(np.clip(np.median(smooth[sure_csf]), -5.0, 15.0)) if np.count_nonzero(sure_csf) > 50 else 8.0
    csf_max = min(config.csf_hu[1], (csf_hu + brain) / 2)
    ventricles = _components(deep & _in_range(smooth, (config.csf_hu[0], csf_max)), geometry.voxel_volume_ml, 0.5)
    centre = _cavity_centre(geometry, cavity)
    return Background(
        hu, geometry, cavity, depth, smooth, ventricles, _convexity(hu, geometry, cavity, depth, centre, config),
        estimate_noise(hu, parenchyma), brain, csf_hu, csf_max, centre, source,
    )


def _components(mask: np.ndarray, voxel_ml: float, min_ml: float) -> np.ndarray:
    """Int32 labels 1..n of the 26-connected components of ``mask`` of at least ``min_ml``."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_ml
    keep = np.flatnonzero(sizes >= min_ml)
    keep = keep[keep > 0]
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(1, keep.size + 1)
    return lut[labels]


def _convexity(
    hu: np.ndarray, geometry: Geometry, cavity: np.ndarray, depth: np.ndarray, centre: tuple, config: InsertionConfig
) -> np.ndarray:
    """(n, 3) int (k, j, i) of cavity voxels at the inner table, at most ``-convexity_min_z_mm`` below the
    cavity centroid, with bone within 4 mm in-plane (the calvaria, not a closing line or the field of view)."""
    idx = np.argwhere(cavity & (depth <= 1.5 * _inplane_mm(geometry)))
    idx = idx[_index_to_lps(geometry, idx)[:, 2] >= centre[2] + config.convexity_min_z_mm]
    _, s_j, s_i = spacing_zyx(geometry)
    reach = (0, int(np.ceil(4.0 / s_j)), int(np.ceil(4.0 / s_i)))
    bone = ndimage.maximum_filter(hu >= config.cavity.bone_hu, size=[2 * r + 1 for r in reach])
    return idx[bone[tuple(idx.T)]]
