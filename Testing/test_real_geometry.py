"""Real geometry on hand-made heads: a field of view cut at the image edge, a head holder, a missing
bone flap; the intracranial rule fails open where the skull ring cannot be closed, and says so.

Head: 12 slices of 5 mm, 1 mm pixels; brain 35 HU (r < 40 mm), skull 1000 HU (40-44 mm), scalp
40 HU (44-50 mm), air -1000 HU outside; lesions are painted at 70 HU and given the arg-max label
with probability 0.9 (``probs``).
"""

from __future__ import annotations

import numpy as np

from SSSSegmentLib.classes import CLASS_BY_KEY, NUM_LABELS
from SSSSegmentLib.phantoms import SCANNER_PROFILES, PhantomConfig, generate_phantom
from SSSSegmentLib.prompts import KEPT, generate_prompts, window_sizes
from SSSSegmentLib.prompts.cavity_map import cavity_map
from SSSSegmentLib.prompts.continuity import join_reach
from SSSSegmentLib.volumes.geometry import Geometry

N_K, N_J, N_I = 12, 128, 128
GEOMETRY = Geometry(spacing_mm=(1.0, 1.0, 5.0))
CENTRE = 63.5
BRAIN_R, SKULL_R, SCALP_R = 40.0, 44.0, 50.0
IPH, SAH = CLASS_BY_KEY["IPH"].label, CLASS_BY_KEY["SAH"].label
FLAP_KS = range(4, 9)  # slices with the bone flap missing


def polar(n: int = N_J) -> tuple[np.ndarray, np.ndarray]:
    """(radius mm, angle rad) of every pixel of an n x n slice from (CENTRE, CENTRE); angle 0 along +i."""
    jj, ii = np.mgrid[:n, :n]
    return np.hypot(jj - CENTRE, ii - CENTRE), np.arctan2(jj - CENTRE, ii - CENTRE)


def head(n: int = N_J) -> np.ndarray:
    """The head on n x n slices (the head stays at (CENTRE, CENTRE))."""
    r, _ = polar(n)
    plane = np.full((n, n), -1000.0)
    plane[r < SCALP_R] = 40.0
    plane[r < SKULL_R] = 1000.0
    plane[r < BRAIN_R] = 35.0
    return np.repeat(plane[None], N_K, axis=0).astype(np.float32)


def craniectomy(hu: np.ndarray) -> np.ndarray:
    """The bone of a 90-degree sector (towards +i, about 60 mm of ring) replaced by scalp on ``FLAP_KS``."""
    r, angle = polar()
    flap = (r >= BRAIN_R) & (r < SKULL_R) & (np.abs(angle) < np.pi / 4)
    for k in FLAP_KS:
        hu[k][flap] = 40.0
    return hu


def probs(labels_zyx: np.ndarray) -> np.ndarray:
    prob = np.full((NUM_LABELS, *labels_zyx.shape), 0.02, dtype=np.float32)
    np.put_along_axis(prob, labels_zyx[None].astype(np.intp), 0.9, axis=0)
    return prob


def paint(hu: np.ndarray, labels: np.ndarray, ks: range, centre_ji: tuple[float, float], radius: float,
          label: int) -> None:
    jj, ii = np.mgrid[:N_J, :N_I]
    mask = np.hypot(jj - centre_ji[0], ii - centre_ji[1]) <= radius
    for k in ks:
        hu[k][mask] = 70.0
        labels[k][mask] = label


def decisions_by_label(result, label: int) -> list:  # noqa: ANN001
    return [d for d in result.decisions if d.label == label]


def test_missing_bone_flap_leaves_those_slices_open_and_the_bleed_under_it_is_kept():
    """The flap is missing on slices 4-8: their ring is open. Slices 9-11 have a closed ring, but the
    cavity it encloses is cut off from the larger one below (slices 0-3, 4 slices against 3) by the open
    slices, so it is not the cavity's largest piece: those slices are open too (not "0% inside the
    skull"), and a bleed there is kept like the one under the flap."""
    hu, labels = craniectomy(head()), np.zeros((N_K, N_J, N_I), dtype=np.uint8)
    paint(hu, labels, range(5, 8), (CENTRE, CENTRE + 25), 6, IPH)  # brain under the flap
    paint(hu, labels, range(9, 11), (CENTRE, CENTRE - 20), 5, SAH)  # brain above the flap
    cmap = cavity_map(hu, GEOMETRY)
    assert list(np.flatnonzero(~cmap.closed_k)) == list(range(FLAP_KS[0], N_K))
    result = generate_prompts(probs(labels), hu, GEOMETRY)
    [iph], [sah] = decisions_by_label(result, IPH), decisions_by_label(result, SAH)
    assert iph.dropped_by == KEPT and sah.dropped_by == KEPT, (iph, sah)
    assert np.array_equal(result.kept_zyx, labels)
    assert result.notes == ("skull ring not closed on 8 of 12 slice(s) (slices 4-11): the intracranial rule "
                            "abstains there and falls back to inside the head's outer contour, >= 3.0 mm from "
                            "the scalp",)


