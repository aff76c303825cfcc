"""Real-geometry variants of a phantom: what real scans do to the skull ring and the grid.

One variant per case (``PhantomConfig.geometry_variants``; drawn by ``generate_phantom`` from its own
random stream, so the head and its lesions stay those of the plain case):

- ``fov_front``, ``fov_back``, ``fov_side``: the image ends inside the head (the array itself is cut,
  no padding): 5-25 mm behind the front of the head, in front of its back, or inside one side.
- ``fov_vertex``: the scan stops 10-30 mm below the vertex.
- ``head_holder``: a head holder beside the head: two thin bright walls (2-3 mm, 400-1200 HU) along
  j the whole height of the image, 0-8 mm from the scalp, and a curved base under the occiput.
- ``craniectomy``: a bone flap missing: the bone of a 70-100 degree sector, 40-70 mm high in the upper
  head, on one side or the front, becomes soft tissue (scalp density).
- ``burr_holes``: 1-3 round holes of 10-14 mm through the skull of the upper head.
- ``matrix_256``, ``matrix_384``: those matrices; ``rectangular``: rows of air cut off front and back
  (J < I); ``thin_slices``: slices of 1.0-1.5 mm; ``thick_slices``: 5.5-6.0 mm; ``small_head``:
  0.7-0.9 mm pixels on 512 (a head that is small in the image).

``none`` leaves the case as it is. Arrays are ``[k, j, i]``; LPS: j runs posterior, k superior.
Lesion records describe the lesions as drawn (a crop may cut a lesion; the labels are cropped with
the image). Holder voxels keep the tissue code ``AIR`` (the holder is not anatomy).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from ..volumes.geometry import Geometry
from .config import GEOMETRY_VARIANT_NAMES, Phantom, PhantomConfig, Tissue

GEOMETRY_VARIANTS = GEOMETRY_VARIANT_NAMES
_BONE = (Tissue.BONE_CORTICAL, Tissue.BONE_DIPLOE, Tissue.SUTURE)


def config_for_variant(config: PhantomConfig, variant: str, rng: np.random.Generator) -> PhantomConfig:
    """The generator config of ``variant`` (grid variants change it; the others keep it)."""
    if variant in ("matrix_256", "matrix_384"):
        return replace(config, matrix=int(variant[-3:]))
    if variant == "thin_slices":
        return replace(config, slice_thickness_mm=float(np.round(rng.uniform(1.0, 1.5), 2)))
    if variant == "thick_slices":
        return replace(config, slice_thickness_mm=float(np.round(rng.uniform(5.5, 6.0), 2)))
    if variant == "small_head":
        return replace(config, pixel_spacing_mm=(0.7, 0.9))
    return config


def apply_variant(phantom: Phantom, variant: str, rng: np.random.Generator) -> Phantom:
    """``phantom`` with the image-space part of ``variant`` applied (a new Phantom; arrays copied)."""
    if variant in ("fov_front", "fov_back", "fov_side", "rectangular"):
        return _crop_inplane(phantom, variant, rng)
    if variant == "fov_vertex":
        return _crop_vertex(phantom, rng)
    if variant == "head_holder":
        return _with_holder(phantom, rng)
    if variant == "craniectomy":
        return _without_bone(phantom, _flap_mask(phantom, rng), rng)
    if variant == "burr_holes":
        return _without_bone(phantom, _burr_mask(phantom, rng), rng)
    return phantom


def _head_extent(tissue_zyx: np.ndarray, axis: int) -> tuple[int, int]:
    """First and last index along ``axis`` (1 = j, 2 = i) of any non-air voxel."""
    other = tuple(a for a in (0, 1, 2) if a != axis)
    idx = np.flatnonzero((tissue_zyx != Tissue.AIR).any(axis=other))
    return int(idx[0]), int(idx[-1])


def _cropped(phantom: Phantom, box: tuple[slice, slice, slice]) -> Phantom:
    """The phantom restricted to ``box`` (k, j, i slices), origin moved to the box's first voxel."""
    g = phantom.geometry
    start = np.asarray([box[2].start, box[1].start, box[0].start], dtype=float)  # (i, j, k)
    origin = np.asarray(g.origin_lps) + g.direction_matrix @ (np.asarray(g.spacing_mm) * start)
    geometry = Geometry(g.spacing_mm, tuple(float(o) for o in origin), g.direction)
    return replace(phantom, hu_zyx=phantom.hu_zyx[box].copy(), labels_zyx=phantom.labels_zyx[box].copy(),
                   tissue_zyx=phantom.tissue_zyx[box].copy(), geometry=geometry)


