"""Synthetic hemorrhages inserted into bleed-free head CT (phantoms and the real GE scan)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from SSSSegmentLib.classes import CLASS_BY_KEY
from SSSSegmentLib.datasets import read_dataset_index
from SSSSegmentLib.errors import InputError, OutputError
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
from SSSSegmentLib.phantoms.config import Tissue
from SSSSegmentLib.phantoms.insertion import (
    InsertionConfig,
    NoiseModel,
    insert_into,
    insert_lesions,
    prepare_background,
    write_inserted_dataset,
)
from SSSSegmentLib.volumes.geometry import Geometry

KEYS = ("EDH", "IPH", "IVH", "SAH", "SDH")


@pytest.fixture(scope="module")
def phantom():
    """A bleed-free 128-matrix phantom (5 mm slices, noise std 5 HU)."""
    return generate_phantom(3, PhantomConfig(matrix=128, p_no_lesion=1.0))


@pytest.fixture(scope="module")
def background(phantom):
    return prepare_background(phantom.hu_zyx, phantom.geometry)


def _lps_of(geometry: Geometry, mask: np.ndarray) -> np.ndarray:
    """(n, 3) LPS mm of the voxels of ``mask``."""
    kji = np.argwhere(mask).astype(float)
    return (np.c_[kji[:, ::-1], np.ones(len(kji))] @ geometry.ijk_to_lps().T)[:, :3]


def _check_common(bg, result, key: str) -> np.ndarray:
    """Checks every class passes; returns the lesion's voxel mask."""
    lesion = result.labels_zyx > 0
    assert lesion.any()
    assert set(np.unique(result.labels_zyx[lesion])) == {CLASS_BY_KEY[key].label}
    assert not (lesion & ~bg.cavity).any(), "label outside the intracranial cavity"
    assert not (lesion & (bg.hu_zyx >= 200)).any(), "label on bone"
    assert np.array_equal(result.hu_zyx[~bg.cavity], bg.hu_zyx[~bg.cavity]), "nothing outside the cavity changes"
    (record,) = result.lesions
    assert 45 <= record.blood_hu <= 90, "acute blood (IPH rim down to 45 HU)"
    mean_hu, replaced_hu = float(result.hu_zyx[lesion].mean()), float(bg.hu_zyx[lesion].mean())
    assert abs(mean_hu - record.blood_hu) <= abs(replaced_hu - record.blood_hu) / 2 + 3, "labels: > half blood"
    # IVH / SAH replace the CSF share of a voxel, so on this 1.6 x 1.6 x 5 mm grid (thin sulci, ventricle
    # borders) the labelled mean is about the drawn blood HU (50-90) minus 10-20; on the 0.5 mm GE scan ~5.
    low = 35 if key in ("IVH", "SAH") else 50
    assert low <= mean_hu <= 90, "labelled voxels should have blood density"
    return lesion


@pytest.mark.parametrize("key", KEYS)
def test_each_class_lands_where_it_should(background, phantom, key):
    bg = background
    result = insert_into(bg, np.random.default_rng(7), [key])
    lesion = _check_common(bg, result, key)
    depth, (record,) = bg.depth_mm[lesion], result.lesions
    tissue = np.bincount(phantom.tissue_zyx[lesion], minlength=len(Tissue)) / lesion.sum()
    inplane, slice_mm = phantom.geometry.spacing_mm[0], phantom.geometry.spacing_mm[2]
    if key in ("EDH", "SDH"):  # against the inner table, as thick as drawn, on the calvaria
        assert depth.min() <= 1.5 * inplane
        assert depth.max() <= record.size["thickness_mm"] + slice_mm
        assert np.median(depth) <= record.size["thickness_mm"]
        assert record.centre_lps[2] >= bg.centre_lps[2] - 20.0
    elif key == "IPH":  # deep in parenchyma
        assert depth.min() >= 2.0
        assert bg.depth_mm[tuple(np.argwhere(lesion).mean(axis=0).round().astype(int))] >= 10.0
        assert tissue[Tissue.GREY_MATTER] + tissue[Tissue.WHITE_MATTER] >= 0.8
    elif key == "IVH":  # ventricular CSF, dependent (posterior, +y, for a supine patient)
        assert depth.min() >= 15.0
        assert tissue[Tissue.CSF_VENTRICLE] >= 0.6
        assert _lps_of(bg.geometry, lesion)[:, 1].mean() > _lps_of(bg.geometry, bg.ventricles > 0)[:, 1].mean()
    else:  # SAH: CSF-density voxels (at least half CSF) 3-15 mm under the inner table
        assert depth.min() >= 3.0 and depth.max() <= 15.0
        assert np.mean(bg.smooth_hu[lesion] <= bg.csf_max_hu + 0.5) >= 0.95


