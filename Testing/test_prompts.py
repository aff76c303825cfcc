"""Tests of the prompt generator with physical constraints (SSSSegmentLib.prompts), on hand-made phantoms.

Phantom: 12 x 96 x 96 voxels, spacing (i, j, k) = (1, 1, 5) mm; a skull ring (1000 HU) of radius
40..44 mm around the centre of every slice, brain 35 HU inside, air outside; lesions are drawn
with blood (70 HU) and given the arg-max label with probability 0.9.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from SSSSegmentLib.classes import CLASS_BY_KEY, NUM_LABELS
from SSSSegmentLib.errors import InputError, SSSSegError
from SSSSegmentLib.prompts import (
    KEPT,
    BloodDensityConfig,
    CavityConfig,
    ContinuityConfig,
    IntracranialConfig,
    LocationPriorConfig,
    MinVolumeConfig,
    PromptConfig,
    blood_density_rule,
    continuity_outcomes,
    generate_prompts,
    inner_table_distance_mm,
    intracranial_cavity,
    intracranial_rule,
    location_prior_rule,
    min_volume_rule,
    window_sizes,
)
from SSSSegmentLib.prompts.components import ComponentView, class_components
from SSSSegmentLib.prompts.extra_axial import ExtraAxialShapeConfig, shape_ratio, type_extra_axial
from SSSSegmentLib.prompts.generator import decision_log_lines
from SSSSegmentLib.prompts.partial_volume import evidence_margin_slices, thickness_evidence
from SSSSegmentLib.prompts.rules import measured_voxels
from SSSSegmentLib.volumes.geometry import Geometry

SHAPE = (12, 96, 96)
GEOMETRY = Geometry(spacing_mm=(1.0, 1.0, 5.0))
SPACING_ZYX = (5.0, 1.0, 1.0)
CENTRE = 47.5
BRAIN_R, SKULL_R = 40.0, 44.0
EDH, IPH, IVH, SAH, SDH = (CLASS_BY_KEY[k].label for k in ("EDH", "IPH", "IVH", "SAH", "SDH"))


def radius_ji() -> np.ndarray:
    jj, ii = np.mgrid[: SHAPE[1], : SHAPE[2]]
    return np.hypot(jj - CENTRE, ii - CENTRE)


def head_hu() -> np.ndarray:
    """Skull ring phantom: air -1000, bone 1000 (r in [40, 44) mm), brain 35 (r < 40 mm)."""
    r = radius_ji()
    plane = np.where(r < SKULL_R, 1000.0, -1000.0)
    plane[r < BRAIN_R] = 35.0
    return np.repeat(plane[None], SHAPE[0], axis=0).astype(np.float32)


def probs(labels_zyx: np.ndarray) -> np.ndarray:
    """Softmax-like probabilities: 0.9 for the voxel's label, 0.02 for the other five."""
    prob = np.full((NUM_LABELS, *labels_zyx.shape), 0.02, dtype=np.float32)
    np.put_along_axis(prob, labels_zyx[None].astype(np.intp), 0.9, axis=0)
    return prob


def disk(cj: float, ci: float, radius: float) -> np.ndarray:
    jj, ii = np.mgrid[: SHAPE[1], : SHAPE[2]]
    return np.hypot(jj - cj, ii - ci) <= radius


def paint(hu: np.ndarray, labels: np.ndarray, ks: range, mask_ji: np.ndarray, label: int, value: float = 70.0):
    for k in ks:
        hu[k][mask_ji] = value
        labels[k][mask_ji] = label


def scene() -> tuple[np.ndarray, np.ndarray]:
    return head_hu(), np.zeros(SHAPE, dtype=np.uint8)


def view_of(mask_zyx: np.ndarray, hu_zyx: np.ndarray, label: int = IPH) -> ComponentView:
    box = (slice(0, mask_zyx.shape[0]), slice(0, mask_zyx.shape[1]), slice(0, mask_zyx.shape[2]))
    return ComponentView(label, 1, box, mask_zyx, hu_zyx, SPACING_ZYX)


def only(config: PromptConfig, *rules: str) -> PromptConfig:
    """``config`` with every rule disabled except ``rules``."""
    names = ("min_volume", "continuity", "blood_density", "intracranial", "location_prior", "partial_volume",
             "calcification")
    changes = {n: dataclasses.replace(getattr(config, n), enabled=n in rules) for n in names}
    return dataclasses.replace(config, **changes)


# --- anatomy ------------------------------------------------------------------------------------


def test_cavity_is_the_brain_inside_the_ring():
    cavity = intracranial_cavity(head_hu(), GEOMETRY)
    brain = np.repeat((radius_ji() < BRAIN_R)[None], SHAPE[0], axis=0)
    assert cavity.shape == SHAPE and cavity.dtype == bool
    assert np.count_nonzero(cavity ^ brain) <= 0.01 * np.count_nonzero(brain)
    assert not cavity[:, radius_ji() >= BRAIN_R + 1].any()


