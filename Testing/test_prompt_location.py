"""PCPG location priors and continuity decisions at their limits, on hand-made distance maps.

Each test pins one condition of ``prompts/location.py`` or ``prompts/continuity.py`` with a case
where that condition alone decides (the min and the median distance apart, a superficial component
with CSF around it, CSF only outside the cavity, a component supported by exactly the required share
of its windows), so dropping or loosening the condition changes the outcome. Distances are mm to the
inner table (0 = outside the cavity); voxels are 5 x 1 x 1 mm (k, j, i).
"""

from __future__ import annotations

import numpy as np

from SSSSegmentLib.classes import CLASS_BY_KEY
from SSSSegmentLib.prompts import ContinuityConfig, LocationPriorConfig, continuity_outcomes, location_prior_rule
from SSSSegmentLib.prompts.components import ComponentView

SPACING_ZYX = (5.0, 1.0, 1.0)
VOXEL_ML = 5.0 / 1000.0
EDH, IPH, IVH, SDH = (CLASS_BY_KEY[k].label for k in ("EDH", "IPH", "IVH", "SDH"))
BRAIN_HU, BLOOD_HU, CSF_HU = 35.0, 70.0, 8.0


def _view(mask: np.ndarray, hu: np.ndarray, label: int) -> ComponentView:
    box = tuple(slice(0, n) for n in mask.shape)
    return ComponentView(label, 1, box, mask, hu, SPACING_ZYX)


def _blob(shape: tuple[int, int, int] = (1, 21, 21)) -> np.ndarray:
    """A 5 x 5 block in the middle of one slice (25 voxels)."""
    mask = np.zeros(shape, dtype=bool)
    mid_j, mid_i = shape[1] // 2, shape[2] // 2
    mask[:, mid_j - 2 : mid_j + 3, mid_i - 2 : mid_i + 3] = True
    return mask


def _scene(distance_in_blob: np.ndarray | float, around_hu: float, around_mm: float) -> tuple:
    """(mask, hu, distance): blood in the blob, ``around_hu`` and ``around_mm`` everywhere else."""
    mask = _blob()
    hu = np.where(mask, BLOOD_HU, around_hu).astype(np.float32)
    distance = np.full(mask.shape, around_mm, dtype=np.float32)
    distance[mask] = distance_in_blob
    return mask, hu, distance


# --- extra-axial: both the nearest voxel and the median voxel must be close to the inner table --------


def test_extra_axial_touching_the_skull_but_mostly_deep_is_rejected():
    """Nearest voxel 1 mm (<= 3), median 25 mm (> 15): a deep bleed touching the table at one point."""
    depths = np.full(25, 25.0, dtype=np.float32)
    depths[0] = 1.0
    mask, hu, distance = _scene(depths, BRAIN_HU, 25.0)
    for label in (EDH, SDH):
        outcome = location_prior_rule(_view(mask, hu, label), distance, LocationPriorConfig())
        assert not outcome.passed and "not along the skull" in outcome.reason
        assert "nearest voxel 1.0 mm" in outcome.reason and "median 25.0 mm" in outcome.reason


def test_extra_axial_with_a_close_median_but_no_voxel_at_the_table_is_rejected():
    """Every voxel 5 mm deep: median 5 mm (<= 15) but nearest 5 mm (> 3)."""
    mask, hu, distance = _scene(5.0, BRAIN_HU, 5.0)
    outcome = location_prior_rule(_view(mask, hu, SDH), distance, LocationPriorConfig())
    assert not outcome.passed and "nearest voxel 5.0 mm" in outcome.reason


def test_extra_axial_exactly_at_both_limits_is_kept():
    """Nearest voxel 3.0 mm and median 15.0 mm: the limits themselves are allowed."""
    depths = np.full(25, 15.0, dtype=np.float32)
    depths[:3] = 3.0
    mask, hu, distance = _scene(depths, BRAIN_HU, 15.0)
    assert location_prior_rule(_view(mask, hu, EDH), distance, LocationPriorConfig()).passed


# --- IPH: at most half of its voxels within 2 mm of the inner table -----------------------------------


