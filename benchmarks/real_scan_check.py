"""The real-scan check: mL called on bleed-free real head CT, and Dice on lesions inserted into them.

Real scans decide whether the model is any good. For each real CT given (a DICOM folder, NIfTI or
NRRD; none of them may be in the model's training data), this prints:

1. the mL of each class the default pipeline calls on the scan as it is (it has no known bleed, so
   every mL is a false alarm), with the rule that dropped the largest candidates;
2. the Dice per class of synthetic lesions (``phantoms.insertion``: EDH lens, SDH crescent, IPH with
   a dense core, IVH layering, sulcal SAH) inserted into the same scan, one class per case.

    .venv/bin/python benchmarks/real_scan_check.py ../shared/data/ct_head_ge_tilted [--inserted 2]
        [--checkpoint SSS.safetensors] [--out benchmarks/results/real_scan_check.md] [--variants]

``--variants`` also runs each scan's real-geometry variants (``real_geometry_variants.py``: the field
of view cut at the front and below the vertex, a synthetic head holder, resampled to 1.5 mm and a
256 matrix): the mL called on each clean variant, and the Dice of the same inserted lesions (inserted
into the whole scan, then cut or resampled with it; a case whose lesion the variant cuts away is
left out of that variant's mean).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

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
    p.add_argument("--variants", action="store_true", help="also the real-geometry variants of each scan")
    p.add_argument("--cases", type=Path, help="with --variants: a folder of inserted cases (int16 HU and labels, "
                   "one .npz per case) read when there, else written, so two versions of the code score the "
                   "same lesions")
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


def inserted_cases(volume: CTVolume, n_per_class: int, seed: int, folder: Path | None) -> list[tuple]:
    """(class key, HU float32 (K, J, I), labels uint8) per case: inserted here (and saved to ``folder``), or
    read from ``folder`` when it holds them."""
    keys = [k for k in KEYS for _ in range(n_per_class)]
    paths = [folder / f"case_{n:02d}_{key}.npz" for n, key in enumerate(keys)] if folder else []
    if paths and all(p.exists() for p in paths):
        return [(key, np.load(p)["hu"].astype(np.float32), np.load(p)["labels"]) for key, p in zip(keys, paths,
                                                                                                     strict=True)]
    from SSSSegmentLib.phantoms.insertion import InsertionConfig, insert_into, prepare_background

    background = prepare_background(volume.hu_zyx, volume.geometry, InsertionConfig())
    cases = []
    for n, key in enumerate(keys):
        inserted = insert_into(background, np.random.default_rng(seed + n), keys=(key,))
        hu = np.rint(inserted.hu_zyx).astype(np.int16)  # as stored, so a run that reads them sees the same
        cases.append((key, hu.astype(np.float32), inserted.labels_zyx))
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(paths[n], hu=hu, labels=inserted.labels_zyx)
    return cases


def variant_rows(volume: CTVolume, model: api.LoadedModel, n_per_class: int, seed: int,
                 folder: Path | None = None) -> list[tuple]:
    """Per variant: (name, mL per class on the clean variant, Dice lists per class of the inserted cases)."""
    from real_geometry_variants import VARIANTS, transform

    cases = inserted_cases(volume, n_per_class, seed, folder)
    rows = []
    for name in VARIANTS:
        t0 = time.perf_counter()
        hu, _, geometry = transform(name, volume.hu_zyx, None, volume.geometry)
        clean = volume if name == "as is" else CTVolume(hu, geometry, source=name)
        ml = api.segment_volume(clean, model).volumes_ml
        scores: dict[str, list[float]] = {k: [] for k in KEYS}
        for key, hu_case, labels_case in cases:
            label = next(c.label for c in HEMORRHAGE_CLASSES if c.key == key)
            hu_v, labels_v, geometry_v = transform(name, hu_case, labels_case, volume.geometry)
            if not (labels_v == label).any():
                continue
            result = api.segment_volume(CTVolume(hu_v, geometry_v, source=f"inserted, {name}"), model)
            scores[key].append(dice(result.labels_zyx == label, labels_v == label))
        rows.append((name, ml, scores))
        print(f"{name}: {sum(ml.values()):.2f} mL on the clean variant ({time.perf_counter() - t0:.0f} s)", flush=True)
    return rows


def variant_report(scan: str, rows: list[tuple]) -> str:
    """Markdown: per variant the clean mL, the inserted Dice per class and its mean, and the change from as is."""
    lines = [f"Real-geometry variants of {scan}:", "",
             "| variant | mL, clean | " + " | ".join(KEYS) + " | mean Dice | vs as is |",
             "|---|---|" + "---|" * (len(KEYS) + 2)]
    base = None
    for name, ml, scores in rows:
        means = [statistics.fmean(scores[k]) for k in KEYS if scores[k]]
        mean = statistics.fmean(means) if means else float("nan")
        base = mean if base is None else base
        cells = " | ".join(f"{statistics.fmean(scores[k]):.2f} ({len(scores[k])})" if scores[k] else "-" for k in KEYS)
        lines.append(f"| {name} | {sum(ml.values()):.2f} | {cells} | {mean:.2f} | {mean - base:+.2f} |")
    return "\n".join(lines)


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
    rows, dice_rows, extra = [], [], []
    for scan in args.scans:
        t0 = time.perf_counter()
        volume = api.read_ct(scan)
        ml, notes = false_alarms(volume, model)
        rows.append((scan.name, ml, notes))
        print(f"{scan.name}: {sum(ml.values()):.2f} mL called ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.variants:
            extra.append(variant_report(scan.name, variant_rows(volume, model, args.inserted, args.seed, args.cases)))
        elif args.inserted:
            dice_rows.append((scan.name, inserted_dice(volume, model, args.inserted, args.seed)))
    text = "\n\n".join([report(rows, dice_rows), *extra]) if dice_rows else "\n\n".join([report(rows, []), *extra])
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"Model: {model.source}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
