"""Partial-volume rules: a thin blood-density band along bone, and the halo of a calcification, are not blood.

Real thick-slice head CT shows a band of blood density (50-100 HU) inside the skull, 1-4 mm deep:
the in-plane point spread of the scanner smears the 1000+ HU bone into the first millimetres of
brain, the slice profile mixes in the skull above and below the slice (worst at the vertex and the
skull base, where the slice cuts the inner table at a shallow angle, so a whole slice's brain
surface can be a bone/brain mix), and the dura is there too. A model that paints it calls tens of
mL of EDH/SDH on a normal scan. Small dense spots (calcified pineal gland, choroid plexus, falx,
basal ganglia) carry the same kind of halo and look like small IPH.

Arrays are indexed ``[k, j, i]``; distances are in mm from ``Geometry`` spacing.

**Thickness rule** (``PartialVolumeConfig``, for extra-axial classes). *Evidence* voxels are
inside the cavity, of blood density (in-plane 3x3 median within ``blood_hu``), survive an in-plane
opening by a disk of radius ``opening_radius_mm`` (a layer thinner than its diameter vanishes),
and lie at least ``min_thickness_mm`` from the skull, measured in 3D, which is the thickness
perpendicular to the inner table. The slice profile blurs a skull within
``through_plane_reach_mm`` of a slice's centre into it, so that much of the distance across
slices does not count: the skull of slice k + n is at ``sqrt(d_n^2 + max(0, |n| s_k - reach)^2)``,
``d_n`` its in-plane distance and ``s_k`` the slice spacing. "Skull" is everything outside the
cavity plus voxels denser than ``partial_volume_hu`` (a tangentially cut skull cap is partial-volume
bone below the cavity's 300 HU bone threshold), and so is a whole slice whose cavity content has a
median above ``partial_volume_slice_median_hu`` (normal brain is 20-45 HU; a slice that is mostly a
bone/brain mix is the tangential cut of the skull cap; 1000 turns this off). A component passes
when its evidence holds at least ``min_evidence_ml`` and ``min_evidence_fraction`` of its volume:
a bleed must prove it is thicker than the partial-volume reach over some extent.

Subarachnoid blood lies in sulci, which are thinner than the opening disk, so for
``unopened_classes`` (SAH) the evidence skips the opening; it has no thickness to show, so it must
lie deeper than the band *in-plane*, from the skull of its own slice and of the
``unopened_through_plane_slices`` slices on either side (a skull that curves into a neighbouring
slice counts as bone here too).

**Calcification rule** (``CalcificationConfig``, for IPH by default). A component of at most
``max_ml`` with a voxel denser than ``calcification_hu`` within ``reach_mm`` (in 3D, spacing-aware)
is the halo of a calcification and is dropped. Blood is never that dense (acute clot <= ~100 HU),
so a small blood-density blob hugging such a spot is partial volume of the spot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SSSSegmentLib.errors import SSSSegError
from SSSSegmentLib.prompts.anatomy import inplane_disk
from SSSSegmentLib.prompts.components import ComponentView
from SSSSegmentLib.prompts.outcome import RuleOutcome
from SSSSegmentLib.prompts.rules import check_class_keys


@dataclass(frozen=True)
class PartialVolumeConfig:
    """Thresholds of the thickness rule (see the module docstring)."""

    enabled: bool = True
    classes: tuple[str, ...] = ("EDH", "SDH")
    unopened_classes: tuple[str, ...] = ("SAH",)
    min_thickness_mm: float = 3.0
    through_plane_reach_mm: float = 2.0
    unopened_through_plane_slices: int = 1
    partial_volume_hu: float = 150.0
    partial_volume_slice_median_hu: float = 60.0
    blood_hu: tuple[float, float] = (50.0, 100.0)
    opening_radius_mm: float = 1.5
    min_evidence_ml: float = 0.05
    min_evidence_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_class_keys(self.classes, "partial_volume.classes")
        check_class_keys(self.unopened_classes, "partial_volume.unopened_classes")
        if len(self.blood_hu) != 2 or self.blood_hu[0] > self.blood_hu[1]:
            raise SSSSegError(f"partial_volume.blood_hu must be [low, high], got {list(self.blood_hu)}")
        lengths = (self.min_thickness_mm, self.opening_radius_mm, self.through_plane_reach_mm)
        if min(lengths) < 0 or self.unopened_through_plane_slices < 0:
            raise SSSSegError(
                "partial_volume min_thickness_mm, opening_radius_mm, through_plane_reach_mm and "
                "unopened_through_plane_slices must be >= 0"
            )
        if self.min_evidence_ml < 0 or not 0.0 <= self.min_evidence_fraction <= 1.0:
            raise SSSSegError("partial_volume.min_evidence_ml must be >= 0 and min_evidence_fraction in [0, 1]")


@dataclass(frozen=True)
class CalcificationConfig:
    """Thresholds of the calcification-halo rule (see the module docstring)."""

    enabled: bool = True
    classes: tuple[str, ...] = ("IPH",)
    max_ml: float = 1.5
    calcification_hu: float = 130.0
    reach_mm: float = 2.0

    def __post_init__(self) -> None:
        check_class_keys(self.classes, "calcification.classes")
        if self.max_ml < 0 or self.reach_mm < 0:
            raise SSSSegError("calcification.max_ml and reach_mm must be >= 0")


def _skull_over_neighbours(skull_zyx: np.ndarray, reach: int) -> np.ndarray:
    """Bool (K, J, I): skull in slice k or in any slice within ``reach`` slices of it."""
    out = skull_zyx.copy()
    for step in range(1, reach + 1):
        out[:-step] |= skull_zyx[step:]
        out[step:] |= skull_zyx[:-step]
    return out


def _through_plane_offsets(s_k: float, cfg: PartialVolumeConfig, n_slices: int) -> list[tuple[int, float]]:
    """(n, dz mm) for the slices k +- n whose skull can be nearer than ``min_thickness_mm`` to slice k."""
    offsets = [(n, max(0.0, n * s_k - cfg.through_plane_reach_mm)) for n in range(1, n_slices)]
    return [(n, dz) for n, dz in offsets if dz < cfg.min_thickness_mm]


def evidence_margin_slices(s_k: float, cfg: PartialVolumeConfig, n_slices: int) -> int:
    """Slices on either side of slice k that slice k's thickness evidence depends on: those whose skull
    counts in its 3D depth, and the ``unopened_through_plane_slices``; everything else is per slice."""
    offsets = _through_plane_offsets(s_k, cfg, n_slices)
    return max(max((n for n, _ in offsets), default=0), cfg.unopened_through_plane_slices)


def _partial_volume_slices(smooth_zyx: np.ndarray, cavity_zyx: np.ndarray, median_hu: float) -> np.ndarray:
    """Bool (K,): slices whose cavity content has a median above ``median_hu`` (a bone/brain mix)."""
    flags = np.zeros(smooth_zyx.shape[0], dtype=bool)
    for k in np.flatnonzero(cavity_zyx.any(axis=(1, 2))):
        flags[k] = float(np.median(smooth_zyx[k][cavity_zyx[k]])) > median_hu
    return flags


def _depth_3d(skull_zyx: np.ndarray, ks: np.ndarray, spacing_zyx: tuple[float, float, float], cfg: PartialVolumeConfig
              ) -> np.ndarray:
    """Bool (K, J, I): on slices ``ks``, voxels at least ``cfg.min_thickness_mm`` from the skull in 3D, a
    skull across the slice counting ``cfg.through_plane_reach_mm`` nearer (see the module docstring)."""
    spacing_ji = (spacing_zyx[1], spacing_zyx[2])
    n_slices = skull_zyx.shape[0]
    offsets = _through_plane_offsets(spacing_zyx[0], cfg, n_slices)
    squared: dict[int, np.ndarray] = {}

    def in_plane_sq(k: int) -> np.ndarray:
        if k not in squared:
            squared[k] = ndimage.distance_transform_edt(~skull_zyx[k], sampling=spacing_ji) ** 2
        return squared[k]

    deep = np.zeros(skull_zyx.shape, dtype=bool)
    window = max((n for n, _ in offsets), default=0)
    for k in ks:  # ascending: a slice further below than the window is not needed again
        for done in [other for other in squared if other < k - window]:
            del squared[done]
        nearest_sq = in_plane_sq(k)
        for n, dz in offsets:
            for other in (k - n, k + n):
                if 0 <= other < n_slices and skull_zyx[other].any():
                    nearest_sq = np.minimum(nearest_sq, in_plane_sq(other) + dz * dz)
        deep[k] = nearest_sq >= cfg.min_thickness_mm**2
    return deep


def _depth_in_plane(skull_zyx: np.ndarray, ks: np.ndarray, spacing_ji: tuple[float, float], cfg: PartialVolumeConfig
                    ) -> np.ndarray:
    """Bool (K, J, I): on slices ``ks``, voxels at least ``cfg.min_thickness_mm`` in-plane from the skull of
    their own slice and of the ``cfg.unopened_through_plane_slices`` slices on either side."""
    near = _skull_over_neighbours(skull_zyx, cfg.unopened_through_plane_slices)
    deep = np.zeros(skull_zyx.shape, dtype=bool)
    for k in ks:
        deep[k] = ndimage.distance_transform_edt(~near[k], sampling=spacing_ji) >= cfg.min_thickness_mm
    return deep


def thickness_evidence(
    hu_zyx: np.ndarray,
    cavity_zyx: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    cfg: PartialVolumeConfig,
    k_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bool (K, J, I) maps of blood-density voxels deeper than the partial-volume reach of the skull:
    ``(opened, unopened)``: after the in-plane opening and at 3D depth (thick bleeds), and without
    the opening at in-plane depth (sulcal blood); see the module docstring.

    ``hu_zyx``: raw CT in HU; ``cavity_zyx``: the intracranial cavity; ``spacing_zyx``: mm (s_k, s_j, s_i).
    With ``k_range`` (k0, k1) only slices k0 .. k1 - 1 are computed, each exactly as in the whole
    volume, and the maps are (k1 - k0, J, I): the work is done on those slices widened by
    ``evidence_margin_slices`` on either side. The work is done on the cavity's in-plane bounding
    box, widened by ``min_thickness_mm``: outside the cavity everything is skull, so no voxel's
    result depends on what lies beyond that margin.
    """
    n_slices = cavity_zyx.shape[0]
    k0, k1 = k_range or (0, n_slices)
    if not 0 <= k0 <= k1 <= n_slices:
        raise SSSSegError(f"k_range {k_range} is not within the {n_slices} slices")
    margin = evidence_margin_slices(spacing_zyx[0], cfg, n_slices)
    lo, hi = max(k0 - margin, 0), min(k1 + margin, n_slices)
    hu_zyx, cavity_zyx = hu_zyx[lo:hi], cavity_zyx[lo:hi]
    opened = np.zeros(cavity_zyx.shape, dtype=bool)
    unopened = np.zeros(cavity_zyx.shape, dtype=bool)
    if cavity_zyx.any():
        box = _inplane_box(cavity_zyx, (spacing_zyx[1], spacing_zyx[2]), cfg.min_thickness_mm)
        opened[box], unopened[box] = _evidence_in_box(hu_zyx[box], cavity_zyx[box], spacing_zyx, cfg)
    return opened[k0 - lo : k1 - lo], unopened[k0 - lo : k1 - lo]