def test_cavity_closes_small_gaps_and_bridges_an_open_slice_from_its_neighbours():
    hu = head_hu()
    r = radius_ji()
    jj, _ = np.mgrid[: SHAPE[1], : SHAPE[2]]
    ring = (r >= BRAIN_R) & (r < SKULL_R)
    hu[3][ring & (np.abs(jj - CENTRE) < 1)] = 35.0  # 2 mm gap: closed in-plane
    hu[6][ring & (np.abs(jj - CENTRE) < 8)] = 35.0  # 16 mm gap: bridged by slices 5 and 7
    cavity = intracranial_cavity(hu, GEOMETRY)
    brain = r < BRAIN_R - 1
    assert cavity[3][brain].mean() > 0.99
    assert cavity[6][brain].mean() > 0.99
    no_bridge = intracranial_cavity(hu, GEOMETRY, CavityConfig(bridge_slices=False))
    assert no_bridge[6][brain].mean() > 0.99  # the wider per-slice closing (10 mm) catches it
    plain = intracranial_cavity(
        hu,
        GEOMETRY,
        CavityConfig(bridge_slices=False, fallback_closing_mm=(), fallback_convex_hull=False, borrow_max_mm=0.0),
    )
    assert plain[6][brain].mean() < 0.01  # without any fall-back the open slice leaks
    assert plain[3][brain].mean() > 0.99


def test_cavity_of_a_ring_cut_by_the_field_of_view_is_its_convex_hull():
    hu = head_hu()
    air = hu < -500
    hu[air] += np.random.default_rng(0).normal(0.0, 5.0, np.count_nonzero(air)).astype(np.float32)  # noisy air
    _, ii = np.mgrid[: SHAPE[1], : SHAPE[2]]
    for k in (5, 6):
        hu[k][ii > CENTRE + 35] = -3024.0  # outside the reconstructed circle: padding; the brain runs into it
    inside = (radius_ji() < BRAIN_R - 1) & (ii < CENTRE + 34)
    cavity = intracranial_cavity(hu, GEOMETRY)
    assert cavity[5][inside].mean() > 0.99 and not cavity[5][ii > CENTRE + 35].any()
    hull_only = intracranial_cavity(hu, GEOMETRY, CavityConfig(bridge_slices=False, borrow_max_mm=0.0))
    assert hull_only[5][inside].mean() > 0.99  # no neighbour to borrow from: the hull closes it
    off = intracranial_cavity(
        hu, GEOMETRY, CavityConfig(fallback_convex_hull=False, bridge_slices=False, borrow_max_mm=0.0)
    )
    assert off[5][inside].mean() < 0.01
    gap = hu.copy()  # the same cut, but into noisy air (no padding): not a field-of-view cut
    gap[5] = hu[4]
    cut = (radius_ji() < SKULL_R) & (ii > CENTRE + 35)
    gap[5][cut] = -1000.0 + np.random.default_rng(1).normal(0.0, 5.0, np.count_nonzero(cut)).astype(np.float32)
    leaked = intracranial_cavity(gap, GEOMETRY, CavityConfig(bridge_slices=False, borrow_max_mm=0.0))
    assert leaked[5][inside].mean() < 0.01


def test_open_slices_between_closed_ones_borrow_the_overlap_of_their_cavities():
    """A skull-base slice whose ring leaks (air cells, foramina) must not cut the cavity below it off."""
    hu = head_hu()
    jj, _ = np.mgrid[: SHAPE[1], : SHAPE[2]]
    wide_gap = (radius_ji() >= BRAIN_R) & (radius_ji() < SKULL_R) & (np.abs(jj - CENTRE) < 20)  # 40 mm open
    for k in (5, 6):
        hu[k][wide_gap] = 35.0
    brain = radius_ji() < BRAIN_R - 1
    strict = dict(bridge_slices=False, fallback_convex_hull=False)
    # Two open slices of 5 mm: a 10 mm run, borrowed with the default 10 mm, not with 5 mm.
    borrowed = intracranial_cavity(hu, GEOMETRY, CavityConfig(**strict))
    assert borrowed[5][brain].mean() > 0.99 and borrowed[6][brain].mean() > 0.99
    assert not borrowed[5][radius_ji() >= BRAIN_R + 1].any()  # the overlap of closed rings: no scalp
    short = intracranial_cavity(hu, GEOMETRY, CavityConfig(**strict, borrow_max_mm=5.0))
    assert short[5][brain].mean() < 0.01 and short[6][brain].mean() < 0.01
    assert short[4][brain].mean() > 0.99


def test_cavity_gives_back_calcifications():
    hu = head_hu()
    hu[5][disk(CENTRE, CENTRE, 2)] = 800.0  # pineal-like calcification, ~13 mm^2
    assert intracranial_cavity(hu, GEOMETRY)[5][disk(CENTRE, CENTRE, 2)].all()
    no_restore = intracranial_cavity(hu, GEOMETRY, CavityConfig(calcification_max_mm2=0.0))
    assert not no_restore[5][disk(CENTRE, CENTRE, 2)].any()


def test_no_skull_gives_empty_cavity_and_infinite_distance():
    hu = np.full(SHAPE, 35.0, dtype=np.float32)
    cavity = intracranial_cavity(hu, GEOMETRY)
    assert not cavity.any()
    assert np.isinf(inner_table_distance_mm(hu, GEOMETRY, cavity)).all()