def test_edh_volume_matches_the_lens_formula(background):
    """A lens of centre thickness h and footprint radius r, thickness h (1 - (s/r)^2) at distance s from the
    centre, holds V = int_0^r h (1 - s^2/r^2) 2 pi s ds = pi r^2 h / 2 under a flat table. Under the skull
    (radius R, concave seen from inside) the layer at depth t shrinks by (1 - t/R)^2, so per unit footprint
    the thickness d counts d (1 - d/R + d^2/(3 R^2)); averaged over the paraboloid (mean d^2 = 2/3 h * mean d,
    mean d^3 = 1/2 h^2 * mean d) V = pi r^2 h / 2 * (1 - 2h/(3R) + h^2/(6 R^2)). R: the cavity's equivalent
    sphere. Tolerance 15% (footprint on a non-spherical table, voxels of 1.6 x 1.6 x 5 mm)."""
    h, r = 10.0, 30.0
    config = InsertionConfig(edh_thickness_mm=(h, h), edh_radius_mm=(r, r))
    cavity_mm3 = np.count_nonzero(background.cavity) * background.geometry.voxel_volume_ml * 1000
    radius = (3 * cavity_mm3 / (4 * np.pi)) ** (1 / 3)
    expected_ml = np.pi * r * r * h / 2 * (1 - 2 * h / (3 * radius) + h * h / (6 * radius**2)) / 1000
    for seed in range(3):
        result = insert_into(background, np.random.default_rng(seed), ["EDH"], config)
        labelled_ml = np.count_nonzero(result.labels_zyx) * background.geometry.voxel_volume_ml
        assert labelled_ml == pytest.approx(result.lesions[0].volume_ml)
        assert labelled_ml == pytest.approx(expected_ml, rel=0.15), (seed, labelled_ml, expected_ml)


@pytest.mark.parametrize("volume_ml", [2.0, 20.0])
def test_iph_volume_matches_the_request_and_has_core_rim_and_oedema(background, volume_ml):
    config = InsertionConfig(iph_volume_ml=(volume_ml, volume_ml))
    result = insert_into(background, np.random.default_rng(5), ["IPH"], config)
    lesion = result.labels_zyx > 0
    assert np.count_nonzero(lesion) * background.geometry.voxel_volume_ml == pytest.approx(volume_ml, rel=0.1)
    size = result.lesions[0].size
    assert 70 <= size["core_hu"] <= 90 and 45 <= size["rim_hu"] <= 60
    if volume_ml >= 10:  # oedema ring width scales with the clot (2-12 mm): measurable beyond the partial volume
        distance = ndimage.distance_transform_edt(~lesion, sampling=background.geometry.spacing_mm[::-1])
        ring = (distance >= 2.0) & (distance <= size["oedema_mm"]) & background.cavity
        drop = float(background.hu_zyx[ring].mean() - result.hu_zyx[ring].mean())
        assert drop > 1.0, "the oedema ring around an IPH is hypodense"


def test_noise_is_estimated_and_matched_inside_the_lesion(background):
    assert background.noise.std_hu == pytest.approx(5.0, rel=0.2)  # the phantom's scanner noise std
    config = InsertionConfig(iph_volume_ml=(40, 40))
    noisy = insert_into(background, np.random.default_rng(2), ["IPH"], config)
    quiet_bg = dataclasses.replace(background, noise=NoiseModel(0.0, background.noise.grain_px))
    quiet = insert_into(quiet_bg, np.random.default_rng(2), ["IPH"], config)  # same draws, no added noise
    assert np.array_equal(noisy.labels_zyx, quiet.labels_zyx)
    core = ndimage.binary_erosion(noisy.labels_zyx > 0, structure=np.ones((3, 3, 3), bool))  # blood fills it
    added = (noisy.hu_zyx - quiet.hu_zyx)[core]
    assert float(added.std()) == pytest.approx(background.noise.std_hu, rel=0.15)


