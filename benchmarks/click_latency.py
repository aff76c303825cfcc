"""Benchmark: interactive click latency while other CPU-bound processes run, for several thread counts.

One unseen phantom with a bleed (seed 810000 on) is segmented automatically; then, for each torch
thread count asked, a fresh ``InteractiveSession`` takes a positive click at the most interior voxel
of the largest bleed (in brain, never in air), then ``--clicks`` more clicks around it, each undone
before the next, while ``--busy`` other processes spin on the CPU. Prints, per thread count, the first
click (its slices encoded) and the median and 90th percentile of the clicks on cached slices, with
the machine's load average before and after.

    .venv/bin/python benchmarks/click_latency.py --busy 1 --threads 1 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="torch thread counts to time (default: the interactive default, SSSSegmentLib.threads)")
    p.add_argument("--busy", type=int, default=1, help="CPU-bound processes running meanwhile (default 1)")
    p.add_argument("--clicks", type=int, default=20, help="clicks on cached slices per thread count")
    p.add_argument("--seed", type=int, default=810000, help="first phantom seed (810000 on: never trained on)")
    p.add_argument("--matrix", type=int, default=512)
    return p.parse_args(argv)


def bleed_phantom(seed: int, matrix: int):  # noqa: ANN201  (Phantom)
    """The first phantom from ``seed`` on that has a bleed."""
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

    while True:
        phantom = generate_phantom(seed, PhantomConfig(matrix=matrix))
        if phantom.labels_zyx.any():
            return phantom
        seed += 1


def start_busy(count: int) -> list[subprocess.Popen]:
    """``count`` processes that spin on the CPU until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop_busy(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def time_clicks(volume, model, auto: np.ndarray, click, clicks: int) -> tuple[float, list[float]]:  # noqa: ANN001
    """(first click's seconds, seconds of each later click on cached slices); every click is undone."""
    from SSSSegmentLib.interactive import InteractiveSession

    session = InteractiveSession(volume, model, labels_zyx=auto)
    first = session.add_prompt(click.label, click.slice_k, positive=[(click.i, click.j)]).timings_s["total"]
    session.undo()
    cached = []
    offsets = [(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)]
    for n in range(clicks):
        di, dj = offsets[n % len(offsets)]
        answer = session.add_prompt(click.label, click.slice_k, positive=[(click.i + di, click.j + dj)])
        if answer.timings_s.get("encode", 0.0) == 0.0:
            cached.append(answer.timings_s["total"])
        session.undo()
    return first, cached


def main(argv: list[str] | None = None) -> int:
    import torch

    from SSSSegmentLib import api
    from SSSSegmentLib.interactive.simulate import largest_error_click
    from SSSSegmentLib.threads import default_threads
    from SSSSegmentLib.volumes.geometry import CTVolume

    args = parse_args(argv)
    thread_counts = args.threads or [default_threads(interactive=True)]
    model = api.load_model(device="cpu")
    phantom = bleed_phantom(args.seed, args.matrix)
    volume = CTVolume(phantom.hu_zyx.astype(np.float32), phantom.geometry)
    auto = api.segment_volume(volume, model).labels_zyx
    click = largest_error_click(phantom.labels_zyx, np.zeros_like(auto), phantom.geometry.spacing_mm[::-1])
    hu = float(volume.hu_zyx[click.slice_k, click.j, click.i])
    print(f"phantom seed {phantom.seed}, click: class {click.label} at (i, j) = ({click.i}, {click.j}) on slice "
          f"{click.slice_k} ({hu:.0f} HU); {os.cpu_count()} CPUs, {args.busy} busy process(es); "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
    for threads in thread_counts:
        torch.set_num_threads(threads)
        load_before = os.getloadavg()[0]
        busy = start_busy(args.busy)
        try:
            time.sleep(1.0)
            first, cached = time_clicks(volume, model, auto, click, args.clicks)
        finally:
            stop_busy(busy)
        print(f"threads {threads}: first click {first * 1000:.0f} ms; cached clicks median "
              f"{np.median(cached) * 1000:.0f} ms, 90th percentile {np.percentile(cached, 90) * 1000:.0f} ms "
              f"(n={len(cached)}); load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
