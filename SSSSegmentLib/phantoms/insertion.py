"""Synthetic hemorrhages inserted into a real (or phantom) bleed-free head CT, with BHSD labels.

Real backgrounds give the model real anatomy, skull bands and calcifications with known labels.
Arrays are indexed ``[k, j, i]``; ``Geometry.spacing_mm`` is ITK order (i, j, k); points are LPS mm
(x left, y posterior, z superior). The background must be free of blood: nothing here checks that.

Anatomy comes from the engine (``prompts.anatomy``): the intracranial cavity and the depth below the
inner table (mm). On top of it, per scan (``prepare_background``): an in-plane smoothed HU copy used to
tell CSF (0-20 HU, and nearer the scan's CSF level than its brain level) from parenchyma (25-40 HU),
and the scan's noise (std and grain of the high-pass residual of deep parenchyma).

Each lesion is a fractional occupancy ``f`` in [0, 1] per voxel: a signed distance ``phi`` (mm,
negative inside) is turned into the covered fraction of a voxel's width, ``clip(0.5 - phi / w, 0, 1)``
with ``w`` the in-plane pixel size, averaged over ``sub_slices`` positions across the slice thickness
(partial volume along k). CSF-replacing lesions (IVH, SAH) also scale ``f`` by the voxel's CSF
fraction. Then ``HU = (1 - f) * background + f * blood + noise * sqrt(1 - (1 - f)^2)`` (the noise of the
replaced part comes back, with the scan's std and grain); the label is the class where ``f > 0.5``.
Lesions never take bone (>= ``bone_hu``) or voxels outside the cavity, and never overlap.

Shapes (``depth`` = distance below the inner table, ``foot`` = the nearest inner-table point):

- EDH: biconvex lens on the calvaria: ``depth < H (1 - q^2)``, ``q = |foot - p0| / r`` (volume
  ``pi r^2 H / 2`` under a flat table: a paraboloid cap is half its cylinder).
- SDH: crescent: ``depth < T sqrt(1 - q^2)`` over a long elliptical footprint along the convexity,
  on one side of the midline (volume ``2/3 pi a b T`` before the midline cut).
- IPH: irregular ellipsoid in parenchyma, scaled until the labelled volume is the drawn one; dense
  core, less dense rim, unlabelled hypodense oedema ring.
- IVH: the dependent part (larger LPS y: posterior, the patient is supine) of a deep CSF component.
- SAH: blood in the sulcal CSF 3-15 mm below the inner table over a round patch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..classes import BACKGROUND_LABEL, CLASS_BY_KEY
from ..datasets import INDEX_NAME
from ..errors import InputError
from ..fsutil import atomic_path
from ..progress import ProgressCallback, silent
from ..prompts.anatomy import CavityConfig, inner_table_distance_mm, intracranial_cavity, spacing_zyx
from ..volumes.geometry import CTVolume, Geometry
from .config import LESION_KEYS
from .dataset import (
    IMAGES_DIR,
    LABELS_DIR,
    bhsd_index,
    case_seeds,
    hu_int16,
    prepare_dataset_dir,
    write_case_nifti,
)

Range = tuple[float, float]
Crop = tuple[slice, slice, slice]


@dataclass(frozen=True)
class InsertionConfig:
    """What to insert and how. Ranges are (low, high); a range with low == high fixes the value."""

    blood_hu: Range = (50.0, 90.0)  # acute blood, mean per lesion (texture stays inside)
    texture_hu: float = 4.0  # amplitude of the smooth clot texture
    texture_grain_mm: float = 4.0
    bone_hu: float = 200.0  # voxels at or above are never replaced
    sub_slices: int = 5  # occupancy samples across one slice thickness
    smooth_mm: float = 1.0  # in-plane gaussian sigma of the HU copy used for CSF / parenchyma
    parenchyma_hu: Range = (25.0, 40.0)
    csf_hu: Range = (-10.0, 20.0)  # CSF density (0-20 HU; the low end leaves room for noise), see csf_max_hu
    edh_thickness_mm: Range = (5.0, 30.0)
    edh_radius_mm: Range = (15.0, 50.0)
    sdh_thickness_mm: Range = (3.0, 20.0)
    sdh_length_mm: Range = (70.0, 140.0)  # full length of the footprint along the convexity
    sdh_width_mm: Range = (40.0, 80.0)
    convexity_min_z_mm: float = -20.0  # EDH/SDH centre: at most this far below the cavity centroid (LPS z)
    max_floor_cos: float = 0.3  # ... where the inward normal points up at most this much (not a floor)
    iph_volume_ml: Range = (0.5, 120.0)  # drawn log-uniform
    iph_min_depth_mm: float = 10.0
    iph_core_hu: Range = (70.0, 90.0)
    iph_rim_hu: Range = (45.0, 60.0)
    iph_irregularity: float = 0.15  # relative amplitude of the radius wobble
    iph_oedema_fraction: Range = (0.15, 0.4)  # oedema ring width / clot radius (2-12 mm)
    iph_oedema_drop_hu: Range = (4.0, 12.0)
    ivh_min_depth_mm: float = 20.0
    ivh_fill_fraction: Range = (0.2, 0.7)  # share of the ventricle below the fluid level
    sah_depth_mm: Range = (3.0, 15.0)
    sah_patch_radius_mm: Range = (15.0, 40.0)
    max_lesions: int = 3  # random cases: 1..max_lesions different classes
    min_placed_fraction: float = 0.4  # a try is kept when this share of the drawn volume got in
    min_lesion_ml: float = 0.05
    max_tries: int = 30
    cavity: CavityConfig = field(default_factory=CavityConfig)

    def __post_init__(self) -> None:
        if self.sub_slices < 1 or self.max_tries < 1 or self.max_lesions < 1:
            raise InputError("InsertionConfig: sub_slices, max_tries and max_lesions must be >= 1")
        ranges = {k: v for k, v in asdict(self).items() if isinstance(v, tuple) and len(v) == 2}
        bad = [k for k, (lo, hi) in ranges.items() if k != "cavity" and not lo <= hi]
        if bad:
            raise InputError(f"InsertionConfig: ranges must be (low, high): {', '.join(bad)}")


@dataclass(frozen=True)
class NoiseModel:
    """Image noise of a scan: std (HU) and in-plane grain (gaussian sigma, pixels, of filtered white noise)."""

    std_hu: float
    grain_px: float


@dataclass(frozen=True)
class Background:
    """A bleed-free head CT prepared for insertion. Arrays (K, J, I) on the scan grid.

    ``depth_mm``: distance below the inner table (0 outside the cavity); ``smooth_hu``: in-plane
    smoothed HU; ``ventricles``: int32 labels of the deep CSF spaces (>= ``ivh_min_depth_mm``, >= 0.5 mL);
    ``convexity_kji``: (n, 3) indices of cavity voxels at the inner table of the calvaria;
    ``brain_hu`` / ``csf_hu``: typical parenchyma and CSF HU of this scan; ``csf_max_hu``: the CSF-density
    bound used here, ``min(config.csf_hu[1], (csf_hu + brain_hu) / 2)`` (a voxel more CSF than tissue; dark
    white matter stays out); ``centre_lps``: centroid of the cavity (LPS mm).
    """

    hu_zyx: np.ndarray
    geometry: Geometry
    cavity: np.ndarray
    depth_mm: np.ndarray
    smooth_hu: np.ndarray
    ventricles: np.ndarray
    convexity_kji: np.ndarray
    noise: NoiseModel
    brain_hu: float
    csf_hu: float
    csf_max_hu: float
    centre_lps: tuple[float, float, float]
    source: str = ""


@dataclass(frozen=True)
class InsertedLesion:
    """One inserted lesion: class key, centre (LPS mm), labelled volume (f > 0.5) and occupancy volume (mL),
    mean blood HU drawn, and the drawn size parameters (mm / mL)."""

    key: str
    centre_lps: tuple[float, float, float]
    volume_ml: float
    occupancy_ml: float
    blood_hu: float
    size: dict[str, float]


@dataclass(frozen=True)
class InsertionResult:
    """``hu_zyx`` float32 (K, J, I) with the lesions; ``labels_zyx`` uint8 BHSD labels; one record per lesion."""

    hu_zyx: np.ndarray
    labels_zyx: np.ndarray
    lesions: tuple[InsertedLesion, ...]
    noise: NoiseModel


@dataclass(frozen=True)
class _Rendered:
    """One lesion on a crop of the grid: occupancy, blood HU and optional oedema weight, all crop-shaped."""

    crop: Crop
    occupancy: np.ndarray
    blood_hu: np.ndarray
    centre_lps: np.ndarray
    size: dict[str, float]
    expected_ml: float = 0.0  # drawn volume (0: none, then min_lesion_ml applies)
    oedema: np.ndarray | None = None
    oedema_drop_hu: float = 0.0


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


def _occupancy(phi_at: Callable[[float], np.ndarray], n_sub: int, ramp_mm: float) -> np.ndarray:
    """Mean over ``n_sub`` positions across the slice of the covered fraction ``clip(0.5 - phi / ramp)``."""
    offsets = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    total = sum(np.clip(0.5 - phi_at(float(dk)) / ramp_mm, 0.0, 1.0) for dk in offsets)
    return (total / n_sub).astype(np.float32)


def _inplane_mm(geometry: Geometry) -> float:
    return float(max(geometry.spacing_mm[0], geometry.spacing_mm[1]))


def _texture(rng: np.random.Generator, shape: tuple[int, ...], geometry: Geometry, grain_mm: float) -> np.ndarray:
    """Smooth random field in (-1, 1), float32 of ``shape``, grain about ``grain_mm``."""
    white = rng.standard_normal(shape).astype(np.float32)
    field_ = ndimage.gaussian_filter(white, [grain_mm / s for s in spacing_zyx(geometry)], mode="reflect")
    return np.tanh(field_ / max(float(field_.std()), 1e-6)).astype(np.float32)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _pick(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray | None:
    """A random voxel index (k, j, i) of ``mask``, or None when it is empty."""
    flat = np.flatnonzero(mask)
    return None if flat.size == 0 else np.asarray(np.unravel_index(rng.choice(flat), mask.shape))


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


def _allowed(bg: Background, config: InsertionConfig) -> np.ndarray:
    """Bool (K, J, I): voxels a lesion may occupy (inside the cavity, not bone)."""
    return bg.cavity & (bg.hu_zyx < config.bone_hu)


def _csf_fraction(bg: Background, crop: Crop) -> np.ndarray:
    """Float32 crop: share of each voxel that is CSF, from smoothed HU between CSF and brain levels."""
    span = max(bg.brain_hu - bg.csf_hu, 5.0)
    return np.clip((bg.brain_hu - bg.smooth_hu[crop]) / span, 0.0, 1.0).astype(np.float32)


def _in_range(values: np.ndarray, bounds: Range) -> np.ndarray:
    return (values >= bounds[0]) & (values <= bounds[1])


# ---------------------------------------------------------------- EDH / SDH


def _inward_normals(bg: Background, kji: np.ndarray) -> np.ndarray:
    """(n, 3) LPS unit gradients of the depth below the inner table at voxels (n, 3) (k, j, i): the inward
    normal of the table (central differences, one-sided at the array ends)."""
    shape, spacing = bg.depth_mm.shape, spacing_zyx(bg.geometry)
    depth, flat = bg.depth_mm.ravel(), np.ravel_multi_index(tuple(kji.T), shape)
    strides = (shape[1] * shape[2], shape[2], 1)
    grad = np.zeros(kji.shape, np.float64)
    for axis in range(3):
        up, down = kji[:, axis] < shape[axis] - 1, kji[:, axis] > 0
        steps = np.maximum(up.astype(np.int64) + down, 1) * spacing[axis]
        grad[:, axis] = (depth[flat + strides[axis] * up] - depth[flat - strides[axis] * down]) / steps
    lps = grad[:, ::-1] @ bg.geometry.direction_matrix.T  # (i, j, k) derivatives -> LPS
    return lps / np.maximum(np.linalg.norm(lps, axis=1, keepdims=True), 1e-6)


def _crop_feet(bg: Background, crop: Crop) -> np.ndarray:
    """Float32 (3, k, j, i) LPS of the nearest inner-table point of each crop voxel: back along the depth
    gradient by the depth (exact for a distance field away from its ridges)."""
    depth = bg.depth_mm[crop]
    grad = np.gradient(depth, *spacing_zyx(bg.geometry)) if min(depth.shape) > 1 else [np.zeros_like(depth)] * 3
    d = bg.geometry.direction_matrix
    lps = [d[r, 0] * grad[2] + d[r, 1] * grad[1] + d[r, 2] * grad[0] for r in range(3)]
    scale = depth / np.maximum(np.sqrt(lps[0] ** 2 + lps[1] ** 2 + lps[2] ** 2), 1e-6)
    return (_points(bg.geometry, crop) - np.stack(lps) * scale).astype(np.float32)


def _normal_at(bg: Background, p0_kji: np.ndarray, radius_mm: float = 8.0) -> np.ndarray:
    """Inward unit normal of the inner table at a surface voxel: mean depth gradient of the shallow voxels
    (depth < ``radius_mm``) within ``radius_mm`` of it."""
    crop = _box(bg.geometry, bg.cavity.shape, p0_kji, radius_mm)
    kji = np.argwhere(bg.cavity[crop] & (bg.depth_mm[crop] < radius_mm)) + np.asarray([c.start for c in crop])
    p0 = _index_to_lps(bg.geometry, np.asarray(p0_kji))
    near = np.linalg.norm(_index_to_lps(bg.geometry, kji) - p0, axis=1) < radius_mm
    mean = _inward_normals(bg, kji[near]).sum(axis=0) if near.any() else np.asarray(bg.centre_lps) - p0
    return mean / max(float(np.linalg.norm(mean)), 1e-6)


def _convexity_centre(bg: Background, rng: np.random.Generator) -> np.ndarray | None:
    """A random voxel (k, j, i) at the inner table of the calvaria, or None when there is none."""
    return bg.convexity_kji[rng.integers(len(bg.convexity_kji))] if len(bg.convexity_kji) else None


def _tangent_frame(normal: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two unit tangents (e1 at a random angle from the anterior-posterior direction, e2 = n x e1)."""
    ref = np.asarray([0.0, 1.0, 0.0]) if abs(normal[1]) < 0.9 else np.asarray([0.0, 0.0, 1.0])
    t1 = ref - (ref @ normal) * normal
    t1 /= np.linalg.norm(t1)
    t2 = np.cross(normal, t1)
    angle = rng.uniform(-np.pi / 4, np.pi / 4)
    e1 = np.cos(angle) * t1 + np.sin(angle) * t2
    return e1, np.cross(normal, e1)


