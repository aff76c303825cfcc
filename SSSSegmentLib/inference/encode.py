"""Encoder pass over a volume: slices in batches through SAM-2 (+DFE), coarse head on the volume grid.

Frames: the volume is ``hu_zyx`` (K, J, I); each axial slice k becomes one model image of S x S
pixels (``SliceFrame`` maps between slice pixels (x=i, y=j) and model pixels). Coarse
probabilities come back on the volume grid, (6, K, J, I), background first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..progress import ProgressCallback, silent
from .timing import StageClock

# Slices per encoder batch on the CPU, by preset image size (memory is not the limit there, cache is).
_CPU_BATCH_BY_SIZE = {256: 8, 512: 2, 1024: 1}
# Rough peak GPU memory per slice in a batch (MiB) by image size, measured with bf16 autocast.
_GPU_MIB_PER_SLICE = {256: 40, 512: 160, 1024: 640}


@dataclass
class EncodedVolume:
    """What the decoder and the prompt generator need from one encoder pass.

    features: per-slice SAM-2 features (a ``SliceFeatures`` with batch = K), kept on ``cache_device``.
    prob_lzyx: float32 (6, K, J, I) coarse per-label probabilities on the volume grid.
    frame: the ``SliceFrame`` mapping slice pixels <-> model pixels (same for every slice).
    batch_size: the batch size that finally worked (after any out-of-memory halving).
    """

    features: object
    prob_lzyx: np.ndarray
    frame: object
    batch_size: int


def default_batch_size(image_size: int, device: torch.device) -> int:
    """Encoder batch size for a device: preset default on CPU/MPS, from free memory on CUDA."""
    if device.type != "cuda":
        return _CPU_BATCH_BY_SIZE.get(image_size, 1)
    free_bytes, _ = torch.cuda.mem_get_info(device)
    per_slice = _GPU_MIB_PER_SLICE.get(image_size, 640) * 2**20
    return int(max(1, min(64, 0.6 * free_bytes // per_slice)))


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_bf16(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on the CPU when ``enabled`` (``InferenceConfig.bf16``), else nothing."""
    if enabled and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def map_features(features: object, fn: Callable[[torch.Tensor], torch.Tensor]) -> object:
    """Apply ``fn`` to every tensor of a features dataclass (tensors and lists of tensors)."""
    changes = {}
    for f in dataclasses.fields(features):
        value = getattr(features, f.name)
        if isinstance(value, torch.Tensor):
            changes[f.name] = fn(value)
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
            changes[f.name] = type(value)(fn(v) for v in value)
    return dataclasses.replace(features, **changes)


def concat_features(parts: list[object]) -> object:
    """Concatenate features dataclasses along the batch (slice) dimension."""
    first = parts[0]
    changes = {}
    for f in dataclasses.fields(first):
        values = [getattr(p, f.name) for p in parts]
        if isinstance(values[0], torch.Tensor):
            changes[f.name] = torch.cat(values)
        elif isinstance(values[0], (list, tuple)) and values[0] and isinstance(values[0][0], torch.Tensor):
            changes[f.name] = type(values[0])(torch.cat(level) for level in zip(*values, strict=True))
    return dataclasses.replace(first, **changes)