def test_inner_table_distance_uses_spacing_in_kji_order():
    geometry = Geometry(spacing_mm=(2.0, 0.5, 5.0))  # i, j, k
    hu = np.zeros(SHAPE, dtype=np.float32)
    cavity = np.zeros(SHAPE, dtype=bool)
    cavity[2:10, 10:31, 10:51] = True
    distance = inner_table_distance_mm(hu, geometry, cavity)
    assert distance.dtype == np.float32
    # voxel (k 5, j 20, i 30): 11 rows to j=9 (5.5 mm), 21 columns to i=9 (42 mm), 4 slices to k=1 (20 mm)
    assert distance[5, 20, 30] == pytest.approx(5.5)
    # near the slab end: 1 slice from k=1 (5 mm) beats the 5.5 mm along j
    assert distance[2, 20, 30] == pytest.approx(5.0)
    assert (distance[~cavity] == 0).all()
    with pytest.raises(InputError):
        inner_table_distance_mm(hu, geometry, cavity[1:])


# --- continuity ---------------------------------------------------------------------------------


def continuity_of(labels_zyx: np.ndarray, cfg: ContinuityConfig | None = None):
    comps = class_components(labels_zyx, 1, (0, 0, 0))
    counts = comps.slice_counts(labels_zyx.shape[0])
    volumes = counts.sum(axis=1) * GEOMETRY.voxel_volume_ml
    return continuity_outcomes(counts, volumes, cfg or ContinuityConfig())


def test_window_sizes_follow_s_over_3_to_s_over_2():
    assert list(window_sizes(12)) == [4, 5, 6]
    assert list(window_sizes(32)) == list(range(11, 17))
    assert list(window_sizes(3)) == [2]
    assert list(window_sizes(1)) == [1]


def test_lesion_spanning_slices_passes_and_scattered_specks_fail():
    labels = np.zeros(SHAPE, dtype=np.uint8)
    for k in range(SHAPE[0]):  # one 5x5 speck per slice, each elsewhere (0.125 mL each)
        labels[k, 5 + 7 * k : 10 + 7 * k, 10:15] = 1
    outcomes = continuity_of(labels)
    assert len(outcomes) == SHAPE[0]
    assert not any(o.passed for o in outcomes)
    labels[:] = 0
    labels[3:7, 40:50, 40:50] = 1
    [lesion] = continuity_of(labels)
    assert lesion.passed and "spans 4 slice(s)" in lesion.reason


def test_single_slice_lesion_is_a_configurable_case():
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[6, 40:50, 40:50] = 1  # 100 voxels = 0.5 mL on one slice, nothing else around
    assert continuity_of(labels)[0].passed
    assert not continuity_of(labels, ContinuityConfig(allow_single_slice=False))[0].passed
    assert not continuity_of(labels, ContinuityConfig(single_slice_min_ml=1.0))[0].passed


def test_two_genuine_lesions_of_one_class_both_pass():
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[2:8, 10:20, 10:20] = 1
    labels[2:8, 60:70, 60:70] = 1
    outcomes = continuity_of(labels)
    assert len(outcomes) == 2 and all(o.passed for o in outcomes)


def test_speck_beside_a_lesion_is_not_supported():
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[3:7, 40:50, 40:50] = 1
    labels[5, 10:14, 10:14] = 1  # a one-slice speck in the same windows as the lesion
    lesion, speck = continuity_of(labels)
    assert lesion.passed and not speck.passed


def test_components_use_26_connectivity():
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[4, 10, 10] = 1
    labels[5, 11, 11] = 1  # touches the first voxel only at a corner
    assert class_components(labels, 1, (0, 0, 0)).count == 1


# --- single rules -------------------------------------------------------------------------------


def test_min_volume_rule_with_per_class_override():
    mask = np.zeros((2, 4, 4), dtype=bool)
    mask[:, :2, :2] = True  # 8 voxels x 5 mm^3 = 0.04 mL
    hu = np.full(mask.shape, 70.0, dtype=np.float32)
    assert not min_volume_rule(view_of(mask, hu), MinVolumeConfig()).passed
    mask[:, :3, :2] = True  # 12 voxels = 0.06 mL
    assert min_volume_rule(view_of(mask, hu), MinVolumeConfig()).passed
    strict = MinVolumeConfig(per_class_min_ml=(("IPH", 0.1),))
    assert not min_volume_rule(view_of(mask, hu, IPH), strict).passed
    assert min_volume_rule(view_of(mask, hu, SAH), strict).passed


def test_blood_density_rule_and_interior_measurement():
    mask = np.ones((3, 12, 12), dtype=bool)
    assert blood_density_rule(view_of(mask, np.full(mask.shape, 70.0, np.float32)), BloodDensityConfig()).passed
    assert not blood_density_rule(view_of(mask, np.full(mask.shape, 10.0, np.float32)), BloodDensityConfig()).passed
    hu = np.full(mask.shape, 300.0, dtype=np.float32)  # bright rim (partial volume with bone)
    hu[:, 1:-1, 1:-1] = 60.0
    eroded = BloodDensityConfig(erode_min_voxels=100)
    assert measured_voxels(view_of(mask, hu), eroded).sum() == 3 * 10 * 10
    assert blood_density_rule(view_of(mask, hu), eroded).passed
    assert not blood_density_rule(view_of(mask, hu), BloodDensityConfig(erode_min_voxels=10_000)).passed