def _inplane_box(cavity_zyx: np.ndarray, spacing_ji: tuple[float, float], margin_mm: float) -> tuple[slice, ...]:
    """All slices, and the cavity's (j, i) bounding box widened by ``margin_mm`` plus 2 pixels."""
    rows, cols = np.flatnonzero(cavity_zyx.any(axis=(0, 2))), np.flatnonzero(cavity_zyx.any(axis=(0, 1)))
    pad_j, pad_i = (math.ceil(margin_mm / s) + 2 for s in spacing_ji)
    return (slice(None), slice(max(rows[0] - pad_j, 0), rows[-1] + pad_j + 1),
            slice(max(cols[0] - pad_i, 0), cols[-1] + pad_i + 1))


def _evidence_in_box(
    hu_zyx: np.ndarray, cavity_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], cfg: PartialVolumeConfig
) -> tuple[np.ndarray, np.ndarray]:
    """``thickness_evidence`` on a crop (K, J', I') that holds the cavity with a margin around it."""
    spacing_ji = (spacing_zyx[1], spacing_zyx[2])
    smooth = ndimage.median_filter(hu_zyx, size=(1, 3, 3))
    skull = ~cavity_zyx | (smooth > cfg.partial_volume_hu)
    skull[_partial_volume_slices(smooth, cavity_zyx, cfg.partial_volume_slice_median_hu)] = True
    blood = cavity_zyx & ~skull & (smooth >= cfg.blood_hu[0]) & (smooth <= cfg.blood_hu[1])
    opened = blood
    if cfg.opening_radius_mm > 0:
        opened = ndimage.binary_opening(blood, structure=inplane_disk(cfg.opening_radius_mm, spacing_ji))
    opened_ks, blood_ks = np.flatnonzero(opened.any(axis=(1, 2))), np.flatnonzero(blood.any(axis=(1, 2)))
    deep_3d = _depth_3d(skull, opened_ks, spacing_zyx, cfg)
    return opened & deep_3d, blood & _depth_in_plane(skull, blood_ks, spacing_ji, cfg)


