"""Candidate masks and their 26-connected 3D components, each seen through a small padded crop.

Arrays are indexed ``[k, j, i]``. A component is identified by its class ``label`` (1..5) and a
``component_id`` (1-based, scipy's raster order within the class), so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity in 3D
STRUCTURE_8 = np.ones((3, 3), dtype=bool)  # 8-connectivity in 2D


@dataclass(frozen=True, eq=False)
class ComponentView:
    """One connected component and the data around it.

    ``box``: the crop in volume coordinates (slices over k, j, i), the component's bounding box
    padded by a margin and clipped to the volume. ``mask``: bool (dk, dj, di), the component in
    that crop. ``hu``: float32 (dk, dj, di), raw CT values in the crop. ``spacing_zyx``: mm in
    array order (s_k, s_j, s_i).
    """

    label: int
    component_id: int
    box: tuple[slice, slice, slice]
    mask: np.ndarray
    hu: np.ndarray
    spacing_zyx: tuple[float, float, float]

    @property
    def n_voxels(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def volume_ml(self) -> float:
        return self.n_voxels * float(np.prod(self.spacing_zyx)) / 1000.0

    @property
    def mean_hu(self) -> float:
        return float(self.hu[self.mask].mean()) if self.n_voxels else float("nan")

    @property
    def slice_indices(self) -> np.ndarray:
        """Volume slice indices k the component occupies, ascending."""
        return np.flatnonzero(self.mask.any(axis=(1, 2))) + self.box[0].start


def candidate_label_map(prob_lzyx: np.ndarray | Iterable[np.ndarray], threshold: float) -> np.ndarray:
    """uint8 (K, J, I): the arg-max label where its probability is >= ``threshold``, else 0.

    ``prob_lzyx``: float (L, K, J, I) per-label probabilities, label 0 = background, or the L maps one
    by one (e.g. a generator, so they never exist together). Finite values: ties go to the lower
    label, as ``np.argmax``.
    """
    maps = iter(prob_lzyx)
    best = np.array(next(maps))  # a copy, in the maps' own dtype
    labels = np.zeros(best.shape, dtype=np.uint8)
    for label, prob in enumerate(maps, start=1):
        labels[prob > best] = label
        np.maximum(best, prob, out=best)
    labels[best < threshold] = 0
    return labels


def largest_region(mask_yx: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a 2D mask (the mask itself when it is empty)."""
    regions, count = ndimage.label(mask_yx, structure=STRUCTURE_8)
    if count <= 1:
        return mask_yx
    sizes = np.bincount(regions.ravel())[1:]
    return regions == 1 + int(sizes.argmax())


def padded_box(box: tuple[slice, ...], pad_zyx: tuple[int, int, int], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by ``pad_zyx`` voxels on each side, clipped to ``shape``."""
    return tuple(slice(max(s.start - p, 0), min(s.stop + p, n)) for s, p, n in zip(box, pad_zyx, shape, strict=True))


@dataclass(frozen=True, eq=False)
class ClassComponents:
    """26-connected components of one class, labelled inside ``crop`` (volume coordinates).

    ``labels``: int32 array over the crop, 0 = not this class, 1..n = component id.
    ``boxes``: per component, its tight bounding box in crop coordinates.
    """

    label: int
    crop: tuple[slice, slice, slice]
    labels: np.ndarray
    boxes: tuple[tuple[slice, slice, slice], ...]

    @property
    def count(self) -> int:
        return len(self.boxes)

    def slice_counts(self, n_slices: int) -> np.ndarray:
        """int64 (n, n_slices): voxels of each component in each volume slice k."""
        ks, _, _ = np.nonzero(self.labels)
        ids = self.labels[self.labels > 0].astype(np.int64) - 1
        flat = ids * n_slices + ks + self.crop[0].start
        return np.bincount(flat, minlength=self.count * n_slices).reshape(self.count, n_slices)


def class_components(candidates_zyx: np.ndarray, label: int, pad_zyx: tuple[int, int, int],
                     class_boxes: list | None = None) -> ClassComponents:
    """26-connected components of ``candidates_zyx == label``, labelled in a crop padded by ``pad_zyx``.

    ``class_boxes``: ``ndimage.find_objects(candidates_zyx)`` when the caller has it (one pass over
    the volume gives every class's bounding box); found here otherwise.
    """
    if class_boxes is None:
        class_boxes = ndimage.find_objects(candidates_zyx, max_label=label)
    box = class_boxes[label - 1] if label <= len(class_boxes) else None
    if box is None:
        empty = (slice(0, 0),) * 3
        return ClassComponents(label, empty, np.zeros((0, 0, 0), np.int32), ())
    crop = padded_box(box, pad_zyx, candidates_zyx.shape)
    labels, _ = ndimage.label(candidates_zyx[crop] == label, structure=STRUCTURE_26, output=np.int32)
    boxes = tuple(b for b in ndimage.find_objects(labels) if b is not None)
    return ClassComponents(label, crop, labels, boxes)


def component_view(
    comps: ClassComponents,
    component_id: int,
    hu_zyx: np.ndarray,
    pad_zyx: tuple[int, int, int],
    spacing_zyx: tuple[float, float, float],
) -> ComponentView:
    """The view of component ``component_id`` (1-based) with a margin of ``pad_zyx`` voxels."""
    local = padded_box(comps.boxes[component_id - 1], pad_zyx, comps.labels.shape)
    box = tuple(slice(c.start + s.start, c.start + s.stop) for c, s in zip(comps.crop, local, strict=True))
    mask = comps.labels[local] == component_id
    return ComponentView(comps.label, component_id, box, mask, hu_zyx[box], spacing_zyx)
