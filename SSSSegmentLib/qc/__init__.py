"""Quality-control pictures: CT slices with label overlays, montages, side-by-side panels (Pillow)."""

from .montage import grid_shape, save_montage, save_side_by_side, select_slices
from .render import LegendEntry, legend_entries, legend_min_width, render_legend, render_slice, window_to_grey

__all__ = [
    "LegendEntry", "grid_shape", "legend_entries", "legend_min_width", "render_legend", "render_slice",
    "save_montage", "save_side_by_side", "select_slices", "window_to_grey",
]
