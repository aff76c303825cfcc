"""The fast inference paths give the labels of the plain reference path (bundled tiny model, CPU).

- Streaming (``keep_features=False``: probabilities reduced batch by batch, the prompted slices
  encoded again for the decoder, channels-last images on the CPU) against the reference
  (``keep_features=True``: every slice's features and the full probability volume kept, plain
  layout): Dice >= 0.999 per class (the layouts' sums differ by about 1e-5; the labels are in
  fact identical on this phantom).
- A tilted, unevenly spaced DICOM-like stack segmented on its S acquired planes (probabilities
  blended onto the K output slices) against the same stack resampled first (the model sees the K
  resampled slices): the same labels up to interpolation at the edges.
No timings are asserted.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from SSSSegmentLib import api
from SSSSegmentLib.evaluation.metrics import dice
from SSSSegmentLib.inference import inference_config_for, segment_volume
from SSSSegmentLib.volumes.geometry import CTVolume
from SSSSegmentLib.volumes.stack_resample import AIR_HU, SliceStack, stack_to_volume

THICKNESS_MM = 2.5
# Acquired slices of the phantom: every one at the skull base, every other one above (uneven steps,
# as on the GE scan), so resampling to the median step makes more slices than were acquired.
ACQUIRED = (*range(0, 14), *range(15, 28, 2))


@pytest.fixture(scope="module")
def model() -> api.LoadedModel:
    loaded = api.load_model("tiny", device="cpu")
    assert loaded.bundled
    return loaded


@pytest.fixture(scope="module")
def phantom():  # noqa: ANN201  (Phantom)
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

    config = PhantomConfig(matrix=256, num_slices=28, slice_thickness_mm=THICKNESS_MM, lesion_keys=("IPH", "SDH"),
                           lesion_size_quantiles=(0.6, 1.0))
    return generate_phantom(3, config)


def _segment(volume: CTVolume, model: api.LoadedModel, **changes: bool):  # noqa: ANN202
    config = dataclasses.replace(inference_config_for(model.model), refine=True, **changes)
    lines: list[str] = []
    return segment_volume(volume, model.model, model.device, config, log=lines.append), lines


def test_streaming_gives_the_reference_labels(model, phantom) -> None:  # noqa: ANN001
    volume = CTVolume(phantom.hu_zyx, phantom.geometry, source="phantom")
    reference, _ = _segment(volume, model, keep_features=True)
    streamed, _ = _segment(volume, model, keep_features=False)
    assert reference.prompt_set.prompts, "the phantom must give prompts, or the decoder path is not exercised"
    assert reference.labels_zyx.any()
    for label in np.unique(reference.labels_zyx[reference.labels_zyx > 0]):
        assert dice(streamed.labels_zyx == label, reference.labels_zyx == label) >= 0.999
    differ = np.count_nonzero(streamed.labels_zyx != reference.labels_zyx)
    assert differ <= 1e-3 * np.count_nonzero(reference.labels_zyx)


def tilted_stack(phantom) -> SliceStack:  # noqa: ANN001
    """The phantom's ``ACQUIRED`` slices as a gantry-tilted stack: slice s starts ``s`` rows further
    along the column direction (so its content moves up by s rows) and lies at its own height."""
    hu = phantom.hu_zyx
    rows = hu.shape[1]
    slices, positions = [], []
    dx, dy, _ = phantom.geometry.spacing_mm
    for s, k in enumerate(ACQUIRED):
        moved = np.full(hu.shape[1:], AIR_HU, dtype=np.float32)
        moved[: rows - s] = hu[k, s:]
        slices.append(moved)
        positions.append((0.0, s * dy, k * THICKNESS_MM))
    return SliceStack(np.stack(slices), np.asarray(positions), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (dx, dy))


def test_tilted_stack_on_its_acquired_planes_matches_resampled_first(model, phantom) -> None:  # noqa: ANN001
    hu_zyx, geometry, notes, planes = stack_to_volume(tilted_stack(phantom))
    assert planes is not None and planes.n_planes == len(ACQUIRED) < planes.n_slices == hu_zyx.shape[0]
    volume = CTVolume(hu_zyx, geometry, source="tilted phantom", notes=tuple(notes), planes=planes)
    resampled, _ = _segment(volume, model, acquired_planes=False)
    acquired, lines = _segment(volume, model, acquired_planes=True)
    assert any(f"encoded the {len(ACQUIRED)} acquired planes" in line for line in lines)
    truth = resampled.labels_zyx
    assert truth.any(), "the tilted phantom must give findings, or the comparison says nothing"
    for label in np.unique(truth[truth > 0]):
        assert dice(acquired.labels_zyx == label, truth == label) >= 0.9
    # Where they differ, it is at the edge of a finding (interpolation), never a finding of its own.
    from scipy import ndimage

    differ = acquired.labels_zyx != truth
    edge = ndimage.binary_dilation(truth > 0, iterations=2) & ~ndimage.binary_erosion(truth > 0, iterations=2)
    assert np.count_nonzero(differ & ~edge) <= 0.01 * np.count_nonzero(truth)


def test_coarse_logits_without_the_decoder_features_are_the_full_encodings(model) -> None:  # noqa: ANN001
    """The streaming path computes only the coarse head's inputs; its logits must be those of the full
    encoding (the same operations on the same stride-4 level)."""
    import torch

    images = torch.randn(3, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    images[1] = 0.0  # an empty slice too
    net = model.model.eval()
    with torch.no_grad():
        full = net.coarse_logits(net.encode(images))
        only = net.coarse_logits_of(images)
    assert only.shape == (3, 6, 128, 128)
    torch.testing.assert_close(only, full, rtol=0.0, atol=1e-6)


def test_slices_run_on_threads_in_order_and_as_many_as_allowed(monkeypatch) -> None:  # noqa: ANN001
    import os
    import threading

    from SSSSegmentLib.prompts import parallel

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert parallel.slice_threads() == 3
    names: set[str] = set()
    barrier = threading.Barrier(3, timeout=10)

    def square(x: int) -> int:
        names.add(threading.current_thread().name)
        if x < 3:
            barrier.wait()  # the first three items run at the same time, or this times out
        return x * x

    assert parallel.map_slices(square, range(10)) == [x * x for x in range(10)]
    assert len(names) == 3 and all(n.startswith("sssseg-slices") for n in names)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    names.clear()
    assert parallel.map_slices(lambda x: names.add(threading.current_thread().name) or x, [1, 2]) == [1, 2]
    assert names == {threading.current_thread().name}
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert parallel.slice_threads() == 4


def test_cavity_on_threads_is_the_cavity_in_one_thread(monkeypatch, phantom) -> None:  # noqa: ANN001
    import os

    from SSSSegmentLib.prompts import intracranial_cavity

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = intracranial_cavity(phantom.hu_zyx, phantom.geometry)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert one.any() and np.array_equal(intracranial_cavity(phantom.hu_zyx, phantom.geometry), one)


def test_fill_holes_is_scipys_binary_fill_holes() -> None:
    from scipy import ndimage

    from SSSSegmentLib.prompts.anatomy import fill_holes

    rng = np.random.default_rng(0)
    for _ in range(200):
        shape = tuple(int(n) for n in rng.integers(1, 24, size=rng.integers(2, 4)))
        mask = rng.random(shape) < rng.random()
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_slab_distance_transform_is_scipys() -> None:
    from scipy import ndimage

    from SSSSegmentLib.prompts.anatomy import _EDT_SLAB, _edt_into

    rng = np.random.default_rng(1)
    for _ in range(30):
        shape = (int(rng.integers(1, 3 * _EDT_SLAB)), *(int(n) for n in rng.integers(1, 24, size=2)))
        mask = rng.random(shape) < rng.random()
        sampling = tuple(float(s) for s in rng.uniform(0.3, 5.0, size=3))
        out = np.zeros(shape, dtype=np.float32)
        _edt_into(mask, sampling, out)
        np.testing.assert_array_equal(out, ndimage.distance_transform_edt(mask, sampling=sampling).astype(np.float32))


def test_the_largest_piece_is_counted_over_every_slab() -> None:
    """The cavity keeps its largest 3D piece; sizes are counted slab by slab (``_COUNT_SLAB`` slices)."""
    from SSSSegmentLib.prompts.anatomy import _COUNT_SLAB, _largest_piece

    n_slices = 2 * _COUNT_SLAB + 3
    mask = np.zeros((n_slices, 40, 40), dtype=bool)
    mask[0:2, 0:20, 0:20] = True  # 2 x 400 = 800 voxels, all in the first slab
    mask[3:n_slices, 25:35, 25:35] = True  # 100 voxels on each of 16 slices = 1600, across three slabs
    kept = _largest_piece(mask)
    assert np.count_nonzero(kept) == 100 * (n_slices - 3) and not kept[0:2].any()


def test_bridge_along_k_is_scipys_closing_along_k() -> None:
    from scipy import ndimage

    from SSSSegmentLib.prompts.anatomy import bridge_along_k

    rng = np.random.default_rng(5)
    line = np.ones((3, 1, 1), dtype=bool)
    for _ in range(30):
        shape = (int(rng.integers(1, 9)), *(int(n) for n in rng.integers(1, 12, size=2)))
        mask = rng.random(shape) < rng.random()
        assert np.array_equal(bridge_along_k(mask), ndimage.binary_closing(mask, structure=line)), shape


def test_candidate_label_map_is_the_thresholded_argmax() -> None:
    from SSSSegmentLib.prompts.components import candidate_label_map

    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        prob = np.round(rng.random((6, 4, 9, 11)), 1).astype(dtype) + 1e-3  # many ties
        prob /= prob.sum(axis=0)
        argmax = np.argmax(prob, axis=0)
        top = np.take_along_axis(prob, argmax[None], axis=0)[0]
        for threshold in (0.0, 0.2, 0.35):
            expected = np.where(top >= threshold, argmax, 0).astype(np.uint8)
            np.testing.assert_array_equal(candidate_label_map(prob, threshold), expected)
            np.testing.assert_array_equal(candidate_label_map(iter(prob), threshold), expected)
