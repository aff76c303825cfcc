"""Coarse candidates on the volume grid, streamed: slices in, a uint8 candidate map out.

The coarse head's probabilities (6, K, J, I) float32 are the largest array of a run (24 bytes a
voxel); the prompt generator only needs their arg-max candidate map (1 byte a voxel), so each batch
of slices is reduced as soon as it is encoded. A DICOM stack that reading resampled along k (gantry
tilt, uneven spacing: ``CTVolume.planes``) is encoded on its S acquired planes when S < K, and the
per-plane probabilities are blended onto the K output slices with the weights the HU got, as soon as
both planes of an output slice are in (``_PlaneBlender``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..progress import ProgressCallback, silent
from ..prompts.components import candidate_label_map
from ..volumes.geometry import AcquiredPlanes, CTVolume
from .encode import stream_probabilities
from .timing import StageClock

_GRID_CHUNK = 8  # output slices blended at once (bounds the float32 intermediate)


MIN_CAVITY_FRACTION = 0.02  # a slice "has intracranial content" when this much of it is cavity


def intracranial_slices(hu_kyx: np.ndarray, geometry: object) -> np.ndarray:
    """(K,) bool: the slices (K, J, I) whose intracranial cavity (``prompts.anatomy``) covers at least
    ``MIN_CAVITY_FRACTION`` of the slice; ``geometry`` gives the in-plane spacing."""
    from ..prompts.anatomy import intracranial_cavity

    cavity = intracranial_cavity(hu_kyx, geometry)
    return cavity.reshape(cavity.shape[0], -1).mean(axis=1) >= MIN_CAVITY_FRACTION


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
    intracranial_only: bool = False,
) -> tuple[np.ndarray, int, int]:
    """(candidates uint8 (K, J, I) on the volume grid, slices encoded, encoder batch size).

    ``candidates`` is ``candidate_label_map`` of the coarse probabilities at ``threshold``. With
    ``use_planes`` and acquired planes worth it (``acquired_planes``), the model sees the S acquired
    planes and their probabilities are blended onto the grid; otherwise it sees the K slices. With
    ``intracranial_only`` only the slices (planes) with intracranial content are encoded.
    """
    clock = clock or StageClock()
    planes = acquired_planes(volume) if use_planes else None
    candidates = np.empty(volume.shape_zyx, dtype=np.uint8)
    hu = volume.hu_zyx if planes is None else planes.hu_szyx
    wanted = None
    if intracranial_only:
        with clock.stage("slice_selection"):
            wanted = intracranial_slices(hu, volume.geometry)
    if planes is None:
        def reduce(lo: int, hi: int, probs: np.ndarray) -> None:
            candidates[lo:hi] = candidate_label_map(probs, threshold)

        on_batch = reduce
    else:
        on_batch = _PlaneBlender(planes, candidates, threshold).add
    batch = stream_probabilities(model, hu, device, on_batch, batch_size, progress, clock, log, wanted)
    return candidates, int(hu.shape[0] if wanted is None else wanted.sum()), batch


class _PlaneBlender:
    """Blends per-plane probabilities onto the output slices as soon as both planes of a slice are in.

    Output slice k needs planes ``lower[k]`` and ``lower[k] + 1``; ``lower`` never decreases with k,
    so after each batch of planes the slices it completes are blended (``AcquiredPlanes.to_grid``)
    and reduced to candidates, and the planes no later slice needs are let go: only about a batch of
    planes' probabilities is held at a time, whatever S is.
    """

    def __init__(self, planes: AcquiredPlanes, candidates: np.ndarray, threshold: float) -> None:
        self._planes, self._candidates, self._threshold = planes, candidates, threshold
        self._held: dict[int, np.ndarray] = {}  # plane s -> probabilities (6, J, I)
        self._next_k = 0

    def add(self, lo: int, hi: int, probs: np.ndarray) -> None:
        """Probabilities (6, hi - lo, J, I) of planes [lo, hi): blend every output slice they complete."""
        self._held.update({lo + n: probs[:, n] for n in range(hi - lo)})
        lower = self._planes.lower
        done = int(np.searchsorted(lower + 1, hi, side="left"))  # slices whose planes are all < hi
        for k0 in range(self._next_k, done, _GRID_CHUNK):
            ks = slice(k0, min(k0 + _GRID_CHUNK, done))
            on_grid = (self._planes.to_grid(self._label_planes(label), ks) for label in range(len(probs)))
            self._candidates[ks] = candidate_label_map(on_grid, self._threshold)  # one label at a time
        self._next_k = max(self._next_k, done)
        needed_from = int(lower[self._next_k]) if self._next_k < len(lower) else hi
        for s in [s for s in self._held if s < needed_from]:
            del self._held[s]

    def _label_planes(self, label: int) -> dict[int, np.ndarray]:
        return {s: p[label] for s, p in self._held.items()}
