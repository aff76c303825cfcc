"""Coarse candidates on the volume grid, streamed: slices in, a uint8 candidate map out.

The coarse head's probabilities (6, K, J, I) float32 are the largest array of a run (24 bytes a
voxel); the prompt generator only needs their arg-max candidate map (1 byte a voxel), so each batch
of slices is reduced as soon as it is encoded. A DICOM stack that reading resampled along k (gantry
tilt, uneven spacing: ``CTVolume.planes``) is encoded on its S acquired planes when S < K, and the
per-plane probabilities are blended onto the K output slices with the weights the HU got.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..progress import ProgressCallback, silent
from ..prompts.components import candidate_label_map
from ..volumes.geometry import CTVolume
from ..volumes.stack_resample import AcquiredPlanes
from .encode import stream_probabilities
from .timing import StageClock

_GRID_CHUNK = 8  # output slices blended at once (bounds the float32 intermediate)


def acquired_planes(volume: CTVolume) -> AcquiredPlanes | None:
    """The volume's acquired planes when encoding them is less work than its K slices, else None."""
    planes = volume.planes
    if planes is None or planes.n_planes >= planes.n_slices or planes.n_slices != volume.shape_zyx[0]:
        return None
    return planes if tuple(planes.hu_szyx.shape[1:]) == volume.shape_zyx[1:] else None


def coarse_candidates(
    model: torch.nn.Module,
    volume: CTVolume,
    device: torch.device,
    threshold: float,
    use_planes: bool = True,
    batch_size: int | None = None,
    progress: ProgressCallback = silent,
    clock: StageClock | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, int, int]:
    """(candidates uint8 (K, J, I) on the volume grid, slices encoded, encoder batch size).

    ``candidates`` is ``candidate_label_map`` of the coarse probabilities at ``threshold``. With
    ``use_planes`` and acquired planes worth it (``acquired_planes``), the model sees the S acquired
    planes and their probabilities are blended onto the grid; otherwise it sees the K slices.
    """
    clock = clock or StageClock()
    planes = acquired_planes(volume) if use_planes else None
    candidates = np.empty(volume.shape_zyx, dtype=np.uint8)
    if planes is None:
        def reduce(lo: int, hi: int, probs: np.ndarray) -> None:
            candidates[lo:hi] = candidate_label_map(probs, threshold)

        batch = stream_probabilities(model, volume.hu_zyx, device, reduce, batch_size, progress, clock, log)
        return candidates, volume.shape_zyx[0], batch
    prob_lszyx = np.empty((6, *planes.hu_szyx.shape), dtype=np.float32)

    def keep(lo: int, hi: int, probs: np.ndarray) -> None:
        prob_lszyx[:, lo:hi] = probs

    batch = stream_probabilities(model, planes.hu_szyx, device, keep, batch_size, progress, clock, log)
    with clock.stage("to_grid"):
        for k0 in range(0, planes.n_slices, _GRID_CHUNK):
            ks = slice(k0, k0 + _GRID_CHUNK)
            on_grid = (planes.to_grid(prob, ks) for prob in prob_lszyx)  # one label's map at a time
            candidates[ks] = candidate_label_map(on_grid, threshold)
    return candidates, planes.n_planes, batch
