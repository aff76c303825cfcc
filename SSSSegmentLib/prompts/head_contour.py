"""The head's outer contour, slice by slice: what is head (not table, holder, pillow or air), and the
weaker "inside the head, away from the scalp" region the intracranial rule falls back to on slices
whose skull ring could not be closed.

Arrays are indexed ``[k, j, i]`` (one slice ``[j, i]``); spacings are mm in array order.

Head body of a slice (``head_body``): tissue above ``head_tissue_hu`` (skin, fat, muscle, bone, brain;
not air or foam), opened by an in-plane disk of ``head_open_mm`` (thin bright lines of a head holder
or the table, thinner than the disk's diameter, come off even where they touch the scalp), its
largest piece, holes filled. The image border is not background: a head cut by the edge of the
image keeps its full depth there. Worked on pixels of about ``_WORK_MM`` (max-pooled), enough for a
5 mm disk.

Fallback region (``fallback_region``): head body voxels at least ``scalp_margin_mm`` from its outer
contour (the image border is not contour), not of bone density, not air or fat (below
``min_content_hu``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from SSSSegmentLib.prompts.components import largest_region
from SSSSegmentLib.prompts.parallel import map_slices

_WORK_MM = 1.5  # pixel size (about) of the head-body work grid


def _pool_factor(spacing_ji: tuple[float, float]) -> tuple[int, int]:
    return tuple(max(1, int(_WORK_MM // s)) for s in spacing_ji)  # type: ignore[return-value]


def _pooled(mask_ji: np.ndarray, f: tuple[int, int]) -> np.ndarray:
    """Max-pool a bool (J, I) slice by ``f`` (the last partial block included)."""
    n_j, n_i = mask_ji.shape
    pad = (-n_j % f[0], -n_i % f[1])
    padded = np.pad(mask_ji, ((0, pad[0]), (0, pad[1])))
    return padded.reshape(padded.shape[0] // f[0], f[0], padded.shape[1] // f[1], f[1]).any(axis=(1, 3))


def _unpooled(mask: np.ndarray, f: tuple[int, int], shape_ji: tuple[int, int]) -> np.ndarray:
    return mask.repeat(f[0], axis=0).repeat(f[1], axis=1)[: shape_ji[0], : shape_ji[1]]


def _opened(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float]) -> np.ndarray:
    """Opening by a Euclidean disk via distance transforms; the array border is not background."""
    if radius_mm <= 0 or not mask.any():
        return mask
    eroded = ndimage.distance_transform_edt(mask, sampling=spacing) > radius_mm
    if not eroded.any():
        return eroded
    return ndimage.distance_transform_edt(~eroded, sampling=spacing) <= radius_mm


def head_body(hu_ji: np.ndarray, spacing_ji: tuple[float, float], head_tissue_hu: float = -300.0,
              head_open_mm: float = 5.0) -> np.ndarray:
    """Bool (J, I): the head of one slice (see the module docstring); all False without tissue."""
    f = _pool_factor(spacing_ji)
    work_spacing = (spacing_ji[0] * f[0], spacing_ji[1] * f[1])
    tissue = _pooled(hu_ji > head_tissue_hu, f)
    body = largest_region(_opened(tissue, head_open_mm, work_spacing))
    if not body.any():
        return np.zeros(hu_ji.shape, dtype=bool)
    return _unpooled(ndimage.binary_fill_holes(body), f, hu_ji.shape)


def head_bodies(hu_zyx: np.ndarray, spacing_ji: tuple[float, float], head_tissue_hu: float = -300.0,
                head_open_mm: float = 5.0) -> np.ndarray:
    """Bool (K, J, I): ``head_body`` of every slice."""
    if not hu_zyx.size:
        return np.zeros(hu_zyx.shape, dtype=bool)
    return np.stack(map_slices(lambda s: head_body(s, spacing_ji, head_tissue_hu, head_open_mm), hu_zyx))


def fallback_region(hu_ji: np.ndarray, body_ji: np.ndarray, spacing_ji: tuple[float, float], scalp_margin_mm: float,
                    bone_hu: float, min_content_hu: float) -> np.ndarray:
    """Bool (J, I): inside the head body, at least ``scalp_margin_mm`` from its outer contour (the image
    border is not contour), below ``bone_hu`` and at least ``min_content_hu``."""
    if not body_ji.any():
        return body_ji.copy()
    depth = ndimage.distance_transform_edt(body_ji, sampling=spacing_ji)
    return (depth >= scalp_margin_mm) & (hu_ji < bone_hu) & (hu_ji >= min_content_hu)

