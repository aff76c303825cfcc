"""Draw the README figures: a phantom slice beside a real head-CT slice at the same window,
the phantom-set preview montage, and the QC picture `sssseg segment --qc` writes for the real CT.

    .venv/bin/python docs/make_figures.py                   # all; the real CT is read from --real-ct
    .venv/bin/python docs/make_figures.py --only qc_real_ct
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from SSSSegmentLib import api
from SSSSegmentLib.demo import _best_slice
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
from SSSSegmentLib.qc.montage import save_montage, save_side_by_side
from SSSSegmentLib.qc.render import BRAIN_WINDOW, render_slice
from SSSSegmentLib.volumes import read_volume

HERE = Path(__file__).resolve().parent


def real_vs_phantom(real_ct: Path, out_png: Path, seed: int) -> Path:
    real = read_volume(real_ct)
    brain_fraction = ((real.hu_zyx > 15) & (real.hu_zyx < 60)).mean(axis=(1, 2))
    k_real = int(np.argmax(brain_fraction))
    phantom = generate_phantom(seed, PhantomConfig(lesion_keys=("SDH", "IPH")))
    k_ph = _best_slice(phantom.labels_zyx)
    ph_spacing = phantom.geometry.spacing_mm
    panels = [
        (f"real head CT (GE, tilt-corrected), slice {k_real}",
         render_slice(real.hu_zyx[k_real], BRAIN_WINDOW, None, real.geometry.spacing_mm)),
        (f"phantom seed {seed}, slice {k_ph}", render_slice(phantom.hu_zyx[k_ph], BRAIN_WINDOW, None, ph_spacing)),
        ("phantom with labels", render_slice(phantom.hu_zyx[k_ph], BRAIN_WINDOW, phantom.labels_zyx[k_ph], ph_spacing)),
    ]
    return save_side_by_side(panels, out_png)


def qc_real_ct(real_ct: Path, out_png: Path, colours: int = 64) -> Path:
    """What ``sssseg segment REAL_CT OUT.seg.nrrd --qc OUT.png`` writes, with the default (bundled) model,
    saved with a ``colours``-entry palette to keep the README light (the tool itself writes full RGB)."""
    with tempfile.TemporaryDirectory() as tmp:
        qc = Path(tmp) / "qc.png"
        api.segment_file(real_ct, Path(tmp) / "out.seg.nrrd", api.load_model(device="cpu"), qc_png=qc)
        picture = Image.open(qc).convert("RGB")
    picture.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out_png, optimize=True)
    return out_png


def phantom_montage(seed: int, out_png: Path) -> Path:
    phantom = generate_phantom(seed, PhantomConfig(lesion_keys=("EDH", "IVH", "SAH")))
    return save_montage(phantom.hu_zyx, out_png, phantom.labels_zyx, title=f"phantom seed {seed} (EDH, IVH, SAH)",
                        spacing_mm=phantom.geometry.spacing_mm)


FIGURES = ("real_vs_phantom", "phantom_montage", "qc_real_ct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-ct", type=Path, default=HERE.parents[1] / "shared/data/ct_head_ge_tilted")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=FIGURES, nargs="+", default=FIGURES, help="figures to draw (default: all)")
    args = parser.parse_args()
    images = HERE / "images"
    if "real_vs_phantom" in args.only:
        print(real_vs_phantom(args.real_ct, images / "real_vs_phantom.png", args.seed))
    if "phantom_montage" in args.only:
        print(phantom_montage(args.seed + 1, images / "phantom_montage.png"))
    if "qc_real_ct" in args.only:
        print(qc_real_ct(args.real_ct, images / "qc_real_ct.png"))


if __name__ == "__main__":
    main()
