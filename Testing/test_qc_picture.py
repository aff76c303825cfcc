"""The QC picture of a segmentation: outlines that leave the tissue visible, orientation, scale bar,
slice choice and numbering, legend volumes, the real CT, and `sssseg segment --qc`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from SSSSegmentLib.classes import CLASS_BY_KEY
from SSSSegmentLib.cli import main
from SSSSegmentLib.evaluation.metrics import class_volumes_ml
from SSSSegmentLib.qc import QCStyle, qc_slices, render_case_slices, save_case_qc
from SSSSegmentLib.qc.case_picture import spread_slices, status_line
from SSSSegmentLib.qc.render import BRAIN_WINDOW, legend_entries
from SSSSegmentLib.qc.tile import MARKER_RGB, View, render_tile
from SSSSegmentLib.volumes import read_volume, write_volume
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry

IPH, SDH = CLASS_BY_KEY["IPH"], CLASS_BY_KEY["SDH"]


def _is(rgb: np.ndarray, colour) -> np.ndarray:  # noqa: ANN001
    return np.all(rgb == np.asarray(colour, np.uint8), axis=-1)


def test_outlines_leave_the_tissue_inside_visible() -> None:
    """A 10 x 20 voxel IPH on a 64 x 64 slice at 40 HU (the brain window's centre, grey 128), drawn at
    4 picture pixels per voxel: the block covers rows 80-119 and columns 80-159; the outline is the
    two pixels just outside it; every pixel inside stays grey."""
    hu = np.full((64, 64), 40.0, np.float32)
    labels = np.zeros((64, 64), np.uint8)
    labels[20:30, 20:40] = IPH.label
    tile = render_tile(hu, labels, View(0, 64, 0, 64, mm_per_px=0.25), BRAIN_WINDOW, 256)
    assert tile.shape == (256, 256, 3)
    inside = tile[80:120, 80:160]
    assert _is(inside, (128, 128, 128)).all(), "the tissue under a finding must stay visible"
    for row, col in ((78, 120), (79, 120), (120, 120), (121, 120), (100, 78), (100, 79), (100, 160), (100, 161)):
        assert _is(tile[row, col], IPH.color_rgb), (row, col)
    for row, col in ((77, 120), (122, 120), (100, 77), (100, 162)):
        assert _is(tile[row, col], (128, 128, 128)), (row, col)


def test_a_one_voxel_finding_survives_a_smaller_tile() -> None:
    hu = np.full((512, 512), 30.0, np.float32)
    labels = np.zeros((512, 512), np.uint8)
    labels[300, 301] = SDH.label
    tile = render_tile(hu, labels, View(0, 512, 0, 512, mm_per_px=1.0), BRAIN_WINDOW, 256)
    rows, cols = np.nonzero(_is(tile, SDH.color_rgb))
    assert rows.size > 0 and abs(rows.mean() - 150.25) < 2 and abs(cols.mean() - 150.75) < 2


def _head(shape=(8, 64, 64), spacing=(1.0, 1.0, 5.0)) -> np.ndarray:  # noqa: ANN001
    _, j, i = np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]].astype(np.float32)
    centre_j, centre_i = (shape[1] - 1) / 2, (shape[2] - 1) / 2
    radius_mm = np.hypot((j - centre_j) * spacing[1], (i - centre_i) * spacing[0])
    return np.where(radius_mm < 0.45 * shape[2] * spacing[0], 30.0, -1000.0).astype(np.float32)


def _bright_columns(tile: np.ndarray) -> np.ndarray:
    return np.nonzero(_is(tile, (255, 255, 255)))[1]


def test_patient_left_is_on_the_right_of_the_picture_whatever_the_storage() -> None:
    """A bone spot on the patient's left (LPS +L) must show on the picture's right (radiological
    convention), whether the volume is stored with i -> L or with its columns reversed (i -> R)."""
    hu = _head()
    hu[:, 30:34, 50:54] = 1000.0  # i = 50..53 of 64: towards +L
    as_lps = CTVolume(hu, Geometry((1.0, 1.0, 5.0), (0.0, 0.0, 0.0)))
    reversed_i = CTVolume(np.ascontiguousarray(hu[:, :, ::-1]),
                          Geometry((1.0, 1.0, 5.0), (63.0, 0.0, 0.0), (-1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)))
    style = QCStyle(windows=(BRAIN_WINDOW,))
    for volume in (as_lps, reversed_i):
        tile = render_case_slices(volume, np.zeros(hu.shape, np.uint8), [4], style)[0].tiles[0]
        columns = _bright_columns(tile)
        assert columns.size > 0 and columns.min() > tile.shape[1] / 2, volume.geometry.direction
        marker_columns = np.nonzero(_is(tile[100:220], MARKER_RGB))[1]
        assert marker_columns.min() < 30 and marker_columns.max() > tile.shape[1] - 30  # R left, L right


def test_scale_bar_matches_an_object_of_known_size() -> None:
    """A 50 mm bone square in a head of 180 mm: the 5 cm scale bar is as long as the square is wide."""
    spacing = (0.5, 0.5, 5.0)
    hu = _head((3, 400, 400), spacing)
    hu[:, 150:250, 150:250] = 1000.0  # 100 voxels of 0.5 mm = 50 mm
    volume = CTVolume(hu, Geometry(spacing))
    tile = render_case_slices(volume, np.zeros(hu.shape, np.uint8), [1], QCStyle(windows=(BRAIN_WINDOW,)))[0].tiles[0]
    middle = tile[tile.shape[0] // 2 - 20]  # a row through the square, above the R/L markers
    square_px = int(np.count_nonzero(middle.min(axis=-1) >= 192))
    bar_rows = [row for row in tile[-40:] if np.count_nonzero(_is(row, MARKER_RGB)) >= 20]
    bar_px = int(np.count_nonzero(_is(bar_rows[-1], MARKER_RGB)))
    assert square_px > 60 and abs(bar_px - square_px) <= 2, (bar_px, square_px)


def test_slices_with_findings_and_evenly_spaced_without() -> None:
    volume = CTVolume(_head((12, 16, 16)), Geometry((1.0, 1.0, 5.0)))
    labels = np.zeros(volume.shape_zyx, np.uint8)
    labels[[3, 7], 8, 8] = IPH.label
    other = np.zeros_like(labels)
    other[8, 2, 2] = SDH.label
    assert qc_slices(volume, labels) == [3, 7]
    assert qc_slices(volume, labels, other) == [3, 7, 8]  # the union: the same slices for both pictures
    # 37 slices, 6 shown, the two ends left out: 36 * m / 7 for m = 1..6 is 5.1, 10.3, 15.4, 20.6, 25.7, 30.9
    assert spread_slices(37, 6) == [5, 10, 15, 21, 26, 31]
    assert spread_slices(4, 6) == [0, 1, 2, 3]
    assert qc_slices(volume, np.zeros_like(labels), empty_slices=3) == [3, 6, 8]  # 11 * m / 4: 2.75, 5.5, 8.25


def test_slice_captions_number_the_input_slices_and_give_their_position() -> None:
    """Input slices run from head to feet (k -> inferior), slice k at S = 100 - 5 k mm. The finding on
    input slice 2 lies at S = +90 mm, and the caption must say so though the picture works bottom-up."""
    hu = _head((10, 32, 32))
    labels = np.zeros(hu.shape, np.uint8)
    labels[2, 16, 16] = IPH.label
    volume = CTVolume(hu, Geometry((1.0, 1.0, 5.0), (0.0, 0.0, 100.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, -1.0)))
    (item,) = render_case_slices(volume, labels)
    assert item.caption == "slice 2  S +90.0 mm" and item.k == 7


def test_legend_volumes_and_the_status_line() -> None:
    labels = np.zeros((4, 20, 20), np.uint8)
    labels[1, :10, :5] = IPH.label  # 50 voxels of 1 x 1 x 5 mm = 250 mm^3 = 0.25 mL
    labels[2, :10, :] = SDH.label  # 200 voxels = 1.00 mL
    volumes = class_volumes_ml(labels, (1.0, 1.0, 5.0))
    assert volumes == pytest.approx({"EDH": 0.0, "IPH": 0.25, "IVH": 0.0, "SAH": 0.0, "SDH": 1.0})
    iph = next(e for e in legend_entries() if e.key == "IPH")
    assert iph.text_with(volumes) == "IPH  Intraparenchymal hemorrhage  0.25 mL"
    assert status_line(True, 2, volumes) == "findings on 2 slice(s): IPH 0.25 mL, SDH 1.00 mL"
    assert status_line(False, 6, volumes) == "no hemorrhage found (6 evenly spaced slices shown)"


def test_tiles_are_readable_and_the_picture_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 256"):
        QCStyle(tile_px=200)
    volume = CTVolume(_head(), Geometry((1.0, 1.0, 5.0)))
    labels = np.zeros(volume.shape_zyx, np.uint8)
    labels[3:5, 20:30, 20:30] = IPH.label
    items = render_case_slices(volume, labels)
    assert [item.k for item in items] == [3, 4] and all(t.shape == (320, 320, 3) for i in items for t in i.tiles)
    assert len(items[0].tiles) == 2  # brain and subdural windows
    out = save_case_qc(volume, labels, tmp_path / "qc.png", title="case")
    width, height = Image.open(out).size
    assert width >= 4 * 320 and height > 320
    with pytest.raises(Exception, match="exists"):
        save_case_qc(volume, labels, out, overwrite=False)


def test_qc_picture_of_the_real_ct(tilted_ct_dir: Path, tmp_path: Path) -> None:
    """The real GE scan, no finding: six evenly spaced slices, the head filling most of each tile."""
    volume = read_volume(tilted_ct_dir)
    labels = np.zeros(volume.shape_zyx, np.uint8)
    items = render_case_slices(volume, labels)
    assert len(items) == 6 and items[0].caption.startswith("slice ")
    middle = items[3].tiles[0]
    assert np.count_nonzero(middle.max(axis=-1) > 20) > 0.4 * middle.shape[0] * middle.shape[1]
    assert save_case_qc(volume, labels, tmp_path / "real.png").is_file()


def test_segment_writes_the_qc_picture(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    ct = write_volume(tmp_path / "head.nrrd", CTVolume(_head(), Geometry((1.0, 1.0, 5.0))))
    out, qc = tmp_path / "o.seg.nrrd", tmp_path / "o.png"
    code = main(["segment", str(ct), str(out), "--qc", str(qc), "--preset", "tiny", "--untrained",
                 "--device", "cpu", "--progress", "none"])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file() and qc.is_file() and str(qc) in printed
    assert Image.open(qc).size[0] >= 4 * 256
