"""`sssseg phantoms`, `sssseg evaluate` and `sssseg demo` from the command line."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from SSSSegmentLib import phantoms
from SSSSegmentLib.cli import main
from SSSSegmentLib.demo import DEMO_SEED
from SSSSegmentLib.phantoms import PhantomConfig
from SSSSegmentLib.volumes import read_volume, write_labelmap
from SSSSegmentLib.volumes.geometry import Geometry


def test_phantoms_then_evaluate_truth_against_itself(tmp_path: Path, capsys):
    dataset = tmp_path / "ph"
    assert main(["phantoms", str(dataset), "--n", "2", "--seed", "5", "--labeled-fraction", "1"]) == 0
    printed = capsys.readouterr().out
    assert (dataset / "dataset.json").is_file() and "preview" in printed
    assert Image.open(dataset / "preview.png").size[0] > 200
    preds = tmp_path / "preds"
    preds.mkdir()
    for label in sorted((dataset / "labelsTr").glob("*.nii.gz")):
        shutil.copy(label, preds / label.name)
    assert main(["evaluate", str(preds), str(dataset / "labelsTr")]) == 0
    table = capsys.readouterr().out
    assert "Dice" in table
    with open(preds / "evaluation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    dices = [float(r["dice"]) for r in rows if r["dice"] not in ("", "nan")]
    assert dices and all(d == 1.0 for d in dices)
    # a second run would replace the CSV: refused without --overwrite
    assert main(["evaluate", str(preds), str(dataset / "labelsTr")]) == 4


def test_evaluate_scores_a_known_imperfect_prediction(tmp_path: Path, capsys):
    """Truth: IPH 8 voxels, SDH 4 voxels. Prediction: 6 of the IPH voxels plus 2 false ones, no SDH, and
    a false 3-voxel EDH. By hand: IPH Dice 2 * 6 / (8 + 8) = 0.75; SDH 0 (missed); EDH 0 (false
    positive); IVH and SAH absent from both (n/a). Voxels are 1 x 1 x 2 mm: IPH 0.016 mL each side."""
    geometry = Geometry((1.0, 1.0, 2.0))
    truth = np.zeros((4, 10, 10), np.uint8)
    truth[1, 2:4, 2:6] = 2  # IPH, 8 voxels
    truth[3, 8, 6:10] = 5  # SDH, 4 voxels
    pred = np.zeros_like(truth)
    pred[1, 2:4, 2:5] = 2  # 6 true IPH voxels (column 5 missed) ...
    pred[2, 0, 0:2] = 2  # ... and 2 false ones
    pred[0, 5, 5:8] = 1  # false EDH
    for folder, labels in (("truth", truth), ("pred", pred)):
        (tmp_path / folder).mkdir()
        write_labelmap(tmp_path / folder / "case1.nii.gz", labels, geometry)
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "truth")]) == 0
    capsys.readouterr()
    with open(tmp_path / "pred" / "evaluation.csv", newline="") as fh:
        rows = {r["class"]: r for r in csv.DictReader(fh)}
    assert float(rows["IPH"]["dice"]) == pytest.approx(0.75)
    assert [float(rows["IPH"][k]) for k in ("pred_ml", "true_ml")] == pytest.approx([0.016, 0.016])
    assert float(rows["SDH"]["dice"]) == 0.0 and float(rows["EDH"]["dice"]) == 0.0
    assert rows["IVH"]["dice"] == rows["SAH"]["dice"] == "nan"


def test_evaluate_overwrite_replaces_the_csv_which_is_named_once(tmp_path: Path, capsys):
    geometry = Geometry((1.0, 1.0, 2.0))
    labels = np.zeros((2, 6, 6), np.uint8)
    labels[1, 2:4, 2:4] = 2
    for folder, name in (("truth", "case7.nii.gz"), ("pred", "case7_pred.seg.nrrd")):
        (tmp_path / folder).mkdir()
        write_labelmap(tmp_path / folder / name, labels, geometry)
    csv_path = tmp_path / "pred" / "evaluation.csv"
    csv_path.write_text("an earlier result")
    args = ["evaluate", str(tmp_path / "pred"), str(tmp_path / "truth")]
    assert main(args) == 4 and csv_path.read_text() == "an earlier result"
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert capsys.readouterr().out.count(str(csv_path)) == 1
    with open(csv_path, newline="") as fh:
        rows = {r["class"]: r for r in csv.DictReader(fh)}
    assert rows["IPH"]["case"] == "case7" and float(rows["IPH"]["dice"]) == 1.0


def test_evaluate_help_says_how_predictions_are_matched_to_truth(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "matched by case name" in text and "case01_pred.seg.nrrd" in text and "case01.nii.gz" in text


def test_phantoms_refuses_a_non_empty_folder(tmp_path: Path, capsys):
    (tmp_path / "mine.txt").write_text("user data")
    assert main(["phantoms", str(tmp_path), "--n", "1"]) == 4
    assert (tmp_path / "mine.txt").read_text() == "user data"
    assert "error" in capsys.readouterr().err


def test_demo_writes_its_files_and_reruns_but_never_into_user_folders(tmp_path: Path, capsys, monkeypatch):
    """The demo's files, report and folder rules, on a small phantom of the demo seed; the full-size demo
    phantom's accuracy is checked once, in test_model_accuracy.py."""
    full_size = phantoms.generate_phantom
    monkeypatch.setattr(phantoms, "generate_phantom", lambda seed: full_size(seed, PhantomConfig(matrix=96)))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    report = captured.out
    assert "model: bundled sss_tiny.safetensors" in captured.err and "UNTRAINED" not in report  # the default
    for name in ("phantom_ct.nrrd", "prediction.seg.nrrd", "truth.seg.nrrd", "prediction.png", "truth.png"):
        assert (out / name).is_file(), name
    assert "Dice" in report and "pred mL" in report and f"phantom seed {DEMO_SEED}" in report
    assert read_volume(out / "phantom_ct.nrrd").shape_zyx[1:] == (96, 96)
    _assert_same_slices(out / "prediction.png", out / "truth.png")
    assert "prediction.png and truth.png show the same" in report
    stamp = (out / "truth.seg.nrrd").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0  # its own folder: rerun is fine
    assert (out / "truth.seg.nrrd").stat().st_mtime_ns > stamp  # the files were replaced
    user = tmp_path / "user"
    user.mkdir()
    (user / "scan.nrrd").write_text("precious")
    assert main(["demo", "--out", str(user)]) == 4
    assert sorted(p.name for p in user.iterdir()) == ["scan.nrrd"]


def _assert_same_slices(first: Path, second: Path) -> None:
    """Two QC pictures of one CT show the same slices: same size, and wherever both show plain grey
    (CT, not an outline, title or legend colour) in the middle half of their height, the same grey."""
    a, b = (np.asarray(Image.open(p).convert("RGB")).astype(int) for p in (first, second))
    assert a.shape == b.shape
    rows = slice(a.shape[0] // 4, 3 * a.shape[0] // 4)
    a, b = a[rows], b[rows]
    grey = (a.max(axis=-1) == a.min(axis=-1)) & (b.max(axis=-1) == b.min(axis=-1)) & (a[..., 0] > 0)
    assert grey.sum() > 10_000 and np.array_equal(a[grey], b[grey])