def _crop_inplane(phantom: Phantom, variant: str, rng: np.random.Generator) -> Phantom:
    k_n, j_n, i_n = phantom.hu_zyx.shape
    axis = 2 if variant == "fov_side" else 1
    first, last = _head_extent(phantom.tissue_zyx, axis)
    px = float(phantom.geometry.spacing_mm[0 if axis == 2 else 1])
    if variant == "rectangular":  # cut air front and back: the head stays whole
        margin = int(rng.uniform(3.0, 12.0) / px)
        lo, hi = max(first - margin, 0), min(last + margin + 1, j_n)
    else:
        depth = int(round(rng.uniform(5.0, 25.0) / px))
        cut_low = variant == "fov_front" or (variant == "fov_side" and rng.random() < 0.5)
        lo, hi = (first + depth, j_n if axis == 1 else i_n) if cut_low else (0, last + 1 - depth)
    span = slice(lo, hi)
    box = (slice(0, k_n), span, slice(0, i_n)) if axis == 1 else (slice(0, k_n), slice(0, j_n), span)
    return _cropped(phantom, box)


def _crop_vertex(phantom: Phantom, rng: np.random.Generator) -> Phantom:
    k_n, j_n, i_n = phantom.hu_zyx.shape
    head_ks = np.flatnonzero((phantom.tissue_zyx != Tissue.AIR).any(axis=(1, 2)))
    drop = max(1, int(round(rng.uniform(10.0, 30.0) / phantom.geometry.spacing_mm[2])))
    top = max(int(head_ks[-1]) + 1 - drop, 1)
    return _cropped(phantom, (slice(0, top), slice(0, j_n), slice(0, i_n)))


def _with_holder(phantom: Phantom, rng: np.random.Generator) -> Phantom:
    hu = phantom.hu_zyx.copy()
    _, j_n, i_n = hu.shape
    s_i, s_j = (float(s) for s in phantom.geometry.spacing_mm[:2])
    left, right = _head_extent(phantom.tissue_zyx, 2)
    front, back = _head_extent(phantom.tissue_zyx, 1)
    width = max(1, int(round(rng.uniform(2.0, 3.0) / s_i)))
    value = float(rng.uniform(400.0, 1200.0))
    for edge, step in ((left, -1), (right, 1)):
        gap = int(round(rng.uniform(0.0, 8.0) / s_i))
        near = edge + step * (gap + 1)
        cols = sorted({int(np.clip(near + step * w, 0, i_n - 1)) for w in range(width)})
        hu[:, :, cols] = value  # the whole height of the image
    jj, ii = np.mgrid[:j_n, :i_n]
    centre_i, half = (left + right) / 2, max((right - left) / 2, 1.0)
    base = back + 2 + (((ii - centre_i) / half) ** 2) * (0.25 * half * s_i / s_j)  # a cradle under the occiput
    cradle = (jj >= base) & (jj < base + max(1, round(2.5 / s_j))) & (np.abs(ii - centre_i) <= half)
    hu[:, cradle] = value
    return replace(phantom, hu_zyx=hu)


def _bone_ks(phantom: Phantom) -> np.ndarray:
    return np.flatnonzero(np.isin(phantom.tissue_zyx, _BONE).any(axis=(1, 2)))


