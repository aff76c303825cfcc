"""The site training set writer ("Add to site training set"): de-identified files, atomic manifest."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from SSSSegmentLib.datasets import read_dataset_index
from SSSSegmentLib.errors import InputError, OutputError
from SSSSegmentLib.site_data import add_site_case, read_site_manifest
from SSSSegmentLib.volumes import Geometry, read_labelmap, read_volume

IDENTIFIERS = {"PatientName": "DOE^JANE", "PatientID": "MRN4711X", "PatientBirthDate": "19450203",
               "InstitutionName": "ST ELSEWHERE HOSPITAL", "AccessionNumber": "ACC99887"}


def _identified_copy(source: Path, target: Path) -> list[str]:
    """Copy a DICOM series, writing known identifiers into every file; return every string to look for."""
    import pydicom

    target.mkdir()
    uids = set()
    for path in sorted(source.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        for key, value in IDENTIFIERS.items():
            setattr(ds, key, value)
        uids |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
        ds.save_as(target / path.name)
    return [*IDENTIFIERS.values(), "DOE", "JANE", *uids]


def _leaks(path: Path, secrets: list[str]) -> list[str]:
    """Identifiers found in the file's name, its text header (NRRD: up to the blank line; JSON: all)
    or, for those long enough not to occur by chance in pixel bytes, anywhere in its bytes."""
    data = path.read_bytes()
    header = data.split(b"\n\n", 1)[0].decode("latin-1")
    start = data.find(b"\x1f\x8b")
    payload = data + (gzip.decompress(data[start:]) if start >= 0 else b"")
    return [s for s in secrets
            if s in path.name or s in header or (len(s) >= 8 and s.encode() in payload)]


def test_a_dicom_case_is_saved_without_patient_identifiers(tilted_ct_dir: Path, tmp_path: Path) -> None:
    from SSSSegmentLib import api

    secrets = _identified_copy(tilted_ct_dir, tmp_path / "dicom")
    volume = api.read_ct(tmp_path / "dicom")
    site = tmp_path / "site"
    case = add_site_case(site, volume.hu_zyx, volume.geometry, np.zeros(volume.shape_zyx, np.uint8))
    assert case.case_id == "site_0001" and case.normal
    files = [p for p in site.rglob("*") if p.is_file()]
    assert sorted(p.relative_to(site).as_posix() for p in files) == [
        "dataset.json", "imagesTr/site_0001.nrrd", "labelsTr/site_0001.nrrd"]
    for path in files:
        leaked = _leaks(path, secrets)
        assert not leaked, f"{path.name} carries {leaked}"
    back = read_volume(case.image)
    assert back.geometry.allclose(volume.geometry, atol=1e-3)
    assert np.abs(back.hu_zyx - np.rint(volume.hu_zyx)).max() == 0
    assert read_dataset_index(site).labeled[0].label == case.label


def _ct(shape: tuple[int, int, int] = (4, 16, 16)) -> tuple[np.ndarray, Geometry]:
    hu = np.full(shape, 30.0, np.float32)
    return hu, Geometry(spacing_mm=(0.5, 0.5, 5.0))


def test_cases_are_numbered_listed_and_never_overwritten(tmp_path: Path) -> None:
    hu, geometry = _ct()
    labels = np.zeros(hu.shape, np.uint8)
    labels[1, 4:8, 4:8] = 2
    first = add_site_case(tmp_path, hu, geometry, labels)
    (tmp_path / "imagesTr" / "site_0002.nrrd").write_bytes(b"a user's own file")  # unlisted, kept
    second = add_site_case(tmp_path, hu, geometry, np.zeros(hu.shape, np.uint8))
    assert (first.case_id, first.normal, second.case_id, second.normal) == ("site_0001", False, "site_0003", True)
    assert (tmp_path / "imagesTr" / "site_0002.nrrd").read_bytes() == b"a user's own file"
    manifest = json.loads((tmp_path / "dataset.json").read_text())
    assert [(e["image"], e["normal"]) for e in manifest["training"]] == [
        ("imagesTr/site_0001.nrrd", False), ("imagesTr/site_0003.nrrd", True)]
    saved, _, _ = read_labelmap(first.label)
    assert np.array_equal(saved, labels)


@pytest.mark.parametrize("problem", ["class 7", "shape"])
def test_bad_label_maps_are_refused_and_nothing_is_written(tmp_path: Path, problem: str) -> None:
    hu, geometry = _ct()
    labels = np.zeros(hu.shape, np.uint8)
    if problem == "class 7":
        labels[0, 0, 0] = 7
        message = "outside our classes 0..5"
    else:
        labels = labels[:2]
        message = "differs from the CT's"
    with pytest.raises(InputError, match=message):
        add_site_case(tmp_path / "site", hu, geometry, labels)
    assert not (tmp_path / "site").exists()
    assert read_site_manifest(tmp_path / "site")["training"] == []


def test_the_manifest_is_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    hu, geometry = _ct()
    add_site_case(tmp_path, hu, geometry, np.zeros(hu.shape, np.uint8))
    before = (tmp_path / "dataset.json").read_text()
    real_replace = os.replace

    def fail_on_manifest(src: str, dst: str) -> None:
        if str(dst).endswith("dataset.json"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_manifest)
    with pytest.raises(OutputError, match="the disk is full; the site training set is unchanged"):
        add_site_case(tmp_path, hu, geometry, np.zeros(hu.shape, np.uint8))
    monkeypatch.undo()
    assert (tmp_path / "dataset.json").read_text() == before
    assert sorted(p.name for p in (tmp_path / "imagesTr").iterdir()) == ["site_0001.nrrd"]  # no orphan
