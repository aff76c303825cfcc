"""``InteractiveSession``: fix a segmentation with clicks and boxes, slice by slice, with undo.

    from SSSSegmentLib import api
    from SSSSegmentLib.interactive import InteractiveSession
    model = api.load_model()
    session = InteractiveSession(volume, model, labels_zyx=result.labels_zyx)
    answer = session.add_prompt("IPH", slice_k=12, positive=[(140, 96)])   # (i, j) voxel indices
    answer.mask_ji                                                          # IPH on slice 12 now
    session.undo()

Frames: prompts are voxel indices (IJK) of ``volume``; ``labels_zyx`` / ``mask_ji`` are indexed
[k, j, i] / [j, i] on ``volume``'s grid. The model sees axial slices: a volume whose k-slices are
axial but whose axes are flipped or i/j swapped is worked on in the engine's axial orientation
(``volumes.orientation``) and every answer comes back on the input grid; a coronal or sagittal
volume is refused (its k-slices are not the slices the model reads).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, PromptError
from ..inference.encode import EncodedVolume
from ..volumes.geometry import CTVolume
from ..volumes.orientation import Reorientation, to_axial
from .cache import EmbeddingCache
from .config import InteractiveConfig
from .edits import ObjectState, SliceContext, draw_object, remove_region, separate_region
from .prompt import SlicePrompt, make_prompt


@dataclass(frozen=True)
class InteractionResult:
    """The answer to one prompt (or undo).

    label: the class (1..5) the interaction changed. slice_k: the prompted slice (input grid).
    mask_ji: bool (J, I), that class on that slice now. changed_slices: input k of every slice
    whose labels changed. timings_s: "encode" (slices encoded for this call) and "total".
    message: what happened, in a sentence (e.g. nothing of the class under a negative click).
    """

    label: int
    slice_k: int
    mask_ji: np.ndarray
    changed_slices: tuple[int, ...]
    timings_s: dict[str, float] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True, eq=False)
class _Entry:
    """Undo record: the slices an interaction changed as they were before, and the object then."""

    label: int
    slice_k: int
    old_slices: dict[int, np.ndarray]
    object_before: ObjectState | None


class InteractiveSession:
    """Prompts on one CT volume with one model (an ``api.LoadedModel`` or an ``SSSModel``).

    labels_zyx: uint8 (K, J, I) starting segmentation (e.g. the one-click result), zeros when None.
    encoded: the one-click run's ``EncodedVolume`` of the same (axial) array, reused instead of
    encoding slices again. device: where the model runs (default: the LoadedModel's, else CPU).
    """

    def __init__(self, volume: CTVolume, model: Any, labels_zyx: np.ndarray | None = None,
                 config: InteractiveConfig | None = None, device: Any = None,
                 encoded: EncodedVolume | None = None) -> None:
        import torch

        net = getattr(model, "model", model)
        device = device or getattr(model, "device", None) or torch.device("cpu")
        working, self._reorientation = _axial_working(volume)
        self._input_shape = volume.shape_zyx
        self._config = config or InteractiveConfig()
        self._labels = self._initial_labels(labels_zyx)
        net.eval()
        cache = EmbeddingCache(net, working.hu_zyx, torch.device(device), self._config.cache_slices,
                               self._config.encode_batch, encoded)
        spacing_zyx = tuple(float(s) for s in working.geometry.spacing_mm[::-1])
        self._ctx = SliceContext(net, cache, torch.device(device), working.hu_zyx, spacing_zyx, self._config)
        self._history: list[_Entry] = []
        self._object: ObjectState | None = None
        self.last_seconds: float | None = None

    @property
    def labels_zyx(self) -> np.ndarray:
        """Uint8 (K, J, I) on the input volume's grid: the segmentation as it stands (a copy)."""
        return np.ascontiguousarray(self._reorientation.to_input(self._labels)).copy()

    @property
    def cached_slices(self) -> int:
        """Slices whose image embedding the session holds now."""
        return self._ctx.cache.count

    def is_cached(self, slice_k: int) -> bool:
        """True when input slice ``slice_k``'s embedding is held (a click there needs no encoding)."""
        return self._ctx.cache.has(self._input_k(int(slice_k)))

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    def set_labels(self, labels_zyx: np.ndarray) -> None:
        """Start again from ``labels_zyx`` (input grid, e.g. after edits elsewhere); the undo history
        is cleared, the cached embeddings are kept."""
        self._labels = self._initial_labels(labels_zyx)
        self._history.clear()
        self._object = None

    def add_prompt(self, label: int | str, slice_k: float, positive=(), negative=(), box=None) -> InteractionResult:  # noqa: ANN001
        """Apply one prompt on input slice ``slice_k`` for class ``label`` (1..5 or "EDH" ... "SDH").

        positive / negative: voxel points (i, j) or (i, j, k); box: (i0, j0, i1, j1) opposite corners.
        Clicks of the same class on the same slice inside the last object's box refine that object;
        a negative click elsewhere removes the segment under it. Raises PromptError for a prompt
        outside the volume, on a slice the volume does not have, or of an unknown class.
        """
        t0, encode0 = time.perf_counter(), self._ctx.cache.encode_seconds
        prompt = self._to_working(make_prompt(label, slice_k, self._input_shape, positive, negative, box))
        before, object_before = self._labels.copy(), self._object
        message = self._apply(prompt)
        changed = [int(k) for k in np.flatnonzero((self._labels != before).any(axis=(1, 2)))]
        self._push(_Entry(prompt.label, prompt.slice_k, {k: before[k] for k in changed}, object_before))
        timings = {"encode": self._ctx.cache.encode_seconds - encode0, "total": time.perf_counter() - t0}
        self.last_seconds = timings["total"]
        return self._result(prompt.label, prompt.slice_k, changed, timings, message)

    def undo(self) -> InteractionResult:
        """Take back the last interaction; PromptError when there is none."""
        if not self._history:
            raise PromptError("nothing to undo")
        entry = self._history.pop()
        for k, old in entry.old_slices.items():
            self._labels[k] = old
        self._object = entry.object_before
        return self._result(entry.label, entry.slice_k, sorted(entry.old_slices), {}, "undone")

    def _apply(self, prompt: SlicePrompt) -> str:
        current = self._object
        if current is not None and current.takes(prompt, self._config.box_margin_px):
            self._object = draw_object(self._ctx, current.extended(prompt), self._labels)
            return "object refined"
        if prompt.has_positive:
            self._object = draw_object(self._ctx, ObjectState(prompt, self._labels.copy()), self._labels)
            return "object drawn"
        self._object = None
        if self._config.negative_redecode and separate_region(self._ctx, self._labels, prompt):
            return "the decoder kept the part of the segment away from the click"
        if remove_region(self._labels, prompt):
            return "segment under the click removed"
        return f"no voxel of class {prompt.label} under the click on slice {prompt.slice_k}: nothing removed"

    def _push(self, entry: _Entry) -> None:
        self._history.append(entry)
        del self._history[: max(0, len(self._history) - self._config.undo_depth)]

    def _result(self, label: int, k: int, changed: list[int], timings: dict[str, float],
                message: str) -> InteractionResult:
        k_in = self._input_k(k)
        labels = self._reorientation.to_input(self._labels)
        return InteractionResult(label, k_in, np.asarray(labels[k_in] == label),
                                 tuple(sorted(self._input_k(s) for s in changed)), timings, message)

    def _initial_labels(self, labels_zyx: np.ndarray | None) -> np.ndarray:
        if labels_zyx is None:
            return np.zeros(self._reorientation.working_shape_zyx(self._input_shape), dtype=np.uint8)
        labels = np.asarray(labels_zyx)
        if labels.shape != self._input_shape:
            raise InputError(f"labels shape {labels.shape} differs from the volume's {self._input_shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 5):
            raise InputError("labels must hold 0 (background) and 1..5 (EDH, IPH, IVH, SAH, SDH) only")
        return np.ascontiguousarray(self._reorientation.to_working(labels.astype(np.uint8)))

    def _input_k(self, k: int) -> int:
        return self._input_shape[0] - 1 - k if self._reorientation.flip[2] else k

    def _to_working(self, p: SlicePrompt) -> SlicePrompt:
        """``p`` (input grid) on the working grid: k maybe flipped, (j, i) maybe flipped or swapped."""
        if self._reorientation.is_identity:
            return p
        box = None
        if p.box_ji is not None:
            corners = _ji_to_working(self._reorientation, self._input_shape, np.reshape(p.box_ji, (2, 2)))
            box = (*corners.min(axis=0), *corners.max(axis=0))
        return SlicePrompt(p.label, self._input_k(p.slice_k),
                           _ji_to_working(self._reorientation, self._input_shape, p.positive_ji),
                           _ji_to_working(self._reorientation, self._input_shape, p.negative_ji),
                           tuple(int(v) for v in box) if box is not None else None)


def _axial_working(volume: CTVolume) -> tuple[CTVolume, Reorientation]:
    working, reorientation = to_axial(volume)
    if reorientation.source_axis[2] != 2:
        raise InputError(f"interactive refinement works on axial slices, and this volume's slices are "
                         f"{reorientation.input_plane} ({reorientation.input_code}): reformat it to axial first")
    return working, reorientation


def _ji_to_working(reo: Reorientation, shape_zyx: tuple[int, int, int], points_ji: np.ndarray) -> np.ndarray:
    """Int (P, 2) in-plane rows (j, i) of the input grid -> (j, i) of the working grid."""
    ij = np.asarray(points_ji, dtype=np.int64).reshape(-1, 2)[:, ::-1]  # (i, j), ITK axis order
    sizes = (shape_zyx[2], shape_zyx[1])
    out = np.empty_like(ij)
    for axis in (0, 1):
        src = reo.source_axis[axis]
        out[:, axis] = sizes[src] - 1 - ij[:, src] if reo.flip[axis] else ij[:, src]
    return out[:, ::-1]