def test_intracranial_rule():
    mask = np.ones((1, 10, 10), dtype=bool)
    hu = np.full(mask.shape, 70.0, dtype=np.float32)
    cavity = np.zeros(mask.shape, dtype=bool)
    cavity[:, :, :9] = True  # 90 % inside
    assert intracranial_rule(view_of(mask, hu), cavity, True, IntracranialConfig()).passed
    cavity[:, :, 8] = False  # 80 % inside
    assert not intracranial_rule(view_of(mask, hu), cavity, True, IntracranialConfig()).passed
    assert intracranial_rule(view_of(mask, hu), cavity, False, IntracranialConfig()).passed
    assert not intracranial_rule(view_of(mask, hu), cavity, False, IntracranialConfig(skip_without_skull=False)).passed


def test_location_prior_rule_per_class():
    mask = np.zeros((1, 9, 9), dtype=bool)
    mask[0, 2:7, 2:7] = True
    hu = np.full(mask.shape, 70.0, dtype=np.float32)
    near = np.full(mask.shape, 1.0, dtype=np.float32)
    deep = np.full(mask.shape, 25.0, dtype=np.float32)
    cfg = LocationPriorConfig()
    assert location_prior_rule(view_of(mask, hu, EDH), near, cfg).passed
    assert not location_prior_rule(view_of(mask, hu, SDH), deep, cfg).passed
    assert not location_prior_rule(view_of(mask, hu, IPH), near, cfg).passed
    assert location_prior_rule(view_of(mask, hu, IPH), deep, cfg).passed
    assert location_prior_rule(view_of(mask, hu, SAH), near, cfg).passed
    assert not location_prior_rule(view_of(mask, hu, IVH), near, cfg).passed
    assert not location_prior_rule(view_of(mask, hu, IVH), deep, cfg).passed  # no CSF around
    hu[~mask] = 8.0  # CSF around the blood
    assert location_prior_rule(view_of(mask, hu, IVH), deep, cfg).passed
    no_skull = np.full(mask.shape, np.inf, dtype=np.float32)
    assert location_prior_rule(view_of(mask, hu, EDH), no_skull, cfg).passed


# --- the generator ------------------------------------------------------------------------------


def test_generator_keeps_plausible_lesions_and_explains_drops():
    hu, labels = scene()
    paint(hu, labels, range(3, 7), disk(CENTRE, CENTRE + 15, 6), IPH)  # deep IPH, kept
    paint(hu, labels, range(4, 8), disk(CENTRE, CENTRE - 15, 6), SAH, value=10.0)  # not blood
    paint(hu, labels, range(2, 5), disk(6, 6, 4), SAH)  # outside the skull (air corner)
    speck = disk(CENTRE - 20, CENTRE, 1)  # 4 voxels = 0.02 mL
    paint(hu, labels, range(5, 6), speck, IPH)
    paint(hu, labels, range(0, 12, 3), disk(68, 48, 0.5), SDH)  # 1-voxel specks
    result = generate_prompts(probs(labels), hu, GEOMETRY)
    by_where = {(d.label, d.slice_range): d for d in result.decisions}
    assert by_where[(IPH, (3, 6))].dropped_by == KEPT
    assert by_where[(IPH, (5, 5))].dropped_by == "min_volume"
    assert by_where[(SAH, (4, 7))].dropped_by == "blood_density"
    assert "10.0 HU" in by_where[(SAH, (4, 7))].reason
    assert by_where[(SAH, (2, 4))].dropped_by == "intracranial"
    assert {d.dropped_by for d in result.decisions if d.label == SDH} == {"min_volume"}
    assert by_where[(IPH, (3, 6))].mean_hu == pytest.approx(70.0)
    assert set(np.unique(result.kept_zyx)) == {0, IPH}
    expected = labels == IPH
    expected[5][speck] = False
    assert np.array_equal(result.kept_zyx == IPH, expected)
    assert [(p.label, p.slice_k) for p in result.prompts] == [(IPH, k) for k in range(3, 7)]


def test_epidural_location_prior_in_the_generator():
    hu, labels = scene()
    edh_ji = (radius_ji() < BRAIN_R) & (radius_ji() >= BRAIN_R - 5) & (np.mgrid[:96, :96][1] > CENTRE + 25)
    paint(hu, labels, range(3, 7), edh_ji, EDH)  # crescent against the inner table
    paint(hu, labels, range(3, 7), disk(CENTRE, CENTRE - 5, 5), EDH)  # in the middle of the brain
    rules = only(PromptConfig(), "min_volume", "blood_density", "intracranial", "location_prior", "partial_volume")
    result = generate_prompts(probs(labels), hu, GEOMETRY, rules)
    outcomes = sorted((d.dropped_by, d.n_voxels) for d in result.decisions)
    assert [o[0] for o in outcomes] == [KEPT, "location_prior"]
    central = next(d for d in result.decisions if d.dropped_by == "location_prior")
    assert "not along the skull" in central.reason
    assert (result.kept_zyx == EDH).sum() == np.count_nonzero(edh_ji) * 4
    off = only(PromptConfig(), "min_volume", "blood_density", "intracranial")
    assert all(d.kept for d in generate_prompts(probs(labels), hu, GEOMETRY, off).decisions)


