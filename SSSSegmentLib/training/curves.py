"""Training curves from the JSONL log, drawn with Pillow (losses, pseudo-label mask ratio, val Dice)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..fsutil import atomic_path
from ..qc.render import text_font

PANEL_W, PANEL_H, MARGIN = 420, 260, 36
COLOURS = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (213, 94, 0), (204, 121, 167), (240, 228, 66))
PANELS = (("losses", ("loss", "loss_x", "loss_dec_x", "loss_u", "loss_dec_u")),
          ("pseudo-label ratios", ("mask_ratio", "pseudo_fg_ratio")),
          ("validation Dice", ("val_mean_dice", "val_dice_EDH", "val_dice_IPH", "val_dice_IVH",
                               "val_dice_SAH", "val_dice_SDH")))


def read_log(path: Path) -> list[dict]:
    """Records of a JSONL log (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one logged quantity, finite values only."""
    pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    if not pts:
        return np.empty(0), np.empty(0)
    steps, values = zip(*pts, strict=True)
    return np.asarray(steps, float), np.asarray(values, float)


def _panel(records: list[dict], title: str, keys: tuple[str, ...]) -> Image.Image:
    image = Image.new("RGB", (PANEL_W, PANEL_H), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = text_font(12)
    draw.text((PANEL_W / 2, 10), title, fill=(0, 0, 0), font=font, anchor="mm")
    data = [(k, *series(records, k)) for k in keys]
    data = [d for d in data if len(d[1])]
    x0, y0, x1, y1 = MARGIN, 22, PANEL_W - 10, PANEL_H - 40
    draw.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    if not data:
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), "no data", fill=(128, 128, 128), font=font, anchor="mm")
        return image
    smin = min(d[1].min() for d in data)
    smax = max(max(d[1].max() for d in data), smin + 1)
    vmin = min(0.0, min(d[2].min() for d in data))
    vmax = max(d[2].max() for d in data)
    vmax = vmax if vmax > vmin else vmin + 1.0
    for n, (key, steps, values) in enumerate(data):
        xs = x0 + (steps - smin) / (smax - smin) * (x1 - x0)
        ys = y1 - (values - vmin) / (vmax - vmin) * (y1 - y0)
        colour = COLOURS[n % len(COLOURS)]
        if len(xs) > 1:
            draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colour, width=2)
        else:
            draw.ellipse((xs[0] - 3, ys[0] - 3, xs[0] + 3, ys[0] + 3), fill=colour)
        draw.text((x0 + 4 + 120 * (n % 3), y1 + 6 + 14 * (n // 3)), key, fill=colour, font=font)
    draw.text((2, y0), f"{vmax:.3g}", fill=(0, 0, 0), font=font)
    draw.text((2, y1 - 10), f"{vmin:.3g}", fill=(0, 0, 0), font=font)
    draw.text((x1 - 60, y0 + 4), f"step {int(smax)}", fill=(0, 0, 0), font=font)
    return image


def draw_curves(log_path: Path, out_png: Path) -> Path:
    """Three panels side by side (losses, mask ratio, validation Dice) as a PNG, written atomically."""
    records = read_log(log_path)
    canvas = Image.new("RGB", (PANEL_W * len(PANELS), PANEL_H), (255, 255, 255))
    for n, (title, keys) in enumerate(PANELS):
        canvas.paste(_panel(records, title, keys), (n * PANEL_W, 0))
    with atomic_path(Path(out_png)) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(out_png)
