"""Draw the README figures: a phantom slice beside a real head-CT slice at the same window,
and the phantom-set preview montage.

    .venv/bin/python docs/make_figures.py            # needs ../shared/data for the real CT
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from SSSSegmentLib.demo import BRAIN_WINDOW, _best_slice
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
from SSSSegmentLib.qc.montage import save_montage, save_side_by_side
from SSSSegmentLib.qc.render import render_slice
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-ct", type=Path, default=HERE.parents[1] / "shared/data/ct_head_ge_tilted")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(real_vs_phantom(args.real_ct, HERE / "images" / "real_vs_phantom.png", args.seed))
    phantom = generate_phantom(args.seed + 1, PhantomConfig(lesion_keys=("EDH", "IVH", "SAH")))
    print(save_montage(phantom.hu_zyx, HERE / "images" / "phantom_montage.png", phantom.labels_zyx,
                       title=f"phantom seed {args.seed + 1} (EDH, IVH, SAH)", spacing_mm=phantom.geometry.spacing_mm))


if __name__ == "__main__":
    main()