def test_on_an_open_slice_blood_in_the_scalp_is_dropped_by_the_fallback_never_as_outside_the_skull():
    hu, labels = craniectomy(head()), np.zeros((N_K, N_J, N_I), dtype=np.uint8)
    paint(hu, labels, range(5, 8), (CENTRE, CENTRE + 48), 1.5, SAH)  # in the scalp over the flap
    paint(hu, labels, range(1, 4), (CENTRE, CENTRE + 48), 1.5, IPH)  # in the scalp over closed slices
    result = generate_prompts(probs(labels), hu, GEOMETRY)
    [sah], [iph] = decisions_by_label(result, SAH), decisions_by_label(result, IPH)
    assert sah.dropped_by == "intracranial" and iph.dropped_by == "intracranial"
    assert sah.reason.endswith("% of voxels inside the head away from the scalp (< 90%); all on slices whose "
                               "skull ring was not closed (no skull test there)")
    assert iph.reason == "0% of voxels inside the skull (< 90%)"
    open_ks = set(np.flatnonzero(~cavity_map(hu, GEOMETRY).closed_k))
    for d in result.decisions:
        if d.dropped_by == "intracranial" and open_ks & set(range(d.slice_range[0], d.slice_range[1] + 1)):
            assert "skull ring was not closed" in d.reason


def test_field_of_view_cut_at_the_image_edge_closes_the_ring_there():
    cut = int(CENTRE + 30)  # the image ends inside the brain: no padding, the skull runs into the edge
    hu, labels = head()[:, :, :cut].copy(), np.zeros((N_K, N_J, cut), dtype=np.uint8)
    jj, ii = np.mgrid[:N_J, :cut]
    mask = np.hypot(jj - CENTRE, ii - (CENTRE + 22)) <= 6
    hu[4:8][:, mask], labels[4:8][:, mask] = 70.0, IPH
    cmap = cavity_map(hu, GEOMETRY)
    brain = np.hypot(jj - CENTRE, ii - CENTRE) < BRAIN_R - 1
    assert cmap.closed_k.all()
    assert cmap.mask[:, brain & (ii < cut - 1)].all()
    result = generate_prompts(probs(labels), hu, GEOMETRY)
    assert [d.dropped_by for d in result.decisions] == [KEPT]
    assert result.notes == ()


def test_head_holder_lines_beside_the_head_do_not_join_the_skull():
    n = 256  # the head takes a small part of the image; the holder spans all of it
    hu = head(n)
    holder = np.zeros((n, n), dtype=bool)
    holder[:, [2, 3, n - 4, n - 3]] = True  # two 2 mm walls the whole height of the image
    holder[n - 3 :, :] = True  # and a base under the head
    clean = cavity_map(hu, GEOMETRY)
    hu[:, holder] = 1000.0
    with_holder = cavity_map(hu, GEOMETRY)
    assert with_holder.closed_k.all()
    assert np.array_equal(with_holder.mask, clean.mask)


def test_continuity_windows_are_capped_in_millimetres_on_thin_slices():
    # 163 slices of 1.5 mm (the scan): S/3..S/2 = 55..81 slices (82-122 mm); capped at 50-75 mm:
    # ceil(50 / 1.5) = 34 .. floor(75 / 1.5) = 50 slices.
    assert window_sizes(163, 1.5, (50.0, 75.0)) == range(34, 51)
    assert window_sizes(163) == range(55, 82)
    # 30 slices of 5 mm (BHSD): both rules give 10..15 slices
    assert window_sizes(30, 5.0, (50.0, 75.0)) == window_sizes(30) == range(10, 16)


def test_a_lesion_over_20_one_mm_slices_is_kept_and_the_log_gives_its_windows_in_mm():
    config = PhantomConfig(matrix=256, slice_thickness_mm=1.0, num_slices=200, lesion_keys=("IPH",),
                           lesion_size_quantiles=(0.3, 0.6))
    phantom = generate_phantom(2, config, SCANNER_PROFILES["thin_slice"])
    truth = phantom.labels_zyx == IPH
    ks = np.flatnonzero(truth.any(axis=(1, 2)))
    assert phantom.geometry.spacing_mm[2] == 1.0 and ks[-1] - ks[0] + 1 == 20
    labels = phantom.labels_zyx.copy()
    rng = np.random.default_rng(0)
    for _ in range(40):  # scattered false IPH candidates at the skull base and in the neck
        k, j, i = int(rng.integers(0, 50)), *(int(x) for x in rng.integers(20, 236, 2))
        labels[k : k + 3, j - 3 : j + 3, i - 3 : i + 3] = IPH
    result = generate_prompts(probs(labels), phantom.hu_zyx, phantom.geometry)
    [lesion] = [d for d in result.decisions if d.slice_range == (int(ks[0]), int(ks[-1]))]
    assert lesion.dropped_by == KEPT
    assert "continuity: spans 20 slice(s) (20 mm), supported by " in lesion.reason
    assert " windows of 50-75 mm (50-75 slices) (>= 50%" in lesion.reason
    assert np.array_equal(result.kept_zyx == IPH, truth)


