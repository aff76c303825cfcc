"""Compare training methods under one budget, evaluated fully automatically on unseen phantoms.

Generates phantoms (labeled + unlabeled for training, unseen ones for testing), trains
``supervised``, ``fixmatch``, ``unimatch_v2`` and ``sss`` with the same steps and batch sizes, plus
a fully supervised ceiling (every training case labeled), for several seeds; segments each test
phantom with ``segment_volume`` (default InferenceConfig: coarse head -> PCPG -> decoder, no
ground-truth prompts) and writes a markdown table (per-class Dice, mean Dice, HD95).

Runs already trained with the same settings (``config.json`` + ``final.safetensors`` in the work
folder) are evaluated again but not retrained, and generated data is reused, so seeds can be trained
by separate processes (``--seeds 0`` and ``--seeds 1`` side by side, one thread each) and the table
written by a last call with every seed.

Full run (GPU advisable):  python benchmarks/train_compare.py
Quick CPU check:           python benchmarks/train_compare.py --labeled 4 --unlabeled 8 --test 3 \
                               --steps 40 --seeds 0 --matrix 128
"""

from __future__ import annotations

import argparse
import dataclasses
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
    p.add_argument("--unlabeled-blood-fraction", type=float, default=0.0,
                   help="share of unlabeled slices drawn from slices with blood-density tissue (semi-supervised "
                        "methods; runs with a share > 0 get their own folders and table rows)")
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
    tag = f"{args.labeled}l{args.unlabeled}u_m{args.matrix}_s{args.data_seed}"
    semi, full = args.workdir / f"data_semi_{tag}", args.workdir / f"data_full_{tag}"
    if not (semi / "dataset.json").is_file():
        write_dataset(semi, n, args.data_seed, labeled_fraction=args.labeled / n, config=config, overwrite=True)
    if "ceiling" in args.methods and not (full / "dataset.json").is_file():
        write_dataset(full, n, args.data_seed, labeled_fraction=1.0, config=config, overwrite=True)
    return semi, full