def test_deterministic_per_seed_and_several_lesions(phantom):
    a = insert_lesions(phantom.hu_zyx, phantom.geometry, np.random.default_rng(11), ["SDH", "IPH", "IVH"])
    b = insert_lesions(phantom.hu_zyx, phantom.geometry, np.random.default_rng(11), ["SDH", "IPH", "IVH"])
    c = insert_lesions(phantom.hu_zyx, phantom.geometry, np.random.default_rng(12), ["SDH", "IPH", "IVH"])
    assert np.array_equal(a.hu_zyx, b.hu_zyx) and np.array_equal(a.labels_zyx, b.labels_zyx)
    assert not np.array_equal(a.labels_zyx, c.labels_zyx)
    assert [r.key for r in a.lesions] == ["SDH", "IPH", "IVH"]
    assert set(np.unique(a.labels_zyx)) == {0, 5, 2, 3}
    for record in a.lesions:
        count = np.count_nonzero(a.labels_zyx == CLASS_BY_KEY[record.key].label)
        assert count * phantom.geometry.voxel_volume_ml == pytest.approx(record.volume_ml)


def test_bad_requests_raise(phantom, background):
    with pytest.raises(InputError, match="unknown lesion"):
        insert_into(background, np.random.default_rng(0), ["XYZ"])
    with pytest.raises(InputError, match="cavity"):
        prepare_background(np.full((4, 32, 32), 30.0, np.float32), phantom.geometry)


def test_real_ge_scan_edh_on_the_calvaria_and_iph_in_parenchyma(tilted_ct_dir):
    from SSSSegmentLib.volumes import read_volume

    volume = read_volume(tilted_ct_dir)
    s_i, s_j, s_k = volume.geometry.spacing_mm  # halve the in-plane matrix: ~1 mm pixels, 4x faster
    geometry = Geometry((2 * s_i, 2 * s_j, s_k), volume.geometry.origin_lps, volume.geometry.direction)
    bg = prepare_background(np.ascontiguousarray(volume.hu_zyx[:, ::2, ::2]), geometry)
    config = InsertionConfig(edh_thickness_mm=(15, 15), edh_radius_mm=(30, 30), iph_volume_ml=(15, 15))
    result = insert_into(bg, np.random.default_rng(3), ["EDH", "IPH"], config)
    edh, iph = result.labels_zyx == 1, result.labels_zyx == 2
    for mask in (edh, iph):
        assert mask.any() and not (mask & ~bg.cavity).any() and not (mask & (bg.hu_zyx >= 200)).any()
        assert 50 <= float(result.hu_zyx[mask].mean()) <= 90
    bone_near = ndimage.binary_dilation(bg.hu_zyx >= 300, structure=np.ones((1, 9, 9), bool))  # ~4 mm in-plane
    assert bg.depth_mm[edh].min() <= 2 * s_i and np.mean(bone_near[edh]) >= 0.15, "EDH lies against the skull"
    assert bg.depth_mm[edh].max() <= 15 + s_k
    assert result.lesions[0].centre_lps[2] >= bg.centre_lps[2] - 20.0, "EDH on the calvaria, not the skull base"
    assert bg.depth_mm[iph].min() >= 2.0 and np.median(bg.depth_mm[iph]) >= 10.0
    assert 20 <= float(np.median(bg.smooth_hu[iph])) <= 45, "IPH replaces parenchyma"
    assert np.count_nonzero(iph) * geometry.voxel_volume_ml == pytest.approx(15.0, rel=0.1)


def test_dataset_writer_round_trip(tmp_path, phantom):
    import SimpleITK as sitk  # noqa: N813

    backgrounds = [tmp_path / "head_a.nii.gz", tmp_path / "head_b.nii.gz"]
    for path in backgrounds:
        sitk.WriteImage(phantom.to_ct_volume().to_sitk(np.rint(phantom.hu_zyx).astype(np.int16)), str(path))
    index_path = write_inserted_dataset(backgrounds, tmp_path / "set", n_cases=3, seed=4, keys=["EDH", "IVH"],
                                        held_out=[backgrounds[1]])
    index = read_dataset_index(index_path.parent)
    assert [c.case_id for c in index.labeled] == ["head_a_ins0000", "head_a_ins0002"]
    assert [c.case_id for c in index.test] == ["head_b_ins0001"]  # the held-out scan is never a training case
    assert index.unlabeled == ()
    for case in (*index.labeled, *index.test):
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(case.image)))
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(case.label)))
        assert image.shape == labels.shape == phantom.hu_zyx.shape
        assert image.dtype == np.int16 and labels.dtype == np.uint8
        assert set(np.unique(labels)) == {0, 1, 3}
    with pytest.raises(OutputError, match="not empty"):
        write_inserted_dataset(backgrounds, tmp_path / "set", n_cases=1, seed=4)
