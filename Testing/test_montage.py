"""QC pictures: slice rendering (window, overlay colours, pixel aspect), legend, slice choice, PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from SSSSegmentLib.classes import CLASS_BY_KEY, HEMORRHAGE_CLASSES
from SSSSegmentLib.errors import InputError, OutputError
from SSSSegmentLib.qc import (
    grid_shape,
    legend_entries,
    legend_min_width,
    render_legend,
    render_slice,
    save_montage,
    save_side_by_side,
    select_slices,
    window_to_grey,
)
from SSSSegmentLib.qc.montage import CAPTION_PX, MARGIN_PX, TITLE_PX

IPH = CLASS_BY_KEY["IPH"]
SDH = CLASS_BY_KEY["SDH"]


def _has_colour(rgb: np.ndarray, colour) -> bool:
    return bool(np.all(rgb == np.asarray(colour, np.uint8), axis=-1).any())


def test_window_maps_hu_to_grey():
    grey = window_to_grey(np.array([-100.0, 0.0, 40.0, 80.0, 1000.0]), (40, 80))
    np.testing.assert_allclose(grey, [0.0, 0.0, 127.5, 255.0, 255.0])
    with pytest.raises(ValueError, match="width"):
        window_to_grey(np.zeros(3), (40, 0))


def test_render_slice_overlay_fill_and_outline_colours():
    hu = np.full((20, 30), 40.0, np.float32)  # window centre: grey 127.5
    labels = np.zeros((20, 30), np.uint8)
    labels[5:15, 10:20] = IPH.label
    rgb = render_slice(hu, (40, 80), labels, alpha=0.5)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[5, 12], IPH.color_rgb)  # outline: pure class colour
    np.testing.assert_array_equal(rgb[14, 19], IPH.color_rgb)
    expected_fill = np.rint(0.5 * 127.5 + 0.5 * np.asarray(IPH.color_rgb))
    np.testing.assert_array_equal(rgb[10, 15], expected_fill)  # interior: blended fill
    np.testing.assert_array_equal(rgb[0, 0], [128, 128, 128])  # no label: plain grey
    assert not _has_colour(rgb, SDH.color_rgb)


def test_render_slice_makes_pixels_square_for_anisotropic_spacing():
    hu = np.zeros((10, 20), np.float32)
    labels = np.zeros((10, 20), np.uint8)
    labels[2:4, 5:10] = SDH.label  # 2 rows tall
    tall = render_slice(hu, labels_yx=labels, spacing_mm=(0.5, 1.0, 5.0))  # rows twice as far apart
    assert tall.shape == (20, 20, 3)
    sdh_rows = np.flatnonzero(np.all(tall == np.asarray(SDH.color_rgb, np.uint8), axis=-1).any(axis=1))
    assert sdh_rows.size == 4  # the 2-row label now covers 4 rows
    assert render_slice(hu, spacing_mm=(1.0, 0.5)).shape == (5, 20, 3)
    assert render_slice(hu, spacing_mm=(0.7, 0.7, 3.0)).shape == (10, 20, 3)


def test_legend_lists_all_five_classes_with_their_colours():
    entries = legend_entries()
    assert [(e.key, e.name, e.color_rgb) for e in entries] == [
        (c.key, c.name, c.color_rgb) for c in HEMORRHAGE_CLASSES
    ]
    assert all(e.key in e.text and e.name in e.text for e in entries)
    wide = render_legend(1200)
    for cls in HEMORRHAGE_CLASSES:
        assert _has_colour(wide, cls.color_rgb), cls.key
    assert render_legend(200).shape[0] > wide.shape[0]  # narrow legends wrap onto more lines


def test_select_slices_spreads_over_labelled_slices():
    labels = np.zeros((40, 4, 4), np.uint8)
    labels[10:20, 1, 1] = 2
    assert select_slices(40, 4, labels) == [10, 13, 16, 19]
    assert select_slices(9, 5) == [0, 2, 4, 6, 8]
    assert select_slices(40, 4, np.zeros_like(labels)) == [0, 13, 26, 39]  # no labels: whole volume
    labels[:] = 0
    labels[[3, 30], 0, 0] = 1
    assert select_slices(40, 8, labels) == [3, 30]  # fewer labelled slices than asked: all of them
    assert select_slices(3, 8) == [0, 1, 2]


def test_grid_shape():
    assert grid_shape(8, 4) == (2, 4)
    assert grid_shape(5, 4) == (2, 4)
    assert grid_shape(2, 4) == (1, 2)


def _phantom() -> tuple[np.ndarray, np.ndarray]:
    hu = np.full((12, 48, 64), 30.0, np.float32)
    labels = np.zeros(hu.shape, np.uint8)
    labels[4:9, 10:20, 10:30] = IPH.label
    labels[6:8, 30:40, 35:55] = SDH.label
    return hu, labels


def test_save_montage_writes_png_of_expected_size_with_overlay(tmp_path: Path):
    hu, labels = _phantom()
    out = save_montage(hu, tmp_path / "qc.png", labels, n_slices=6, title="case 1", tile_px=64, columns=4)
    assert out == tmp_path / "qc.png" and out.is_file()
    image = np.asarray(Image.open(out).convert("RGB"))
    rows, cols = grid_shape(len(select_slices(12, 6, labels)), 4)
    width = max(cols * (64 + MARGIN_PX) + MARGIN_PX, legend_min_width())
    tile_h = 48 + CAPTION_PX  # native size (tile_px = width): no scaling
    height = TITLE_PX + rows * (tile_h + MARGIN_PX) + MARGIN_PX + render_legend(width).shape[0]
    assert image.shape == (height, width, 3)
    assert _has_colour(image, IPH.color_rgb) and _has_colour(image, SDH.color_rgb)
    assert not list(tmp_path.glob(".qc*"))  # no temporary file left behind


def test_save_montage_with_explicit_slices_and_spacing(tmp_path: Path):
    hu, _ = _phantom()
    out = save_montage(hu, tmp_path / "m.png", slices=[0, 11], spacing_mm=(0.5, 1.0, 5.0), tile_px=64)
    width, height = Image.open(out).size
    assert width == max(2 * (64 + MARGIN_PX) + MARGIN_PX, legend_min_width())  # room for a whole legend
    assert height == (96 + CAPTION_PX) + 2 * MARGIN_PX + render_legend(width).shape[0]  # rows doubled


def test_save_montage_rejects_bad_input(tmp_path: Path):
    hu, labels = _phantom()
    with pytest.raises(InputError, match="shape"):
        save_montage(hu, tmp_path / "a.png", labels[:5])
    with pytest.raises(InputError, match="slice"):
        save_montage(hu, tmp_path / "a.png", slices=[12])
    with pytest.raises(OutputError):
        save_montage(hu, tmp_path / "missing" / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_save_side_by_side_pads_to_tallest_panel(tmp_path: Path):
    hu, labels = _phantom()
    left = render_slice(hu[6], labels_yx=labels[6])  # 48 x 64
    right = render_slice(hu[6, :30, :40])  # 30 x 40
    out = save_side_by_side([("phantom", left), ("crop", right)], tmp_path / "pair.png")
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (CAPTION_PX + 48 + 2 * MARGIN_PX, 64 + 40 + 3 * MARGIN_PX, 3)
    assert _has_colour(image, IPH.color_rgb)
