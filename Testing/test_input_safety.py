"""`sssseg segment` never writes over its input: an output that is the input CT (the same file, a hard
or a symbolic link to it, the `--nifti` companion or the `--qc` picture landing on it) or that lies
inside the input DICOM folder is refused before any work, `--overwrite` or not: exit code 4, one
line, the input's bytes unchanged and nothing added beside it. Also: a truncated NIfTI is an input
error (exit 2) and an unavailable `--device` exits with 5, each with one line."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from test_cli_segment import TINY, _head_volume
from test_volumes_io import positions_along, write_dicom_series

from SSSSegmentLib import api
from SSSSegmentLib.cli import main
from SSSSegmentLib.errors import InputError, OutputError
from SSSSegmentLib.volumes import read_volume, write_volume

_head = _head_volume  # a 6-slice disc head: brain 35 HU in a 1000 HU skull, air around


def _stub_out(monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]) -> list[str]:
    """The API functions ``names`` replaced by stubs that record any call (there must be none)."""
    calls: list[str] = []

    def refuse(name: str):  # noqa: ANN202
        def stub(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"{name} ran although the run had to stop before it")
        return stub

    for name in names:
        monkeypatch.setattr(api, name, refuse(name))
    return calls


@pytest.fixture()
def no_model(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Reading, model loading and inference stubbed out: the check must come before any work."""
    return _stub_out(monkeypatch, ("read_ct", "load_model", "segment_volume"))


