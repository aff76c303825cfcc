"""A new site: fine-tune the bundled model on a scanner it was not trained for, behind the gate.

Each row is one ``run_finetune`` (the product's code: plan, training, gate, registry) from the bundled
model in a fresh registry, then the registered version (accepted or not) is scored on the site's
unseen cases: per case the mean Dice over the classes in its truth (cases with a bleed) and the mL
called bleed (cases without). Rows: the bundled model; a fine-tune per number of corrected cases
(the curve) and method (``sss``: corrected + unlabeled scans; ``supervised``: corrected cases only,
the same steps and batch); a harmful fine-tune (learning rate 100x, the whole model trained) that
the gate must refuse.

Site data: ``N`` corrected phantoms with bleeds rendered with the site's scanner profile, plus the
real GE head CT of ``../shared/data`` as the site's confirmed-normal case (so the gate's normal check
runs on a real scan); ``--unlabeled`` unlabeled site phantoms for ``sss``. Unseen: ``--tests``
phantoms with bleeds and 2 without. The gate's reference set is ``--reference-cases`` phantoms of
``--reference-matrix`` (the product's default: 8 of 256).

    .venv/bin/python benchmarks/new_site.py --corrected 4 8 16 --methods supervised --steps 100 \\
        --lr 3e-5 --tune heads --harmful --work /tmp/new_site
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from SSSSegmentLib import api  # noqa: E402
from SSSSegmentLib.bundled_models import bundled_model_path, default_preset  # noqa: E402
from SSSSegmentLib.finetune import FinetuneRequest, run_finetune  # noqa: E402
from SSSSegmentLib.finetune.metrics import dice_by_class  # noqa: E402
from SSSSegmentLib.finetune.reference import ReferenceSpec  # noqa: E402
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom  # noqa: E402
from SSSSegmentLib.phantoms.config import ScannerProfile  # noqa: E402
from SSSSegmentLib.phantoms.dataset import hu_int16, write_case_nifti  # noqa: E402
from SSSSegmentLib.registry.gate import paired_bootstrap  # noqa: E402
from SSSSegmentLib.site_data import add_site_case  # noqa: E402

PROFILES = {
    # The first new-site benchmark's profile: the bundled model scores on it as on its own test set.
    "mild": ScannerProfile("new_site", noise_std_hu=9.0, inplane_blur_mm=0.25, slice_thickness_mm=6.0, hu_offset=-4.0),
    # A low-dose protocol with a calibration shift, which the bundled model never saw.
    "shifted": ScannerProfile("shifted_site", noise_std_hu=16.0, inplane_blur_mm=0.25, slice_thickness_mm=6.0,
                              hu_offset=10.0),
}
GE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct_head_ge_tilted"
SEED_BASE = {"corrected": 95_000_000, "unlabeled": 95_000_100, "test": 95_000_200, "test_normal": 95_000_300}
# What ``--tune`` trains (TrainConfig fields): DFE, coarse head, prompt encoder and mask decoder always;
# the ``*coarse`` variants drop the decoder's loss (``decoder_weight`` 0: the bundled tiny model's automatic
# pipeline reads the coarse head only, its inference has ``refine`` off), so nothing but the coarse head's
# loss moves the shared parts.
TUNE = {"heads": {"freeze_encoder": True}, "last_stage": {"freeze_encoder": True, "unfreeze_last_stage": True},
        "all": {"freeze_encoder": False}, "coarse": {"freeze_encoder": True, "decoder_weight": 0.0},
        "all_coarse": {"freeze_encoder": False, "decoder_weight": 0.0}}


def site_phantom(seed: int, profile: ScannerProfile, matrix: int, normal: bool = False):  # noqa: ANN201
    return generate_phantom(seed, PhantomConfig(matrix=matrix, p_no_lesion=1.0 if normal else 0.0), profile)


def build_site(work: Path, n_corrected: int, n_unlabeled: int, profile: ScannerProfile, matrix: int,
               ge) -> tuple[Path, Path]:  # noqa: ANN001
    """The site folder (``n_corrected`` phantoms with bleeds, then the GE scan as confirmed normal) and
    the unlabeled folder; the same seeds for every N (a larger site holds the smaller one's cases)."""
    site, unlabeled = work / f"site_{n_corrected}", work / "unlabeled"
    if not (site / "dataset.json").is_file():
        for seed in range(SEED_BASE["corrected"], SEED_BASE["corrected"] + n_corrected):
            ph = site_phantom(seed, profile, matrix)
            add_site_case(site, hu_int16(ph.hu_zyx), ph.geometry, ph.labels_zyx)
        add_site_case(site, hu_int16(ge.hu_zyx), ge.geometry, np.zeros(ge.shape_zyx, np.uint8))
    if n_unlabeled and not unlabeled.is_dir():
        unlabeled.mkdir(parents=True)
        for seed in range(SEED_BASE["unlabeled"], SEED_BASE["unlabeled"] + n_unlabeled):
            ph = site_phantom(seed, profile, matrix)
            write_case_nifti(hu_int16(ph.hu_zyx), ph.geometry, unlabeled / f"scan_{seed}.nii.gz")
    return site, unlabeled


def score(model_path: Path, tests: list) -> dict:
    """Mean (and per-case) Dice over the classes present on unseen cases with a bleed; mL called on the others."""
    loaded = api.load_model(checkpoint=model_path, device="cpu")
    per_case, normal_ml = [], []
    for ph in tests:
        labels = api.segment_volume(ph.to_ct_volume(), loaded, log=lambda _m: None).labels_zyx
        scores = dice_by_class(labels, ph.labels_zyx)
        if scores:
            per_case.append(float(np.mean(list(scores.values()))))
        else:
            normal_ml.append(float(np.count_nonzero(labels)) * ph.geometry.voxel_volume_ml)
    return {"dice": float(np.mean(per_case)), "per_case": per_case, "normal_ml": normal_ml}


def run_row(args: argparse.Namespace, work: Path, site: Path, unlabeled: Path, name: str, method: str,
            overrides: dict) -> dict:
    """One ``run_finetune`` in a fresh registry (validation once, at the end: the gate measures anyway)."""
    t0 = time.perf_counter()
    settings = {"method": method, "lr": args.lr, "val_every": args.steps, **TUNE[args.tune],
                **({"batch_unlabeled": 0} if method == "supervised" else {}), **overrides}
    request = FinetuneRequest(site, work / f"registry_{name}", unlabeled if method == "sss" else None,
                              steps=args.steps, device="cpu", overrides=settings,
                              reference=ReferenceSpec(args.reference_cases, matrix=args.reference_matrix))
    result = run_finetune(request, log=lambda line: print(f"  [{name}] {line}", flush=True))
    return {"name": name, "version": str(result.version.model_path), "seconds": time.perf_counter() - t0,
            "gate": result.decision.to_dict(), "counts": result.version.data_counts, "settings": settings}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="shifted")
    parser.add_argument("--corrected", type=int, nargs="+", default=[2, 4, 8, 16],
                        help="numbers of corrected cases with a bleed (the curve)")
    parser.add_argument("--methods", nargs="*", default=["supervised"], choices=["sss", "supervised"],
                        help="methods of the curve rows (none: only the rows --sss-at and --harmful ask for)")
    parser.add_argument("--sss-at", type=int, nargs="*", default=[],
                        help="corrected-case counts at which sss also runs (default: where --methods says)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--tune", choices=sorted(TUNE), default="heads")
    parser.add_argument("--harmful", action="store_true", help="add the harmful row (lr x100, whole model)")
    parser.add_argument("--tests", type=int, default=8, help="unseen site phantoms with a bleed")
    parser.add_argument("--unlabeled", type=int, default=16)
    parser.add_argument("--matrix", type=int, default=256)
    parser.add_argument("--reference-cases", type=int, default=8)
    parser.add_argument("--reference-matrix", type=int, default=256)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--skip-bundled", action="store_true", help="leave out the bundled model's row")
    parser.add_argument("--collect", type=Path, nargs="+", metavar="RESULTS.json",
                        help="only print one table of the rows of earlier runs' results.json (runs side by side)")
    parser.add_argument("--curve", type=Path, metavar="OUT.png",
                        help="with --collect: plot Dice against corrected cases")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.collect:
        return collect(args)
    if not GE_DIR.is_dir():
        print(f"needs the real GE head CT at {GE_DIR}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="new_site_"))
    work.mkdir(parents=True, exist_ok=True)
    profile, ge = PROFILES[args.profile], api.read_ct(GE_DIR)
    tests = [site_phantom(SEED_BASE["test"] + i, profile, args.matrix) for i in range(args.tests)]
    tests += [site_phantom(SEED_BASE["test_normal"] + i, profile, args.matrix, normal=True) for i in range(2)]
    rows = [] if args.skip_bundled else [
        {"name": "bundled (before)", **score(bundled_model_path(default_preset()), tests), "seconds": 0.0}]
    for row in rows:
        print(json.dumps(row), flush=True)
    plan = [(n, m) for n in args.corrected for m in args.methods] + [(n, "sss") for n in args.sss_at]
    for n, method in plan:
        site, unlabeled = build_site(work, n, args.unlabeled if method == "sss" else 0, profile, args.matrix, ge)
        row = run_row(args, work, site, unlabeled, f"{method}_{n}", method, {})
        rows.append({**row, **score(Path(row["version"]), tests)})
        print(json.dumps(rows[-1]), flush=True)
    if args.harmful:
        n = max(args.corrected)
        site, unlabeled = build_site(work, n, 0, profile, args.matrix, ge)
        row = run_row(args, work, site, unlabeled, f"harmful_{n}", "supervised",
                      {"lr": 100 * args.lr, "freeze_encoder": False})
        rows.append({**row, **score(Path(row["version"]), tests)})
        print(json.dumps(rows[-1]), flush=True)
    (work / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                   "rows": rows}, indent=1))
    print_table(rows, args)
    return 0


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    bundled = next((r for r in rows if r["name"].startswith("bundled")), None)
    print(f"\n| model | corrected cases (train + held out) | Dice, {n_tests(rows)} unseen site cases | minus bundled, "
          "90% paired interval | mL, 2 unseen normal cases | gate: reference set | gate: confirmed normal | "
          "gate: held out | decision | wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        versus = "-"
        if bundled is not None and r is not bundled and len(r["per_case"]) == len(bundled["per_case"]):
            versus = paired_bootstrap(r["per_case"], bundled["per_case"]).describe()
        gate = r.get("gate")
        parts = [f"{p['status']}: {p['text']}" for p in gate["parts"]] if gate else ["-", "-", "-"]
        counts = r.get("counts")
        cases = f"{counts['labeled_train']} + {counts['heldout']}" if counts else "-"
        decision = ("accepted" if gate["passed"] else "refused") if gate else "-"
        wall = f"{r['seconds'] / 60:.1f} min" if r["seconds"] else "-"
        print(f"| {r['name']} | {cases} | {r['dice']:.3f} | {versus} | {sum(r['normal_ml']):.2f} | "
              f"{' | '.join(parts)} | {decision} | {wall} |")


def collect(args: argparse.Namespace) -> int:
    """One table from several runs' ``results.json`` (rows in the order given), and the curve."""
    rows = [row for path in args.collect for row in json.loads(path.read_text())["rows"]]
    print_table(rows, args)
    if args.curve:
        plot_curve(rows, args.curve)
    return 0


def plot_curve(rows: list[dict], out: Path) -> None:
    """Dice on the unseen site cases against the number of corrected cases, per method (bundled: a line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    groups = dict.fromkeys(r["name"].rsplit("_", 1)[0] for r in rows if r.get("counts"))  # e.g. supervised, sss
    for group in (g for g in groups if g != "harmful"):
        points = sorted((r["counts"]["labeled_train"] + r["counts"]["heldout"] - r["counts"]["normal"], r["dice"])
                        for r in rows if r.get("counts") and r["name"].rsplit("_", 1)[0] == group)
        ax.plot(*zip(*points, strict=True), "o-", label=f"{group} fine-tune")
    for r in rows:
        if r["name"].startswith("bundled"):
            ax.axhline(r["dice"], color="grey", ls="--", label="bundled model")
    ax.set_xlabel("corrected cases with a bleed")
    ax.set_ylabel(f"Dice, {n_tests(rows)} unseen site cases")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


def n_tests(rows: list[dict]) -> int:
    return max(len(r["per_case"]) for r in rows)


if __name__ == "__main__":
    raise SystemExit(main())
