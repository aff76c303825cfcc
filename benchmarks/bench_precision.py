"""Benchmark: bf16 autocast (and optionally torch.compile) against fp32 for the model on the CPU.

Prints, per preset, the wall time of the SAM-2 image encoder and of the whole coarse path
(``SSSModel.coarse_logits_of``: encoder, DFE, coarse head) on random channels-last slices in fp32 and
under bf16 autocast, with the largest logit difference; with ``--labels`` the bundled model's
labels from ``segment_volume`` in fp32 and in bf16 on the real GE scan (when ``../shared`` has it)
and on phantoms, as voxels that differ, the smallest per-class Dice between the two runs and the
total volumes; with ``--compile`` the time ``torch.compile`` takes and the compiled coarse path's.
Nothing here changes the product: inference runs in fp32 on the CPU. Timings are not tests: run it
on an otherwise idle machine.

    .venv/bin/python benchmarks/bench_precision.py --preset tiny fast
    .venv/bin/python benchmarks/bench_precision.py --preset tiny --labels 8 --compile
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
GE_SCAN = ROOT.parent / "shared" / "data" / "ct_head_ge_tilted"
SLICES = {"tiny": 16, "fast": 4, "paper": 1}


def _bf16() -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _timed(fn, repeat: int = 2) -> tuple[float, torch.Tensor]:  # noqa: ANN001
    out = fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - start) / repeat, out


def speed(preset: str, compile_too: bool) -> None:
    from SSSSegmentLib import api

    net = api.load_model(preset, device="cpu", allow_untrained=True).model.eval()
    size = net.preset.image_size
    images = torch.randn(SLICES.get(preset, 1), 3, size, size).contiguous(memory_format=torch.channels_last)
    rows, logits = {}, {}
    with torch.no_grad():
        for name, ctx in (("fp32", contextlib.nullcontext), ("bf16", _bf16)):
            with ctx():
                rows[f"{name} encoder"], _ = _timed(lambda: net.sam.image_encoder(images))
                rows[f"{name} coarse path"], logits[name] = _timed(lambda: net.coarse_logits_of(images))
        if compile_too:
            compiled = torch.compile(net.coarse_logits_of)
            start = time.perf_counter()
            compiled(images)
            rows["torch.compile (first call)"] = time.perf_counter() - start
            rows["compiled coarse path"], _ = _timed(lambda: compiled(images))
    diff = (logits["bf16"].float() - logits["fp32"]).abs().max().item()
    print(f"{preset}: {images.shape[0]} slices of {size}, {torch.get_num_threads()} threads; "
          + ", ".join(f"{k} {v:.2f} s" for k, v in rows.items()) + f"; largest logit difference {diff:.3f}")


def labels(n_phantoms: int) -> None:
    from SSSSegmentLib import api
    from SSSSegmentLib.evaluation.metrics import dice
    from SSSSegmentLib.inference import encode, inference_config_for, segment_volume
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
    from SSSSegmentLib.volumes import read_volume

    model = api.load_model(device="cpu").model
    config = inference_config_for(model)
    volumes = {"GE scan": read_volume(GE_SCAN)} if GE_SCAN.is_dir() else {}
    for seed in range(810000, 810000 + n_phantoms):
        volumes[f"phantom {seed}"] = generate_phantom(seed, PhantomConfig(matrix=512)).to_ct_volume()
    plain = encode.autocast_for
    try:
        for name, volume in volumes.items():
            encode.autocast_for = plain
            a = segment_volume(volume, model, torch.device("cpu"), config)
            encode.autocast_for = lambda _device: _bf16()
            b = segment_volume(volume, model, torch.device("cpu"), config)
            la, lb = a.labels_zyx, b.labels_zyx
            scores = [dice(la == c, lb == c) for c in range(1, 6) if (la == c).any() or (lb == c).any()]
            print(f"{name}: {np.count_nonzero(la != lb)} voxels differ, smallest class Dice "
                  f"{min(scores, default=1.0):.4f}, {sum(a.volumes_ml.values()):.2f} mL fp32 vs "
                  f"{sum(b.volumes_ml.values()):.2f} mL bf16")
    finally:
        encode.autocast_for = plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["tiny", "fast"])
    parser.add_argument("--labels", type=int, default=0, metavar="N", help="also compare labels on N phantoms")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (tens of seconds)")
    args = parser.parse_args()
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        print("note: this CPU has no native bf16; autocast emulates it and is slow here")
    for preset in args.preset:
        speed(preset, args.compile)
    if args.labels:
        labels(args.labels)


if __name__ == "__main__":
    main()
