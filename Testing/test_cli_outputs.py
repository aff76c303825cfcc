"""`sssseg segment` with outputs that cannot be written: exit code 4, one clear line, no file left, no
inference run (the model is never loaded), and `--qc` pictures checked the same way."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from SSSSegmentLib import api, fsutil
from SSSSegmentLib.cli import main
from SSSSegmentLib.volumes import write_volume
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry

DiskUsage = namedtuple("DiskUsage", "total used free")
TINY = ["--preset", "tiny", "--untrained", "--device", "cpu", "--progress", "none"]


@pytest.fixture()
def ct_nrrd(tmp_path: Path) -> Path:
    k, j, i = np.mgrid[0:6, 0:64, 0:64].astype(np.float32)
    radius = np.hypot(j - 32, i - 32)
    hu = np.where(radius < 28, 35.0, -1000.0).astype(np.float32)
    hu[(radius >= 25) & (radius < 28)] = 1000.0
    source = tmp_path / "input"
    source.mkdir()
    return write_volume(source / "head.nrrd", CTVolume(hu, Geometry((0.8, 0.8, 5.0))))


@pytest.fixture()
def no_model(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace model loading and inference with stubs that record any call (there must be none)."""
    calls: list[str] = []

    def refuse(name: str):  # noqa: ANN202
        def stub(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"{name} ran although the output cannot be written")
        return stub

    monkeypatch.setattr(api, "load_model", refuse("load_model"))
    monkeypatch.setattr(api, "segment_volume", refuse("segment_volume"))
    return calls


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _segment(ct: Path, out: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str]:
    code = main(["segment", str(ct), str(out), *TINY, *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err.strip().splitlines()[-1] if err.strip() else ""


def _refuse_creating_in(folder: Path, monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """Make creating a file in ``folder`` fail with ``error`` (root ignores permission bits, so a
    read-only folder cannot be made real for root); other folders behave as usual."""
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args: object, **kwargs: object):  # noqa: ANN202
        if Path(str(kwargs.get("dir", ""))).resolve() == folder.resolve():
            raise OSError(error, os.strerror(error), str(folder / "probe"))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(fsutil.tempfile, "mkstemp", mkstemp)


def test_read_only_folder(ct_nrrd: Path, tmp_path: Path, capsys, monkeypatch, no_model) -> None:  # noqa: ANN001
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:
            _refuse_creating_in(folder, monkeypatch, errno.EACCES)
        code, message = _segment(ct_nrrd, folder / "o.seg.nrrd", capsys)
    finally:
        folder.chmod(0o755)
    assert code == 4 and message == f"sssseg: error: cannot create files in {folder}: Permission denied"
    assert _files(folder) == [] and no_model == []


def test_read_only_file_system(ct_nrrd: Path, tmp_path: Path, capsys, monkeypatch, no_model) -> None:  # noqa: ANN001
    folder = tmp_path / "mounted_read_only"
    folder.mkdir()
    _refuse_creating_in(folder, monkeypatch, errno.EROFS)
    code, message = _segment(ct_nrrd, folder / "o.seg.nrrd", capsys)
    assert code == 4 and message.endswith(f"cannot create files in {folder}: Read-only file system")
    assert _files(folder) == [] and no_model == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc exists on Linux only")
def test_proc_is_refused_before_the_work(ct_nrrd: Path, capsys, no_model) -> None:  # noqa: ANN001
    """The issue's case: it used to fail after the whole inference with 'internal error', exit 1."""
    code, message = _segment(ct_nrrd, Path("/proc/x.seg.nrrd"), capsys)
    assert code == 4 and message.startswith("sssseg: error: cannot create files in /proc: ")
    assert not Path("/proc/x.seg.nrrd").exists() and no_model == []


def test_missing_folder(ct_nrrd: Path, tmp_path: Path, capsys, no_model) -> None:  # noqa: ANN001
    code, message = _segment(ct_nrrd, tmp_path / "no_such" / "o.seg.nrrd", capsys)
    assert code == 4 and message == f"sssseg: error: output directory does not exist: {tmp_path / 'no_such'}"
    assert not (tmp_path / "no_such").exists() and no_model == []


def test_a_file_in_the_folder_position(ct_nrrd: Path, tmp_path: Path, capsys, no_model) -> None:  # noqa: ANN001
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    code, message = _segment(ct_nrrd, blocker / "o.seg.nrrd", capsys)
    assert code == 4 and message == f"sssseg: error: output directory is a file, not a directory: {blocker}"
    assert blocker.read_text() == "mine" and no_model == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_output_that_is_a_folder(ct_nrrd: Path, tmp_path: Path, capsys, no_model, overwrite: bool) -> None:  # noqa: ANN001
    folder = tmp_path / "results.seg.nrrd"  # a folder even with a label-map name
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    for target in (folder, tmp_path):
        code, message = _segment(ct_nrrd, target, capsys, *(["--overwrite"] if overwrite else []))
        assert code == 4 and message == f"sssseg: error: output is a directory, not a file name: {target}"
    assert _files(folder) == ["keep.txt"] and no_model == []


def test_name_without_extension(ct_nrrd: Path, tmp_path: Path, capsys, no_model) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    out.mkdir()
    code, message = _segment(ct_nrrd, out / "result", capsys)
    assert code == 4 and "unsupported output type 'result'" in message and "result.seg.nrrd" in message
    assert _files(out) == [] and no_model == []


def test_full_disk_is_found_before_the_model_loads(ct_nrrd: Path, tmp_path: Path, capsys, monkeypatch,  # noqa: ANN001
                                                   no_model) -> None:
    """Simulated: the file system reports 100 kB free; the label map of 6 x 64 x 64 voxels alone may
    need 24,576 bytes + headers (1 MiB allowed), so the run must stop before loading the model."""
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda path: DiskUsage(10**9, 10**9 - 100_000, 100_000))
    code, message = _segment(ct_nrrd, out / "o.seg.nrrd", capsys)
    assert code == 4 and message.startswith(f"sssseg: error: not enough free space in {out}: ")
    assert "MB free" in message and _files(out) == [] and no_model == []


def test_disk_full_while_writing_leaves_no_file(ct_nrrd: Path, tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """The disk fills after the checks: the .nii.gz copy fails half-written. Exit 4 with the reason,
    and neither it nor the .seg.nrrd written just before it is left behind."""
    from SSSSegmentLib.volumes import segfile

    def write_half_then_fail(path: Path, labels: np.ndarray, geometry: Geometry) -> None:
        Path(path).write_bytes(b"\x1f\x8b half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(segfile, "_write_plain_labelmap", write_half_then_fail)
    out = tmp_path / "out"
    out.mkdir()
    code, message = _segment(ct_nrrd, out / "o.seg.nrrd", capsys, "--nifti")
    assert code == 4 and message.startswith("sssseg: error: could not write the output: No space left on device")
    assert _files(out) == []


def test_files_the_user_had_stay_when_a_later_output_fails(ct_nrrd: Path, tmp_path: Path, capsys,  # noqa: ANN001
                                                           monkeypatch) -> None:
    """All or nothing removes only the files this run created: the new .nii.gz goes, the user's
    .seg.nrrd (replaced, as --overwrite allowed) and unrelated files stay."""
    from SSSSegmentLib.qc import case_picture

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(case_picture, "write_png", fail)
    out = tmp_path / "out"
    out.mkdir()
    (out / "o.seg.nrrd").write_text("the user's")
    (out / "notes.txt").write_text("mine")
    code, message = _segment(ct_nrrd, out / "o.seg.nrrd", capsys, "--nifti", "--overwrite", "--qc", str(out / "o.png"))
    assert code == 4 and message == "sssseg: error: could not write the output: No space left on device"
    assert _files(out) == ["notes.txt", "o.seg.nrrd"]


@pytest.mark.parametrize(("qc_name", "expected"), [
    ("missing/qc.png", "output directory does not exist"),
    ("qc.jpg", "the QC picture must be a .png file, got 'qc.jpg'"),
    ("existing.png", "output exists, not overwriting (use --overwrite)"),
])
def test_bad_qc_outputs_are_refused_before_the_work(ct_nrrd: Path, tmp_path: Path, capsys, no_model,  # noqa: ANN001
                                                    qc_name: str, expected: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "existing.png").write_bytes(b"the user's picture")
    code, message = _segment(ct_nrrd, out / "o.seg.nrrd", capsys, "--qc", str(out / qc_name))
    assert code == 4 and expected in message
    assert _files(out) == ["existing.png"] and (out / "existing.png").read_bytes() == b"the user's picture"
    assert no_model == []
