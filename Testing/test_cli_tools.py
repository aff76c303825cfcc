"""`sssseg phantoms`, `sssseg evaluate` and `sssseg demo` from the command line."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from PIL import Image

from SSSSegmentLib.cli import main


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


def test_phantoms_refuses_a_non_empty_folder(tmp_path: Path, capsys):
    (tmp_path / "mine.txt").write_text("user data")
    assert main(["phantoms", str(tmp_path), "--n", "1"]) == 4
    assert (tmp_path / "mine.txt").read_text() == "user data"
    assert "error" in capsys.readouterr().err


def test_demo_writes_its_files_and_reruns_but_never_into_user_folders(tmp_path: Path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    report = captured.out
    assert "model: bundled sss_tiny.safetensors" in captured.err and "UNTRAINED" not in report  # the default
    for name in ("phantom_ct.nrrd", "prediction.seg.nrrd", "truth.seg.nrrd", "prediction.png", "truth.png"):
        assert (out / name).is_file(), name
    assert "Dice" in report and "pred mL" in report
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0  # its own folder: rerun is fine
    user = tmp_path / "user"
    user.mkdir()
    (user / "scan.nrrd").write_text("precious")
    assert main(["demo", "--out", str(user)]) == 4
    assert sorted(p.name for p in user.iterdir()) == ["scan.nrrd"]
