"""Child-process probe for the benchmark: import time, model load time and the encoder floor.

Prints one JSON object: ``import_s`` (``sssseg segment``'s imports in a fresh interpreter),
``load_s`` (``api.load_model`` of the preset: the bundled model, else random weights),
``floor_s`` (the bare SAM-2 image encoder, warm, on ``--slices`` random model inputs in the
pipeline's batch size for ``--device``, with the pipeline's autocast: bf16 on CUDA),
``encoder_gflop`` (the encoder's floating-point operations per slice, counted by
``torch.utils.flop_counter``; 267 for the ``paper`` preset's Hiera-S at 1024, the figure published
for it) and ``threads`` (torch's intra-op threads).

    .venv/bin/python benchmarks/bench_parts.py --preset tiny --slices 28
    .venv/bin/python benchmarks/bench_parts.py --preset paper --slices 40 --device cuda
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import SSSSegmentLib.cli  # noqa: E402, F401
from SSSSegmentLib import api  # noqa: E402
from SSSSegmentLib.inference import segment_volume  # noqa: E402, F401

IMPORT_S = time.perf_counter() - START


def encoder_floor_s(model: object, n_slices: int, device: object) -> float:
    """Seconds of the bare image encoder (warm) on ``n_slices`` random inputs, in the pipeline's batches
    and autocast for ``device`` (a ``torch.device``; CUDA work is waited for)."""
    import torch

    from SSSSegmentLib.inference.encode import autocast_for, default_batch_size

    size = model.preset.image_size
    batch = default_batch_size(size, device)
    images = torch.randn(batch, 3, size, size, device=device)
    with torch.no_grad(), autocast_for(device):
        model.sam.image_encoder(images)  # warm-up
        _synchronize(device)
        start = time.perf_counter()
        for lo in range(0, n_slices, batch):
            model.sam.image_encoder(images[: min(batch, n_slices - lo)])
        _synchronize(device)
        return time.perf_counter() - start


def encoder_gflop_per_slice(model: object) -> float:
    """The image encoder's floating-point operations on one slice, in GFLOP (multiply-adds count 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    size = model.preset.image_size
    image = torch.zeros(1, 3, size, size, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.sam.image_encoder(image)
    return counter.get_total_flops() / 1e9


def _synchronize(device: object) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--slices", type=int, required=True)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    args = parser.parse_args()
    start = time.perf_counter()
    loaded = api.load_model(args.preset, allow_untrained=True, device=args.device)
    load_s = time.perf_counter() - start
    model = loaded.model.eval()
    floor_s = encoder_floor_s(model, args.slices, loaded.device)
    print(json.dumps({"import_s": IMPORT_S, "load_s": load_s, "floor_s": floor_s,
                      "encoder_gflop": encoder_gflop_per_slice(model), "device": str(loaded.device),
                      "threads": torch.get_num_threads(), "trained": loaded.trained}))


if __name__ == "__main__":
    main()
