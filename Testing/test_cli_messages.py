"""Every error message that tells the user what to pass names the real flag of that command (checked
against the command's own argparse options), and a missing input folder is named as missing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_volumes_io import positions_along, write_dicom_series

from SSSSegmentLib.cli import _parser, main
from SSSSegmentLib.volumes import write_labelmap
from SSSSegmentLib.volumes.geometry import Geometry

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _options(command: str) -> set[str]:
    """Every option string of ``sssseg COMMAND`` (e.g. ``--overwrite``), from the real parser."""
    sub = next(a for a in _parser()._actions if a.dest == "command")  # noqa: SLF001
    return set(sub.choices[command]._option_string_actions)  # noqa: SLF001


def _error(argv: list[str], capsys: pytest.CaptureFixture, code: int) -> str:
    assert main(argv) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sssseg: error: "), lines
    return lines[0]


def _names_real_flags(message: str, command: str, expected: str) -> None:
    flags = set(FLAG.findall(message))
    assert expected in flags, message
    assert flags <= _options(command), (message, flags - _options(command))
    bare = re.search(r"\buse (overwrite|series_uid|device|out)\b", message)
    assert bare is None, message  # an option named without its dashes (was: "(use overwrite)")


def _labels(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:5, 2:5] = 2
    write_labelmap(folder / name, labels, Geometry((1.0, 1.0, 5.0)))


def test_phantoms_names_overwrite(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    (tmp_path / "keep.txt").write_text("user data")
    message = _error(["phantoms", str(tmp_path), "--n", "1", "--matrix", "64"], capsys, 4)
    _names_real_flags(message, "phantoms", "--overwrite")
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_segment_names_overwrite(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    (tmp_path / "out.seg.nrrd").write_bytes(b"x")
    message = _error(["segment", str(tmp_path / "missing.nrrd"), str(tmp_path / "out.seg.nrrd")], capsys, 4)
    _names_real_flags(message, "segment", "--overwrite")


def test_segment_names_series_uid(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    axes = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    (tmp_path / "two").mkdir()
    for n, start in enumerate((0.0, 100.0)):
        write_dicom_series(tmp_path / str(n), positions_along(np.array([0.0, 0.0, 1.0]), [5.0, 5.0],
                                                              start=(0.0, 0.0, start)), *axes)
        for path in (tmp_path / str(n)).iterdir():
            path.rename(tmp_path / "two" / f"{n}_{path.name}")
    message = _error(["segment", str(tmp_path / "two"), str(tmp_path / "o.seg.nrrd"), "--device", "cpu"], capsys, 2)
    _names_real_flags(message, "segment", "--series-uid")


def test_evaluate_names_overwrite(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    _labels(tmp_path / "pred", "case01_pred.nii.gz")
    _labels(tmp_path / "truth", "case01.nii.gz")
    (tmp_path / "pred" / "evaluation.csv").write_text("earlier results")
    message = _error(["evaluate", str(tmp_path / "pred"), str(tmp_path / "truth")], capsys, 4)
    _names_real_flags(message, "evaluate", "--overwrite")


def test_evaluate_missing_truth_folder_named(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """With an earlier CSV in place, the missing truth folder is what the user must hear about."""
    _labels(tmp_path / "pred", "case01_pred.nii.gz")
    (tmp_path / "pred" / "evaluation.csv").write_text("earlier results")
    message = _error(["evaluate", str(tmp_path / "pred"), str(tmp_path / "no_truth")], capsys, 2)
    assert message == f"sssseg: error: the truth folder does not exist: {tmp_path / 'no_truth'}"
    message = _error(["evaluate", str(tmp_path / "no_pred"), str(tmp_path / "pred")], capsys, 2)
    assert "prediction folder does not exist" in message
    assert (tmp_path / "pred" / "evaluation.csv").read_text() == "earlier results"