def extra_axial_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A lens (8 mm radius disk against the right inner table, 3 slices) labelled half EDH, half
    SDH, and a thin crescent (3 mm along the left inner table, 5 slices) labelled partly EDH."""
    hu, labels = scene()
    ii = np.mgrid[:96, :96][1]
    lens = disk(CENTRE, CENTRE + BRAIN_R - 8.5, 8)
    crescent = (radius_ji() < BRAIN_R) & (radius_ji() >= BRAIN_R - 3) & (ii < CENTRE - 10)
    jj = np.mgrid[:96, :96][0]
    paint(hu, labels, range(4, 7), lens & (jj < CENTRE), SDH)
    paint(hu, labels, range(4, 7), lens & (jj >= CENTRE), EDH)
    paint(hu, labels, range(2, 7), crescent, SDH)
    paint(hu, labels, range(5, 7), crescent & (jj < CENTRE), EDH)
    paint(hu, labels, range(8, 10), disk(CENTRE, CENTRE, 5), IPH)
    return hu, labels, lens, crescent


def test_shape_ratio_tells_a_lens_from_a_crescent():
    _, labels, lens, crescent = extra_axial_scene()
    lens_zyx = np.zeros(SHAPE, bool)
    lens_zyx[4:7][:, lens] = True
    crescent_zyx = np.zeros(SHAPE, bool)
    crescent_zyx[2:7][:, crescent] = True
    assert shape_ratio(lens_zyx, SPACING_ZYX) > 0.6
    assert shape_ratio(crescent_zyx, SPACING_ZYX) < 0.2
    typed = type_extra_axial(labels, SPACING_ZYX, ExtraAxialShapeConfig(enabled=True))
    assert (typed[4:7][:, lens] == EDH).all()  # one bleed, one type
    assert (typed[2:7][:, crescent] == SDH).all()
    assert np.array_equal(typed == IPH, labels == IPH) and np.array_equal(typed == 0, labels == 0)
    assert (labels[4:7][:, lens] == SDH).any()  # the input is not changed


def test_generator_types_extra_axial_bleeds_only_when_enabled():
    hu, labels, lens, crescent = extra_axial_scene()
    # the 3 mm crescent is within the partial-volume reach, and the lens's SDH half is a small second SDH piece
    thin_kept = {"partial_volume": {"enabled": False}, "continuity": {"enabled": False}}
    off = generate_prompts(probs(labels), hu, GEOMETRY, PromptConfig.from_dict(thin_kept)).kept_zyx
    assert {EDH, SDH} <= set(np.unique(off[4:7][:, lens]))
    on = PromptConfig.from_dict({"extra_axial_shape": {"enabled": True}, **thin_kept})
    kept = generate_prompts(probs(labels), hu, GEOMETRY, on).kept_zyx
    assert (kept[4:7][:, lens] == EDH).all() and (kept[2:7][:, crescent] == SDH).all()
    strict = PromptConfig.from_dict({"extra_axial_shape": {"enabled": True, "edh_min_shape_ratio": 5.0}, **thin_kept})
    assert (generate_prompts(probs(labels), hu, GEOMETRY, strict).kept_zyx[4:7][:, lens] == SDH).all()
    with pytest.raises(SSSSegError, match="edh_min_shape_ratio"):
        PromptConfig.from_dict({"extra_axial_shape": {"edh_min_shape_ratio": 0}})


def test_bone_voxels_never_join_a_component_so_a_coarse_sdh_mask_survives():
    hu, labels = scene()
    rim = (radius_ji() >= BRAIN_R - 4) & (radius_ji() < SKULL_R - 1) & (np.mgrid[:96, :96][1] < CENTRE - 20)
    paint(hu, labels, range(3, 8), rim & (radius_ji() < BRAIN_R), SDH)  # the true crescent
    for k in range(3, 8):
        labels[k][rim] = SDH  # a coarse mask that also covers 3 mm of skull
    result = generate_prompts(probs(labels), hu, GEOMETRY)
    assert [d.dropped_by for d in result.decisions] == [KEPT]
    kept = result.kept_zyx == SDH
    assert kept.any() and (hu[kept] < 200).all()
    plausible = result.plausible_zyx
    assert not plausible[hu > 200].any() and not plausible[hu < -500].any()  # no bone, no air outside
    assert plausible[(hu == 35.0)].all()
    keep_bone = PromptConfig(blood_density=BloodDensityConfig(exclude_voxels_above_hu=None))
    decision = generate_prompts(probs(labels), hu, GEOMETRY, keep_bone).decisions[0]
    assert decision.dropped_by == "blood_density" and decision.mean_hu > 100
    with pytest.raises(SSSSegError, match="exclude_voxels_above_hu"):
        BloodDensityConfig(exclude_voxels_above_hu=90.0)


def test_disabling_a_rule_disables_its_effect():
    hu, labels = scene()
    paint(hu, labels, range(4, 8), disk(CENTRE, CENTRE - 15, 6), SAH, value=10.0)
    prob = probs(labels)
    assert generate_prompts(prob, hu, GEOMETRY).decisions[0].dropped_by == "blood_density"
    config = only(PromptConfig(), "min_volume", "continuity", "intracranial", "location_prior")
    decision = generate_prompts(prob, hu, GEOMETRY, config).decisions[0]
    assert decision.kept and "blood_density" not in decision.reason
    nothing = only(PromptConfig())
    assert generate_prompts(prob, hu, GEOMETRY, nothing).decisions[0].reason == "no rule enabled"


def test_prompts_boxes_contain_the_component_and_points_lie_inside():
    hu, labels = scene()
    iph = disk(CENTRE + 5, CENTRE + 12, 7) | disk(CENTRE - 3, CENTRE + 18, 4)
    paint(hu, labels, range(2, 6), iph, IPH)
    paint(hu, labels, range(4, 9), disk(CENTRE - 10, CENTRE - 15, 5), IVH)
    for k in range(SHAPE[0]):  # CSF around the IVH
        hu[k][disk(CENTRE - 10, CENTRE - 15, 9) & (labels[k] == 0)] = 8.0
    config = PromptConfig(positive_points=3, negative_points=True, box_pad_px=2)
    result = generate_prompts(probs(labels), hu, GEOMETRY, config)
    assert all(d.kept for d in result.decisions), result.decisions
    keys = [(p.label, p.component_id, p.slice_k) for p in result.prompts]
    assert keys == sorted(keys) and len(keys) == 4 + 5
    for p in result.prompts:
        mask_ji = labels[p.slice_k] == p.label
        jj, ii = np.nonzero(mask_ji)
        x0, y0, x1, y1 = p.box_xyxy
        assert (x0, y0) == (ii.min() - 2, jj.min() - 2) and (x1, y1) == (ii.max() + 3, jj.max() + 3)
        positives = p.points_xy[p.point_labels == 1]
        assert len(positives) == 3 and len({tuple(q) for q in positives}) == 3
        assert all(mask_ji[int(y), int(x)] for x, y in positives)
        negatives = p.points_xy[p.point_labels == 0]
        on_slice = {int(v) for v in np.unique(labels[p.slice_k])} - {0, p.label}
        assert len(negatives) == len(on_slice)
        assert all(labels[p.slice_k, int(y), int(x)] in on_slice for x, y in negatives)
    key_only = generate_prompts(probs(labels), hu, GEOMETRY, dataclasses.replace(config, prompt_slices="key"))
    assert [(p.label, p.slice_k) for p in key_only.prompts] == [(IPH, 2), (IVH, 4)]


def test_first_point_is_the_most_interior_pixel():
    hu, labels = scene()
    paint(hu, labels, range(3, 5), disk(48, 58, 8), IPH)
    ring = disk(48, 30, 10) & ~disk(48, 30, 5)  # centroid outside the component
    paint(hu, labels, range(3, 5), ring, SAH)
    result = generate_prompts(probs(labels), hu, GEOMETRY, only(PromptConfig(), "min_volume"))
    first = {p.label: p.points_xy[0] for p in result.prompts}
    assert tuple(first[IPH]) == (58.5, 48.5)
    x, y = first[SAH]
    assert ring[int(y), int(x)] and 6.0 <= np.hypot(y - 0.5 - 48, x - 0.5 - 30) <= 9.0


def test_probability_threshold_selects_candidates():
    hu, labels = scene()
    paint(hu, labels, range(3, 7), disk(CENTRE, CENTRE + 15, 6), IPH)
    prob = probs(labels)
    assert generate_prompts(prob, hu, GEOMETRY, PromptConfig(prob_threshold=0.95)).decisions == ()
    assert len(generate_prompts(prob, hu, GEOMETRY, PromptConfig(prob_threshold=0.85)).decisions) == 1


def test_generator_rejects_bad_inputs():
    hu, labels = scene()
    prob = probs(labels)
    with pytest.raises(InputError, match="probabilities must have shape"):
        generate_prompts(prob[:5], hu, GEOMETRY)
    with pytest.raises(InputError, match="differs"):
        generate_prompts(prob, hu[1:], GEOMETRY)
    hu[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        generate_prompts(prob, hu, GEOMETRY)


# --- configuration ------------------------------------------------------------------------------


def test_config_from_yaml_mapping():
    text = """