def _blood(rng: np.random.Generator, shape: tuple[int, ...], bg: Background, config: InsertionConfig):  # noqa: ANN202
    """(mean, textured float32 field of ``shape``) of one lesion's acute blood."""
    lo, hi = config.blood_hu
    mean = rng.uniform(min(lo + config.texture_hu, hi), max(hi - config.texture_hu, lo))
    tex = _texture(rng, shape, bg.geometry, config.texture_grain_mm)
    return float(mean), (mean + config.texture_hu * tex).astype(np.float32)


def _depth_phi(
    bg: Background, crop: Crop, p0: np.ndarray, profile: Callable[[np.ndarray], np.ndarray], max_mm: float,
    side: float = 0.0,
) -> Callable[[float], np.ndarray]:
    """phi(dk) on ``crop``: depth below the table - ``profile(foot - p0)``, at sub-slice offset dk.

    Evaluated only where the depth is at most ``max_mm`` plus one slice (elsewhere 1e3: outside).
    ``profile`` maps (n, 3) foot offsets (LPS mm) to thickness (mm). ``side`` != 0 also keeps the
    lesion more than 1 mm on that side (sign of LPS x) of the cavity's midline.
    """
    depth = bg.depth_mm[crop] - 0.5 * _inplane_mm(bg.geometry)  # the table lies half a pixel out
    feet, x = _crop_feet(bg, crop) - p0.astype(np.float32)[:, None, None, None], _points(bg.geometry, crop)[0]
    k, j, i = np.nonzero(bg.cavity[crop] & (bg.depth_mm[crop] <= max_mm + spacing_zyx(bg.geometry)[0]))

    def sample(kk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return depth[kk, j, i], feet[:, kk, j, i].T, x[kk, j, i]

    here, above, below = sample(k), sample(np.minimum(k + 1, depth.shape[0] - 1)), sample(np.maximum(k - 1, 0))

    def phi(dk: float) -> np.ndarray:
        other = above if dk > 0 else below
        d, foot, x = ((1 - abs(dk)) * a + abs(dk) * b for a, b in zip(here, other, strict=True))
        values = d - profile(foot)
        if side:
            values = np.maximum(values, 1.0 - side * (x - bg.centre_lps[0]))
        out = np.full(depth.shape, 1e3, np.float32)
        out[k, j, i] = values
        return out

    return phi


def _render_edh(bg: Background, rng: np.random.Generator, config: InsertionConfig) -> _Rendered | None:
    p0 = _convexity_centre(bg, rng)
    if p0 is None:
        return None
    if _normal_at(bg, p0)[2] > config.max_floor_cos:
        return None
    h, r = rng.uniform(*config.edh_thickness_mm), rng.uniform(*config.edh_radius_mm)
    crop, centre = _box(bg.geometry, bg.cavity.shape, p0, r + h + 4), _index_to_lps(bg.geometry, p0)

    def lens(delta: np.ndarray) -> np.ndarray:
        return h * (1 - np.einsum("na,na->n", delta, delta) / r**2)

    f = _occupancy(_depth_phi(bg, crop, centre, lens, h), config.sub_slices, _inplane_mm(bg.geometry))
    mean, blood = _blood(rng, f.shape, bg, config)
    size = {"thickness_mm": float(h), "radius_mm": float(r), "blood_hu": mean}
    return _Rendered(crop, f, blood, centre, size, expected_ml=np.pi * r * r * h / 2 / 1000)


def _render_sdh(bg: Background, rng: np.random.Generator, config: InsertionConfig) -> _Rendered | None:
    p0 = _convexity_centre(bg, rng)
    if p0 is None:
        return None
    normal = _normal_at(bg, p0)
    if normal[2] > config.max_floor_cos:
        return None
    t = rng.uniform(*config.sdh_thickness_mm)
    a, b = rng.uniform(*config.sdh_length_mm) / 2, rng.uniform(*config.sdh_width_mm) / 2
    crop, centre = _box(bg.geometry, bg.cavity.shape, p0, a + t + 4), _index_to_lps(bg.geometry, p0)
    e1, e2 = _tangent_frame(normal, rng)

    def crescent(delta: np.ndarray) -> np.ndarray:
        u, v = delta @ e1, delta @ e2
        chord2 = np.einsum("na,na->n", delta, delta)  # elliptical footprint on the chord length
        q2 = chord2 * (u * u / a**2 + v * v / b**2) / np.maximum(u * u + v * v, 1e-6)
        return t * np.sqrt(np.clip(1 - q2, 0, None)) - 1e3 * (q2 >= 1)

    side = 1.0 if centre[0] >= bg.centre_lps[0] else -1.0  # one side of the falx
    f = _occupancy(_depth_phi(bg, crop, centre, crescent, t, side), config.sub_slices, _inplane_mm(bg.geometry))
    mean, blood = _blood(rng, f.shape, bg, config)
    size = {"thickness_mm": float(t), "length_mm": float(2 * a), "width_mm": float(2 * b), "blood_hu": mean}
    return _Rendered(crop, f, blood, centre, size, expected_ml=2 / 3 * np.pi * a * b * t / 1000)


# ---------------------------------------------------------------- IPH


@dataclass(frozen=True)
class _Blob:
    """Irregular ellipsoid: centre (LPS), rotation (columns = axes), semi-axes (mm), wobble waves."""

    centre: np.ndarray
    rotation: np.ndarray
    axes: np.ndarray
    waves: np.ndarray  # (n, 4): wave vector (1/mm, 3) and phase
    amplitude: float

    def radius(self, points: np.ndarray, scale: float) -> np.ndarray:
        """Normalised radius (1 on the surface) at points (3, ...) for the blob scaled by ``scale``."""
        rel = np.moveaxis(points, 0, -1) - self.centre.astype(np.float32)
        local = rel @ self.rotation.astype(np.float32) / (self.axes * scale).astype(np.float32)
        rho = np.sqrt(np.einsum("...a,...a->...", local, local))
        wobble = np.mean([np.sin(rel @ w[:3].astype(np.float32) / scale + w[3]) for w in self.waves], axis=0)
        return rho / (1 + self.amplitude * wobble)


def _draw_blob(rng: np.random.Generator, centre: np.ndarray, volume_ml: float, amplitude: float) -> _Blob:
    ratios = np.asarray([1.0, rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0)])
    a = (3 * volume_ml * 1000 / (4 * np.pi * ratios.prod())) ** (1 / 3)
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    directions = rng.standard_normal((4, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    waves = np.hstack([directions * (2 * np.pi / (a * rng.uniform(1.2, 2.0, (4, 1)))), rng.uniform(0, 6.3, (4, 1))])
    return _Blob(centre, rotation, a * ratios, waves, amplitude)


def _iph_centre(bg: Background, rng: np.random.Generator, config: InsertionConfig, radius_mm: float):  # noqa: ANN202
    """A parenchyma voxel deep enough for the clot (falls back to ``iph_min_depth_mm``)."""
    tissue = bg.cavity & _in_range(bg.smooth_hu, config.parenchyma_hu)
    deep = tissue & (bg.depth_mm >= config.iph_min_depth_mm + 0.5 * radius_mm)
    return _pick(rng, deep) if deep.any() else _pick(rng, tissue & (bg.depth_mm >= config.iph_min_depth_mm))


def _render_iph(bg: Background, rng: np.random.Generator, config: InsertionConfig) -> _Rendered | None:
    volume = _log_uniform(rng, *config.iph_volume_ml)
    r_eq = (3 * volume * 1000 / (4 * np.pi)) ** (1 / 3)
    c = _iph_centre(bg, rng, config, r_eq)
    if c is None:
        return None
    blob = _draw_blob(rng, _index_to_lps(bg.geometry, c), volume, config.iph_irregularity)
    oedema_mm = float(np.clip(rng.uniform(*config.iph_oedema_fraction) * r_eq, 2.0, 12.0))
    crop = _box(bg.geometry, bg.cavity.shape, c, 1.6 * blob.axes.max() * (1 + config.iph_irregularity) + oedema_mm)
    room = (_allowed(bg, config) & (bg.depth_mm >= 2.0))[crop] & (bg.ventricles[crop] == 0)
    scale, f = 1.0, np.zeros(room.shape, np.float32)
    for _ in range(3):  # rescale until the labelled volume is the drawn one (clipping, wobble, grid)
        f = _iph_occupancy(bg, blob, crop, scale, config) * room
        got = np.count_nonzero(f > 0.5) * bg.geometry.voxel_volume_ml
        if got <= 0:
            return None
        scale *= float(np.clip((volume / got) ** (1 / 3), 0.7, 1.4))
    core, rim = rng.uniform(*config.iph_core_hu), rng.uniform(*config.iph_rim_hu)
    rho = blob.radius(_points(bg.geometry, crop), scale)
    mix = np.clip((rho - 0.45) / 0.5, 0, 1)
    blood = core + (rim - core) * mix * mix * (3 - 2 * mix)
    blood = blood + config.texture_hu * _texture(rng, f.shape, bg.geometry, config.texture_grain_mm)
    r_mm = float(np.cbrt(blob.axes.prod())) * scale
    oedema = np.clip(1 - (rho - 1) * r_mm / oedema_mm, 0, 1) * (rho > 1) * room * (bg.smooth_hu[crop] > 15)
    size = {"volume_ml": volume, "core_hu": float(core), "rim_hu": float(rim), "oedema_mm": oedema_mm}
    return _Rendered(crop, f, blood.astype(np.float32), blob.centre, size, volume,
                     oedema.astype(np.float32), float(rng.uniform(*config.iph_oedema_drop_hu)))


def _iph_occupancy(bg: Background, blob: _Blob, crop: Crop, scale: float, config: InsertionConfig) -> np.ndarray:
    r_mm = float(np.cbrt(blob.axes.prod())) * scale

    def phi(dk: float) -> np.ndarray:
        return (blob.radius(_points(bg.geometry, crop, dk), scale) - 1) * r_mm

    return _occupancy(phi, config.sub_slices, _inplane_mm(bg.geometry))


# ---------------------------------------------------------------- IVH / SAH


def _grow_inplane(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one voxel in-plane (partial-volume border of a CSF space)."""
    return ndimage.binary_dilation(mask, structure=np.asarray([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool))


def _render_ivh(bg: Background, rng: np.random.Generator, config: InsertionConfig) -> _Rendered | None:
    sizes = np.bincount(bg.ventricles.ravel())[1:].astype(float)
    if sizes.size == 0:
        return None
    sizes[sizes < 0.25 * sizes.max()] = 0  # the lateral ventricles, not a deep cistern
    chosen = bg.ventricles == 1 + rng.choice(sizes.size, p=sizes / sizes.sum())
    crop = ndimage.find_objects(chosen.astype(np.uint8))[0]
    crop = tuple(slice(max(s.start - 2, 0), min(s.stop + 2, m)) for s, m in zip(crop, chosen.shape, strict=True))
    fill = rng.uniform(*config.ivh_fill_fraction)
    y = _points(bg.geometry, crop)[1]
    level = float(np.quantile(y[chosen[crop]], 1 - fill))
    deep = bg.depth_mm[crop] >= config.ivh_min_depth_mm - 5
    region = _grow_inplane(chosen[crop]) & _allowed(bg, config)[crop] & deep
    ramp = _inplane_mm(bg.geometry)
    below = _occupancy(lambda dk: level - _points(bg.geometry, crop, dk)[1], config.sub_slices, ramp)
    f = below * _csf_fraction(bg, crop) * region
    mean, blood = _blood(rng, f.shape, bg, config)
    centre = _index_to_lps(bg.geometry, np.argwhere(chosen).mean(axis=0))
    return _Rendered(crop, f, blood, centre, {"fill_fraction": float(fill), "blood_hu": mean})


def _render_sah(bg: Background, rng: np.random.Generator, config: InsertionConfig) -> _Rendered | None:
    window = (bg.depth_mm >= config.sah_depth_mm[0]) & (bg.depth_mm <= config.sah_depth_mm[1])
    sulci = bg.cavity & window & _in_range(bg.smooth_hu, (config.csf_hu[0], bg.csf_max_hu))
    candidates = np.argwhere(sulci)  # centre over the convexity or the upper cisterns, not the skull base
    z_min = bg.centre_lps[2] + config.convexity_min_z_mm
    candidates = candidates[_index_to_lps(bg.geometry, candidates)[:, 2] >= z_min]
    if len(candidates) == 0:
        return None
    c = candidates[rng.integers(len(candidates))]
    radius = rng.uniform(*config.sah_patch_radius_mm)
    crop = _box(bg.geometry, bg.cavity.shape, c, radius + 2 * _inplane_mm(bg.geometry))
    centre = _index_to_lps(bg.geometry, c).astype(np.float32)

    def phi(dk: float) -> np.ndarray:
        rel = np.moveaxis(_points(bg.geometry, crop, dk), 0, -1) - centre
        return np.sqrt(np.einsum("...a,...a->...", rel, rel)) - radius

    patch = _occupancy(phi, config.sub_slices, _inplane_mm(bg.geometry))
    region = _grow_inplane(sulci[crop]) & window[crop] & _allowed(bg, config)[crop]
    f = patch * _csf_fraction(bg, crop) * region
    mean, blood = _blood(rng, f.shape, bg, config)
    return _Rendered(crop, f, blood, centre.astype(np.float64), {"patch_radius_mm": float(radius), "blood_hu": mean})


_RENDERERS: dict[str, Callable[[Background, np.random.Generator, InsertionConfig], _Rendered | None]] = {
    "EDH": _render_edh,
    "IPH": _render_iph,
    "IVH": _render_ivh,
    "SAH": _render_sah,
    "SDH": _render_sdh,
}


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


def _random_keys(rng: np.random.Generator, config: InsertionConfig) -> tuple[str, ...]:
    n = int(rng.integers(1, min(config.max_lesions, len(LESION_KEYS)) + 1))
    return tuple(str(k) for k in rng.choice(LESION_KEYS, size=n, replace=False))


def insert_into(
    bg: Background,
    rng: np.random.Generator,
    keys: Sequence[str] | None = None,
    config: InsertionConfig = InsertionConfig(),  # noqa: B008 (frozen)
) -> InsertionResult:
    """Insert lesions of ``keys`` (class keys; None: 1..max_lesions random classes) into a prepared background.

    Each lesion gets ``config.max_tries`` placements. An explicitly requested class that cannot be placed
    (e.g. no ventricle found) raises InputError; a randomly drawn one is skipped.
    """
    wanted = _random_keys(rng, config) if keys is None else tuple(keys)
    unknown = [k for k in wanted if k not in _RENDERERS]
    if unknown:
        raise InputError(f"unknown lesion class(es) {unknown}; use {', '.join(LESION_KEYS)}")
    hu, labels = bg.hu_zyx.copy(), np.full(bg.hu_zyx.shape, BACKGROUND_LABEL, np.uint8)
    free = _allowed(bg, config).astype(np.float32)
    voxel_ml, records = bg.geometry.voxel_volume_ml, []
    for key in wanted:
        rendered = next((r for r in (_RENDERERS[key](bg, rng, config) for _ in range(config.max_tries))
                         if r is not None and _accepted(r, free, voxel_ml, config)), None)
        if rendered is None:
            if keys is not None:
                raise InputError(f"{bg.source or 'background'}: could not place a {key} in {config.max_tries} tries")
            continue
        records.append(_composite(hu, labels, free, rendered, key, bg.noise, rng, voxel_ml))
    return InsertionResult(hu, labels, tuple(records), bg.noise)


def insert_lesions(
    hu_zyx: np.ndarray,
    geometry: Geometry,
    rng: np.random.Generator,
    keys: Sequence[str] | None = None,
    config: InsertionConfig = InsertionConfig(),  # noqa: B008 (frozen)
) -> InsertionResult:
    """A bleed-free head CT (HU, (K, J, I), LPS ``geometry``) with synthetic lesions and their BHSD labels.

    Same ``rng`` state, inputs and config give the same result. See ``insert_into``.
    """
    return insert_into(prepare_background(hu_zyx, geometry, config), rng, keys, config)


# ---------------------------------------------------------------- dataset writer


def background_name(path: Path) -> str:
    """A case-name-safe name of a background (file name without extension, or the DICOM folder's name)."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "background"


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for n, path in enumerate(paths):
        name = background_name(path)
        names.append(f"{name}_{n}" if name in names else name)
    return names


def _read_background(path: Path, config: InsertionConfig) -> tuple[CTVolume, Background]:
    from ..volumes import read_volume, validate_ct

    volume = read_volume(Path(path))
    validate_ct(volume)
    if not volume.geometry.is_orthonormal():
        raise InputError(f"background {path} has a sheared (gantry-tilt) grid that NIfTI cannot store")
    return volume, prepare_background(volume.hu_zyx, volume.geometry, config, str(path))


def write_inserted_dataset(
    backgrounds: Sequence[Path | str],
    out_dir: Path | str,
    n_cases: int,
    seed: int,
    config: InsertionConfig = InsertionConfig(),  # noqa: B008 (frozen)
    keys: Sequence[str] | None = None,
    held_out: Sequence[Path | str] = (),
    overwrite: bool = False,
    progress: ProgressCallback = silent,
) -> Path:
    """Write ``n_cases`` labelled cases (background ``n % len(backgrounds)`` + lesions) in the BHSD-like
    layout of ``phantoms.write_dataset``; return the dataset.json path.

    Case ``n`` is named ``<background>_ins<n:04d>`` and uses seed ``case_seeds(seed, n_cases)[n]``;
    dataset.json's ``generator`` lists each case's background path, seed and lesions. Cases of the
    backgrounds in ``held_out`` (some of ``backgrounds``) are listed under ``test`` (never trained on,
    for Dice on real anatomy), the others under ``training``. Backgrounds are read with the engine's
    reader (DICOM folders with gantry tilt are resampled). ``keys``: classes per case (None: random).
    Raises InputError / OutputError like ``write_dataset``.
    """
    paths = [Path(p) for p in backgrounds]
    held = {Path(p).resolve() for p in held_out}
    if n_cases < 1 or not paths or not held <= {p.resolve() for p in paths}:
        raise InputError(f"need >= 1 case, >= 1 background and held_out among them; got {n_cases} cases, "
                         f"{len(paths)} backgrounds, held_out {[str(p) for p in held_out]}")
    out_dir = Path(out_dir)
    prepare_dataset_dir(out_dir, overwrite)
    seeds, names = case_seeds(seed, n_cases), _unique_names(paths)
    entries: dict[int, tuple[bool, dict]] = {}
    meta: dict[str, dict] = {}
    for b, path in enumerate(paths):
        cases = range(b, n_cases, len(paths))
        if not cases:
            continue
        volume, bg = _read_background(path, config)
        for n in cases:
            case_id = f"{names[b]}_ins{n:04d}"
            result = insert_into(bg, np.random.default_rng(seeds[n]), keys, config)
            write_case_nifti(hu_int16(result.hu_zyx), volume.geometry, out_dir / IMAGES_DIR / f"{case_id}.nii.gz")
            write_case_nifti(result.labels_zyx, volume.geometry, out_dir / LABELS_DIR / f"{case_id}.nii.gz")
            entry = {"image": f"./{IMAGES_DIR}/{case_id}.nii.gz", "label": f"./{LABELS_DIR}/{case_id}.nii.gz"}
            entries[n] = (path.resolve() in held, entry)
            meta[case_id] = {"background": str(path), "held_out": path.resolve() in held, "seed": seeds[n],
                             "lesions": [asdict(r) for r in result.lesions]}
            progress("insertion", len(entries) / n_cases, f"case {len(entries)}/{n_cases}")
    ordered = [entries[n] for n in sorted(entries)]
    index = _index_json([e for h, e in ordered if not h], [e for h, e in ordered if h], seed, meta, config)
    index_path = out_dir / INDEX_NAME
    with atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(index, indent=2))
    return index_path


def _index_json(training: list[dict], test: list[dict], seed: int, meta: dict, config: InsertionConfig) -> dict:
    return {
        **bhsd_index("SSSSegment synthetic hemorrhages in real head CT",
                     "Bleed-free head CT with inserted synthetic hemorrhages (BHSD label convention)", training, []),
        "numTest": len(test),
        "test": test,
        "generator": {
            "package": "SSSSegmentLib.phantoms.insertion",
            "seed": int(seed),
            "cases": meta,
            "config": asdict(config),
        },
    }
