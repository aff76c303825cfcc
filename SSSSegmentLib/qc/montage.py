"""QC pictures: a grid of axial CT slices with the label overlay and legend; side-by-side panels.

Volumes are indexed ``[k, j, i]``; ``spacing_mm`` is in ITK order (i, j, k) as in ``Geometry``.
PNG files are written atomically (an existing picture is replaced).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..fsutil import atomic_path, check_writable_output
from .render import BACKGROUND_RGB, legend_min_width, render_legend, render_slice, text_strip

MARGIN_PX = 6
CAPTION_PX = 20
TITLE_PX = 26


def select_slices(n_total: int, n_slices: int = 8, labels_zyx: np.ndarray | None = None) -> list[int]:
    """Up to ``n_slices`` slice indices k, spread evenly, ascending.

    Spread over the slices that contain labels when ``labels_zyx`` [k, j, i] has any, else over
    all ``n_total`` slices. First and last candidates are always included.
    """
    if n_total < 1 or n_slices < 1:
        raise ValueError(f"need n_total >= 1 and n_slices >= 1, got {n_total}, {n_slices}")
    candidates = np.arange(n_total)
    if labels_zyx is not None:
        labelled = np.flatnonzero(np.asarray(labels_zyx).reshape(labels_zyx.shape[0], -1).any(axis=1))
        candidates = labelled if labelled.size else candidates
    if candidates.size <= n_slices:
        return [int(k) for k in candidates]
    picks = np.unique(np.rint(np.linspace(0, candidates.size - 1, n_slices)).astype(int))
    return [int(candidates[p]) for p in picks]


def grid_shape(n_tiles: int, columns: int) -> tuple[int, int]:
    """(rows, columns) of the montage grid for ``n_tiles`` with at most ``columns`` per row."""
    cols = max(1, min(columns, n_tiles))
    return math.ceil(n_tiles / cols), cols


def save_montage(
    hu_zyx: np.ndarray,
    out_png: Path,
    labels_zyx: np.ndarray | None = None,
    slices: Sequence[int] | None = None,
    n_slices: int = 8,
    window: tuple[float, float] = (40, 80),
    title: str = "",
    spacing_mm: Sequence[float] | None = None,
    tile_px: int = 256,
    columns: int = 4,
) -> Path:
    """Write a PNG grid of axial slices of ``hu_zyx`` (HU, [k, j, i]) with labels overlaid.

    ``slices``: slice indices k to show (default :func:`select_slices`). Each tile is
    :func:`render_slice` scaled to ``tile_px`` wide (square pixels when ``spacing_mm`` is given),
    captioned with its slice index; the title (if any) is on top and the class legend below.
    Returns ``out_png``.
    """
    hu_zyx = np.asarray(hu_zyx)
    _check_volume(hu_zyx, labels_zyx)
    ks = list(slices) if slices is not None else select_slices(hu_zyx.shape[0], n_slices, labels_zyx)
    bad = [k for k in ks if not 0 <= k < hu_zyx.shape[0]]
    if not ks or bad:
        raise InputError(f"slice indices must be in 0..{hu_zyx.shape[0] - 1}, got {ks}")
    tiles = []
    for k in ks:
        rgb = render_slice(hu_zyx[k], window, None if labels_zyx is None else labels_zyx[k], spacing_mm)
        tiles.append(_captioned(_scaled(rgb, tile_px), f"k = {k}"))
    grid = tile_grid(tiles, columns)
    width = max(grid.shape[1], legend_min_width())  # a narrow grid is centred above a whole legend
    grid = pad_canvas(grid, grid.shape[0], width, x=(width - grid.shape[1]) // 2)
    parts = ([text_strip(title, grid.shape[1], TITLE_PX, font_px=16)] if title else []) + [grid]
    parts.append(render_legend(grid.shape[1]))
    return write_png(np.concatenate(parts, axis=0), out_png)


def save_side_by_side(panels: Sequence[tuple[str, np.ndarray]], out_png: Path) -> Path:
    """Write panels (title, image) next to each other, titles above, heights padded to the tallest.

    Each image is (H, W, 3) uint8 RGB (e.g. from :func:`render_slice`) or (H, W) uint8 grey.
    Returns ``out_png``.
    """
    if not panels:
        raise ValueError("no panels to draw")
    columns = [_captioned(_as_rgb(image), title, above=True) for title, image in panels]
    height = max(c.shape[0] for c in columns)
    padded = [pad_canvas(c, height, c.shape[1] + MARGIN_PX) for c in columns]
    row = np.concatenate(padded, axis=1)
    framed = pad_canvas(row, height + 2 * MARGIN_PX, row.shape[1] + MARGIN_PX, y=MARGIN_PX, x=MARGIN_PX)
    return write_png(framed, out_png)


def _check_volume(hu_zyx: np.ndarray, labels_zyx: np.ndarray | None) -> None:
    if hu_zyx.ndim != 3 or 0 in hu_zyx.shape:
        raise InputError(f"CT volume must be 3D [k, j, i] and non-empty, got shape {hu_zyx.shape}")
    if labels_zyx is not None and np.shape(labels_zyx) != hu_zyx.shape:
        raise InputError(f"label map shape {np.shape(labels_zyx)} differs from CT shape {hu_zyx.shape}")


def _scaled(rgb: np.ndarray, width: int) -> np.ndarray:
    """Resize an RGB image to ``width`` columns, keeping its aspect ratio."""
    if rgb.shape[1] == width:
        return rgb
    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    return np.asarray(Image.fromarray(rgb).resize((width, height), resample=Image.Resampling.BILINEAR))


def _captioned(rgb: np.ndarray, caption: str, above: bool = False) -> np.ndarray:
    strip = text_strip(caption, rgb.shape[1], CAPTION_PX)
    return np.concatenate([strip, rgb] if above else [rgb, strip], axis=0)


def tile_grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles (all the same shape) in rows of ``columns``, MARGIN_PX apart and around."""
    rows, cols = grid_shape(len(tiles), columns)
    tile_h, tile_w = tiles[0].shape[:2]
    canvas = _blank(rows * (tile_h + MARGIN_PX) + MARGIN_PX, cols * (tile_w + MARGIN_PX) + MARGIN_PX)
    for n, tile in enumerate(tiles):
        y = MARGIN_PX + (n // cols) * (tile_h + MARGIN_PX)
        x = MARGIN_PX + (n % cols) * (tile_w + MARGIN_PX)
        canvas[y : y + tile_h, x : x + tile_w] = tile
    return canvas


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., np.newaxis], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"panel must be (H, W, 3) or (H, W) uint8, got {image.shape} {image.dtype}")
    return image


def pad_canvas(rgb: np.ndarray, height: int, width: int, y: int = 0, x: int = 0) -> np.ndarray:
    """``rgb`` on a background canvas of (height, width), its top-left corner at row y, column x."""
    canvas = _blank(height, width)
    canvas[y : y + rgb.shape[0], x : x + rgb.shape[1]] = rgb
    return canvas


def _blank(height: int, width: int) -> np.ndarray:
    """A (height, width, 3) uint8 canvas of the background colour."""
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND_RGB
    return canvas


def write_png(rgb: np.ndarray, out_png: Path, overwrite: bool = True) -> Path:
    """Write an (H, W, 3) uint8 picture as PNG, atomically; an existing file only with ``overwrite``."""
    out_png = Path(out_png)
    check_writable_output(out_png, overwrite=overwrite)
    with atomic_path(out_png) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return out_png