prob_threshold: 0.6
prompt_slices: key
continuity: {tau: 0.7, allow_single_slice: false}
min_volume: {min_ml: 0.1, per_class_min_ml: {SAH: 0.02}}
location_prior: {ivh_csf_hu: [0, 15], extra_axial_classes: [EDH]}
cavity: {bone_hu: 250}
blood_density: {exclude_voxels_above_hu: null}
"""
    config = PromptConfig.from_dict(yaml.safe_load(text))
    assert config.blood_density.exclude_voxels_above_hu is None  # an optional step turned off
    assert config.prob_threshold == 0.6 and config.prompt_slices == "key"
    assert config.continuity == ContinuityConfig(tau=0.7, allow_single_slice=False)
    assert config.min_volume.min_ml_for(SAH) == 0.02 and config.min_volume.min_ml_for(IPH) == 0.1
    assert config.location_prior.ivh_csf_hu == (0.0, 15.0)
    assert config.location_prior.extra_axial_classes == ("EDH",)
    assert config.cavity.bone_hu == 250.0
    assert PromptConfig.from_dict(None) == PromptConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"continuity": {"tua": 0.7}}, "continuity.tua"),
        ({"bogus": 1}, "bogus"),
        ({"positive_points": 1.5}, "positive_points"),
        ({"continuity": {"enabled": "yes"}}, "continuity.enabled"),
        ({"min_volume": {"per_class_min_ml": {"XYZ": 0.1}}}, "XYZ"),
        ({"prompt_slices": "some"}, "prompt_slices"),
        ({"blood_density": {"min_hu": 120}}, "min_hu"),
        ({"continuity": 3}, "continuity"),
        ({"cavity": {"bone_hu": None}}, "cavity.bone_hu"),  # null only where a step is optional
    ],
)
def test_config_errors_name_the_key(data, message):
    with pytest.raises(SSSSegError, match=message):
        PromptConfig.from_dict(data)


# --- real head CT -------------------------------------------------------------------------------


def test_cavity_on_the_real_head_ct(tilted_ct_dir):
    """The cavity of a real scan holds brain-density tissue, a plausible volume, and spares the scalp."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tilted_ct_dir)))
    image = reader.Execute()
    hu = sitk.GetArrayFromImage(image).astype(np.float32)
    geometry = Geometry.from_sitk(image)
    cavity = intracranial_cavity(hu, geometry)
    volume_ml = np.count_nonzero(cavity) * geometry.voxel_volume_ml
    assert 900.0 < volume_ml < 1900.0  # 28 slices covering most of an adult head
    assert 20.0 < float(np.median(hu[cavity])) < 45.0
    assert np.mean(hu[cavity] >= 300.0) < 0.01
    distance = inner_table_distance_mm(hu, geometry, cavity)
    assert 30.0 < float(distance.max()) < 80.0


