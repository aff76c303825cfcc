"""The QC picture of one segmentation: every slice with a finding, in two windows, outlined, with volumes.

What a radiologist needs to judge a result at a glance: each axial slice that holds a finding
(a few evenly spaced slices with "no hemorrhage found" when there is none), shown in the brain
window (W80/L40) beside the subdural window (W200/L60, for thin blood next to bone), cropped to the
head at ``tile_px`` per slice, each class outlined in its colour just outside its voxels, R/L
markers, a scale bar, the slice number and position, and the per-class volumes in mL in the legend.

Frames: ``volume`` may be in any orientation; the picture shows the axial working grid
(:func:`..volumes.orientation.to_axial`): patient right on the picture's left, anterior at the top.
Slice numbers are the input's own ``k`` (0-based) when its slices are axial, else the working grid's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..evaluation.metrics import class_volumes_ml
from ..volumes.geometry import CTVolume
from ..volumes.orientation import Reorientation, to_axial
from .montage import MARGIN_PX, pad_canvas, tile_grid, write_png
from .render import BRAIN_WINDOW, SUBDURAL_WINDOW, legend_min_width, render_legend, text_strip
from .tile import head_view, render_tile

MIN_TILE_PX = 256
NO_FINDING = "no hemorrhage found"
BANNER_RGB = (255, 220, 0)


@dataclass(frozen=True)
class QCStyle:
    """Layout of the QC picture.

    ``tile_px``: picture pixels per slice and window (at least MIN_TILE_PX); ``slices_per_row``:
    slices (each with all ``windows`` side by side) per row; ``windows``: (level, width) in HU;
    ``empty_slices``: slices shown when nothing is found.
    """

    tile_px: int = 320
    slices_per_row: int = 2
    windows: tuple[tuple[float, float], ...] = (BRAIN_WINDOW, SUBDURAL_WINDOW)
    empty_slices: int = 6

    def __post_init__(self) -> None:
        if self.tile_px < MIN_TILE_PX:
            raise ValueError(f"tile_px must be at least {MIN_TILE_PX} to be readable, got {self.tile_px}")
        if self.slices_per_row < 1 or self.empty_slices < 1 or not self.windows:
            raise ValueError("slices_per_row, empty_slices and windows must be positive / non-empty")


def window_label(window: tuple[float, float]) -> str:
    """``(level, width)`` as radiologists write it, e.g. ``W80/L40``."""
    level, width = window
    return f"W{width:g}/L{level:g}"


def finding_slices(*labels_zyx: np.ndarray) -> list[int]:
    """The slice indices k (ascending) where any of the label maps [k, j, i] has a finding."""
    found = np.zeros(labels_zyx[0].shape[0], bool)
    for labels in labels_zyx:
        found |= np.asarray(labels).reshape(labels.shape[0], -1).any(axis=1)
    return [int(k) for k in np.flatnonzero(found)]


def spread_slices(n_total: int, count: int) -> list[int]:
    """``count`` slice indices spread evenly inside 0..n_total-1, leaving out the two ends (the
    skull base and the vertex, which say little), ascending; every slice when there are few.

    Slice m (m = 1..count) is ``(n_total - 1) * m / (count + 1)``, rounded half up.
    """
    if n_total <= count:
        return list(range(n_total))
    return sorted({int(np.floor((n_total - 1) * m / (count + 1) + 0.5)) for m in range(1, count + 1)})


def qc_slices(volume: CTVolume, *labels_zyx: np.ndarray, empty_slices: int = 6) -> list[int]:
    """Working-grid slices to show for label maps on ``volume``'s grid: every slice with a finding in
    any of them, else ``empty_slices`` evenly spaced ones. Give the same slices to each picture of a
    case (prediction and truth) so they can be compared."""
    _, reorientation = to_axial(volume)
    working = [reorientation.to_working(np.asarray(labels)) for labels in labels_zyx]
    return finding_slices(*working) or spread_slices(working[0].shape[0], empty_slices)


@dataclass(frozen=True)
class SliceTiles:
    """One slice of the picture: its caption and one (tile_px, tile_px, 3) tile per window."""

    k: int  # working-grid slice index
    caption: str
    tiles: tuple[np.ndarray, ...]


def render_case_slices(
    volume: CTVolume, labels_zyx: np.ndarray, slices: Sequence[int] | None = None, style: QCStyle | None = None
) -> list[SliceTiles]:
    """The tiles of the QC picture of ``labels_zyx`` (BHSD values, [k, j, i] on ``volume``'s grid).

    ``slices``: working-grid slice indices (default :func:`qc_slices`). InputError on a label map
    of another shape or a slice outside the volume.
    """
    style = style or QCStyle()
    labels_zyx = np.asarray(labels_zyx)
    if labels_zyx.shape != volume.shape_zyx:
        raise InputError(f"label map shape {labels_zyx.shape} differs from CT shape {volume.shape_zyx}")
    working, reorientation = to_axial(volume)
    labels = reorientation.to_working(labels_zyx)
    ks = list(slices) if slices is not None else qc_slices(volume, labels_zyx, empty_slices=style.empty_slices)
    if not ks or any(not 0 <= k < working.shape_zyx[0] for k in ks):
        raise InputError(f"slice indices must be in 0..{working.shape_zyx[0] - 1}, got {ks}")
    view = head_view(working.hu_zyx, working.geometry.spacing_mm, style.tile_px)
    return [
        SliceTiles(k, slice_caption(working, k, reorientation), tuple(
            render_tile(working.hu_zyx[k], labels[k], view, w, style.tile_px, window_label(w)) for w in style.windows))
        for k in ks
    ]


def save_case_qc(
    volume: CTVolume,
    labels_zyx: np.ndarray,
    out_png: Path,
    title: str = "",
    slices: Sequence[int] | None = None,
    style: QCStyle | None = None,
    overwrite: bool = True,
) -> Path:
    """Write the QC picture of ``labels_zyx`` (BHSD values, [k, j, i] on ``volume``'s grid) as a PNG.

    ``slices``: working-grid slice indices (default :func:`qc_slices`); ``style``: the layout
    (default :class:`QCStyle`). An existing ``out_png`` is replaced only with ``overwrite``.
    Returns ``out_png``.
    """
    style = style or QCStyle()
    items = render_case_slices(volume, labels_zyx, slices, style)
    volumes_ml = class_volumes_ml(labels_zyx, volume.geometry.spacing_mm)
    found = bool(np.any(labels_zyx))
    return write_png(_page(items, volumes_ml, title, found, style, volume.warnings), out_png, overwrite)


def status_line(found: bool, n_slices: int, volumes_ml: dict[str, float]) -> str:
    """The banner under the title: what was found, or that nothing was."""
    if not found:
        return f"{NO_FINDING} ({n_slices} evenly spaced slices shown)"
    listed = ", ".join(f"{key} {ml:.2f} mL" for key, ml in volumes_ml.items() if ml > 0)
    return f"findings on {n_slices} slice(s): {listed}"


def slice_caption(working: CTVolume, k: int, reorientation: Reorientation) -> str:
    """``slice 14  S +45.0 mm``: the input's slice number (or ``axial`` k on a non-axial input) and the
    slice's superior position in mm (LPS, at the middle of the slice)."""
    n_k, n_j, n_i = working.shape_zyx
    s_mm = float((working.geometry.ijk_to_lps() @ np.array([(n_i - 1) / 2, (n_j - 1) / 2, k, 1.0]))[2])
    if reorientation.source_axis[2] == 2:
        number = f"slice {n_k - 1 - k if reorientation.flip[2] else k}"
    else:
        number = f"axial {k}"
    return f"{number}  S {s_mm:+.1f} mm"


def _slice_item(item: SliceTiles) -> np.ndarray:
    """One slice in every window, side by side, under its caption."""
    row = item.tiles[0]
    for tile in item.tiles[1:]:
        row = np.concatenate([row, pad_canvas(tile, tile.shape[0], tile.shape[1] + 2, x=2)], axis=1)
    caption = text_strip(item.caption, row.shape[1], 22, font_px=15)
    return np.concatenate([caption, row], axis=0)


def _page(items: list[SliceTiles], volumes_ml: dict[str, float], title: str, found: bool,
          style: QCStyle, warnings: Sequence[str] = ()) -> np.ndarray:
    """Title, finding banner, the volume's warnings (one coloured line each, e.g. missing slices), the grid
    of slices, the legend with volumes and a key to the picture."""
    grid = tile_grid([_slice_item(item) for item in items], style.slices_per_row)
    width = max(grid.shape[1], legend_min_width(volumes_ml=volumes_ml))
    grid = pad_canvas(grid, grid.shape[0], width, x=(width - grid.shape[1]) // 2)
    banner = text_strip(status_line(found, len(items), volumes_ml), width, 34, font_px=20)
    windows = ", ".join(window_label(w) for w in style.windows)
    key = (f"outlines drawn just outside each finding; windows left to right: {windows}; "
           "R = patient right; slice numbers from 0")
    parts = [text_strip(title, width, 28, font_px=18)] if title else []
    parts += [banner if found else _coloured(banner)]
    parts += [_coloured(warning_strip(line, width)) for line in warnings]
    parts += [grid, render_legend(width, volumes_ml=volumes_ml),
              text_strip(key, width, 20, font_px=13)]
    page = np.concatenate(parts, axis=0)
    return pad_canvas(page, page.shape[0] + MARGIN_PX, width)


def warning_strip(line: str, width: int) -> np.ndarray:
    """One warning of the volume as a white text strip ``width`` pixels wide (recoloured on the page)."""
    return text_strip(line, width, 24, font_px=14)


def _coloured(strip: np.ndarray) -> np.ndarray:
    """A white-on-black text strip recoloured to the banner colour."""
    text = strip.max(axis=2, keepdims=True).astype(np.float32) / 255.0
    return np.rint(text * np.asarray(BANNER_RGB, np.float32)).astype(np.uint8)
