"""One QC tile: an axial slice cropped to the head, scaled to a square, with class outlines and markers.

Frames: volumes are on the axial working grid (:mod:`..volumes.orientation`; identity direction,
i -> patient left, j -> posterior, k -> superior), indexed ``[k, j, i]``; ``spacing_mm`` is in ITK
order ``(i, j[, k])``. A tile shows column i increasing to the right, so the patient's right is on
the picture's left (the radiological convention) and anterior is at the top. Tiles are
``(tile_px, tile_px, 3)`` uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..classes import HEMORRHAGE_CLASSES
from ..prompts.components import largest_region
from .render import text_font, window_to_grey

AIR_HU = -1024.0
HEAD_HU = -300.0  # skin and everything denser marks the head's extent
MARKER_RGB = (255, 220, 0)
OUTLINE_PX = 2
SCALE_BAR_MM = (50.0, 20.0, 10.0)  # the longest that fits in 40% of the tile is drawn
_SQUARE = ndimage.generate_binary_structure(2, 2)


@dataclass(frozen=True)
class View:
    """A square field of view (in mm) on the working grid: voxel bounds [j0, j1) x [i0, i1), may
    reach past the image (padded with air), and the tile's scale in mm per picture pixel."""

    j0: int
    j1: int
    i0: int
    i1: int
    mm_per_px: float


def head_view(hu_zyx: np.ndarray, spacing_mm: Sequence[float], tile_px: int, margin_mm: float = 6.0) -> View:
    """The square view that holds the head plus ``margin_mm``.

    The head: on each slice, the largest connected region of voxels above HEAD_HU (so the table and
    head holder, separate from the head within a slice, are left out); their union over the slices.
    ``hu_zyx``: HU [k, j, i] on the working grid. Without any such voxel: the whole slice.
    """
    body = np.zeros(np.shape(hu_zyx)[1:], bool)
    for hu_yx in np.asarray(hu_zyx):
        body |= largest_region(hu_yx > HEAD_HU)
    rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
    if rows.size == 0:
        rows, cols = np.arange(body.shape[0]), np.arange(body.shape[1])
    spacing_i, spacing_j = float(spacing_mm[0]), float(spacing_mm[1])
    centre_j, centre_i = (rows[0] + rows[-1] + 1) / 2.0, (cols[0] + cols[-1] + 1) / 2.0
    extent_mm = max((rows[-1] - rows[0] + 1) * spacing_j, (cols[-1] - cols[0] + 1) * spacing_i)
    half_mm = extent_mm / 2.0 + margin_mm
    j0, j1 = round(centre_j - half_mm / spacing_j), round(centre_j + half_mm / spacing_j)
    i0, i1 = round(centre_i - half_mm / spacing_i), round(centre_i + half_mm / spacing_i)
    return View(j0, j1, i0, i1, mm_per_px=(i1 - i0) * spacing_i / tile_px)


def crop(array_yx: np.ndarray, view: View, fill: float) -> np.ndarray:
    """``array_yx`` [j, i] cut to ``view``; what lies outside the image is ``fill``."""
    out = np.full((view.j1 - view.j0, view.i1 - view.i0), fill, dtype=array_yx.dtype)
    rows, cols = array_yx.shape
    sj0, sj1 = max(view.j0, 0), min(view.j1, rows)
    si0, si1 = max(view.i0, 0), min(view.i1, cols)
    if sj1 > sj0 and si1 > si0:
        out[sj0 - view.j0 : sj1 - view.j0, si0 - view.i0 : si1 - view.i0] = array_yx[sj0:sj1, si0:si1]
    return out


