"""A new site: fine-tune the bundled model on a site it was not trained for, and measure before/after.

The site is a scanner profile the bundled model never saw (more noise, a sharper kernel, 6 mm slices,
a 256 matrix), with the inner-table band of real thick-slice CT (full artefact range). Its data: 4
corrected cases (3 with bleeds, and the real GE head CT of ``../shared/data`` as the one
confirmed-normal scan, so the GE figure is the site's own scan, not unseen data) and 32 unlabeled
scans. The site's unseen test cases (6 with bleeds, 2 without) are scored before and after, for
``sss`` (the method: labeled + unlabeled) and for ``supervised`` on the same labeled cases alone.

    .venv/bin/python benchmarks/new_site.py [--steps 200] [--work /tmp/new_site] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from SSSSegmentLib import api  # noqa: E402
from SSSSegmentLib.bundled_models import bundled_model_path  # noqa: E402
from SSSSegmentLib.evaluation.metrics import dice  # noqa: E402
from SSSSegmentLib.finetune import FinetuneRequest, run_finetune  # noqa: E402
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom  # noqa: E402
from SSSSegmentLib.phantoms.config import ScannerProfile  # noqa: E402
from SSSSegmentLib.phantoms.dataset import hu_int16, write_case_nifti  # noqa: E402
from SSSSegmentLib.site_data import add_site_case  # noqa: E402

SITE = ScannerProfile("new_site", noise_std_hu=9.0, inplane_blur_mm=0.25, slice_thickness_mm=6.0, hu_offset=-4.0)
# Every corrected and test phantom has a bleed (the normal cases are drawn apart).
SITE_CONFIG = PhantomConfig(matrix=256, p_no_lesion=0.0)
GE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct_head_ge_tilted"
SEEDS = {"corrected": range(95_000_000, 95_000_003), "unlabeled": range(95_000_100, 95_000_132),
         "test": range(95_000_200, 95_000_206), "test_normal": range(95_000_300, 95_000_302)}


def site_phantom(seed: int, normal: bool = False):  # noqa: ANN201
    config = PhantomConfig(matrix=256, p_no_lesion=1.0) if normal else SITE_CONFIG
    return generate_phantom(seed, config, SITE)


def build_site(work: Path, ge) -> tuple[Path, Path]:  # noqa: ANN001
    """The site folder (3 corrected phantoms + the GE scan ``ge`` as confirmed normal) and the unlabeled folder."""
    site, unlabeled = work / "site", work / "unlabeled"
    unlabeled.mkdir(parents=True)
    for seed in SEEDS["corrected"]:
        ph = site_phantom(seed)
        add_site_case(site, hu_int16(ph.hu_zyx), ph.geometry, ph.labels_zyx)
    add_site_case(site, hu_int16(ge.hu_zyx), ge.geometry, np.zeros(ge.shape_zyx, np.uint8))
    for seed in SEEDS["unlabeled"]:
        ph = site_phantom(seed)
        write_case_nifti(hu_int16(ph.hu_zyx), ph.geometry, unlabeled / f"scan_{seed}.nii.gz")
    return site, unlabeled


def score(model_path: Path, tests: list, ge) -> dict[str, float]:  # noqa: ANN001
    """The demo's measure on the test cases with bleeds, mL called on those without, mL on the GE scan."""
    loaded = api.load_model(checkpoint=model_path, device="cpu")
    per_case, false_ml = [], []
    for ph in tests:
        labels = api.segment_volume(ph.to_ct_volume(), loaded).labels_zyx
        present = [c for c in np.unique(ph.labels_zyx) if c]
        if present:
            per_case.append(np.mean([dice(labels == c, ph.labels_zyx == c) for c in present]))
        else:
            false_ml.append(np.count_nonzero(labels) * ph.geometry.voxel_volume_ml)
    ge_ml = sum(api.segment_volume(ge, loaded).volumes_ml.values())
    return {"dice": float(np.mean(per_case)), "false_ml": float(np.mean(false_ml)), "ge_ml": float(ge_ml)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: sssseg finetune's)")
    parser.add_argument("--methods", nargs="+", default=["sss", "supervised"], choices=["sss", "supervised"])
    args = parser.parse_args(argv)
    if not GE_DIR.is_dir():
        print(f"needs the real GE head CT at {GE_DIR}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="new_site_"))
    start = time.perf_counter()
    ge = api.read_ct(GE_DIR)
    site, unlabeled = build_site(work, ge)
    tests = [site_phantom(s) for s in SEEDS["test"]] + [site_phantom(s, normal=True) for s in SEEDS["test_normal"]]
    print(f"site data written in {time.perf_counter() - start:.0f} s: {site}, {unlabeled}", flush=True)
    rows = [("bundled model (before)", score(bundled_model_path("tiny"), tests, ge), 0.0, "")]
    for method in args.methods:
        t0 = time.perf_counter()
        request = FinetuneRequest(site, work / f"registry_{method}", unlabeled if method == "sss" else None,
                                  steps=args.steps, device=args.device,
                                  overrides={"method": method, **({"lr": args.lr} if args.lr else {})})
        result = run_finetune(request, log=lambda line, tag=method: print(f"  [{tag}] {line}", flush=True))
        seconds = time.perf_counter() - t0
        gate = "passed" if result.decision.passed else "failed"
        rows.append((f"{method}, {args.steps} steps", score(result.version.model_path, tests, ge), seconds, gate))
    print("\n| model | Dice on 6 unseen site cases | mL on 2 unseen normal site cases | mL on the GE scan "
          "(the site's own normal case) | fine-tune wall time | gate |\n|---|---|---|---|---|---|")
    for name, s, seconds, gate in rows:
        print(f"| {name} | {s['dice']:.3f} | {s['false_ml']:.2f} | {s['ge_ml']:.2f} | "
              f"{f'{seconds / 60:.1f} min' if seconds else '-'} | {gate or '-'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
