"""Compare training methods under one budget, evaluated fully automatically on unseen phantoms.

Generates phantoms (labeled + unlabeled for training, unseen ones for testing), trains
``supervised``, ``fixmatch``, ``unimatch_v2`` and ``sss`` with the same steps and batch sizes, plus
a fully supervised ceiling (every training case labeled), for several seeds; segments each test
phantom with ``segment_volume`` (default InferenceConfig: coarse head -> PCPG -> decoder, no
ground-truth prompts) and writes a markdown table (per-class Dice, mean Dice, HD95).

Full run (GPU advisable):  python benchmarks/train_compare.py
Quick CPU check:           python benchmarks/train_compare.py --labeled 4 --unlabeled 8 --test 3 \
                               --steps 40 --seeds 0 --matrix 128
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SSSSegmentLib.classes import HEMORRHAGE_CLASSES  # noqa: E402
from SSSSegmentLib.fsutil import atomic_path  # noqa: E402

METHODS = ("supervised", "fixmatch", "unimatch_v2", "sss")
CEILING = "supervised (all labeled)"
TEST_SEED_BASE = 800_000  # test phantoms use seeds 800000 + n; training seeds are SeedSequence spawns


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labeled", type=int, default=8)
    p.add_argument("--unlabeled", type=int, default=64)
    p.add_argument("--test", type=int, default=24)
    p.add_argument("--matrix", type=int, default=256, help="in-plane matrix of the training phantoms")
    p.add_argument("--test-matrix", type=int, default=512, help="in-plane matrix of the test phantoms")
    p.add_argument("--test-seed", type=int, default=TEST_SEED_BASE, help="seed of the first test phantom")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-labeled", type=int, default=4)
    p.add_argument("--batch-unlabeled", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--methods", nargs="+", default=[*METHODS, "ceiling"], choices=[*METHODS, "ceiling"])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-seed", type=int, default=7)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/sssseg_train_compare"))
    p.add_argument("--evaluate-only", type=Path, metavar="CHECKPOINT",
                   help="only evaluate this SSS checkpoint on the --test unseen phantoms (per-case and per-class Dice)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "train_compare.md")
    return p.parse_args(argv)


def make_data(args: argparse.Namespace) -> tuple[Path, Path]:
    """Semi-supervised dataset and the same cases all labeled (same case seeds)."""
    from SSSSegmentLib.phantoms import PhantomConfig, write_dataset

    n = args.labeled + args.unlabeled
    config = PhantomConfig(matrix=args.matrix)
    semi, full = args.workdir / "data_semi", args.workdir / "data_full"
    write_dataset(semi, n, args.data_seed, labeled_fraction=args.labeled / n, config=config, overwrite=True)
    if "ceiling" in args.methods:
        write_dataset(full, n, args.data_seed, labeled_fraction=1.0, config=config, overwrite=True)
    return semi, full


def train(args: argparse.Namespace, method: str, seed: int, semi: Path, full: Path) -> Path:
    import shutil

    from SSSSegmentLib.training import TrainConfig, run_training

    name = "ceiling" if method == "ceiling" else method
    out = args.workdir / f"run_{name}_seed{seed}"
    shutil.rmtree(out, ignore_errors=True)
    config = TrainConfig(dataset_dir=str(full if method == "ceiling" else semi), output_dir=str(out),
                         method="supervised" if method == "ceiling" else method, preset=args.preset,
                         device=args.device, seed=seed, steps=args.steps, batch_labeled=args.batch_labeled,
                         batch_unlabeled=args.batch_unlabeled, warmup_steps=min(50, args.steps // 10 + 1),
                         checkpoint_every=max(1, args.steps // 4), val_every=args.steps)
    return run_training(config).final_checkpoint


def evaluate(checkpoint: Path, test_phantoms: list, device: str) -> object:
    from SSSSegmentLib.evaluation import evaluate_case, summarize
    from SSSSegmentLib.inference import segment_volume
    from SSSSegmentLib.model import load_sss_checkpoint, resolve_device

    dev = resolve_device(device)
    model = load_sss_checkpoint(checkpoint, device=dev)
    cases = [evaluate_case(segment_volume(ph.to_ct_volume(), model, dev).labels_zyx, ph.labels_zyx,
                           ph.geometry.spacing_mm, f"test-{ph.seed}") for ph in test_phantoms]
    return summarize(cases)


def describe(summary: object) -> str:
    """Per-case and per-class Dice of one evaluation, as text."""
    lines = []
    for case in summary.cases:
        dice = {c.key: round(c.dice, 3) for c in case.classes if not math.isnan(c.dice)}
        lines.append(f"{case.case_id}: {dice}")
    for c in summary.per_class:
        lines.append(f"{c.key}: Dice {c.dice_mean:.3f} over {c.n_dice} case(s), HD95 {c.hd95_mean_mm:.1f} mm")
    lines.append(f"mean Dice over classes: {summary.mean_dice:.3f}")
    return "\n".join(lines)


def _fmt(values: list[float], digits: int = 3) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    if len(finite) == 1:
        return f"{finite[0]:.{digits}f}"
    return f"{statistics.mean(finite):.{digits}f} ± {statistics.stdev(finite):.{digits}f}"


def table(results: dict[str, list], args: argparse.Namespace, seconds: float) -> str:
    keys = [c.key for c in HEMORRHAGE_CLASSES]
    lines = [
        "# Training methods compared (fully automatic evaluation)", "",
        f"Training phantoms: {args.labeled} labeled + {args.unlabeled} unlabeled (matrix {args.matrix}); "
        f"test: {args.test} unseen phantoms (matrix {args.test_matrix}, seeds {args.test_seed}+n). "
        f"Preset `{args.preset}`, {args.steps} steps, batch {args.batch_labeled} labeled + "
        f"{args.batch_unlabeled} unlabeled slices, training seeds {args.seeds}. Segmentation with the "
        "default InferenceConfig (coarse head -> PCPG prompts -> SAM-2 decoder), no ground-truth prompts. "
        "Values: mean ± sd over training seeds of the per-class mean Dice over test cases where the class "
        "is in the truth or the prediction; HD95 over finite values.", "",
        f"Command: `python benchmarks/train_compare.py {' '.join(sys.argv[1:])}` ({seconds / 60:.0f} min)", "",
        "| method | " + " | ".join(keys) + " | mean Dice | HD95 (mm) |",
        "|---" * (len(keys) + 3) + "|",
    ]
    for method, summaries in results.items():
        per_class = [_fmt([next(c.dice_mean for c in s.per_class if c.key == k) for s in summaries]) for k in keys]
        lines.append(f"| {method} | " + " | ".join(per_class) + f" | {_fmt([s.mean_dice for s in summaries])} | "
                     f"{_fmt([s.mean_hd95_mm for s in summaries], 1)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

    args = parse_args(argv)
    tests = [generate_phantom(args.test_seed + n, PhantomConfig(matrix=args.test_matrix)) for n in range(args.test)]
    if args.evaluate_only is not None:
        print(describe(evaluate(args.evaluate_only, tests, args.device)))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    semi, full = make_data(args)
    results: dict[str, list] = {}
    for method in args.methods:
        label = CEILING if method == "ceiling" else method
        for seed in args.seeds:
            summary = evaluate(train(args, method, seed, semi, full), tests, args.device)
            results.setdefault(label, []).append(summary)
            print(f"{label} seed {seed}: mean Dice {summary.mean_dice:.3f}", flush=True)
    text = table(results, args, time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
