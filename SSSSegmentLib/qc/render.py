"""Render CT slices with label overlays, text and the class legend as RGB arrays (Pillow only).

Slices are 2D arrays indexed ``[j, i]`` (rows, columns) cut from ``[k, j, i]`` volumes; images are
``(H, W, 3)`` uint8 RGB. ``spacing_mm`` is in ITK order ``(i, j[, k])`` as in ``Geometry``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ..classes import HEMORRHAGE_CLASSES

BACKGROUND_RGB = (0, 0, 0)
BRAIN_WINDOW = (40.0, 80.0)  # (level, width) in HU: W80/L40
SUBDURAL_WINDOW = (60.0, 200.0)  # W200/L60, for thin extra-axial blood next to bone
TEXT_RGB = (255, 255, 255)
FONT_PX = 14
_CROSS = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class LegendEntry:
    """One legend line: class key, full name and colour (RGB 0..255)."""

    key: str
    name: str
    color_rgb: tuple[int, int, int]

    @property
    def text(self) -> str:
        return f"{self.key}  {self.name}"

    def text_with(self, volumes_ml: Mapping[str, float] | None) -> str:
        """The legend line, with the class's volume (e.g. ``IPH  Intraparenchymal hemorrhage  12.30 mL``)."""
        if volumes_ml is None:
            return self.text
        return f"{self.text}  {volumes_ml.get(self.key, 0.0):.2f} mL"


def legend_entries() -> tuple[LegendEntry, ...]:
    """The legend: one entry per hemorrhage class, in label order."""
    return tuple(LegendEntry(c.key, c.name, c.color_rgb) for c in HEMORRHAGE_CLASSES)


def window_to_grey(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """HU to grey levels 0..255 (float) for a window ``(centre, width)`` in HU."""
    centre, width = (float(v) for v in window)
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    return np.clip((np.asarray(hu, dtype=np.float32) - (centre - width / 2)) / width, 0.0, 1.0) * 255.0


def render_slice(
    hu_yx: np.ndarray,
    window: tuple[float, float] = (40, 80),
    labels_yx: np.ndarray | None = None,
    spacing_mm: Sequence[float] | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """One axial slice as RGB: CT in ``window`` greyscale, labels as coloured fill + outline.

    ``hu_yx``: HU [j, i]; ``labels_yx``: BHSD labels [j, i] (0 = none). Fill blends the class
    colour with weight ``alpha``; the outline (label pixels with a 4-neighbour outside the class)
    is drawn in the pure class colour. With ``spacing_mm`` (i, j, ...) whose row and column
    spacing differ, rows are resampled so that pixels are square: the output has
    ``round(H * spacing_j / spacing_i)`` rows and W columns. Returns (H', W, 3) uint8.
    """
    hu_yx = np.asarray(hu_yx)
    if hu_yx.ndim != 2:
        raise ValueError(f"hu_yx must be 2D [j, i], got shape {hu_yx.shape}")
    if labels_yx is not None and np.shape(labels_yx) != hu_yx.shape:
        raise ValueError(f"labels_yx shape {np.shape(labels_yx)} differs from hu_yx shape {hu_yx.shape}")
    grey = window_to_grey(hu_yx, window)
    rows = _square_pixel_rows(hu_yx.shape, spacing_mm)
    if rows != hu_yx.shape[0]:
        grey = _resize(grey, rows, Image.Resampling.BILINEAR)
        labels_yx = None if labels_yx is None else _resize(labels_yx, rows, Image.Resampling.NEAREST)
    rgb = np.repeat(grey[..., np.newaxis], 3, axis=2)
    if labels_yx is not None:
        _overlay(rgb, np.asarray(labels_yx), alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def legend_min_width(font_px: int = FONT_PX, volumes_ml: Mapping[str, float] | None = None) -> int:
    """Narrowest legend (in pixels) that shows every entry whole, one per line."""
    return max(width for _, width in _legend_items(font_px, volumes_ml)) + font_px


def render_legend(width: int, font_px: int = FONT_PX, volumes_ml: Mapping[str, float] | None = None) -> np.ndarray:
    """The class legend (swatch + "KEY  Full name" per class), wrapped to ``width`` pixels. (H, width, 3).

    With ``volumes_ml`` (class key -> mL) each entry ends with the class's volume. Entries wider
    than ``width`` (see :func:`legend_min_width`) are clipped.
    """
    font, pad = text_font(font_px), font_px // 2
    swatch = font_px
    items = _legend_items(font_px, volumes_ml)
    positions, x, y = [], pad, pad
    for entry, item_width in items:
        if x > pad and x + item_width > width - pad:
            x, y = pad, y + font_px + pad
        positions.append((entry, x, y))
        x += item_width + 2 * pad
    image = Image.new("RGB", (width, y + font_px + pad), BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    for entry, x0, y0 in positions:
        draw.rectangle((x0, y0, x0 + swatch - 1, y0 + swatch - 1), fill=entry.color_rgb)
        draw.text((x0 + swatch + pad, y0 + swatch // 2), entry.text_with(volumes_ml), fill=TEXT_RGB, font=font,
                  anchor="lm")
    return np.asarray(image)


def _legend_items(font_px: int, volumes_ml: Mapping[str, float] | None = None) -> list[tuple[LegendEntry, int]]:
    """Each legend entry with its drawn width (swatch, gap, text) in pixels."""
    font = text_font(font_px)
    return [(e, font_px + font_px // 2 + _text_width(e.text_with(volumes_ml), font)) for e in legend_entries()]


def text_strip(text: str, width: int, height: int, font_px: int = FONT_PX) -> np.ndarray:
    """A (height, width, 3) strip with ``text`` centred, white on black."""
    image = Image.new("RGB", (width, height), BACKGROUND_RGB)
    if text:
        draw = ImageDraw.Draw(image)
        draw.text((width / 2, height / 2), text, fill=TEXT_RGB, font=text_font(font_px), anchor="mm")
    return np.asarray(image)


@functools.lru_cache(maxsize=8)
def text_font(size_px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size_px`` (the fixed bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size_px)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def _text_width(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _square_pixel_rows(shape_yx: tuple[int, ...], spacing_mm: Sequence[float] | None) -> int:
    """Row count that makes pixels square given the (i, j) spacing; unchanged without spacing."""
    if spacing_mm is None:
        return int(shape_yx[0])
    spacing_i, spacing_j = float(spacing_mm[0]), float(spacing_mm[1])
    if spacing_i <= 0 or spacing_j <= 0:
        raise ValueError(f"spacing must be positive, got {tuple(spacing_mm)}")
    return max(1, int(round(shape_yx[0] * spacing_j / spacing_i)))


def _resize(array_yx: np.ndarray, rows: int, resample: Image.Resampling) -> np.ndarray:
    """Resample a 2D array to ``rows`` rows (columns unchanged)."""
    is_float = resample != Image.Resampling.NEAREST
    image = Image.fromarray(np.asarray(array_yx, dtype=np.float32 if is_float else np.uint8))
    return np.asarray(image.resize((array_yx.shape[1], rows), resample=resample))


def _overlay(rgb: np.ndarray, labels_yx: np.ndarray, alpha: float) -> None:
    """Blend class fills and draw class outlines into ``rgb`` (H, W, 3) float, in place."""
    for cls in HEMORRHAGE_CLASSES:
        mask = labels_yx == cls.label
        if not mask.any():
            continue
        color = np.asarray(cls.color_rgb, dtype=np.float32)
        rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * color
        outline = mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)
        rgb[outline] = color
