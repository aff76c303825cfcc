"""Interactive refinement on MRML nodes (slicer_bridge.refine_session), headless with slicer-core.

The bundled tiny model on a phantom (seed 820000: an IPH on slices 4-8 and an SDH on slices 5-11),
written into a real volume node on an oblique, shifted grid, so any RAS/IJK slip shows.
"""

from __future__ import annotations

import numpy as np
import pytest
import slicer  # slicer-core: headless MRML

from SSSSegmentLib import api
from SSSSegmentLib.classes import CLASS_BY_KEY
from SSSSegmentLib.errors import PromptError
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
from SSSSegmentLib.prompts.prompting import spread_points
from SSSSegmentLib.slicer_bridge.refine_session import RefineController
from SSSSegmentLib.slicer_bridge.segmentations import (
    labelmap_to_segmentation,
    oriented_image,
    segment_id,
    segment_mask,
)
from SSSSegmentLib.slicer_bridge.volume_nodes import ct_to_volume_node
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry

IPH, SDH = 2, 5
_C, _S = np.cos(0.2), np.sin(0.2)


@pytest.fixture(scope="module")
def model() -> api.LoadedModel:
    return api.load_model(preset="tiny", device="cpu")


@pytest.fixture(scope="module")
def phantom():  # noqa: ANN201
    config = PhantomConfig(matrix=192, num_slices=16, p_no_lesion=0.0, max_lesions=2, lesion_keys=("IPH", "SDH"),
                           lesion_size_quantiles=(0.5, 1.0))
    return generate_phantom(820000, config)


@pytest.fixture()
def nodes(phantom):  # noqa: ANN001, ANN201
    """(scene, volume node, segmentation node holding the SDH but not the IPH + a user segment, geometry)."""
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    spacing = phantom.geometry.spacing_mm
    geometry = Geometry(spacing, (12.0, -30.0, 7.5), (_C, -_S, 0, _S, _C, 0, 0, 0, 1))  # axial, rotated in-plane
    ct = CTVolume(phantom.hu_zyx.astype(np.float32), geometry)
    volume = ct_to_volume_node(ct, scene, "head")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    labelmap_to_segmentation(np.where(phantom.labels_zyx == SDH, SDH, 0).astype(np.uint8), geometry, segmentation)
    user = slicer.vtkSegment()
    user.SetName("my note")
    note = np.zeros(phantom.labels_zyx.shape, np.uint8)
    note[2, 10:20, 10:20] = 1
    layer = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    user.AddRepresentation(layer, oriented_image(note, geometry))
    segmentation.GetSegmentation().AddSegment(user, "note")
    return scene, volume, segmentation, geometry


def _ras(geometry: Geometry, i: float, j: float, k: float) -> list[float]:
    return list((geometry.ijk_to_ras() @ np.array([i, j, k, 1.0]))[:3])


def _mask(segmentation, key: str, geometry: Geometry, shape) -> np.ndarray:  # noqa: ANN001
    return segment_mask(segmentation, segment_id(CLASS_BY_KEY[key]), geometry, shape)


def _centre(labels: np.ndarray, label: int) -> tuple[int, int, int]:
    ks = np.flatnonzero((labels == label).any(axis=(1, 2)))
    k = int(max(ks, key=lambda s: int((labels[s] == label).sum())))
    j, i = spread_points(labels[k] == label, (1.0, 1.0), 1)[0]
    return int(i), int(j), k


def test_a_click_updates_only_its_class_segment_and_undo_takes_it_back(model, phantom, nodes):  # noqa: ANN001
    _, volume, segmentation, geometry = nodes
    shape = phantom.labels_zyx.shape
    controller = RefineController(volume, segmentation, model)
    assert controller.status() == "0 slices cached; no prompt yet"
    i, j, k = _centre(phantom.labels_zyx, IPH)
    answer = controller.add_prompt("IPH", positive_ras=[_ras(geometry, i, j, k)])
    assert answer.slice_k == k
    iph = _mask(segmentation, "IPH", geometry, shape)
    truth = phantom.labels_zyx == IPH
    assert 2 * (iph & truth).sum() / (iph.sum() + truth.sum()) > 0.7
    assert np.array_equal(_mask(segmentation, "SDH", geometry, shape), phantom.labels_zyx == SDH)
    assert segment_mask(segmentation, "note", geometry, shape).sum() == 100
    assert "cached; last answer" in controller.status()
    controller.undo()
    assert not _mask(segmentation, "IPH", geometry, shape).any()
    with pytest.raises(PromptError, match="nothing to undo"):
        controller.undo()


def test_edits_made_elsewhere_are_picked_up_before_the_next_prompt(model, phantom, nodes):  # noqa: ANN001
    _, volume, segmentation, geometry = nodes
    shape = phantom.labels_zyx.shape
    controller = RefineController(volume, segmentation, model)
    labelmap_to_segmentation(np.zeros(shape, np.uint8), geometry, segmentation)  # the user cleared everything
    i, j, k = _centre(phantom.labels_zyx, IPH)
    controller.add_prompt(IPH, positive_ras=[_ras(geometry, i, j, k)])
    assert not (controller.session.labels_zyx == SDH).any()  # the session started again from the node
    assert _mask(segmentation, "IPH", geometry, shape).any()


def test_a_click_off_the_volume_is_refused_and_changes_nothing(model, phantom, nodes):  # noqa: ANN001
    _, volume, segmentation, geometry = nodes
    controller = RefineController(volume, segmentation, model)
    with pytest.raises(PromptError, match="outside the volume"):
        controller.add_prompt("IPH", positive_ras=[_ras(geometry, 500, 20, 5)])
    with pytest.raises(PromptError, match="not in the volume"):
        controller.add_prompt("IPH", positive_ras=[_ras(geometry, 20, 20, 40)])
    with pytest.raises(PromptError, match="not on slice"):
        controller.add_prompt("IPH", positive_ras=[_ras(geometry, 20, 20, 5)], negative_ras=[_ras(geometry, 20, 20, 7)])
    assert not controller.session.can_undo


def test_a_box_from_two_ras_corners(model, phantom, nodes):  # noqa: ANN001
    _, volume, segmentation, geometry = nodes
    labels = phantom.labels_zyx
    controller = RefineController(volume, segmentation, model)
    i, j, k = _centre(labels, IPH)
    jj, ii = np.nonzero(labels[k] == IPH)
    corners = [_ras(geometry, ii.min() - 2, jj.min() - 2, k), _ras(geometry, ii.max() + 2, jj.max() + 2, k)]
    answer = controller.add_prompt("IPH", box_ras=corners)
    truth = labels[k] == IPH
    assert 2 * (answer.mask_ji & truth).sum() / (answer.mask_ji.sum() + truth.sum()) > 0.6