# --- partial volume and calcification ---------------------------------------------------------


def pv_only() -> PromptConfig:
    return only(PromptConfig(), "partial_volume", "calcification")


def test_thin_rim_along_the_skull_is_dropped_and_a_5_mm_lens_is_kept():
    hu, labels = scene()
    r, ii = radius_ji(), np.mgrid[:96, :96][1]
    rim = (r < BRAIN_R) & (r >= BRAIN_R - 1) & (ii < CENTRE - 10)  # 1 mm band on the left
    lens = (r < BRAIN_R) & disk(CENTRE, CENTRE + BRAIN_R + 10, 15)  # 15 mm disk 10 mm outside: 5 mm thick
    paint(hu, labels, range(3, 9), rim, EDH)
    paint(hu, labels, range(3, 9), lens, EDH)
    decisions = generate_prompts(probs(labels), hu, GEOMETRY, pv_only()).decisions
    by_side = {("left" if d.n_voxels == np.count_nonzero(rim) * 6 else "right"): d for d in decisions}
    assert by_side["left"].dropped_by == "partial_volume" and "thin band" in by_side["left"].reason
    assert by_side["right"].kept


def test_a_partial_volume_slice_gives_no_thickness_evidence():
    hu, labels = scene()
    cap = radius_ji() < BRAIN_R
    paint(hu, labels, range(10, 12), cap, SDH, value=95.0)  # top slices: a bone/brain mix at blood density
    assert generate_prompts(probs(labels), hu, GEOMETRY, pv_only()).decisions[0].dropped_by == "partial_volume"
    off = PromptConfig.from_dict({"partial_volume": {"partial_volume_slice_median_hu": 1000.0}}).partial_volume
    assert generate_prompts(probs(labels), hu, GEOMETRY, dataclasses.replace(pv_only(), partial_volume=off)
                            ).decisions[0].kept


def test_thickness_is_measured_in_3d_with_the_slice_profile_reach():
    hu, labels = scene()
    blob = disk(CENTRE, CENTRE + BRAIN_R - 4, 4)  # 8 mm wide, its far edge 4 mm inside the ring
    paint(hu, labels, range(5, 7), blob, SDH)
    for k in (4, 7):  # the skull above and below covers the blob: the cut of a curved skull
        hu[k][disk(CENTRE, CENTRE + BRAIN_R - 4, 6)] = 1000.0
    no_bridge = dataclasses.replace(pv_only(), cavity=CavityConfig(bridge_slices=False))

    def decision(**partial_volume: float) -> object:
        pv = PromptConfig.from_dict({"partial_volume": partial_volume}).partial_volume
        return generate_prompts(probs(labels), hu, GEOMETRY, dataclasses.replace(no_bridge, partial_volume=pv)
                                ).decisions[0]

    # Skull 5 mm above and below; a 2 mm reach leaves 5 - 2 = 3 mm >= 3 mm: thick enough.
    assert decision(through_plane_reach_mm=2.0).kept
    # A 4 mm reach leaves 1 mm across the slice, so the blob is at most sqrt(0^2 + 1^2) = 1 mm deep.
    near = decision(through_plane_reach_mm=4.0)
    assert near.dropped_by == "partial_volume" and "thin band" in near.reason


def test_evidence_margin_counts_the_slices_whose_skull_reaches_across():
    cfg = PromptConfig().partial_volume  # min_thickness 3 mm, reach 2 mm, 1 unopened neighbour
    # By hand: slice n away leaves max(0, n * s_k - 2) mm, counted while under 3 mm.
    assert evidence_margin_slices(5.0, cfg, 12) == 1  # 5 - 2 = 3 is not under 3: only the unopened neighbour
    assert evidence_margin_slices(1.0, cfg, 12) == 4  # 1 - 2, ..., 4 - 2 = 2 < 3; 5 - 2 = 3 is not
    assert evidence_margin_slices(1.0, cfg, 3) == 2  # no slice beyond the volume
    assert evidence_margin_slices(0.5, dataclasses.replace(cfg, unopened_through_plane_slices=12), 40) == 12


