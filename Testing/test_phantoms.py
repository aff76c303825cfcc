"""Synthetic head-CT phantoms: HU per tissue/class, anatomical rules of each class, grid, determinism,
and the BHSD-like dataset writer/reader.

HU ranges are checked on the "ideal" scanner profile with thin slices rendered without sub-slices
(no noise, no blur, no partial volume), so each voxel holds its tissue's value plus texture; the
realistic profile is checked on eroded interiors (3D erosion), with a margin for noise.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from scipy import ndimage

from SSSSegmentLib.classes import CLASS_BY_KEY, HEMORRHAGE_CLASSES
from SSSSegmentLib.errors import InputError, OutputError
from SSSSegmentLib.phantoms import (
    SCANNER_PROFILES,
    TISSUE_HU_RANGE,
    PhantomConfig,
    Tissue,
    generate_phantom,
    read_dataset_index,
    write_dataset,
)
from SSSSegmentLib.phantoms.config import BLOOD_HU_RANGE
from SSSSegmentLib.volumes.geometry import Geometry

ALL_KEYS = ("EDH", "IPH", "IVH", "SAH", "SDH")
BONE = (Tissue.BONE_CORTICAL, Tissue.BONE_DIPLOE, Tissue.SUTURE)
THIN_IDEAL = PhantomConfig(
    matrix=160,
    slice_thickness_mm=2.0,
    sub_slice_mm=2.0,
    lesion_keys=ALL_KEYS,
    lesion_size_quantiles=(0.5, 1.0),
)
SMALL = PhantomConfig(matrix=128)


@pytest.fixture(scope="module")
def ideal():
    return generate_phantom(11, THIN_IDEAL, SCANNER_PROFILES["ideal"])


@pytest.fixture(scope="module")
def realistic():
    config = PhantomConfig(matrix=256, lesion_keys=("IPH", "SDH"), lesion_size_quantiles=(0.8, 1.0))
    return generate_phantom(5, config, SCANNER_PROFILES["standard"])


def _centres_lps(phantom, mask: np.ndarray) -> np.ndarray:
    k, j, i = np.nonzero(mask)
    ijk1 = np.stack([i, j, k, np.ones_like(i)], axis=1).astype(float)
    return (phantom.geometry.ijk_to_lps() @ ijk1.T).T[:, :3]


def test_ideal_tissue_hu_in_range(ideal):
    for tissue in Tissue:
        voxels = ideal.hu_zyx[(ideal.tissue_zyx == tissue) & (ideal.labels_zyx == 0)]
        # EDEMA: checked below; sutures may be thin; calcifications are drawn per case (test_phantom_anatomy)
        if tissue not in (Tissue.EDEMA, Tissue.SUTURE) and not tissue.name.startswith("CALC_"):
            assert voxels.size > 50, f"{tissue.name} missing"
        lo, hi = TISSUE_HU_RANGE[tissue]
        if voxels.size:
            assert voxels.min() >= lo - 1e-3 and voxels.max() <= hi + 1e-3, (
                tissue.name,
                voxels.min(),
                voxels.max(),
            )
    gm = ideal.hu_zyx[(ideal.tissue_zyx == Tissue.GREY_MATTER) & (ideal.labels_zyx == 0)].mean()
    wm = ideal.hu_zyx[(ideal.tissue_zyx == Tissue.WHITE_MATTER) & (ideal.labels_zyx == 0)].mean()
    assert gm - wm > 5.0


def test_ideal_blood_hu_and_every_class_present(ideal):
    for cls in HEMORRHAGE_CLASSES:
        blood = ideal.hu_zyx[ideal.labels_zyx == cls.label]
        assert blood.size > 0, f"{cls.key} missing"
        assert BLOOD_HU_RANGE[0] <= blood.min() and blood.max() <= BLOOD_HU_RANGE[1], cls.key
    assert {r.key for r in ideal.lesions} == set(ALL_KEYS)
    for record in ideal.lesions:
        assert record.volume_ml > 0
    edema = ideal.tissue_zyx == Tissue.EDEMA
    assert edema.any() and (ideal.labels_zyx[edema] == 0).all()


def test_each_class_sits_in_its_tissue(ideal):
    tissue, labels = ideal.tissue_zyx, ideal.labels_zyx
    assert set(np.unique(tissue[labels == CLASS_BY_KEY["IVH"].label])) == {Tissue.CSF_VENTRICLE}
    assert set(np.unique(tissue[labels == CLASS_BY_KEY["IPH"].label])) <= {
        Tissue.GREY_MATTER,
        Tissue.WHITE_MATTER,
    }
    assert set(np.unique(tissue[labels == CLASS_BY_KEY["SAH"].label])) == {Tissue.CSF_SULCI}
    bone = np.isin(tissue, BONE)
    for key in ("EDH", "SDH"):
        mask = labels == CLASS_BY_KEY[key].label
        assert not np.isin(tissue[mask], (*BONE, Tissue.AIR, Tissue.SCALP, Tissue.CSF_VENTRICLE)).any()
        components, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
        for c in range(1, n + 1):
            touching = ndimage.binary_dilation(components == c, structure=np.ones((3, 3, 3))) & bone
            assert touching.any(), f"{key} component {c} does not touch the inner table"


def test_edh_stays_on_one_skull_plate_sdh_on_one_side(ideal):
    anat = ideal.anatomy
    local = anat.to_local(_centres_lps(ideal, ideal.labels_zyx == CLASS_BY_KEY["EDH"].label))
    plates = anat.skull_plate(local[:, 0], local[:, 1], local[:, 2])
    assert len(np.unique(plates)) == 1
    sdh_local = anat.to_local(_centres_lps(ideal, ideal.labels_zyx == CLASS_BY_KEY["SDH"].label))
    assert sdh_local[:, 0].min() * sdh_local[:, 0].max() > 0, "SDH crossed the midline"


def test_ivh_is_dependent(ideal):
    """Supine: blood layers posteriorly (+y LPS); in each column, IVH lies behind the clear CSF."""
    ivh = ideal.labels_zyx == CLASS_BY_KEY["IVH"].label
    clear = (ideal.tissue_zyx == Tissue.CSF_VENTRICLE) & ~ivh
    y_ivh, y_clear = _centres_lps(ideal, ivh)[:, 1], _centres_lps(ideal, clear)[:, 1]
    assert y_ivh.mean() > y_clear.mean()
    lateral = np.abs(ideal.anatomy.to_local(_centres_lps(ideal, ivh))[:, 0]) > 8.0  # off the midline
    k, j, i = np.nonzero(ivh)
    assert lateral.sum() > 20
    for kk, jj, ii in zip(k[lateral], j[lateral], i[lateral], strict=True):
        assert not clear[kk, jj:, ii].any(), "clear ventricular CSF posterior to the blood"


def test_realistic_profile_on_eroded_interiors(realistic):
    noise = SCANNER_PROFILES["standard"].noise_std_hu

    def interior(mask: np.ndarray) -> np.ndarray:  # 2 voxels in-plane, 1 slice (5 mm) along z
        mask = ndimage.binary_erosion(mask, np.ones((1, 3, 3), dtype=bool), iterations=2)
        return ndimage.binary_erosion(mask, np.ones((3, 1, 1), dtype=bool))

    for tissue in (Tissue.WHITE_MATTER, Tissue.CSF_VENTRICLE):
        core = interior((realistic.tissue_zyx == tissue) & (realistic.labels_zyx == 0))
        values = realistic.hu_zyx[core]
        lo, hi = TISSUE_HU_RANGE[tissue]
        assert values.size > 30 and lo - 2 <= values.mean() <= hi + 2, tissue.name
        assert 0.4 * noise < values.std() < 2.5 * noise
    core = interior(realistic.labels_zyx == CLASS_BY_KEY["IPH"].label)
    assert core.sum() > 20 and BLOOD_HU_RANGE[0] <= realistic.hu_zyx[core].mean() <= BLOOD_HU_RANGE[1]


def test_grid_shapes_and_geometry(realistic):
    ph = realistic
    assert ph.hu_zyx.dtype == np.float32 and ph.labels_zyx.dtype == np.uint8 and ph.tissue_zyx.dtype == np.uint8
    assert ph.hu_zyx.shape == ph.labels_zyx.shape == ph.tissue_zyx.shape
    k_n, j_n, i_n = ph.hu_zyx.shape
    assert (j_n, i_n) == (256, 256) and 24 <= k_n <= 42
    assert ph.geometry.spacing_mm[2] == 5.0 and ph.geometry.direction_matrix.tolist() == np.eye(3).tolist()
    centre = ph.geometry.ijk_to_lps() @ np.array([(i_n - 1) / 2, (j_n - 1) / 2, (k_n - 1) / 2, 1.0])
    assert np.allclose(centre[:3], 0.0, atol=1e-6)
    assert ph.hu_zyx.min() >= -1024 and ph.hu_zyx[0].max() > 1000  # skull base bone on the first slice
    top = ph.tissue_zyx[-3:]
    assert not np.isin(top, (Tissue.GREY_MATTER, Tissue.WHITE_MATTER)).any(), "skull must close at the vertex"
    assert ph.to_ct_volume().hu_zyx is ph.hu_zyx


def test_deterministic_per_seed_and_seeds_differ():
    a, b = generate_phantom(21, SMALL), generate_phantom(21, SMALL)
    assert np.array_equal(a.hu_zyx, b.hu_zyx) and np.array_equal(a.labels_zyx, b.labels_zyx)
    assert a.lesions == b.lesions and a.geometry == b.geometry
    c = generate_phantom(22, SMALL)
    assert c.hu_zyx.shape != a.hu_zyx.shape or not np.array_equal(c.hu_zyx, a.hu_zyx)
    assert c.anatomy != a.anatomy


def test_no_lesion_case_and_bad_config():
    empty = generate_phantom(3, PhantomConfig(matrix=96, p_no_lesion=1.0))
    assert empty.lesions == () and not empty.labels_zyx.any()
    with pytest.raises(InputError):
        generate_phantom(3, PhantomConfig(matrix=96, lesion_keys=("XYZ",)))
    with pytest.raises(InputError):
        generate_phantom(-1, SMALL)


def test_dataset_writer_round_trip(tmp_path):
    config = PhantomConfig(matrix=64, num_slices=10, p_no_lesion=0.0)
    out = tmp_path / "phantoms"
    index_path = write_dataset(out, n=3, seed=9, labeled_fraction=0.67, config=config)
    data = json.loads(index_path.read_text())
    assert data["labels"] == {"0": "background", "1": "EDH", "2": "IPH", "3": "IVH", "4": "SAH", "5": "SDH"}
    assert data["numTraining"] == 2 and len(data["training"]) == 2 and data["numUnlabeled"] == 1
    index = read_dataset_index(out)
    assert len(index.labeled) == 2 and len(index.unlabeled) == 1
    assert index.unlabeled[0].image.parent.name == "imagesUnlabeled" and index.unlabeled[0].label is None
    case = index.labeled[1]
    image, label = sitk.ReadImage(str(case.image)), sitk.ReadImage(str(case.label))
    assert image.GetPixelID() == sitk.sitkInt16 and label.GetPixelID() == sitk.sitkUInt8
    again = generate_phantom(data["generator"]["case_seeds"][case.case_id], config)
    assert Geometry.from_sitk(image).allclose(again.geometry) and Geometry.from_sitk(label).allclose(again.geometry)
    assert np.array_equal(sitk.GetArrayFromImage(label), again.labels_zyx)
    assert np.abs(sitk.GetArrayFromImage(image) - again.hu_zyx).max() <= 0.5 + 1e-3
    assert not list(out.rglob(".*"))  # no temp files left


def test_dataset_writer_refuses_to_overwrite(tmp_path):
    config = PhantomConfig(matrix=48, num_slices=4)
    out = tmp_path / "ds"
    write_dataset(out, n=2, seed=1, labeled_fraction=1.0, config=config)
    with pytest.raises(OutputError):
        write_dataset(out, n=1, seed=2, config=config)
    write_dataset(out, n=1, seed=2, labeled_fraction=0.0, config=config, overwrite=True)
    index = read_dataset_index(out)
    assert len(index.labeled) == 0 and len(index.unlabeled) == 1
    assert not list((out / "imagesTr").iterdir())  # stale cases of the earlier dataset are gone
    index.unlabeled[0].image.unlink()
    with pytest.raises(InputError):
        read_dataset_index(out)
    with pytest.raises(InputError):
        read_dataset_index(tmp_path)


def test_full_size_case_has_the_bhsd_grid():
    """The default phantom on BHSD's grid: 512 x 512 at 0.4-0.6 mm, 5 mm slices, HU from air to bone."""
    ph = generate_phantom(2024, PhantomConfig(num_slices=32))
    assert ph.hu_zyx.shape == (32, 512, 512) and ph.labels_zyx.shape == (32, 512, 512)
    s_i, s_j, s_k = ph.geometry.spacing_mm
    assert 0.4 <= s_i <= 0.6 and s_j == s_i and s_k == 5.0
    assert float(ph.hu_zyx.min()) >= -1100.0 and float(ph.hu_zyx.max()) <= 3100.0
