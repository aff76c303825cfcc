"""The real-scan check: mL called on bleed-free real head CT, and Dice on lesions inserted into them.

Real scans decide whether the model is any good. For each real CT given (a DICOM folder, NIfTI or
NRRD; none of them may be in the model's training data), this prints:

1. the mL of each class the default pipeline calls on the scan as it is (it has no known bleed, so
   every mL is a false alarm), with the rule that dropped the largest candidates;
2. the Dice per class of synthetic lesions (``phantoms.insertion``: EDH lens, SDH crescent, IPH with
   a dense core, IVH layering, sulcal SAH) inserted into the same scan, one class per case.

    .venv/bin/python benchmarks/real_scan_check.py ../shared/data/ct_head_ge_tilted [--inserted 2]
        [--checkpoint SSS.safetensors] [--out benchmarks/results/real_scan_check.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from SSSSegmentLib import api  # noqa: E402
from SSSSegmentLib.classes import HEMORRHAGE_CLASSES  # noqa: E402
from SSSSegmentLib.evaluation.metrics import dice  # noqa: E402
from SSSSegmentLib.volumes.geometry import CTVolume  # noqa: E402

KEYS = tuple(c.key for c in HEMORRHAGE_CLASSES)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scans", nargs="+", type=Path, help="bleed-free real head CTs (kept out of training)")
    p.add_argument("--checkpoint", type=Path, help="SSS checkpoint (default: the bundled model)")
    p.add_argument("--inserted", type=int, default=2, help="cases per class with an inserted lesion")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the tables as markdown here")
    return p.parse_args(argv)


def false_alarms(volume: CTVolume, model: api.LoadedModel) -> tuple[dict[str, float], list[str]]:
    """mL per class on the scan as it is, and the three largest dropped candidates with their rule."""
    result = api.segment_volume(volume, model)
    dropped = sorted((d for d in result.prompt_set.decisions if not d.kept), key=lambda d: -d.volume_ml)[:3]
    notes = [f"{HEMORRHAGE_CLASSES[d.label - 1].key} {d.volume_ml:.1f} mL: {d.dropped_by}" for d in dropped]
    return result.volumes_ml, notes


def inserted_dice(volume: CTVolume, model: api.LoadedModel, n_per_class: int, seed: int) -> dict[str, list[float]]:
    """Dice of the inserted lesion's class, per class, over ``n_per_class`` cases each."""
    from SSSSegmentLib.phantoms.insertion import InsertionConfig, insert_into, prepare_background

    background = prepare_background(volume.hu_zyx, volume.geometry, InsertionConfig())
    scores: dict[str, list[float]] = {k: [] for k in KEYS}
    for n, key in enumerate(k for k in KEYS for _ in range(n_per_class)):
        inserted = insert_into(background, np.random.default_rng(seed + n), keys=(key,))
        result = api.segment_volume(CTVolume(inserted.hu_zyx, volume.geometry, source="inserted"), model)
        label = next(c.label for c in HEMORRHAGE_CLASSES if c.key == key)
        scores[key].append(dice(result.labels_zyx == label, inserted.labels_zyx == label))
    return scores


def report(rows: list[tuple[str, dict[str, float], list[str]]], dice_rows: list[tuple[str, dict]]) -> str:
    lines = ["| scan | " + " | ".join(KEYS) + " | total mL | largest dropped candidates |",
             "|---|" + "---|" * (len(KEYS) + 2)]
    for name, ml, notes in rows:
        cells = " | ".join(f"{ml[k]:.2f}" for k in KEYS)
        lines.append(f"| {name} | {cells} | {sum(ml.values()):.2f} | {'; '.join(notes)} |")
    lines += ["", "Dice of inserted lesions (mean over cases, per class):", "",
              "| scan | " + " | ".join(KEYS) + " | mean |", "|---|" + "---|" * (len(KEYS) + 1)]
    for name, scores in dice_rows:
        means = [statistics.fmean(scores[k]) for k in KEYS if scores[k]]
        cells = " | ".join(f"{statistics.fmean(scores[k]):.2f} ({len(scores[k])})" if scores[k] else "-" for k in KEYS)
        lines.append(f"| {name} | {cells} | {statistics.fmean(means):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = api.load_model(checkpoint=args.checkpoint, device="cpu")
    print(f"model: {model.source}", flush=True)
    rows, dice_rows = [], []
    for scan in args.scans:
        t0 = time.perf_counter()
        volume = api.read_ct(scan)
        ml, notes = false_alarms(volume, model)
        rows.append((scan.name, ml, notes))
        print(f"{scan.name}: {sum(ml.values()):.2f} mL called ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.inserted:
            dice_rows.append((scan.name, inserted_dice(volume, model, args.inserted, args.seed)))
    text = report(rows, dice_rows)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"Model: {model.source}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
