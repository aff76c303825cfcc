"""Benchmark: Dice after simulated clicks, and click latency, of interactive refinement.

Each unseen phantom (seeds 810000+) is segmented automatically; then a simulated user clicks at the
centre of the largest error region (positive on a miss, negative on a false alarm), one click at a
time, through ``InteractiveSession`` (a click that changed nothing is not repeated: the next
largest region gets the next click). Reports the mean Dice after 0, 1, 3 and 5 clicks and the
wall time of each click: on a slice whose embedding is cached, and the first click on an uncached
slice (its encoding included). Optionally the latency of the ``fast`` preset with random weights.

    flock /tmp/heavy.lock .venv/bin/python benchmarks/interactive_clicks.py --cases 16 --fast-untrained
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

REPORT_AFTER = (0, 1, 3, 5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=16, help="phantoms with a bleed to use")
    p.add_argument("--seed", type=int, default=810000, help="first phantom seed (810000+: never trained on)")
    p.add_argument("--matrix", type=int, default=512, help="in-plane matrix of the phantoms")
    p.add_argument("--clicks", type=int, default=5)
    p.add_argument("--checkpoint", type=Path, default=None, help="SSS checkpoint (default: the bundled model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fast-untrained", action="store_true", help="also time clicks with preset fast, random weights")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an InteractiveConfig setting (yaml value), e.g. --set propagate=false")
    p.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")
    return p.parse_args(argv)


def bleed_phantoms(args: argparse.Namespace):  # noqa: ANN201  (iterator of Phantom)
    """The first ``args.cases`` phantoms from ``args.seed`` on that have a bleed."""
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

    seed, found = args.seed, 0
    while found < args.cases:
        phantom = generate_phantom(seed, PhantomConfig(matrix=args.matrix))
        seed += 1
        if phantom.labels_zyx.any():
            found += 1
            yield phantom


def interactive_config(settings: list[str]):  # noqa: ANN201  (InteractiveConfig)
    import yaml

    from SSSSegmentLib.interactive import InteractiveConfig

    values = {}
    for item in settings:
        key, _, value = item.partition("=")
        values[key.strip()] = yaml.safe_load(value)
    return InteractiveConfig.from_dict(values)


def run_case(phantom, model, clicks: int, config) -> tuple[list[float], list[dict]]:  # noqa: ANN001
    """Dice after 0..clicks clicks, and one timing record per click."""
    from SSSSegmentLib import api
    from SSSSegmentLib.interactive import InteractiveSession
    from SSSSegmentLib.interactive.simulate import case_dice, largest_error_click
    from SSSSegmentLib.volumes.geometry import CTVolume

    volume = CTVolume(phantom.hu_zyx.astype(np.float32), phantom.geometry)
    truth = phantom.labels_zyx
    auto = api.segment_volume(volume, model).labels_zyx
    session = InteractiveSession(volume, model, labels_zyx=auto, config=config)
    spacing_zyx = tuple(phantom.geometry.spacing_mm[::-1])
    dice, timings, futile = [case_dice(truth, session.labels_zyx)], [], []
    for _ in range(clicks):
        click = largest_error_click(truth, session.labels_zyx, spacing_zyx, futile)
        if click is None:
            dice.append(dice[-1])
            continue
        cached = session.is_cached(click.slice_k)
        point = [(click.i, click.j)]
        answer = session.add_prompt(click.label, click.slice_k, positive=point if click.positive else (),
                                    negative=() if click.positive else point)
        timings.append({"cached": cached, **answer.timings_s})
        if not answer.changed_slices:
            futile.append(click)
        dice.append(case_dice(truth, session.labels_zyx))
    return dice, timings


def fast_untrained_latency(phantom) -> dict[str, float]:  # noqa: ANN001
    """Seconds of a first click on an uncached slice and of clicks on cached ones, preset fast, random weights,
    for the clicked slice alone: propagation is off, since random weights propagate anywhere."""
    from SSSSegmentLib import api
    from SSSSegmentLib.interactive import InteractiveConfig, InteractiveSession
    from SSSSegmentLib.interactive.simulate import largest_error_click
    from SSSSegmentLib.volumes.geometry import CTVolume

    model = api.load_model(preset="fast", device="cpu", allow_untrained=True)
    volume = CTVolume(phantom.hu_zyx.astype(np.float32), phantom.geometry)
    nothing = np.zeros_like(phantom.labels_zyx)
    click = largest_error_click(phantom.labels_zyx, nothing, phantom.geometry.spacing_mm[::-1])
    session = InteractiveSession(volume, model, config=InteractiveConfig(propagate=False))
    first = session.add_prompt(click.label, click.slice_k, positive=[(click.i, click.j)]).timings_s["total"]
    session.undo()
    cached = []
    for offset in (0, 3, -3):
        answer = session.add_prompt(click.label, click.slice_k, positive=[(click.i + offset, click.j)])
        if answer.timings_s["encode"] == 0.0:
            cached.append(answer.timings_s["total"])
        session.undo()
    return {"first_uncached": first, "cached_median": float(np.median(cached)) if cached else float("nan"),
            "cached_n": len(cached)}


def report(dice: np.ndarray, timings: list[dict], fast: dict | None, args: argparse.Namespace,
           seconds: float, source: str) -> str:
    cached = [t["total"] for t in timings if t["cached"] and t["encode"] == 0.0]
    first = [t["total"] for t in timings if not t["cached"]]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Interactive refinement, {stamp}, {platform.machine()} CPU, {torch.get_num_threads()} threads; "
        f"model: {source}.",
        f"{dice.shape[0]} unseen phantoms with a bleed (seeds from {args.seed}, matrix {args.matrix}); "
        "Dice per case = mean over the classes in the truth or the prediction.",
        "",
        "| clicks | " + " | ".join(str(n) for n in REPORT_AFTER if n <= args.clicks) + " |",
        "|---|" + "---|" * len([n for n in REPORT_AFTER if n <= args.clicks]),
        "| mean Dice | " + " | ".join(f"{dice[:, n].mean():.3f}" for n in REPORT_AFTER if n <= args.clicks) + " |",
        "",
        f"Settings changed: {', '.join(args.set) or 'none'}.",
        f"Click latency (whole interaction, propagation included), cached slice: median "
        f"{_ms(np.median(cached)) if cached else 'n/a'}, 90th percentile "
        f"{_ms(np.percentile(cached, 90)) if cached else 'n/a'} ({len(cached)} clicks); "
        f"first click on an uncached slice: median {_ms(np.median(first)) if first else 'n/a'} ({len(first)} clicks).",
    ]
    if fast is not None:
        lines.append(f"Preset fast (random weights; the clicked slice alone, propagation off): first click on an "
                     f"uncached slice {_ms(fast['first_uncached'])}, cached slice median "
                     f"{_ms(fast['cached_median'])} ({fast['cached_n']} clicks).")
    lines.append(f"Total wall time {seconds / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    from SSSSegmentLib import api

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = api.load_model(checkpoint=args.checkpoint, device="cpu")
    config = interactive_config(args.set)
    dice_rows, timings, first_phantom = [], [], None
    for phantom in bleed_phantoms(args):
        first_phantom = first_phantom or phantom
        dice, times = run_case(phantom, model, args.clicks, config)
        dice_rows.append(dice)
        timings += times
        print(f"seed {phantom.seed}: Dice " + " ".join(f"{d:.3f}" for d in dice), flush=True)
    text = report(np.asarray(dice_rows), timings, None, args, time.perf_counter() - t0, model.source)
    write(text, args.out)
    if args.fast_untrained:
        fast = fast_untrained_latency(first_phantom)
        write(report(np.asarray(dice_rows), timings, fast, args, time.perf_counter() - t0, model.source), args.out)
    return 0


def write(text: str, out: Path | None) -> None:
    print(text, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