def train(args: argparse.Namespace, method: str, seed: int, semi: Path, full: Path) -> Path:
    """Train one run (or reuse a finished run of the same configuration); its final checkpoint."""
    import json
    import shutil

    from SSSSegmentLib.training import TrainConfig, run_training

    out = args.workdir / f"run_{method}{variant_suffix(args, method)}_seed{seed}"
    config = TrainConfig(dataset_dir=str(full if method == "ceiling" else semi), output_dir=str(out),
                         method="supervised" if method == "ceiling" else method, preset=args.preset,
                         device=args.device, seed=seed, steps=args.steps, batch_labeled=args.batch_labeled,
                         batch_unlabeled=args.batch_unlabeled, warmup_steps=min(50, args.steps // 10 + 1),
                         checkpoint_every=max(1, args.steps // 4), val_every=args.steps,
                         unlabeled_blood_slice_fraction=blood_fraction(args, method))
    saved, final = out / "config.json", out / "final.safetensors"
    # keys missing from an older run's config.json had their (behaviour-preserving) default then
    if final.is_file() and saved.is_file() and {**TrainConfig().to_dict(), **json.loads(saved.read_text())} == \
            config.to_dict():
        print(f"{method} seed {seed}: reusing {final}", flush=True)
        return final
    shutil.rmtree(out, ignore_errors=True)
    return run_training(config).final_checkpoint


def blood_fraction(args: argparse.Namespace, method: str) -> float:
    """The unlabeled blood-slice share for ``method`` (0 for the methods without unlabeled data)."""
    return args.unlabeled_blood_fraction if method in ("fixmatch", "unimatch_v2", "sss") else 0.0


def variant_suffix(args: argparse.Namespace, method: str) -> str:
    """Run-folder suffix of a non-default sampling variant ("" for the default)."""
    fraction = blood_fraction(args, method)
    return f"_ubf{fraction:g}" if fraction > 0 else ""


class TestSet:
    """The unseen test phantoms, generated on first use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.seed, self.count, self.matrix = args.test_seed, args.test, args.test_matrix
        self.tag = f"{self.seed}_{self.count}_m{self.matrix}"
        self._phantoms: list | None = None

    @property
    def phantoms(self) -> list:
        from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

        if self._phantoms is None:
            config = PhantomConfig(matrix=self.matrix)
            self._phantoms = [generate_phantom(self.seed + n, config) for n in range(self.count)]
        return self._phantoms


def evaluate(checkpoint: Path, test_phantoms: list, device: str, refine: bool | None = None) -> object:
    """EvaluationSummary of ``checkpoint`` on the phantoms, with its recommended inference settings
    (``refine`` True / False overrides whether the SAM-2 decoder refines the prompts)."""
    from SSSSegmentLib.model import load_sss_checkpoint, resolve_device

    dev = resolve_device(device)
    return evaluate_model(load_sss_checkpoint(checkpoint, device=dev), test_phantoms, dev, refine)


def evaluate_model(model: object, test_phantoms: list, dev: object, refine: bool | None = None) -> object:
    """``evaluate`` on a loaded model (on device ``dev``)."""
    from SSSSegmentLib.evaluation import evaluate_case, summarize
    from SSSSegmentLib.inference import inference_config_for, segment_volume

    config = inference_config_for(model)
    if refine is not None:
        config = dataclasses.replace(config, refine=refine)
    cases = [evaluate_case(segment_volume(ph.to_ct_volume(), model, dev, config).labels_zyx, ph.labels_zyx,
                           ph.geometry.spacing_mm, f"test-{ph.seed}") for ph in test_phantoms]
    return summarize(cases)


def scores_of(summary: object) -> dict:
    """The numbers the table shows, from an EvaluationSummary (JSON-serialisable)."""
    return {"dice_true": {c.key: c.dice_mean_true for c in summary.per_class},
            "mean_dice_true": summary.mean_dice_true, "mean_dice": summary.mean_dice,
            "mean_hd95_mm": summary.mean_hd95_mm}


def evaluate_run(checkpoint: Path, tests: TestSet, device: str) -> dict:
    """Scores of one trained run, cached next to its checkpoint (keyed by the test set and weights)."""
    import json

    from SSSSegmentLib.fsutil import file_sha256

    cache = checkpoint.parent / f"eval_{tests.tag}.json"
    sha = file_sha256(checkpoint)
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    if saved.get("checkpoint_sha256") == sha:
        scores = saved["scores"]
    else:
        scores = scores_of(evaluate(checkpoint, tests.phantoms, device))
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps({"checkpoint_sha256": sha, "scores": scores}))
    return {**scores, "train_s": training_seconds(checkpoint.parent)}


def training_seconds(run_dir: Path) -> float:
    """Wall time of a run's training loop, from the last record of its train_log.jsonl (NaN if absent)."""
    import json

    log = run_dir / "train_log.jsonl"
    seconds = [json.loads(line).get("seconds") for line in log.read_text().splitlines() if line.strip()] \
        if log.is_file() else []
    seconds = [v for v in seconds if v is not None]
    return float(seconds[-1]) if seconds else math.nan


def describe(summary: object) -> str:
    """Per-case and per-class Dice of one evaluation, as text."""
    lines = []
    for case in summary.cases:
        dice = {c.key: round(c.dice, 3) for c in case.classes if not math.isnan(c.dice)}
        lines.append(f"{case.case_id}: {dice}")
    for c in summary.per_class:
        lines.append(f"{c.key}: Dice {c.dice_mean_true:.3f} over the {c.n_true} case(s) with the class, "
                     f"{c.dice_mean:.3f} over the {c.n_dice} with it in truth or prediction; "
                     f"HD95 {c.hd95_mean_mm:.1f} mm; specificity {c.specificity:.2f}")
    lines.append(f"mean Dice over classes: {summary.mean_dice_true:.3f} (cases with the class), "
                 f"{summary.mean_dice:.3f} (false-positive classes count 0)")
    per_case = demo_measure_per_case(summary)
    if per_case:
        lines.append(f"the demo's measure (per case, the mean Dice over the classes in its truth), averaged over "
                     f"the {len(per_case)} case(s) with a bleed: {sum(per_case) / len(per_case):.3f}")
    return "\n".join(lines)


def demo_measure_per_case(summary: object) -> list[float]:
    """For each case with a bleed, the mean Dice over the classes in its truth (what `sssseg demo` prints)."""
    values = []
    for case in summary.cases:
        present = case.dice_in_truth()
        if present:
            values.append(sum(present) / len(present))
    return values


def _fmt(values: list[float], digits: int = 3) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    if len(finite) == 1:
        return f"{finite[0]:.{digits}f}"
    return f"{statistics.mean(finite):.{digits}f} ± {statistics.stdev(finite):.{digits}f}"


def table(results: dict[str, list[dict]], args: argparse.Namespace, seconds: float) -> str:
    keys = [c.key for c in HEMORRHAGE_CLASSES]
    lines = [
        "# Training methods compared (fully automatic evaluation)", "",
        f"Training phantoms: {args.labeled} labeled + {args.unlabeled} unlabeled (matrix {args.matrix}); "
        f"test: {args.test} unseen phantoms (matrix {args.test_matrix}, seeds {args.test_seed}+n). "
        f"Preset `{args.preset}`, {args.steps} steps, batch {args.batch_labeled} labeled + "
        f"{args.batch_unlabeled} unlabeled slices, training seeds {args.seeds}. Segmentation with the "
        "default InferenceConfig (coarse head -> PCPG prompts -> SAM-2 decoder), no ground-truth prompts. "
        "Values: mean ± sd over training seeds. Per-class Dice: mean over the test cases whose truth has "
        "the class; 'mean Dice' is their mean over classes; 'strict' also counts, as 0, every case where "
        "the class is only in the prediction (false-positive classes); HD95 over finite values.", "",
        f"Command: `python benchmarks/train_compare.py {' '.join(sys.argv[1:])}` (this call: {seconds / 60:.0f} min; "
        "'train min' is each run's training loop wall time, mean over seeds, however the runs shared the machine)",
        "",
        "| method | " + " | ".join(keys) + " | mean Dice | strict | HD95 (mm) | train min |",
        "|---" * (len(keys) + 5) + "|",
    ]
    for method, runs in results.items():
        per_class = [_fmt([r["dice_true"][k] for r in runs]) for k in keys]
        lines.append(f"| {method} | " + " | ".join(per_class) + f" | {_fmt([r['mean_dice_true'] for r in runs])} | "
                     f"{_fmt([r['mean_dice'] for r in runs])} | {_fmt([r['mean_hd95_mm'] for r in runs], 1)} | "
                     f"{statistics.mean(r.get('train_s', math.nan) for r in runs) / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tests = TestSet(args)
    if args.evaluate_only is not None:
        print(describe(evaluate(args.evaluate_only, tests.phantoms, args.device)))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    semi, full = make_data(args)
    results: dict[str, list[dict]] = {}
    for method in args.methods:
        label = CEILING if method == "ceiling" else method
        if blood_fraction(args, method) > 0:
            label += f" (unlabeled blood slices {blood_fraction(args, method):g})"
        for seed in args.seeds:
            scores = evaluate_run(train(args, method, seed, semi, full), tests, args.device)
            results.setdefault(label, []).append(scores)
            print(f"{label} seed {seed}: mean Dice {scores['mean_dice_true']:.3f} "
                  f"(strict {scores['mean_dice']:.3f})", flush=True)
    text = table(results, args, time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
