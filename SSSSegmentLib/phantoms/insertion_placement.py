"""Where and what shape each inserted lesion is (placement): EDH lens and SDH crescent on the calvaria,
IPH in parenchyma, IVH in a deep CSF space, SAH in sulcal CSF; each returns a ``_Rendered`` occupancy
on a crop, or None when the draw does not fit (see ``insertion`` for the shapes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..prompts.anatomy import spacing_zyx
from .insertion_blending import _blood, _occupancy, _texture
from .insertion_config import Background, Crop, InsertionConfig, _Rendered
from .insertion_grid import _box, _in_range, _index_to_lps, _inplane_mm, _log_uniform, _pick, _points


def _allowed(bg: Background, config: InsertionConfig) -> np.ndarray:
    """Bool (K, J, I): voxels a lesion may occupy (inside the cavity, not bone)."""
    return bg.cavity & (bg.hu_zyx < config.bone_hu)


def _csf_fraction(bg: Background, crop: Crop) -> np.ndarray:
    """Float32 crop: share of each voxel that is CSF, from smoothed HU between CSF and brain levels."""
    span = max(bg.brain_hu - bg.csf_hu, 5.0)
    return np.clip((bg.brain_hu - bg.smooth_hu[crop]) / span, 0.0, 1.0).astype(np.float32)


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