def test_iph_with_exactly_half_near_the_table_is_kept_and_more_is_not():
    cfg = LocationPriorConfig()
    mask = np.zeros((1, 4, 5), dtype=bool)
    mask[0, :2] = True  # 10 voxels
    hu = np.where(mask, BLOOD_HU, BRAIN_HU).astype(np.float32)
    distance = np.full(mask.shape, 10.0, dtype=np.float32)
    distance[0, 0] = 2.0  # 5 of 10 voxels at exactly the 2 mm limit: 50 %
    assert location_prior_rule(_view(mask, hu, IPH), distance, cfg).passed
    distance[0, 1, 0] = 1.0  # 6 of 10 near
    outcome = location_prior_rule(_view(mask, hu, IPH), distance, cfg)
    assert not outcome.passed and "60%" in outcome.reason


# --- IVH: deep (median >= 15 mm) AND with CSF around (inside the cavity) ------------------------------


def test_superficial_blood_with_csf_around_is_not_ivh():
    """A 10 mm deep component in CSF (a sulcus, not a ventricle): the CSF test alone would keep it."""
    mask, hu, distance = _scene(10.0, CSF_HU, 10.0)
    outcome = location_prior_rule(_view(mask, hu, IVH), distance, LocationPriorConfig())
    assert not outcome.passed and "too superficial" in outcome.reason and "10.0 mm" in outcome.reason
    deep_mask, deep_hu, deep_distance = _scene(25.0, CSF_HU, 25.0)  # the same, deep: kept
    assert location_prior_rule(_view(deep_mask, deep_hu, IVH), deep_distance, LocationPriorConfig()).passed


def test_csf_outside_the_cavity_does_not_count_for_ivh():
    """A deep component whose only CSF-density neighbours lie outside the cavity (distance 0, e.g.
    fluid beyond the skull base): the shell inside the cavity is brain, so it is not IVH."""
    mask, hu, distance = _scene(25.0, BRAIN_HU, 25.0)
    outside = np.zeros(mask.shape, dtype=bool)
    outside[:, :, 14:] = True  # right of the blob (columns 8-12): columns 14+ are outside the cavity
    hu[outside], distance[outside] = CSF_HU, 0.0
    outcome = location_prior_rule(_view(mask, hu, IVH), distance, LocationPriorConfig())
    assert not outcome.passed and "CSF-density neighbours 0%" in outcome.reason
    distance[outside] = 25.0  # the same fluid inside the cavity: now it is CSF around the blood
    assert location_prior_rule(_view(mask, hu, IVH), distance, LocationPriorConfig()).passed


# --- continuity: window support at exactly the required share, and the one-slice volume bar -----------


def test_two_slice_component_supported_by_exactly_half_its_windows_passes():
    """S = 5 slices: windows of 2 slices, at k 0-1, 1-2, 2-3, 3-4 (window_sizes gives [2]).

    A (5 voxels at k 0, 1 at k 1) lies in the first two windows. Window 0-1 holds only A: it is
    continuous with A as its largest piece, so it supports A. Window 1-2 holds A's 1 voxel and 100
    of B's: A's share 1/101 < 0.3, not supported. 1 of 2 windows = 50 % = the default minimum.
    """
    counts = np.array([[5, 1, 0, 0, 0], [0, 0, 100, 100, 100]])
    volumes = counts.sum(axis=1) * VOXEL_ML  # A: 0.03 mL, below the one-slice bar of 0.1 mL
    a, b = continuity_outcomes(counts, volumes, ContinuityConfig())
    assert a.passed and "spans 2 slice(s), supported by 1/2 windows" in a.reason
    assert b.passed
    stricter = continuity_outcomes(counts, volumes, ContinuityConfig(min_window_fraction=0.51))[0]
    assert not stricter.passed and stricter.reason.startswith("scattered")


def test_one_slice_component_needs_the_volume_bar_and_two_slices_do_not():
    """20 voxels on one slice = 0.100 mL, exactly the 0.1 mL bar: kept; 19 voxels: dropped. The same
    19 voxels over two slices are not a one-slice component, so the bar does not apply."""
    cfg = ContinuityConfig()
    for voxels, kept in ((20, True), (19, False)):
        counts = np.array([[0, 0, voxels, 0, 0, 0]])
        [outcome] = continuity_outcomes(counts, counts.sum(axis=1) * VOXEL_ML, cfg)
        assert outcome.passed is kept, outcome.reason
    counts = np.array([[0, 0, 10, 9, 0, 0]])
    [outcome] = continuity_outcomes(counts, counts.sum(axis=1) * VOXEL_ML, cfg)
    assert outcome.passed and "spans 2 slice(s)" in outcome.reason