def is_out_of_memory(error: BaseException) -> bool:
    """True for a CUDA (or MPS) out-of-memory error."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _batches(n: int, size: int, start: int = 0) -> Iterator[tuple[int, int]]:
    for lo in range(start, n, size):
        yield lo, min(n, lo + size)


def run_batched(
    n: int,
    batch_size: int,
    step: Callable[[int, int], None],
    on_oom: Callable[[int], None] | None = None,
) -> int:
    """Call ``step(lo, hi)`` over [0, n) in batches; on out-of-memory halve the batch and retry.

    Returns the batch size that completed. Gives up (re-raises) when one slice does not fit.
    """
    lo = 0
    while lo < n:
        hi = min(n, lo + batch_size)
        try:
            step(lo, hi)
        except (RuntimeError, torch.OutOfMemoryError) as error:
            if not is_out_of_memory(error) or batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if on_oom is not None:
                on_oom(batch_size)
            continue
        lo = hi
    return batch_size


def slice_probabilities(frame: object, logits: torch.Tensor) -> np.ndarray:
    """Coarse logits (b, 6, h, w) in model space -> softmax probabilities float32 (6, b, J, I) on the
    slice grid of ``frame`` (all labels resampled in one call)."""
    probs = torch.softmax(logits.float(), dim=1)
    b, labels = probs.shape[:2]
    on_slice = frame.masks_to_slice(probs.reshape(b * labels, *probs.shape[2:]).cpu())
    return on_slice.reshape(b, labels, *on_slice.shape[1:]).transpose(0, 1).numpy()


def _encode_batch(
    model: torch.nn.Module, hu_kyx: np.ndarray, device: torch.device, clock: StageClock,
    outputs: Literal["both", "features", "coarse"] = "both", fast: bool = True,
) -> tuple[object, torch.Tensor | None, object]:
    """(features, coarse logits (b, 6, S/2, S/2), frame) of slices (b, J, I) in HU; ``outputs`` says
    which are computed (the other is None; "coarse" computes only the coarse head's inputs,
    ``SSSModel.coarse_logits_of``). Timed into ``clock`` as preprocess, encoder (the SAM-2 image
    encoder) and dfe_head (DFE, decoder projections, coarse head). ``fast`` on the CPU: channels-last
    images, so oneDNN's convolutions skip their layout conversions (DFE + head about 20 % faster;
    logits differ by about 1e-5 from the plain layout's, labels by Dice >= 0.999, see
    Testing/test_fast_paths.py)."""
    from ..model import ct_to_model_input

    with clock.stage("preprocess"):
        images, frame = ct_to_model_input(hu_kyx, model.preset.image_size)
        images = images.to(device)
        if fast and device.type == "cpu":
            images = images.contiguous(memory_format=torch.channels_last)
    encoder = getattr(getattr(model, "sam", None), "image_encoder", None)
    encoder_before = clock.seconds.get("encoder", 0.0)
    start = time.perf_counter()
    timed = clock.module(encoder, "encoder") if encoder is not None else contextlib.nullcontext()
    with timed, autocast_for(device):
        if outputs == "coarse":
            feats, logits = None, model.coarse_logits_of(images)
        else:
            feats = model.encode(images)
            logits = model.coarse_logits(feats) if outputs == "both" else None
    clock.add("dfe_head", time.perf_counter() - start - (clock.seconds.get("encoder", 0.0) - encoder_before))
    return feats, logits, frame


@torch.no_grad()
def stream_probabilities(
    model: torch.nn.Module,
    hu_kyx: np.ndarray,
    device: torch.device,
    on_batch: Callable[[int, int, np.ndarray], None],
    batch_size: int | None = None,
    progress: ProgressCallback = silent,
    clock: StageClock | None = None,
    log: Callable[[str], None] | None = None,
    wanted: np.ndarray | None = None,
) -> int:
    """Coarse per-label probabilities of every slice, batch by batch, keeping nothing.

    hu_kyx: float32 (K, J, I) in HU. ``on_batch(lo, hi, probs)`` receives float32 (6, hi - lo, J, I)
    for slices [lo, hi) and reduces them (memory then does not grow with K). ``wanted`` (K,) bool:
    only those slices run through the model; the others get background probability 1. Times go to
    ``clock`` (preprocess, encoder, dfe_head, to_grid). Returns the batch size that finally worked.
    """
    clock = clock or StageClock()
    order = np.arange(hu_kyx.shape[0]) if wanted is None else np.flatnonzero(wanted)
    n_slices = hu_kyx.shape[0]

    def step(lo: int, hi: int) -> None:
        ks = order[lo:hi]
        _, logits, frame = _encode_batch(model, hu_kyx[ks], device, clock, "coarse")
        with clock.stage("to_grid"):
            probs = slice_probabilities(frame, logits)
            if wanted is None:
                on_batch(int(ks[0]), int(ks[-1]) + 1, probs)
            else:
                _emit_with_background(on_batch, ks, probs, order, lo, hi, n_slices)
        progress("encode", 0.1 + 0.6 * hi / max(1, len(order)), f"slice {hi}/{len(order)}")

    batch = batch_size or default_batch_size(model.preset.image_size, device)
    if not len(order):
        shape = (6, n_slices, *hu_kyx.shape[1:])
        on_batch(0, n_slices, _background(shape))
        return batch
    return run_batched(len(order), batch, step, _oom_logger(log))


def _background(shape: tuple[int, ...]) -> np.ndarray:
    """Probabilities (6, n, J, I): background 1, every class 0."""
    probs = np.zeros(shape, dtype=np.float32)
    probs[0] = 1.0
    return probs


def _emit_with_background(on_batch: Callable[[int, int, np.ndarray], None], ks: np.ndarray, probs: np.ndarray,
                          order: np.ndarray, lo: int, hi: int, n_slices: int) -> None:
    """Hand the encoded slices ``ks`` = ``order[lo:hi]`` (probabilities (6, len(ks), J, I)) to
    ``on_batch`` in k order with the skipped slices as background: those before the first encoded
    slice (first batch only), between them, and after them up to the next encoded slice (or K), so
    ``on_batch`` sees consecutive runs covering 0..K exactly once."""
    first, end = int(ks[0]), int(ks[-1]) + 1
    if lo == 0 and first > 0:
        on_batch(0, first, _background((probs.shape[0], first, *probs.shape[2:])))
    on_batch(first, end, _scatter(probs, ks))
    stop = int(order[hi]) if hi < len(order) else n_slices
    if stop > end:
        on_batch(end, stop, _background((probs.shape[0], stop - end, *probs.shape[2:])))


def _scatter(probs: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Probabilities of slices ``ks`` (sorted, maybe with gaps) on the contiguous run ks[0]..ks[-1]."""
    out = _background((probs.shape[0], int(ks[-1] - ks[0]) + 1, *probs.shape[2:]))
    out[:, ks - ks[0]] = probs
    return out


