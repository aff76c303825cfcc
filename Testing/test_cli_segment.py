"""`sssseg segment`: outputs, progress protocol, and every bad input (clear message, exit != 0, no output)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from SSSSegmentLib.cli import main
from SSSSegmentLib.volumes import read_labelmap, read_volume, write_volume
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry

TINY = ["--preset", "tiny", "--untrained", "--device", "cpu", "--progress", "none"]


def _head_volume() -> CTVolume:
    k, j, i = np.mgrid[0:6, 0:64, 0:64].astype(np.float32)
    radius = np.hypot(j - 32, i - 32)
    hu = np.where(radius < 28, 35.0, -1000.0).astype(np.float32)
    hu[(radius >= 25) & (radius < 28)] = 1000.0
    return CTVolume(hu, Geometry((0.8, 0.8, 5.0), (-25.0, -25.0, 10.0)), source="test")


@pytest.fixture()
def ct_nrrd(tmp_path: Path) -> Path:
    return write_volume(tmp_path / "head.nrrd", _head_volume())


def _write_array(path: Path, array: np.ndarray) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def _run(args: list[str], capsys) -> tuple[int, str]:  # noqa: ANN001
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


def test_segment_writes_seg_nrrd_and_nifti_on_the_input_grid(ct_nrrd: Path, tmp_path: Path, capsys):
    out = tmp_path / "result.seg.nrrd"
    code = main(["segment", str(ct_nrrd), str(out), "--nifti", *TINY])
    printed = capsys.readouterr().out
    assert code == 0
    assert "IPH Intraparenchymal hemorrhage" in printed and "volume (mL)" in printed
    labels, geometry, names = read_labelmap(out)
    assert labels.shape == (6, 64, 64) and geometry.allclose(read_volume(ct_nrrd).geometry)
    assert sorted(names.values()) == sorted(
        ["Epidural hemorrhage", "Intraparenchymal hemorrhage", "Intraventricular hemorrhage",
         "Subarachnoid hemorrhage", "Subdural hemorrhage"])
    assert (tmp_path / "result.nii.gz").is_file()


def test_segment_with_no_flags_uses_the_bundled_model(ct_nrrd: Path, tmp_path: Path, capsys):
    """`sssseg segment IN OUT` works out of the box: the best installed bundled model (tiny today),
    said once to be a demonstration model."""
    from SSSSegmentLib.bundled_models import BUNDLED_MODEL_NOTICE, default_preset

    assert default_preset() == "tiny"
    out = tmp_path / "result.seg.nrrd"
    code = main(["segment", str(ct_nrrd), str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "model: bundled sss_tiny.safetensors" in captured.err
    assert captured.err.count(BUNDLED_MODEL_NOTICE) == 1 and "not a clinical model" in BUNDLED_MODEL_NOTICE
    assert "UNTRAINED" not in captured.err and "wrote " + str(out) in captured.out
    labels, _, names = read_labelmap(out)
    assert labels.shape == (6, 64, 64) and len(names) == 5
    assert not labels.any(), "the head has no bleed: every label must be background"
    assert _printed_volumes(captured.out) == [0.0] * 5


def _printed_volumes(printed: str) -> list[float]:
    """The mL column of the volume table ``sssseg segment`` prints (one row per class)."""
    rows = [line.split() for line in printed.splitlines()]
    return [float(row[-1]) for row in rows if row and row[0] in ("EDH", "IPH", "IVH", "SAH", "SDH")]


def test_a_preset_without_a_model_names_the_presets_that_have_one(ct_nrrd: Path, tmp_path: Path, capsys):
    out = tmp_path / "o.seg.nrrd"
    code, err = _run(["segment", str(ct_nrrd), str(out), "--preset", "fast", "--device", "cpu"], capsys)
    message = err.strip().splitlines()[-1]
    assert code == 3 and message.startswith("sssseg: error: ") and not out.exists()
    assert "'fast'" in message and "'tiny'" in message and "--preset tiny" in message
    assert "--checkpoint" in message and "--untrained" in message


def test_load_model_defaults_follow_what_is_installed(monkeypatch, tmp_path: Path):
    """The API's default is the best bundled model installed; with none installed the error says so,
    and --untrained falls back to the cheap tiny preset, not to a preset nobody has weights for."""
    from SSSSegmentLib import api, bundled_models
    from SSSSegmentLib.errors import CheckpointError

    loaded = api.load_model(device="cpu")
    assert loaded.bundled and loaded.trained and loaded.source == "bundled sss_tiny.safetensors"
    assert loaded.model.preset.name == "tiny"
    monkeypatch.setattr(bundled_models, "BUNDLED_MODELS_DIR", tmp_path / "no_models")
    assert bundled_models.installed_bundled_presets() == [] and bundled_models.default_preset() is None
    with pytest.raises(CheckpointError, match="no bundled model is installed"):
        api.load_model(device="cpu")
    untrained = api.load_model(device="cpu", allow_untrained=True)
    assert not untrained.trained and not untrained.bundled and untrained.model.preset.name == "tiny"


def test_decoder_refinement_follows_the_model_unless_asked(ct_nrrd: Path, tmp_path: Path, capsys):
    """The bundled tiny model recommends no refinement (its decoder is coarser than its head);
    --refine on/off overrides the recommendation."""
    code, err = _run(["segment", str(ct_nrrd), str(tmp_path / "a.seg.nrrd"), *TINY], capsys)
    assert code == 0 and "decoder refinement: off" in err
    code, err = _run(["segment", str(ct_nrrd), str(tmp_path / "b.seg.nrrd"), "--refine", "on", *TINY], capsys)
    assert code == 0 and "decoder refinement: on" in err


def test_json_progress_protocol_from_a_child_process(ct_nrrd: Path, tmp_path: Path):
    out = tmp_path / "result.seg.nrrd"
    cmd = [sys.executable, "-m", "SSSSegmentLib.cli", "segment", str(ct_nrrd), str(out), *TINY[:-2],
           "--progress", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done" and "progress" in kinds and "log" in kinds
    fractions = [e["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert events[-1]["outputs"] == [str(out)] and set(events[-1]["volumes_ml"]) == {"EDH", "IPH", "IVH", "SAH", "SDH"}


def test_json_error_event_carries_the_message_and_exit_code(tmp_path: Path):
    cmd = [sys.executable, "-m", "SSSSegmentLib.cli", "segment", str(tmp_path / "missing"),
           str(tmp_path / "o.seg.nrrd"), *TINY[:-2], "--progress", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    error = json.loads(proc.stdout.splitlines()[-1])
    assert error["event"] == "error" and error["exit_code"] == 2 and "does not exist" in error["message"]
    assert "Traceback" not in proc.stderr


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    png = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(png)
    four_d = sitk.Image([8, 8, 8, 3], sitk.sitkFloat32)
    sitk.WriteImage(four_d, str(tmp_path / "fourd.nii.gz"))
    nan = np.full((5, 40, 40), 30.0, np.float32)
    nan[2, 3, 3] = np.nan
    mr = np.random.default_rng(0).uniform(0, 4000, (8, 40, 40)).astype(np.float32)
    return {
        "missing": (tmp_path / "nowhere.nii.gz", "does not exist"),
        "text": (text, ""),
        "2d": (png, "2D"),
        "4d": (tmp_path / "fourd.nii.gz", ""),
        "empty": (_write_array(tmp_path / "flat.nii.gz", np.full((5, 40, 40), -1000.0, np.float32)), ""),
        "nan": (_write_array(tmp_path / "nan.nrrd", nan), "NaN"),
        "not_ct": (_write_array(tmp_path / "mr.nii.gz", mr), "Hounsfield"),
        "empty_dir": (tmp_path, "DICOM"),
    }


@pytest.mark.parametrize("case", ["missing", "text", "2d", "4d", "empty", "nan", "not_ct", "empty_dir"])
def test_bad_input_gives_a_clear_error_and_no_output(case: str, tmp_path: Path, capsys):
    inputs_dir = tmp_path / "inputs"
    inputs_dir.mkdir()
    path, expected = _bad_inputs(inputs_dir)[case]
    if case == "empty_dir":
        path = tmp_path / "no_dicom_here"
        path.mkdir()
    out = tmp_path / "out" / "result.seg.nrrd"
    out.parent.mkdir()
    code, err = _run(["segment", str(path), str(out), *TINY], capsys)
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith("sssseg: error: ") and "Traceback" not in err
    assert expected.lower() in err.lower()
    assert list(out.parent.iterdir()) == []


def test_missing_and_mismatched_checkpoints_are_refused(ct_nrrd: Path, tmp_path: Path, capsys):
    from SSSSegmentLib.model import build_model, save_sss_checkpoint

    out = tmp_path / "o.seg.nrrd"
    code, err = _run(["segment", str(ct_nrrd), str(out), "--checkpoint", str(tmp_path / "none.safetensors")], capsys)
    assert code == 3 and "sssseg: error:" in err and not out.exists()
    tiny_ckpt = tmp_path / "tiny.safetensors"
    save_sss_checkpoint(tiny_ckpt, build_model("tiny"), {"note": "test"})
    code, err = _run(["segment", str(ct_nrrd), str(out), "--preset", "fast", "--checkpoint", str(tiny_ckpt)], capsys)
    assert code == 3 and "tiny" in err and "fast" in err and not out.exists()
    code, err = _run(["segment", str(ct_nrrd), str(out), "--preset", "paper", "--device", "cpu"], capsys)
    assert code == 3 and "--untrained" in err  # no bundled model and no checkpoint: say what to pass


def test_output_problems_fail_before_any_work_and_never_overwrite(ct_nrrd: Path, tmp_path: Path, capsys):
    code, err = _run(["segment", str(ct_nrrd), str(tmp_path / "no_dir" / "o.seg.nrrd"), *TINY], capsys)
    assert code == 4 and "does not exist" in err
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, err = _run(["segment", str(ct_nrrd), str(blocker / "o.seg.nrrd"), *TINY], capsys)
    assert code == 4
    existing = tmp_path / "mine.seg.nrrd"
    existing.write_text("the user's work")
    code, err = _run(["segment", str(ct_nrrd), str(existing), *TINY], capsys)
    assert code == 4 and "--overwrite" in err and existing.read_text() == "the user's work"
    code, err = _run(["segment", str(ct_nrrd), str(tmp_path / "o.png"), *TINY], capsys)
    assert code == 4 and not (tmp_path / "o.png").exists()