def test_join_reach_is_one_slice_on_thick_slices_and_5_mm_on_thin_ones():
    # max(1, floor(5 mm / s_k)): 5 and 4 mm slices keep plain 26-connectivity; 1.5 mm -> 3; 1 mm -> 5
    assert [join_reach(s, 5.0) for s in (6.0, 5.0, 4.0, 2.5, 1.5, 1.0)] == [1, 1, 1, 2, 3, 5]
    assert join_reach(1.0, None) == join_reach(None, 5.0) == 1


def test_a_thin_slice_lesion_cut_in_two_by_one_missed_slice_is_kept_as_one_piece():
    """60 slices of 1.5 mm (windows 20-30 slices). An IPH disk (113 voxels a slice) on k 20-25 and
    27-32, the model's output missing on k 26: two 26-connected halves of 678 voxels. Every slice has a
    false 8 x 8 speck (64 voxels), the same place only every 4th slice (6 mm apart). A window of N slices
    holding the lesion holds 64 N + 1356 voxels: a half is 678 / (64 N + 1356) = 0.21-0.26 of it (< 0.3,
    and only the few windows that hold one half alone support it: dropped), the two together 0.41-0.51
    (>= 0.3 in most windows that hold any of them: kept). The halves are 3 mm apart, one 5 mm slice."""
    n_k = 60
    geometry = Geometry(spacing_mm=(1.0, 1.0, 1.5))
    hu = np.repeat(head()[:1], n_k, axis=0)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    paint(hu, labels, range(20, 26), (CENTRE, CENTRE), 6.0, IPH)
    paint(hu, labels, range(27, 33), (CENTRE, CENTRE), 6.0, IPH)
    corners = ((45, 45), (45, 82), (82, 45), (82, 82))
    for k in range(n_k):
        j, i = corners[k % 4]
        hu[k, j : j + 8, i : i + 8] = 70.0
        labels[k, j : j + 8, i : i + 8] = IPH
    result = generate_prompts(probs(labels), hu, geometry)
    halves = [d for d in decisions_by_label(result, IPH) if d.slice_range in ((20, 25), (27, 32))]
    assert len(halves) == 2 and all(d.dropped_by == KEPT for d in halves), [d.reason for d in halves]
    assert all("scored as one piece with 1 other part(s) within 5 mm along k" in d.reason for d in halves)


def test_a_bleed_under_a_burr_hole_is_kept_and_nothing_is_added_beside_the_hole():
    """A 14 mm hole through the skull (towards +i) on slices 5-7, an IPH of 5 mm radius 3 mm under it
    (centre 32 mm from the head's centre, the inner table at 40 mm) and an SAH on slices 9-10 above it:
    both kept whole. The clean head with the hole: the region the rules read (known cavity or fallback)
    covers the brain under the hole on every slice from the hole up and stays 3 mm from the scalp."""
    hu, labels = head(), np.zeros((N_K, N_J, N_I), dtype=np.uint8)
    jj, ii = np.mgrid[:N_J, :N_I]
    hole = (np.hypot(jj - CENTRE, ii - (CENTRE + 42)) <= 7) & (np.hypot(jj - CENTRE, ii - CENTRE) >= BRAIN_R)
    hole &= np.hypot(jj - CENTRE, ii - CENTRE) < SKULL_R
    for k in range(5, 8):
        hu[k][hole] = 40.0
    region = cavity_map(hu, GEOMETRY).effective()
    under = (np.hypot(jj - CENTRE, ii - (CENTRE + 32)) <= 5)
    near_scalp = np.hypot(jj - CENTRE, ii - CENTRE) >= SCALP_R - 2  # within the fallback's 3 mm margin
    assert region[5:8][:, under].all() and not region[:, near_scalp].any()
    assert region[8:][:, under].all()  # above the hole: the cavity cut off from the larger piece below
    paint(hu, labels, range(5, 8), (CENTRE, CENTRE + 32), 5, IPH)
    paint(hu, labels, range(9, 11), (CENTRE, CENTRE - 20), 5, SAH)
    result = generate_prompts(probs(labels), hu, GEOMETRY)
    [iph], [sah] = decisions_by_label(result, IPH), decisions_by_label(result, SAH)
    assert iph.dropped_by == KEPT and sah.dropped_by == KEPT, (iph, sah)
    assert np.array_equal(result.kept_zyx, labels)
