"""Child-process probe for the benchmark: import time, model load time and the encoder floor.

Prints one JSON object: ``import_s`` (``sssseg segment``'s imports in a fresh interpreter),
``load_s`` (``api.load_model`` of the preset: the bundled model, else random weights),
``floor_s`` (the bare SAM-2 image encoder, warm, on ``--slices`` random model inputs in the
pipeline's CPU batch size) and ``threads`` (torch's intra-op threads).

    .venv/bin/python benchmarks/bench_parts.py --preset tiny --slices 28
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


def encoder_floor_s(model: object, n_slices: int) -> float:
    """Seconds of the bare image encoder (warm) on ``n_slices`` random inputs, in the pipeline's batches."""
    import torch

    from SSSSegmentLib.inference.encode import default_batch_size

    size = model.preset.image_size
    batch = default_batch_size(size, torch.device("cpu"))
    images = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        model.sam.image_encoder(images)  # warm-up
        start = time.perf_counter()
        for lo in range(0, n_slices, batch):
            model.sam.image_encoder(images[: min(batch, n_slices - lo)])
        return time.perf_counter() - start


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--slices", type=int, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    loaded = api.load_model(args.preset, allow_untrained=True, device="cpu")
    load_s = time.perf_counter() - start
    floor_s = encoder_floor_s(loaded.model.eval(), args.slices)
    print(json.dumps({"import_s": IMPORT_S, "load_s": load_s, "floor_s": floor_s,
                      "threads": torch.get_num_threads(), "trained": loaded.trained}))


if __name__ == "__main__":
    main()
