"""Interactive refinement on MRML nodes: markup positions (RAS) in, one class segment updated in place.

The Slicer module's Logic holds one :class:`RefineController` per (CT volume node, segmentation
node). Clicks arrive as world RAS points (markups), boxes as two opposite RAS corners (an ROI);
they become voxel indices (IJK) of the CT through its world IJK-to-RAS matrix and go to the engine's
:class:`~SSSSegmentLib.interactive.InteractiveSession`, in-process (the embeddings stay cached).
Only the segment of the prompted class (``SSSSeg_<KEY>``) is rewritten; every other segment of
the node, ours or the user's, is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..classes import CLASS_BY_LABEL, HEMORRHAGE_CLASSES
from ..errors import OutputError, PromptError
from .segmentations import (
    _labelmap_name,
    check_target_segmentation,
    labelmap_to_segmentation,
    oriented_image,
    segment_id,
    segmentation_to_labelmap,
)
from .volume_nodes import volume_node_to_ct, world_ijk_to_ras


class RefineController:
    """Prompts on ``volume_node`` that edit our segments of ``segmentation_node``.

    model: an ``api.LoadedModel``. A node without our five segments gets them (empty) first.
    If the segmentation was changed elsewhere (e.g. the Segment Editor) since our last write, the
    next prompt starts from what the node holds then (the undo history restarts there).
    """

    def __init__(self, volume_node: Any, segmentation_node: Any, model: Any, config: Any = None) -> None:
        from ..interactive import InteractiveSession

        check_target_segmentation(segmentation_node)
        self.volume_node, self.segmentation_node = volume_node, segmentation_node
        self._ct = volume_node_to_ct(volume_node)
        self._ras_to_ijk = np.linalg.inv(world_ijk_to_ras(volume_node))
        if not _has_our_segments(segmentation_node):
            labelmap_to_segmentation(np.zeros(self._ct.shape_zyx, np.uint8), self._ct.geometry, segmentation_node)
        self.session = InteractiveSession(self._ct, model, self._read_labels(), config)
        self._seen = self._node_state()

    @property
    def cached_slices(self) -> int:
        return self.session.cached_slices

    @property
    def last_seconds(self) -> float | None:
        return self.session.last_seconds

    def status(self) -> str:
        """The panel's line, e.g. "12 slices cached; last answer 48 ms"."""
        last = self.last_seconds
        answer = "no prompt yet" if last is None else f"last answer {1000 * last:.0f} ms"
        return f"{self.cached_slices} slice{'s' if self.cached_slices != 1 else ''} cached; {answer}"

    def add_prompt(self, label: int | str, positive_ras: Sequence[Sequence[float]] = (),
                   negative_ras: Sequence[Sequence[float]] = (),
                   box_ras: Sequence[Sequence[float]] | None = None) -> Any:
        """Apply clicks (RAS points, mm) and/or a box (two opposite RAS corners) for class ``label``.

        The slice is the one of the first point, or of the box's centre. Returns the engine's
        ``InteractionResult``; PromptError for points off the volume or on different slices.
        """
        self._resync()
        positive, negative = self.to_ijk(positive_ras), self.to_ijk(negative_ras)
        box, box_k = None, None
        if box_ras is not None:
            corners = self.to_ijk(box_ras)
            if corners.shape != (2, 3):
                raise PromptError("a box is two opposite corners (RAS points)")
            box, box_k = (*corners[0, :2], *corners[1, :2]), float(corners[:, 2].mean())
        first = next((p for p in (*positive, *negative)), None)
        if first is None and box_k is None:
            raise PromptError("a prompt needs at least one point or a box")
        slice_k = first[2] if first is not None else box_k
        result = self.session.add_prompt(label, slice_k, positive, negative, box)
        self._write(result.label)
        return result

    def undo(self) -> Any:
        """Take back the last prompt (PromptError when there is none); returns the engine's answer."""
        result = self.session.undo()
        self._write(result.label)
        return result

    def to_ijk(self, points_ras: Sequence[Sequence[float]]) -> np.ndarray:
        """Float (P, 3) voxel coordinates (i, j, k) of world RAS points (P, 3)."""
        ras = np.asarray(points_ras, dtype=np.float64).reshape(-1, 3)
        homogeneous = np.column_stack([ras, np.ones(len(ras))])
        return (homogeneous @ self._ras_to_ijk.T)[:, :3]

    def _write(self, label: int) -> None:
        """Replace segment ``SSSSeg_<KEY>`` of ``label`` with the session's mask of that class."""
        import slicer

        hclass = CLASS_BY_LABEL[label]
        mask = (self.session.labels_zyx == label).astype(np.uint8)
        image = oriented_image(mask, self._ct.geometry)
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        if not logic.SetBinaryLabelmapToSegment(image, self.segmentation_node, segment_id(hclass),
                                                logic.MODE_REPLACE, image.GetExtent()):
            raise OutputError(f"could not update segment {hclass.key} of '{self.segmentation_node.GetName()}'")
        self._seen = self._node_state()

    def _resync(self) -> None:
        if self._node_state() != self._seen:
            self.session.set_labels(self._read_labels())
            self._seen = self._node_state()

    def _read_labels(self) -> np.ndarray:
        return segmentation_to_labelmap(self.segmentation_node, self._ct.geometry, self._ct.shape_zyx)

    def _node_state(self) -> tuple[int, ...]:
        """Modification times of the segmentation and of our segments' labelmaps (edits change them)."""
        segmentation = self.segmentation_node.GetSegmentation()
        times = [segmentation.GetMTime()]
        for hclass in HEMORRHAGE_CLASSES:
            segment = segmentation.GetSegment(segment_id(hclass))
            layer = segment.GetRepresentation(_labelmap_name()) if segment is not None else None
            times.append(layer.GetMTime() if layer is not None else -1)
        return tuple(int(t) for t in times)


def load_refine_model(preset: str | None = None, device: str = "auto", checkpoint: str | None = None) -> Any:
    """The model for in-process refinement, chosen as the segment job chooses it (``SegmentOptions``):
    an SSS checkpoint or official SAM-2 weights (by suffix), else the bundled model of ``preset``, else
    the best bundled model installed. ``device``: a GUI choice (``gpu`` -> CUDA or MPS).

    Sets torch's threads in Slicer's process to the interactive default (``threads``: the usable cores
    less one, leaving a core to Slicer's UI; ``$SSSSEG_THREADS`` overrides it)."""
    from pathlib import Path

    from .. import api
    from ..threads import use_threads
    from .engine import SAM2_CHECKPOINT_SUFFIXES, engine_device

    use_threads(interactive=True)
    torch_device = engine_device(device)
    if checkpoint and Path(checkpoint).suffix.lower() in SAM2_CHECKPOINT_SUFFIXES:
        return api.load_model(preset, sam2_checkpoint=checkpoint, device=torch_device)
    return api.load_model(preset, checkpoint=checkpoint or None, device=torch_device)


def _has_our_segments(segmentation_node: Any) -> bool:
    segmentation = segmentation_node.GetSegmentation()
    return all(segmentation.GetSegment(segment_id(c)) is not None for c in HEMORRHAGE_CLASSES)
