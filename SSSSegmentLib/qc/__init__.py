"""Quality-control pictures: the QC picture of a segmentation, montages, side-by-side panels (Pillow)."""

from .case_picture import QCStyle, qc_slices, render_case_slices, save_case_qc
from .montage import grid_shape, save_montage, save_side_by_side, select_slices
from .render import (
    BRAIN_WINDOW,
    SUBDURAL_WINDOW,
    LegendEntry,
    legend_entries,
    legend_min_width,
    render_legend,
    render_slice,
    window_to_grey,
)

__all__ = [
    "BRAIN_WINDOW", "SUBDURAL_WINDOW", "LegendEntry", "QCStyle", "grid_shape", "legend_entries", "legend_min_width",
    "qc_slices", "render_case_slices", "render_legend", "render_slice", "save_case_qc", "save_montage",
    "save_side_by_side", "select_slices", "window_to_grey",
]
