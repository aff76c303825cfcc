"""DICOM series with missing slices (`volumes/slice_gaps.py`): a step between neighbouring slices over
1.5 x their slice thickness is warned (log, `done` event, QC picture); a gap over 15 mm is refused
(exit code 2, one line). Expected gap sizes are the hand-computed distances between the slices kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import test_volumes_io
from PIL import Image
from test_volumes_io import write_dicom_series

from SSSSegmentLib.cli import main
from SSSSegmentLib.errors import InputError
from SSSSegmentLib.qc.case_picture import _coloured, save_case_qc, warning_strip
from SSSSegmentLib.volumes import read_volume
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry
from SSSSegmentLib.volumes.slice_gaps import find_gaps

AXIAL = (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
TINY = ["--preset", "tiny", "--untrained", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _whole_hu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store whole HU (slope 1): the helper's default slope 0.01 cannot hold air at -1000 HU in int16."""
    monkeypatch.setattr(test_volumes_io, "SLOPE", 1.0)


def head_field(points_lps: np.ndarray) -> np.ndarray:
    """A small head (brain 35 HU, skull 1000 HU) centred in the synthetic 36 x 40 slice, air around it."""
    radius = np.hypot(points_lps[..., 0] - 6.0, points_lps[..., 1] - 22.0)
    return np.where(radius < 8, 35.0, np.where(radius < 10, 1000.0, -1000.0))


def series_without(folder: Path, heights_kept: list[float]) -> Path:
    """An axial series of 5 mm slices at the given heights (mm along the normal) only."""
    positions = [np.array([-10.0, 5.0, h]) for h in heights_kept]
    write_dicom_series(folder, positions, *AXIAL, field=head_field)
    return folder


def test_find_gaps_by_hand() -> None:
    heights = [0.0, 5.0, 10.0, 20.0, 25.0, 30.0]  # the slice at 15 mm is missing: a 10 mm step
    (gap,) = find_gaps(np.array(heights))
    assert (gap.below, gap.size_mm, gap.slice_mm, gap.missing) == (2, 10.0, 5.0, 1)
    assert find_gaps(np.array([0.0, 5.0, 10.0, 17.4])) == []  # 7.4 mm < 1.5 x 5
    # a series that changes thickness on purpose (4 mm, then 7 mm slices): no gap where tags say so
    heights = np.array([0.0, 4.0, 8.0, 12.0, 13.08, 20.08, 27.08])
    thickness = np.array([4.0, 4.0, 4.0, 4.0, 7.0, 7.0, 7.0])
    assert find_gaps(heights, thickness) == []
    assert [g.below for g in find_gaps(np.delete(heights, 5), np.delete(thickness, 5))] == [4]  # 14 mm > 10.5


def test_one_missing_slice_warned(tmp_path: Path) -> None:
    folder = series_without(tmp_path / "s", [0.0, 5.0, 10.0, 20.0, 25.0, 30.0])
    lines: list[str] = []
    volume = read_volume(folder, log=lines.append)
    assert len(volume.warnings) == 1 and "10.0 mm between slices 2 and 3" in volume.warnings[0]
    assert volume.warnings[0] in lines  # logged as it is read


def test_wide_gap_refused_by_the_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = series_without(tmp_path / "s", [0.0, 5.0, 10.0, 30.0, 35.0, 40.0])  # 3 slices missing: 20 mm
    code = main(["segment", str(folder), str(tmp_path / "out.seg.nrrd"), *TINY, "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "20.0 mm between slices 2 and 3" in err[0] and "not segmented" in err[0]
    assert not (tmp_path / "out.seg.nrrd").exists()


def test_gap_in_done_event(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = series_without(tmp_path / "s", [0.0, 5.0, 10.0, 20.0, 25.0, 30.0, 35.0])
    code = main(["segment", str(folder), str(tmp_path / "out.seg.nrrd"), *TINY, "--progress", "json"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert code == 0, events[-1]
    (done,) = [e for e in events if e["event"] == "done"]
    assert len(done["warnings"]) == 1 and "10.0 mm between slices 2 and 3" in done["warnings"][0]
    assert any(e["event"] == "log" and e["message"] == done["warnings"][0] for e in events)


def test_gap_in_qc_picture(tmp_path: Path) -> None:
    """The warning line, drawn on its own, appears as rows of the picture; without it, it does not."""
    hu = np.full((4, 48, 48), -1000.0, np.float32)
    hu[:, 8:40, 8:40] = 35.0
    line = "WARNING: missing slices: a gap of 10.0 mm"
    pictures = {}
    for name, warnings in (("with", (line,)), ("without", ())):
        volume = CTVolume(hu, Geometry((0.5, 0.5, 5.0)), warnings=warnings)
        path = save_case_qc(volume, np.zeros(hu.shape, np.uint8), tmp_path / f"{name}.png")
        pictures[name] = np.asarray(Image.open(path).convert("RGB"))
    for name, found in (("with", True), ("without", False)):
        page = pictures[name]
        strip = _coloured(warning_strip(line, page.shape[1]))
        rows = [r for r in range(page.shape[0] - strip.shape[0]) if np.array_equal(page[r:r + strip.shape[0]], strip)]
        assert bool(rows) is found, name


def _ge_copy(tilted_ct_dir: Path, tmp_path: Path, deleted: list[str]) -> Path:
    copy = tmp_path / "ge"
    shutil.copytree(tilted_ct_dir, copy)
    for name in deleted:
        (copy / name).unlink()
    return copy


def test_real_series_has_no_gap(tilted_ct_dir: Path) -> None:
    """The GE scan changes from 4 mm to 7 mm slices on purpose: no warning."""
    assert read_volume(tilted_ct_dir).warnings == ()


def test_real_series_one_slice_deleted_warned(tilted_ct_dir: Path, tmp_path: Path) -> None:
    volume = read_volume(_ge_copy(tilted_ct_dir, tmp_path, ["12.dcm"]))  # in the 4 mm part: an 8 mm step
    assert len(volume.warnings) == 1 and "8.0 mm" in volume.warnings[0], volume.warnings


def test_real_series_four_slices_deleted_refused(tilted_ct_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"gap of 20\.0 mm.*not segmented"):
        read_volume(_ge_copy(tilted_ct_dir, tmp_path, ["10.dcm", "11.dcm", "12.dcm", "13.dcm"]))
