"""Bad DICOM SEG requests: one line on stderr, the documented exit code, no file written or touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_series import PATIENT, write_ct_series
from seg_helpers import (
    TINY,
    five_class_labels,
    fixed_segmentation,
    phantom_dir,  # noqa: F401  (fixtures)
    run_cli,
    small_ct,
)

from SSSSegmentLib import api
from SSSSegmentLib.volumes import write_volume


def _refuse_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("the command did work before refusing")


def _one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sssseg: error: "), text
    return lines[0]


@pytest.mark.parametrize("outputs", [["out.dcm"], ["out.seg.nrrd", "--dicom-seg", "out.dcm"]])
def test_dicom_seg_of_a_nifti_input_is_refused_before_any_work(tmp_path: Path, monkeypatch, outputs) -> None:  # noqa: ANN001
    nifti = write_volume(tmp_path / "ct.nii.gz", small_ct())
    monkeypatch.setattr(api, "read_ct", _refuse_work)
    monkeypatch.setattr(api, "load_model", _refuse_work)
    code, text = run_cli(["segment", str(nifti), *[str(tmp_path / o) if "." in o else o for o in outputs], *TINY])
    assert code == 4 and "not DICOM" in _one_error_line(text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]


@pytest.mark.parametrize("existing", ["out.dcm", "out.seg.nrrd"])
def test_an_existing_output_is_kept_without_overwrite(phantom_dir, tmp_path: Path, monkeypatch, existing) -> None:  # noqa: ANN001, F811
    (tmp_path / existing).write_bytes(b"the user's file")
    monkeypatch.setattr(api, "load_model", _refuse_work)
    code, text = run_cli(["segment", str(phantom_dir[0]), str(tmp_path / "out.seg.nrrd"), "--dicom-seg",
                          str(tmp_path / "out.dcm"), *TINY])
    assert code == 4 and "--overwrite" in _one_error_line(text)
    assert [p.name for p in tmp_path.iterdir()] == [existing]
    assert (tmp_path / existing).read_bytes() == b"the user's file"


def test_a_folder_with_two_series_needs_a_series_uid(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    folder = tmp_path / "two"
    hu = small_ct().hu_zyx
    write_ct_series(folder, hu, small_ct().geometry, prefix="a")
    write_ct_series(folder, hu, small_ct().geometry, prefix="b", series_number=4)
    monkeypatch.setattr(api, "load_model", _refuse_work)
    code, text = run_cli(["segment", str(folder), str(tmp_path / "out.dcm"), *TINY])
    line = _one_error_line(text)
    assert code == 2 and "2 DICOM series" in line and "--series-uid" in line
    assert PATIENT["PatientName"] not in text and PATIENT["PatientID"] not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two"]


def test_a_seg_never_replaces_a_source_image(tmp_path: Path) -> None:
    folder = tmp_path / "ct"
    write_ct_series(folder, small_ct().hu_zyx, small_ct().geometry)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, text = run_cli(["segment", str(folder), str(folder / "img0003.dcm"), "--overwrite", *TINY])
    assert code == 4 and "replace one of the source images" in _one_error_line(text)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("args", [["out.seg.nrrd", "--dicom-seg", "out.nrrd"], ["out.dcm", "--dicom-seg", "b.dcm"]])
def test_a_misnamed_or_doubled_dicom_seg_output_is_refused(phantom_dir, tmp_path: Path, args) -> None:  # noqa: ANN001, F811
    code, text = run_cli(["segment", str(phantom_dir[0]), *[str(tmp_path / a) if "." in a else a for a in args],
                          *TINY])
    assert code == 4 and _one_error_line(text)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_seg_write_leaves_no_output(phantom_dir, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001, F811
    from SSSSegmentLib.export import dicom_seg

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(api, "segment_volume", fixed_segmentation(lambda volume: five_class_labels(phantom_dir[2])))
    monkeypatch.setattr(dicom_seg, "build_segmentation", disk_full)
    code, text = run_cli(["segment", str(phantom_dir[0]), str(tmp_path / "out.seg.nrrd"), "--dicom-seg",
                          str(tmp_path / "out.dcm"), "--nifti", *TINY])
    assert code == 4 and "No space left on device" in text.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []




def test_a_new_seg_inside_the_input_series_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ct"
    write_ct_series(folder, small_ct().hu_zyx, small_ct().geometry)
    before = sorted(p.name for p in folder.iterdir())
    code, text = run_cli(["segment", str(folder), str(folder / "result.dcm"), "--overwrite", *TINY])
    assert code == 4 and "inside the input DICOM folder" in _one_error_line(text)
    assert sorted(p.name for p in folder.iterdir()) == before