def _flap_mask(phantom: Phantom, rng: np.random.Generator) -> np.ndarray:
    """Bool (K, J, I): the bone of one flap (sector around the head's axis, upper head)."""
    k_n, j_n, i_n = phantom.hu_zyx.shape
    s_i, s_j, s_k = (float(s) for s in phantom.geometry.spacing_mm)
    ks = _bone_ks(phantom)
    top = int(ks[-1]) - int(round(rng.uniform(10.0, 25.0) / s_k))
    height = int(round(rng.uniform(40.0, 70.0) / s_k))
    k_range = slice(max(top - height, int(ks[0])), max(top, int(ks[0]) + 1))
    left, right = _head_extent(phantom.tissue_zyx, 2)
    front, back = _head_extent(phantom.tissue_zyx, 1)
    cj, ci = (front + back) / 2, (left + right) / 2
    facing = float(rng.choice([0.0, np.pi, -np.pi / 2]))  # +i side, -i side, or the front (-j)
    half_angle = np.deg2rad(rng.uniform(70.0, 100.0)) / 2
    jj, ii = np.mgrid[:j_n, :i_n]
    angle = np.arctan2((jj - cj) * s_j, (ii - ci) * s_i)
    sector = np.abs(np.angle(np.exp(1j * (angle - facing)))) <= half_angle
    mask = np.zeros(phantom.hu_zyx.shape, dtype=bool)
    mask[k_range] = sector[None] & np.isin(phantom.tissue_zyx[k_range], _BONE)
    return mask


def _burr_mask(phantom: Phantom, rng: np.random.Generator) -> np.ndarray:
    """Bool (K, J, I): 1-3 holes through the bone of the upper head: the bone within a ball of 5-7 mm
    radius around a bone voxel (the skull is 5-8 mm thick, so the hole goes through)."""
    bone = np.isin(phantom.tissue_zyx, _BONE)
    ks = _bone_ks(phantom)
    k0 = int(ks[0] + 0.6 * (ks[-1] - ks[0]))
    upper = np.argwhere(bone[k0:]) + [k0, 0, 0]
    spacing_kji = np.asarray(phantom.geometry.spacing_mm[::-1], dtype=float)
    mask = np.zeros(bone.shape, dtype=bool)
    for centre in upper[rng.choice(len(upper), size=int(rng.integers(1, 4)), replace=False)]:
        radius = rng.uniform(5.0, 7.0)
        reach = np.ceil(radius / spacing_kji).astype(int)
        box = tuple(slice(max(c - r, 0), c + r + 1) for c, r in zip(centre, reach, strict=True))
        offsets = np.indices(bone[box].shape) + np.asarray([b.start for b in box])[:, None, None, None]
        dist = np.sqrt(sum(((offsets[a] - centre[a]) * spacing_kji[a]) ** 2 for a in range(3)))
        mask[box] |= dist <= radius
    return mask & bone


def _without_bone(phantom: Phantom, bone_mask: np.ndarray, rng: np.random.Generator) -> Phantom:
    """Bone under ``bone_mask`` becomes soft tissue of scalp density (with image noise), and so do the
    voxels beside it whose HU the bone's blur and partial volume raised above 100 HU (else a thin shell
    of bone density would stay)."""
    hu, tissue = phantom.hu_zyx.copy(), phantom.tissue_zyx.copy()
    halo = ndimage.binary_dilation(bone_mask, structure=np.ones((1, 5, 5), dtype=bool)) & (hu > 100.0)
    mask = bone_mask | halo
    hu[mask] = rng.normal(35.0, max(phantom.scanner.noise_std_hu, 1.0), int(np.count_nonzero(mask)))
    tissue[bone_mask] = Tissue.SCALP
    return replace(phantom, hu_zyx=hu, tissue_zyx=tissue)