@pytest.fixture()
def no_inference(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Model loading and inference stubbed out (reading runs)."""
    return _stub_out(monkeypatch, ("load_model", "segment_volume"))


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (names relative to it) -> sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def _refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    code = main(["segment", *argv, *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4, err
    assert len(err) == 1 and err[0].startswith("sssseg: error: "), err
    return err[0]


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
@pytest.mark.parametrize("how", ["same", "hardlink", "symlink", "symlinked_input", "dotted"])
def test_output_equal_to_input_file_refused(tmp_path: Path, capsys, monkeypatch, no_model, how: str,  # noqa: ANN001
                                            overwrite: list[str]) -> None:
    ct = write_volume(tmp_path / "ct.nii.gz", _head())
    source, out = ct, ct
    if how == "hardlink":
        out = tmp_path / "alias.nii.gz"
        os.link(ct, out)
    elif how == "symlink":
        out = tmp_path / "alias.nii.gz"
        out.symlink_to(ct)
    elif how == "symlinked_input":  # the input is the link, the output the real file
        source = tmp_path / "link.nii.gz"
        source.symlink_to(ct)
    elif how == "dotted":
        monkeypatch.chdir(tmp_path)
        out = Path("sub/../ct.nii.gz")
        (tmp_path / "sub").mkdir()
    before = _digest(tmp_path)
    line = _refused([str(source), str(out), *overwrite], capsys)
    assert "is the input" in line and "--overwrite" in line, line
    assert _digest(tmp_path) == before and no_model == []


@pytest.mark.parametrize("extra", [["--nifti"], ["--qc", "ct.nii.gz"]])
def test_companion_output_on_the_input_refused(tmp_path: Path, capsys, no_model, extra: list[str]) -> None:  # noqa: ANN001
    """``ct.seg.nrrd --nifti`` would write ``ct.nii.gz`` beside it; ``--qc`` names a file of its own."""
    ct = write_volume(tmp_path / "ct.nii.gz", _head())
    if extra[0] == "--qc":  # a .png that is the input (a hard link named .png)
        os.link(ct, tmp_path / "qc.png")
        extra = ["--qc", str(tmp_path / "qc.png")]
    before = _digest(tmp_path)
    line = _refused([str(ct), str(tmp_path / "ct.seg.nrrd"), *extra, "--overwrite"], capsys)
    assert "is the input" in line, line
    assert _digest(tmp_path) == before and no_model == []


def _series(folder: Path) -> Path:
    write_dicom_series(folder, positions_along(np.array([0.0, 0.0, 1.0]), [5.0] * 3),
                       np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    return folder


@pytest.mark.parametrize("where", ["folder", "subfolder", "via_slice_file", "via_folder_link"])
def test_output_inside_input_dicom_folder_refused(tmp_path: Path, capsys, no_model, where: str) -> None:  # noqa: ANN001
    series = _series(tmp_path / "series")
    source, out = series, series / "out.seg.nrrd"
    if where == "subfolder":
        (series / "results").mkdir()
        out = series / "results" / "out.seg.nrrd"
    elif where == "via_slice_file":  # one slice given: its whole folder is read
        source = sorted(series.glob("*.dcm"))[0]
    elif where == "via_folder_link":  # the output named through a link to the series folder
        (tmp_path / "link").symlink_to(series, target_is_directory=True)
        out = tmp_path / "link" / "out.seg.nrrd"
    before = _digest(tmp_path)
    line = _refused([str(source), str(out), "--overwrite"], capsys)
    assert "inside the input DICOM folder" in line, line
    assert _digest(tmp_path) == before and no_model == []


def test_qc_inside_input_dicom_folder_refused(tmp_path: Path, capsys, no_model) -> None:  # noqa: ANN001
    series = _series(tmp_path / "series")
    before = _digest(tmp_path)
    line = _refused([str(series), str(tmp_path / "out.seg.nrrd"), "--qc", str(series / "qc.png")], capsys)
    assert "inside the input DICOM folder" in line, line
    assert _digest(tmp_path) == before and no_model == []


def test_api_segment_file_refuses_its_input(tmp_path: Path, no_model) -> None:  # noqa: ANN001
    ct = write_volume(tmp_path / "ct.nrrd", _head())
    before = _digest(tmp_path)
    with pytest.raises(OutputError, match="is the input"):
        api.segment_file(ct, ct, model=None, overwrite=True)  # type: ignore[arg-type]
    assert _digest(tmp_path) == before and no_model == []


def test_outputs_beside_the_input_are_allowed(tmp_path: Path) -> None:
    """The check is not too wide: a sibling of the input file and a folder beside a DICOM folder whose
    name starts like it are fine."""
    ct = write_volume(tmp_path / "ct.nii.gz", _head())
    assert api.check_outputs(tmp_path / "ct.seg.nrrd", input_path=ct) == [tmp_path / "ct.seg.nrrd"]
    series = _series(tmp_path / "series")
    (tmp_path / "series_out").mkdir()
    target = tmp_path / "series_out" / "a.seg.nrrd"
    assert api.check_outputs(target, input_path=series) == [target]


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii", "recompressed.nii.gz"])
def test_truncated_nifti_is_an_input_error(tmp_path: Path, capsys, no_inference, name: str) -> None:  # noqa: ANN001
    """A NIfTI cut in half (gzip stream cut, raw file cut, or a whole gzip of half a file): exit 2, one
    line naming the file; ITK alone reads such files without complaint."""
    import gzip

    whole = write_volume(tmp_path / "whole.nii", _head()).read_bytes()
    half = whole[: len(whole) // 2]
    path = tmp_path / name
    if name == "ct.nii.gz":
        path.write_bytes(gzip.compress(whole)[: len(gzip.compress(whole)) // 2])
    else:
        path.write_bytes(gzip.compress(half) if name.endswith(".gz") else half)
    with pytest.raises(InputError, match="truncated") as caught:
        read_volume(path)
    assert str(path) in str(caught.value)
    code = main(["segment", str(path), str(tmp_path / "out.seg.nrrd"), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(path) in err[0] and "truncated" in err[0], err
    assert not (tmp_path / "out.seg.nrrd").exists() and no_inference == []


def test_unavailable_device_exit_code_5(tmp_path: Path, capsys, monkeypatch, no_model) -> None:  # noqa: ANN001
    """``--device cuda`` without a GPU (made so here even on a GPU machine): exit 5, one line naming the real
    flag, before the CT is read."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ct = write_volume(tmp_path / "ct.nrrd", _head())
    code = main(["segment", str(ct), str(tmp_path / "out.seg.nrrd"), "--device", "cuda", "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 5 and len(err) == 1 and "no CUDA GPU" in err[0] and "--device cpu" in err[0], err
    assert no_model == [] and not (tmp_path / "out.seg.nrrd").exists()
