"""The realism check of phantoms (docs/phantoms.md): the band measurement on a hand-made volume, the
generator's artefact range against the real GE scan, and the report written by `sssseg phantoms`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from SSSSegmentLib.cli import main
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
from SSSSegmentLib.phantoms.generate import case_artefacts
from SSSSegmentLib.phantoms.realism import (
    band_profile,
    format_band_table,
    phantom_profile,
    reference_profile,
    reference_scan_path,
)

SPACING_ZYX = (5.0, 0.5, 0.5)
WALL = (5, 8)  # bone rows/columns 5..7 and their mirror: a square skull with a 44-pixel cavity (8..51)


def _box_skull() -> tuple[np.ndarray, np.ndarray]:
    """5 slices of a square skull (3 px of 1000 HU) around a 44 x 44 px cavity; returns (hu, ring) where
    ring (J, I) is each cavity pixel's distance in pixels (0.5 mm) to the nearest wall, 0 outside."""
    hu = np.full((5, 60, 60), -1000.0, dtype=np.float32)
    lo, hi = WALL[0], 60 - WALL[0]
    hu[:, lo:hi, lo:hi] = 1000.0
    hu[:, WALL[1] : 60 - WALL[1], WALL[1] : 60 - WALL[1]] = 0.0
    a = np.arange(60)
    to_wall = np.minimum(a - WALL[1] + 1, 60 - WALL[1] - a)  # 1 next to the wall, 22 in the middle
    ring = np.minimum.outer(to_wall, to_wall)
    ring[(ring < 1)] = 0
    return hu, ring


def test_band_shares_of_a_hand_made_volume():
    hu, ring = _box_skull()
    # ring r lies r * 0.5 mm from bone. Rings 1-2 (<= 1 mm) are left out as mixed with bone.
    values_by_slice = {
        (1, 2): [200.0] * 5,  # left out: within 1 mm of bone (and below the bone threshold)
        (3, 3): [80.0] * 5,  # 0-1.5 mm: blood density in every slice -> 100 %, median 80
        (4, 5): [70.0, 70.0, 70.0, 30.0, 30.0],  # 1.5-2.5 mm: 3 of 5 slices -> 60 %, median 70
        (6, 8): [60.0, 100.0, 20.0, 20.0, 20.0],  # 2.5-4 mm: 1 of 5 (100 is above 90) -> 20 %, median 20
        (9, 16): [95.0] * 5,  # 4-8 mm: above the band -> 0 %, median 95
        (17, 22): [10.0] * 5,  # > 8 mm -> 0 %, median 10
    }
    for (r0, r1), per_slice in values_by_slice.items():
        for k, value in enumerate(per_slice):
            hu[k][(ring >= r0) & (ring <= r1)] = value
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[2, 28:32, 28:32] = 2
    hu[2, 27:33, 27:33] = 70.0  # a bleed with a 1-pixel halo in the middle: left out with its 3-voxel margin

    p = band_profile(hu, SPACING_ZYX, labels)
    assert p.blood_share == pytest.approx((1.0, 0.6, 0.2, 0.0, 0.0))
    assert p.median_hu == pytest.approx((80.0, 70.0, 20.0, 95.0, 10.0))
    assert band_profile(hu, SPACING_ZYX).blood_share[4] > 0  # without the labels the bleed counts
    table = format_band_table([p])
    assert "100% (80 HU)" in table and "60% (70 HU)" in table and "> 8 mm" in table


def test_band_profile_without_bone_is_empty():
    p = band_profile(np.full((3, 20, 20), 40.0, dtype=np.float32), (5.0, 1.0, 1.0))
    assert p.blood_share == (None,) * 5 and p.voxels == (0,) * 5


@pytest.fixture(scope="module")
def ge_profile(tilted_ct_dir):  # noqa: ANN001  (skips, saying how to run it, without the real scan)
    assert reference_scan_path() == tilted_ct_dir.resolve()
    return reference_profile()


def test_artefacts_span_clean_to_stronger_than_the_real_scan(ge_profile):
    profiles = []
    for strength, seed in ((0.0, 3), (0.5, 4), (1.0, 3), (1.0, 5)):
        cfg = PhantomConfig(matrix=256, artefact_strength=(strength, strength))
        profiles.append(phantom_profile(generate_phantom(seed, cfg), f"strength {strength} seed {seed}"))
    print("\n" + format_band_table([*profiles, ge_profile]))
    for band in range(3):  # 0-1.5 (1-1.5), 1.5-2.5, 2.5-4 mm
        shares = [p.blood_share[band] for p in profiles if p.blood_share[band] is not None]
        assert min(shares) < ge_profile.blood_share[band] < max(shares), band


def test_artefact_draws_follow_the_strength():
    clean = case_artefacts(7, PhantomConfig(artefact_strength=(0.0, 0.0)))
    strong = case_artefacts(7, PhantomConfig(artefact_strength=(1.0, 1.0)))
    assert clean.ssp_width == 1.0 and clean.psf_tail_weight == 0.0 and clean.bh_hu == 0.0
    assert strong.ssp_width > 1.3 and strong.psf_tail_weight > 0.02 and strong.bh_hu > 10
    a = generate_phantom(7, PhantomConfig(matrix=96, artefact_strength=(0.0, 0.0)))
    b = generate_phantom(7, PhantomConfig(matrix=96, artefact_strength=(1.0, 1.0)))
    assert np.array_equal(a.labels_zyx, b.labels_zyx) and a.anatomy == b.anatomy  # artefacts never move labels
    assert not np.array_equal(a.hu_zyx, b.hu_zyx)


def test_sssseg_phantoms_writes_the_realism_report(tmp_path: Path, capsys):
    out = tmp_path / "ph"
    argv = ["phantoms", str(out), "--n", "2", "--seed", "3", "--matrix", "128", "--labeled-fraction", "0"]
    assert main(argv) == 0
    report = (out / "realism.md").read_text()
    assert "realism report" in capsys.readouterr().out
    assert "phantoms (2 cases) min" in report and "phantoms (2 cases) max" in report
    assert "phantom_0000" in report and "phantom_0001" in report
    assert "Why it matters" in report and "DESIGN" not in report  # explains itself; cites no file users lack
    if reference_scan_path().is_dir():
        assert "real scan (ct_head_ge_tilted)" in report
    else:
        assert "not found" in report
