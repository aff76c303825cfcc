"""Phantom anatomy realism: what real head CT shows that a model must not call blood (docs/phantoms.md).

Dura and tentorium, physiological calcifications, petrous bone, mastoid air cells, orbits, large uneven
IPH with an oedema rim, and the head pose range. Positions are checked in the head-local frame (u left,
v posterior, w superior, mm) against the textbook anatomy, not against the generator's constants:
the third ventricle ends about 10 mm behind the head centre, the atria lie 15-30 mm off the midline,
the petrous ridges rise about a centimetre above the middle fossa floor, mastoids sit posterolaterally
at the skull base, the orbits anteriorly below the anterior fossa.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from SSSSegmentLib.classes import CLASS_BY_KEY
from SSSSegmentLib.phantoms import SCANNER_PROFILES, PhantomConfig, Tissue, generate_phantom
from SSSSegmentLib.phantoms.config import BLOOD_HU_RANGE
from SSSSegmentLib.phantoms.head_sampling import sample_anatomy
from SSSSegmentLib.phantoms.lesion_sampling import sample_lesions

SEED = 59  # a head with every calcification drawn (checked in ``anatomy_has_everything``)
BRAIN = (Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.CSF_SULCI, Tissue.CSF_VENTRICLE, Tissue.EDEMA)
BONE = (Tissue.BONE_CORTICAL, Tissue.BONE_DIPLOE, Tissue.SUTURE)
CALCS = (Tissue.CALC_PINEAL, Tissue.CALC_CHOROID, Tissue.CALC_FALX, Tissue.CALC_BASAL)
THIN = PhantomConfig(matrix=160, slice_thickness_mm=2.0, sub_slice_mm=2.0, lesion_keys=("IPH", "IVH"))


@pytest.fixture(scope="module")
def ideal():
    return generate_phantom(SEED, THIN, SCANNER_PROFILES["ideal"])


@pytest.fixture(scope="module")
def clinical():
    """5 mm slices averaged from 1 mm sub-slices, standard noise and blur."""
    return generate_phantom(SEED, PhantomConfig(matrix=128, p_no_lesion=1.0), SCANNER_PROFILES["standard"])


def _local(phantom) -> np.ndarray:
    """Head-local (u, v, w) of every voxel centre, shape (K, J, I, 3)."""
    k_n, j_n, i_n = phantom.hu_zyx.shape
    k, j, i = np.meshgrid(np.arange(k_n), np.arange(j_n), np.arange(i_n), indexing="ij")
    ijk1 = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)], axis=1).astype(float)
    lps = (phantom.geometry.ijk_to_lps() @ ijk1.T).T[:, :3]
    return phantom.anatomy.to_local(lps).reshape(k_n, j_n, i_n, 3)


def _box(local: np.ndarray, u=(-1e3, 1e3), v=(-1e3, 1e3), w=(-1e3, 1e3)) -> np.ndarray:
    """Boolean (K, J, I): voxel centres inside the head-local box (mm)."""
    out = np.ones(local.shape[:3], dtype=bool)
    for axis, (lo, hi) in enumerate((u, v, w)):
        out &= (local[..., axis] > lo) & (local[..., axis] < hi)
    return out


def _touches(mask: np.ndarray, other: np.ndarray) -> bool:
    """True when a voxel of ``mask`` is a 26-neighbour of (or is) a voxel of ``other``."""
    return bool((ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), dtype=bool)) & other).any())


def test_anatomy_has_everything(ideal):
    drawn = {Tissue(e.tissue) for e in ideal.anatomy.calcifications}
    assert drawn == {Tissue.CALC_PINEAL, Tissue.CALC_CHOROID, Tissue.CALC_BASAL}
    assert ideal.anatomy.falx_plaques and ideal.anatomy.mastoid.regions


def test_calcifications_are_bright_unlabelled_and_in_place(ideal):
    local, hu, labels = _local(ideal), ideal.hu_zyx, ideal.labels_zyx
    lift = 4.0  # deep structures sit 4-10 mm above the head centre
    regions = {  # (mask, min HU): pineal behind the third ventricle, both atria, both pallida
        "pineal": (_box(local, u=(-6, 6), v=(10, 25), w=(-12, 12 + lift)), 100.0),
        "choroid left": (_box(local, u=(10, 30), v=(16, 36), w=(-4, 20)), 80.0),
        "choroid right": (_box(local, u=(-30, -10), v=(16, 36), w=(-4, 20)), 80.0),
        "pallidum left": (_box(local, u=(10, 28), v=(-14, 6), w=(-8, 16)), 80.0),
        "pallidum right": (_box(local, u=(-28, -10), v=(-14, 6), w=(-8, 16)), 80.0),
        "falx": (_box(local, u=(-2.5, 2.5), v=(-80, 80), w=(25, 90)), 150.0),
    }
    for name, (region, lo) in regions.items():
        bright = region & (hu > lo) & (labels == 0) & ~np.isin(ideal.tissue_zyx, (*BONE, Tissue.SCALP))
        assert bright.sum() >= 1, name
    calc = np.isin(ideal.tissue_zyx, CALCS)
    assert calc.any() and not labels[calc].any(), "a calcification is not blood"
    deep = np.isin(ideal.tissue_zyx, (Tissue.CALC_PINEAL, Tissue.CALC_CHOROID, Tissue.CALC_BASAL))
    around = ndimage.binary_dilation(deep, structure=np.ones((1, 3, 3), dtype=bool)) & ~calc
    halo = around & (hu >= 50) & (hu <= 95)  # partly calcified rim: blood density even without averaging
    assert halo.sum() > 0.2 * around.sum() and not labels[halo].any()


def test_pineal_has_a_blood_density_halo_on_thick_slices(clinical):
    """Thick slices average a 100-600 HU calcification with brain: a rim at blood density, unlabelled."""
    local, hu = _local(clinical), clinical.hu_zyx
    region = _box(local, u=(-8, 8), v=(8, 28), w=(-14, 18))
    assert (region & (hu > 100)).any(), "no calcified pineal"
    around = ndimage.binary_dilation(region & (hu > 100), iterations=2) & region & (hu < 100)
    assert ((hu[around] > 50) & (hu[around] < 90)).sum() >= 2
    assert not clinical.labels_zyx.any()


def test_dura_lines_the_inner_table(ideal):
    """Cavity voxels touching the calvaria (above the skull base) are mostly dura at 45-80 HU.

    Without dura they would be CSF (0-15 HU) or cortex (35-45 HU).
    """
    local, tissue, hu = _local(ideal), ideal.tissue_zyx, ideal.hu_zyx
    bone = np.isin(tissue, BONE)
    near_bone = ndimage.binary_dilation(bone, structure=np.ones((1, 3, 3), dtype=bool))
    cavity = ~np.isin(tissue, (*BONE, Tissue.AIR, Tissue.SCALP)) & (ideal.labels_zyx == 0)
    high = _box(local, w=(ideal.anatomy.skull_base[0] + 15, 1e3), u=(-1e3, 1e3)) & ~_box(local, u=(-6, 6))
    rim = near_bone & cavity & high
    share = ((hu[rim] >= 45) & (hu[rim] <= 80)).mean()
    assert rim.sum() > 500 and share > 0.3, share
    dura = (tissue == Tissue.DURA) & high
    dist_mm = ndimage.distance_transform_edt(~bone, sampling=ideal.geometry.spacing_mm[::-1])
    assert np.median(dist_mm[dura]) <= 2.0
    assert (hu[dura] >= 45).all() and (hu[dura] <= 80).all()


def test_tentorium_covers_the_posterior_fossa(ideal):
    """A dural sheet well away from the skull, lateral to the midline, behind the head centre, low."""
    local = _local(ideal)
    bone = np.isin(ideal.tissue_zyx, BONE)
    deep = ndimage.distance_transform_edt(~bone, sampling=ideal.geometry.spacing_mm[::-1]) > 6
    sheet = (ideal.tissue_zyx == Tissue.DURA) & deep & _box(local, v=(10, 90), w=(-60, 0))
    sheet &= ~_box(local, u=(-12, 12))  # not the superior sagittal sinus or the falx
    assert sheet.sum() > 30 and (local[sheet][:, 0] > 0).any() and (local[sheet][:, 0] < 0).any()


def test_petrous_ridges_rise_above_the_middle_fossa(ideal):
    """Dense bone (> 1000 HU) 3-8 mm above the middle fossa floor, 20-45 mm off the midline, both sides."""
    local, hu = _local(ideal), ideal.hu_zyx
    mid_floor = ideal.anatomy.skull_base[1]
    for u in ((20, 45), (-45, -20)):
        ridge = _box(local, u=u, v=(-5, 30), w=(mid_floor + 3, mid_floor + 8)) & (hu > 1000)
        assert ridge.sum() > 10, u


def test_mastoid_air_cells_lie_outside_the_cavity(ideal):
    local, tissue = _local(ideal), ideal.tissue_zyx
    low_back = _box(local, v=(0, 80), w=(-100, ideal.anatomy.skull_base[1])) & ~_box(local, u=(-25, 25))
    air = low_back & (ideal.hu_zyx < -500) & (tissue == Tissue.AIR)
    head = np.stack([ndimage.binary_fill_holes(s) for s in tissue != Tissue.AIR])  # not the air around it
    cells = air & head
    assert (cells & (local[..., 0] > 0)).sum() > 5 and (cells & (local[..., 0] < 0)).sum() > 5
    assert not _touches(cells, np.isin(tissue, BRAIN)), "air cells touch the brain"


def test_orbits_have_fat_and_globes_outside_the_cavity(ideal):
    local, tissue, hu = _local(ideal), ideal.tissue_zyx, ideal.hu_zyx
    front_low = _box(local, v=(-120, -30), w=(-100, ideal.anatomy.skull_base[0]))
    for u in ((12, 60), (-60, -12)):
        side = front_low & _box(local, u=u)
        fat = side & (hu >= -100) & (hu <= -60)
        globe = side & (tissue == Tissue.GLOBE) & (hu >= 0) & (hu <= 20)
        assert fat.sum() > 50 and globe.sum() > 50, u
    orbit = np.isin(tissue, (Tissue.ORBIT_FAT, Tissue.GLOBE))
    assert not _touches(orbit, np.isin(tissue, BRAIN))


def test_large_iph_is_uneven_with_an_unlabelled_oedema_rim():
    config = PhantomConfig(
        matrix=128, slice_thickness_mm=2.0, sub_slice_mm=2.0, lesion_keys=("IPH",), lesion_size_quantiles=(1.0, 1.0)
    )
    ph = generate_phantom(5, config, SCANNER_PROFILES["ideal"])
    iph = ph.labels_zyx == CLASS_BY_KEY["IPH"].label
    assert ph.lesions[0].volume_ml >= 60.0
    p10, p90 = np.percentile(ph.hu_zyx[iph], [10, 90])
    assert p90 - p10 > 15 and p90 >= 70 and p10 <= 62, (p10, p90)
    lo, hi = BLOOD_HU_RANGE
    assert lo <= ph.hu_zyx[iph].min() and ph.hu_zyx[iph].max() <= hi
    edema = ph.tissue_zyx == Tissue.EDEMA
    assert edema.sum() > 100 and not ph.labels_zyx[edema].any()
    assert ph.hu_zyx[edema].max() < 30  # hypodense: below white matter's upper end
    u = _local(ph)[iph][:, 0]
    assert u.min() * u.max() > 0, "IPH crossed the falx"


def test_iph_oedema_width_varies():
    widths = []
    for seed in range(12):
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
        anat = sample_anatomy(rngs[0])
        (iph,) = sample_lesions(rngs[1], anat, PhantomConfig(lesion_keys=("IPH",), lesion_size_quantiles=(0.7, 0.7)))
        widths.append(iph.halo.radius - iph.clot.radius)
    assert min(widths) < 3.0 and max(widths) > 5.0, widths


def test_head_pose_covers_clinical_positioning():
    """Roll (ear to shoulder) and pitch (chin up/down) from the z components of the u and v axes."""
    roll, pitch = [], []
    for seed in range(300):
        r = np.asarray(sample_anatomy(np.random.default_rng(seed)).rotation).reshape(3, 3)
        roll.append(np.degrees(np.arcsin(abs(r[2, 0]))))
        pitch.append(np.degrees(np.arcsin(abs(r[2, 1]) / np.cos(np.radians(roll[-1])))))
    assert 10 <= max(roll) <= 16 and 16 <= max(pitch) <= 21, (max(roll), max(pitch))