def render_tile(
    hu_yx: np.ndarray,
    labels_yx: np.ndarray | None,
    view: View,
    window: tuple[float, float],
    tile_px: int,
    window_label: str = "",
) -> np.ndarray:
    """One slice as a (tile_px, tile_px, 3) tile: ``window`` (level, width) greyscale, each class
    outlined in its colour just outside its voxels (the tissue inside stays visible), R/L markers,
    a scale bar and ``window_label`` in the top-left corner.

    ``hu_yx``: HU [j, i]; ``labels_yx``: BHSD labels [j, i] (0 = none) on the same grid.
    """
    grey = window_to_grey(crop(np.asarray(hu_yx, np.float32), view, AIR_HU), window)
    grey = np.asarray(Image.fromarray(grey).resize((tile_px, tile_px), Image.Resampling.BILINEAR))
    rgb = np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., np.newaxis], 3, axis=2)
    if labels_yx is not None:
        draw_outlines(rgb, crop(np.asarray(labels_yx, np.uint8), view, 0))
    return annotate(rgb, view.mm_per_px, window_label)


def class_cover(mask_yx: np.ndarray, size_px: int) -> np.ndarray:
    """The picture pixels (size_px, size_px) that a voxel mask [j, i] touches at all.

    A box filter followed by ``> 0``: a one-voxel finding never vanishes when the tile is smaller
    than the crop.
    """
    image = Image.fromarray(np.asarray(mask_yx, np.float32))
    return np.asarray(image.resize((size_px, size_px), Image.Resampling.BOX)) > 1e-6


def draw_outlines(rgb: np.ndarray, labels_yx: np.ndarray, width_px: int = OUTLINE_PX) -> None:
    """Draw each class's outline, ``width_px`` wide and just outside it, into ``rgb`` (H, H, 3) in place.

    ``labels_yx``: the cropped labels [j, i], scaled here to the tile.
    """
    size = rgb.shape[0]
    for cls in HEMORRHAGE_CLASSES:
        mask = labels_yx == cls.label
        if not mask.any():
            continue
        cover = class_cover(mask, size)
        ring = ndimage.binary_dilation(cover, structure=_SQUARE, iterations=width_px) & ~cover
        rgb[ring] = cls.color_rgb


def annotate(rgb: np.ndarray, mm_per_px: float, window_label: str = "") -> np.ndarray:
    """R and L at the middle of the left and right edges, a scale bar at the bottom left, and
    ``window_label`` at the top left, drawn on a copy of ``rgb``."""
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    size = rgb.shape[1]
    font = text_font(max(14, size // 20))
    pad = max(4, size // 64)
    style = {"fill": MARKER_RGB, "font": font, "stroke_width": 2, "stroke_fill": (0, 0, 0)}
    draw.text((pad, rgb.shape[0] / 2), "R", anchor="lm", **style)
    draw.text((size - pad, rgb.shape[0] / 2), "L", anchor="rm", **style)
    if window_label:
        draw.text((pad, pad), window_label, anchor="la", **style)
    _scale_bar(draw, size, rgb.shape[0], mm_per_px, pad, style)
    return np.asarray(image)


def scale_bar_mm(tile_width_mm: float) -> float:
    """The scale bar's length: the longest of SCALE_BAR_MM within 40% of the tile's width."""
    fitting = [mm for mm in SCALE_BAR_MM if mm <= 0.4 * tile_width_mm]
    return fitting[0] if fitting else SCALE_BAR_MM[-1]


def _scale_bar(draw: ImageDraw.ImageDraw, width: int, height: int, mm_per_px: float, pad: int, style: dict) -> None:
    length_mm = scale_bar_mm(width * mm_per_px)
    length_px = round(length_mm / mm_per_px)
    x0, y1 = pad, height - pad
    draw.rectangle((x0 - 1, y1 - 5, x0 + length_px, y1 + 1), fill=(0, 0, 0))
    draw.rectangle((x0, y1 - 4, x0 + length_px - 1, y1), fill=MARKER_RGB)
    label = f"{length_mm / 10:g} cm" if length_mm >= 10 else f"{length_mm:g} mm"
    draw.text((x0, y1 - 8), label, anchor="ld", **style)