def test_thickness_evidence_of_a_few_slices_is_that_of_the_whole_volume():
    """PCPG computes the evidence only on the slices a component spans; each must come out as in the
    whole volume, also where the skull of a neighbouring slice decides it (1 mm slices here)."""
    hu, _ = scene()
    blob = disk(CENTRE, CENTRE + BRAIN_R - 4, 4)
    for k in range(4, 12):
        hu[k][blob] = 70.0
    hu[3][disk(CENTRE, CENTRE + BRAIN_R - 4, 6)] = 1000.0  # skull cut just below the blob
    geometry = Geometry(spacing_mm=(1.0, 1.0, 1.0))
    spacing = (1.0, 1.0, 1.0)
    cavity = intracranial_cavity(hu, geometry)
    cfg = PromptConfig().partial_volume
    whole = thickness_evidence(hu, cavity, spacing, cfg)
    # By hand: slice 3's skull lies max(0, n - 2) mm across from slice 3 + n, under 3 mm up to slice 7.
    assert not whole[0][:8].any() and whole[0][8:].any(axis=(1, 2)).all()
    for k0 in range(SHAPE[0]):
        for k1 in (k0, k0 + 1, min(k0 + 3, SHAPE[0])):
            part = thickness_evidence(hu, cavity, spacing, cfg, (k0, k1))
            for name, a, b in zip(("opened", "unopened"), whole, part, strict=True):
                assert np.array_equal(a[k0:k1], b), (name, k0, k1)
    with pytest.raises(SSSSegError, match="k_range"):
        thickness_evidence(hu, cavity, spacing, cfg, (5, 13))


def test_sulcal_blood_must_be_deep_from_the_neighbouring_slices_skull():
    hu, labels = scene()
    blob = disk(CENTRE, CENTRE + BRAIN_R - 4, 4)
    paint(hu, labels, range(5, 7), blob, SAH)
    for k in (4, 7):
        hu[k][disk(CENTRE, CENTRE + BRAIN_R - 4, 6)] = 1000.0
    no_bridge = dataclasses.replace(pv_only(), cavity=CavityConfig(bridge_slices=False))
    assert generate_prompts(probs(labels), hu, GEOMETRY, no_bridge).decisions[0].dropped_by == "partial_volume"
    in_plane_only = PromptConfig.from_dict({"partial_volume": {"unopened_through_plane_slices": 0}}).partial_volume
    assert generate_prompts(probs(labels), hu, GEOMETRY, dataclasses.replace(no_bridge, partial_volume=in_plane_only)
                            ).decisions[0].kept


def test_small_iph_around_a_calcification_is_dropped_and_real_iph_kept():
    hu, labels = scene()
    halo_centre, blob_centre = (CENTRE - 12, CENTRE), (CENTRE + 12, CENTRE)
    paint(hu, labels, range(5, 7), disk(*halo_centre, 4), IPH)  # 4 mm halo (2 x 50 voxels = 0.5 mL)
    for k in range(5, 7):
        hu[k][disk(*halo_centre, 1.5)] = 300.0  # the calcified core, never a candidate
        labels[k][disk(*halo_centre, 1.5)] = 0
    paint(hu, labels, range(5, 7), disk(*blob_centre, 4), IPH)  # the same blob with no dense spot
    decisions = generate_prompts(probs(labels), hu, GEOMETRY, pv_only()).decisions
    assert [d.dropped_by for d in decisions] == ["calcification", KEPT]
    assert "calcification halo" in decisions[0].reason
    bigger = PromptConfig.from_dict({"calcification": {"max_ml": 0.1}}).calcification
    assert all(d.kept for d in generate_prompts(probs(labels), hu, GEOMETRY,
                                                dataclasses.replace(pv_only(), calcification=bigger)).decisions)


def test_scattered_multi_slice_fragments_fail_continuity():
    labels = np.zeros(SHAPE, dtype=np.uint8)
    for n in range(11):  # 2-slice fragments starting on every slice, each elsewhere: no dominant piece
        labels[n : n + 2, 5 + 8 * (n % 11) : 10 + 8 * (n % 11), 10 + 40 * (n % 2) : 15 + 40 * (n % 2)] = 1
    outcomes = continuity_of(labels)
    assert len(outcomes) == 11 and not any(o.passed for o in outcomes)
    assert all("scattered" in o.reason for o in outcomes)


def test_partial_volume_and_calcification_configs_are_checked():
    with pytest.raises(SSSSegError, match="partial_volume.blood_hu"):
        PromptConfig.from_dict({"partial_volume": {"blood_hu": [100, 50]}})
    with pytest.raises(SSSSegError, match="calcification.classes"):
        PromptConfig.from_dict({"calcification": {"classes": ["XYZ"]}})


def test_every_dropped_component_is_logged_with_rule_and_size():
    hu, labels = scene()
    paint(hu, labels, range(4, 8), disk(CENTRE, CENTRE - 15, 6), SAH, value=10.0)  # 2.24 mL of CSF density
    paint(hu, labels, range(4, 8), disk(CENTRE, CENTRE + 15, 6), IPH)  # a real IPH
    labels[6, 20:22, 20:22] = IVH  # a 4-voxel speck: 0.02 mL
    lines = decision_log_lines(generate_prompts(probs(labels), hu, GEOMETRY).decisions)
    assert lines[0].startswith("dropped SAH 2.24 mL on slices 4-7 (blood_density): mean 10.0 HU")
    assert lines[1] == "dropped 1 component(s) under 0.1 mL (min_volume), 0.02 mL in all"
    assert lines[2] == "kept 1 of 3 candidate component(s), 2.24 mL"