def partial_volume_rule(view: ComponentView, evidence_crop: np.ndarray, cfg: PartialVolumeConfig) -> RuleOutcome:
    """``evidence_crop``: ``thickness_evidence`` over the view's crop."""
    voxel_ml = float(np.prod(view.spacing_zyx)) / 1000.0
    evidence_ml = float(np.count_nonzero(evidence_crop & view.mask)) * voxel_ml
    needed_ml = max(cfg.min_evidence_ml, cfg.min_evidence_fraction * view.volume_ml)
    ok = evidence_ml >= needed_ml
    text = (
        f"{evidence_ml:.3f} mL of blood-density tissue >= {cfg.min_thickness_mm} mm from the skull "
        f"{'>=' if ok else '<'} {needed_ml:.3f} mL"
    )
    return RuleOutcome(ok, text if ok else f"thin band along the skull (partial volume): {text}")


def calcification_rule(view: ComponentView, cfg: CalcificationConfig) -> RuleOutcome:
    """Drop a small component with a calcification-density voxel within ``cfg.reach_mm`` (in its crop)."""
    if view.volume_ml > cfg.max_ml:
        return RuleOutcome(True, f"{view.volume_ml:.2f} mL > {cfg.max_ml} mL: too large for a calcification halo")
    dense = view.hu > cfg.calcification_hu
    if not dense.any():
        return RuleOutcome(True, f"no voxel > {cfg.calcification_hu} HU nearby")
    distance = ndimage.distance_transform_edt(~dense, sampling=view.spacing_zyx)
    closest = float(distance[view.mask].min())
    ok = closest > cfg.reach_mm
    text = f"nearest voxel > {cfg.calcification_hu} HU at {closest:.1f} mm ({'>' if ok else '<='} {cfg.reach_mm} mm)"
    return RuleOutcome(ok, text if ok else f"calcification halo: {text}")