@torch.no_grad()
def encode_features(
    model: torch.nn.Module,
    hu_kyx: np.ndarray,
    device: torch.device,
    batch_size: int | None = None,
    clock: StageClock | None = None,
    cache_device: torch.device | None = None,
) -> tuple[object, object]:
    """Decoder features of the slices (K, J, I) in HU (a ``SliceFeatures`` with batch = K, on
    ``cache_device``, default CPU) and their ``SliceFrame``; e.g. only the slices that hold prompts."""
    clock = clock or StageClock()
    parts: list[object] = []
    frames: list[object] = []

    def step(lo: int, hi: int) -> None:
        feats, _, frame = _encode_batch(model, hu_kyx[lo:hi], device, clock, "features")
        frames.append(frame)
        parts.append(_decoder_features(feats, cache_device))

    run_batched(hu_kyx.shape[0], batch_size or default_batch_size(model.preset.image_size, device), step)
    return concat_features(parts), frames[0]


def _decoder_features(feats: object, cache_device: torch.device | None) -> object:
    """Drop what only the coarse head needs (stride-4 FPN map, detail stem), move to ``cache_device``."""
    empty = feats.fpn_stride4.new_empty((feats.batch_size, 0))
    feats = dataclasses.replace(feats, fpn_stride4=empty, detail=empty)
    return map_features(feats, lambda t: t.float().to(cache_device or torch.device("cpu")))


def _oom_logger(log: Callable[[str], None] | None) -> Callable[[int], None]:
    def on_oom(new_size: int) -> None:
        if log:
            log(f"out of GPU memory: retrying with {new_size} slice(s) per batch")

    return on_oom


@torch.no_grad()
def encode_volume(
    model: torch.nn.Module,
    hu_zyx: np.ndarray,
    device: torch.device,
    batch_size: int | None = None,
    progress: ProgressCallback = silent,
    cache_device: torch.device | None = None,
    log: Callable[[str], None] | None = None,
    clock: StageClock | None = None,
) -> EncodedVolume:
    """Encode every axial slice and compute coarse per-label probabilities on the volume grid.

    The plain reference path: it keeps every slice's features and the full probability volume
    (memory grows with K; ``stream_probabilities`` keeps neither). hu_zyx: float32 (K, J, I) in HU.
    Returns features for all K slices (on ``cache_device``, default CPU) and ``prob_lzyx`` float32
    (6, K, J, I).
    """
    clock = clock or StageClock()
    n_slices = hu_zyx.shape[0]
    batch = batch_size or default_batch_size(model.preset.image_size, device)
    prob_lzyx = np.zeros((6, *hu_zyx.shape), dtype=np.float32)
    parts: list[object] = []
    frames: list[object] = []

    def step(lo: int, hi: int) -> None:
        feats, logits, frame = _encode_batch(model, hu_zyx[lo:hi], device, clock, fast=False)
        frames.append(frame)
        with clock.stage("to_grid"):
            prob_lzyx[:, lo:hi] = slice_probabilities(frame, logits)
        parts.append(_decoder_features(feats, cache_device))
        progress("encode", 0.1 + 0.6 * hi / n_slices, f"slice {hi}/{n_slices}")

    final_batch = run_batched(n_slices, batch, step, _oom_logger(log))
    return EncodedVolume(concat_features(parts), prob_lzyx, frames[0], final_batch)
