"""Per-slice image embeddings of one volume, computed when a prompt needs them and kept near the work.

Frames: slices are k-slices of the working (axial) array ``hu_zyx`` (K, J, I). Embeddings are the
``SliceFeatures`` of :func:`inference.encode.encode_volume` (one slice each, on the CPU); the coarse
head's bleed probability comes with them, float32 (J, I) on the slice grid.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import torch

from ..inference.encode import EncodedVolume, concat_features, encode_volume, map_features


class EmbeddingCache:
    """Embeddings of at most ``capacity`` slices; the ones farthest from the focus slice are dropped.

    With ``encoded`` (the one-click run's encoder pass over the same array) every slice is already
    there and nothing is encoded again.
    """

    def __init__(self, model: torch.nn.Module, hu_zyx: np.ndarray, device: torch.device,
                 capacity: int, encode_batch: int, encoded: EncodedVolume | None = None) -> None:
        from ..model import SliceFrame

        self._model = model
        self._hu_zyx = hu_zyx
        self._device = device
        self._capacity = capacity
        self._encode_batch = encode_batch
        self._encoded = encoded
        self._features: dict[int, object] = {}
        self._fg: dict[int, np.ndarray] = {}
        self.frame = SliceFrame.for_slice(hu_zyx.shape[1:], model.preset.image_size)
        self.encode_seconds = 0.0  # total time spent encoding

    @property
    def count(self) -> int:
        """Slices whose embedding is held now."""
        return self._hu_zyx.shape[0] if self._encoded is not None else len(self._features)

    def has(self, k: int) -> bool:
        return self._encoded is not None or k in self._features

    def ensure(self, slices: Iterable[int], focus: int) -> None:
        """Encode the ``slices`` not held yet (contiguous runs batched), then trim around ``focus``."""
        wanted = sorted({int(k) for k in slices})
        missing = [k for k in wanted if not self.has(k)]
        for lo, hi in _runs(missing):
            self._encode(lo, hi)
        self._trim(focus, keep=set(wanted))

    def features(self, slices: list[int]) -> object:
        """SliceFeatures of ``slices`` (all held), batched in the order given."""
        if self._encoded is not None:
            index = torch.tensor(slices, dtype=torch.long)
            return map_features(self._encoded.features, lambda t: t.index_select(0, index))
        return concat_features([self._features[k] for k in slices])

    def fg_prob(self, k: int) -> np.ndarray:
        """Float32 (J, I): the coarse head's probability that a pixel of slice ``k`` is any bleed."""
        if self._encoded is not None:
            return 1.0 - self._encoded.prob_lzyx[0, k]
        return self._fg[k].astype(np.float32)

    def _encode(self, lo: int, hi: int) -> None:
        t0 = time.perf_counter()
        encoded = encode_volume(self._model, self._hu_zyx[lo:hi], self._device, self._encode_batch)
        for n, k in enumerate(range(lo, hi)):
            self._features[k] = map_features(encoded.features, lambda t, n=n: t[n : n + 1].clone())
            self._fg[k] = (1.0 - encoded.prob_lzyx[0, n]).astype(np.float16)
        self.encode_seconds += time.perf_counter() - t0

    def _trim(self, focus: int, keep: set[int]) -> None:
        extra = len(self._features) - self._capacity
        if self._encoded is not None or extra <= 0:
            return
        droppable = sorted((k for k in self._features if k not in keep), key=lambda k: -abs(k - focus))
        for k in droppable[:extra]:
            del self._features[k], self._fg[k]


def _runs(sorted_slices: list[int]) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) runs of a sorted list of slice indices."""
    runs: list[tuple[int, int]] = []
    for k in sorted_slices:
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k, k + 1))
    return runs
