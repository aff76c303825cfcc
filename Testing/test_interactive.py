"""Interactive refinement (SSSSegmentLib.interactive) with the bundled tiny model on a phantom, CPU.

The phantom (seed 820000, 16 slices of 192 x 192) holds an IPH on slices 4-8 and an SDH on slices
5-11. No timing is asserted here: click latency is measured by benchmarks/interactive_clicks.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from SSSSegmentLib import api
from SSSSegmentLib.errors import InputError, PromptError
from SSSSegmentLib.interactive import InteractiveConfig, InteractiveSession, make_prompt
from SSSSegmentLib.interactive.simulate import case_dice, largest_error_click
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
from SSSSegmentLib.prompts.prompting import spread_points
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry

IPH, SDH = 2, 5


@pytest.fixture(scope="module")
def model() -> api.LoadedModel:
    import torch

    torch.set_num_threads(2)
    return api.load_model(preset="tiny", device="cpu")


@pytest.fixture(scope="module")
def phantom():  # noqa: ANN201  (Phantom)
    config = PhantomConfig(matrix=192, num_slices=16, p_no_lesion=0.0, max_lesions=2, lesion_keys=("IPH", "SDH"),
                           lesion_size_quantiles=(0.5, 1.0))
    return generate_phantom(820000, config)


@pytest.fixture(scope="module")
def volume(phantom) -> CTVolume:  # noqa: ANN001
    return CTVolume(phantom.hu_zyx.astype(np.float32), phantom.geometry)


def slices_of(labels_zyx: np.ndarray, label: int) -> list[int]:
    return [int(k) for k in np.flatnonzero((labels_zyx == label).any(axis=(1, 2)))]


def centre_click(labels_zyx: np.ndarray, label: int) -> tuple[int, tuple[int, int]]:
    """(k, (i, j)): the most interior voxel of ``label`` on its largest slice."""
    ks = slices_of(labels_zyx, label)
    k = max(ks, key=lambda s: int((labels_zyx[s] == label).sum()))
    j, i = spread_points(labels_zyx[k] == label, (1.0, 1.0), 1)[0]
    return k, (int(i), int(j))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1, int(a.sum()) + int(b.sum()))


def test_a_click_inside_a_lesion_grows_a_mask_that_overlaps_it(model, phantom, volume):  # noqa: ANN001
    session = InteractiveSession(volume, model)
    k, click = centre_click(phantom.labels_zyx, IPH)
    answer = session.add_prompt("IPH", k, positive=[click])
    assert answer.label == IPH and answer.slice_k == k
    assert dice(answer.mask_ji, phantom.labels_zyx[k] == IPH) > 0.7
    assert dice(session.labels_zyx == IPH, phantom.labels_zyx == IPH) > 0.7
    assert session.cached_slices >= 1 and session.last_seconds is not None


def test_propagation_stops_at_the_end_of_the_lesion(model, phantom, volume):  # noqa: ANN001
    truth = slices_of(phantom.labels_zyx, IPH)
    session = InteractiveSession(volume, model)
    k, click = centre_click(phantom.labels_zyx, IPH)
    session.add_prompt(IPH, k, positive=[click])
    drawn = slices_of(session.labels_zyx, IPH)
    assert len(drawn) >= 3, "the mask was not carried to the neighbouring slices"
    assert truth[0] - 1 <= drawn[0] and drawn[-1] <= truth[-1] + 1, (drawn, truth)


@pytest.mark.parametrize("redecode", [False, True], ids=["plain", "negative_redecode"])
def test_a_negative_click_removes_a_false_region(model, phantom, volume, redecode):  # noqa: ANN001
    """Also with ``negative_redecode``: a lone false blob has no part apart from the click to keep."""
    labels = phantom.labels_zyx.copy()
    false_k, centre = 12, (60, 96)  # an IPH "found" where there is none (j, i), on 2 slices
    jj, ii = np.ogrid[: labels.shape[1], : labels.shape[2]]
    blob = (jj - centre[0]) ** 2 + (ii - centre[1]) ** 2 <= 36
    assert not labels[false_k - 1 : false_k + 1][:, blob].any()
    labels[false_k - 1 : false_k + 1][:, blob] = IPH
    session = InteractiveSession(volume, model, labels_zyx=labels, config=InteractiveConfig(negative_redecode=redecode))
    answer = session.add_prompt(IPH, false_k, negative=[(centre[1], centre[0])])
    after = session.labels_zyx
    assert not after[false_k - 1 : false_k + 1][:, blob].any()
    assert np.array_equal(after, phantom.labels_zyx)  # the true IPH and the SDH stay
    assert answer.changed_slices == (false_k - 1, false_k)


def test_undo_restores_the_previous_mask(model, phantom, volume):  # noqa: ANN001
    start = np.where(phantom.labels_zyx == SDH, SDH, 0).astype(np.uint8)
    session = InteractiveSession(volume, model, labels_zyx=start)
    k, click = centre_click(phantom.labels_zyx, IPH)
    session.add_prompt(IPH, k, positive=[click])
    after_first = session.labels_zyx
    session.add_prompt(IPH, k, negative=[(click[0] + 3, click[1])])
    assert not np.array_equal(session.labels_zyx, after_first)
    undone = session.undo()
    assert np.array_equal(session.labels_zyx, after_first)
    assert undone.label == IPH and np.array_equal(undone.mask_ji, after_first[k] == IPH)
    session.undo()
    assert np.array_equal(session.labels_zyx, start)
    assert not session.can_undo
    with pytest.raises(PromptError, match="nothing to undo"):
        session.undo()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"slice_k": 3, "positive": [(192, 10)]}, "outside the volume"),
    ({"slice_k": 3, "positive": [(-1, 10)]}, "outside the volume"),
    ({"slice_k": 3, "negative": [(10, 500)]}, "outside the volume"),
    ({"slice_k": 16, "positive": [(10, 10)]}, "slice 16 is not in the volume: it has slices 0..15"),
    ({"slice_k": -1, "positive": [(10, 10)]}, "not in the volume"),
    ({"slice_k": 3, "positive": [(10, 10, 4)]}, "not on slice 3"),
    ({"slice_k": 3, "box": (10, 10, 10, 40)}, "empty"),
    ({"slice_k": 3, "box": (10, 10, 300, 40)}, "outside the volume"),
    ({"slice_k": 3}, "at least one point or a box"),
    ({"slice_k": 3, "positive": [(float("nan"), 3)]}, "not a number"),
])
def test_a_prompt_outside_the_volume_is_refused(model, phantom, volume, kwargs, message):  # noqa: ANN001
    session = InteractiveSession(volume, model, labels_zyx=phantom.labels_zyx)
    with pytest.raises(PromptError, match=message):
        session.add_prompt(IPH, **kwargs)
    assert np.array_equal(session.labels_zyx, phantom.labels_zyx) and not session.can_undo


@pytest.mark.parametrize("label", [0, 6, "XYZ", True])
def test_an_unknown_class_is_refused(label):  # noqa: ANN001
    with pytest.raises(PromptError, match="unknown class"):
        make_prompt(label, 0, (4, 8, 8), positive=[(1, 1)])


def test_other_classes_segments_are_unchanged(model, phantom, volume):  # noqa: ANN001
    labels = phantom.labels_zyx.copy()
    k, click = centre_click(labels, IPH)
    labels[k - 1 : k + 2, click[1] - 3 : click[1] + 4, click[0] + 4 : click[0] + 7] = SDH  # SDH across the IPH
    session = InteractiveSession(volume, model, labels_zyx=np.where(labels == IPH, 0, labels))
    session.add_prompt(IPH, k, positive=[click])
    after = session.labels_zyx
    assert (after == IPH).sum() > 0.5 * (labels == IPH).sum()
    for other in (1, 3, 4, 5):
        assert np.array_equal(after == other, labels == other), f"class {other} changed"


def test_a_box_without_clicks_draws_the_lesion_in_it(model, phantom, volume):  # noqa: ANN001
    truth = phantom.labels_zyx
    k, _ = centre_click(truth, SDH)
    jj, ii = np.nonzero(truth[k] == SDH)
    box = (ii.min() - 2, jj.min() - 2, ii.max() + 2, jj.max() + 2)
    answer = InteractiveSession(volume, model).add_prompt(SDH, k, box=box)
    assert dice(answer.mask_ji, truth[k] == SDH) > 0.6


def test_a_flipped_axial_volume_answers_on_its_own_grid(model, phantom, volume):  # noqa: ANN001
    geometry = phantom.geometry
    flip_i = np.diag([-1.0, 1.0, 1.0])
    flipped = CTVolume(volume.hu_zyx[:, :, ::-1].copy(),
                       Geometry(geometry.spacing_mm, geometry.origin_lps,
                                tuple((geometry.direction_matrix @ flip_i).ravel())))
    k, (i, j) = centre_click(phantom.labels_zyx, IPH)
    plain = InteractiveSession(volume, model).add_prompt(IPH, k, positive=[(i, j)])
    mirrored = InteractiveSession(flipped, model).add_prompt(IPH, k, positive=[(volume.shape_zyx[2] - 1 - i, j)])
    assert np.array_equal(mirrored.mask_ji, plain.mask_ji[:, ::-1])


def test_a_coronal_volume_is_refused_with_the_reason(model, volume):  # noqa: ANN001
    coronal = CTVolume(volume.hu_zyx, Geometry((0.5, 0.5, 5.0), direction=(1, 0, 0, 0, 0, 1, 0, -1, 0)))
    with pytest.raises(InputError, match="axial"):
        InteractiveSession(coronal, model)


def test_the_one_click_features_are_reused(model, phantom, volume):  # noqa: ANN001
    from SSSSegmentLib.inference.encode import encode_volume

    encoded = encode_volume(model.model, volume.hu_zyx, model.device)
    session = InteractiveSession(volume, model, encoded=encoded)
    k, click = centre_click(phantom.labels_zyx, IPH)
    answer = session.add_prompt(IPH, k, positive=[click])
    assert answer.timings_s["encode"] == 0.0 and session.cached_slices == volume.shape_zyx[0]
    assert dice(answer.mask_ji, phantom.labels_zyx[k] == IPH) > 0.7


def test_the_cache_keeps_at_most_its_capacity(model, phantom, volume):  # noqa: ANN001
    session = InteractiveSession(volume, model, config=InteractiveConfig(cache_slices=3, encode_batch=2))
    k, click = centre_click(phantom.labels_zyx, IPH)
    session.add_prompt(IPH, k, positive=[click])
    assert session.cached_slices <= 3 and session.is_cached(k)


def test_simulated_clicks_fix_the_largest_error(phantom):  # noqa: ANN001
    truth = phantom.labels_zyx
    pred = np.where(truth == IPH, 0, truth)
    click = largest_error_click(truth, pred, (5.0, 1.0, 1.0))
    assert click.positive and click.label == IPH and truth[click.slice_k, click.j, click.i] == IPH
    confused = np.where(truth == IPH, SDH, truth)  # the IPH called SDH: remove the SDH first
    click = largest_error_click(truth, confused, (5.0, 1.0, 1.0))
    assert not click.positive and click.label == SDH and truth[click.slice_k, click.j, click.i] == IPH
    assert largest_error_click(truth, truth, (5.0, 1.0, 1.0)) is None
    assert case_dice(truth, truth) == 1.0 and case_dice(truth, pred) == pytest.approx(0.5)


def test_the_decoder_answers_with_mask_token_0_in_eval_mode(model, monkeypatch):  # noqa: ANN001
    """Training supervises token 0 only: eval mode must not swap in tokens 1-3 by SAM-2's stability test."""
    import torch

    net = model.model.eval()
    sam = net.sam

    def swap(*args):  # noqa: ANN002, ANN202
        raise AssertionError("SAM-2's stability swap to mask tokens 1-3 was used")

    monkeypatch.setattr(sam.sam_mask_decoder, "_dynamic_multimask_via_stability", swap)
    size = net.image_size
    feats = net.encode(torch.randn(1, 3, size, size))
    box = torch.tensor([[10.0, 10.0, size * 0.8, size * 0.6]])
    masks, _ = net.decode(feats, torch.tensor([0]), boxes_xyxy=box)
    sparse, dense = sam.sam_prompt_encoder(points=net._prompt_points(torch.tensor([0]), box, None, None),
                                           boxes=None, masks=None)
    all_tokens = sam.sam_mask_decoder.predict_masks(feats.image_embed, sam.sam_prompt_encoder.get_dense_pe(),
                                                    sparse, dense, False, feats.high_res)[0]
    assert torch.equal(masks, all_tokens[:, 0:1].float())


def test_removal_stops_where_the_false_region_meets_a_larger_lesion():
    from SSSSegmentLib.interactive.edits import remove_region

    labels = np.zeros((5, 20, 20), np.uint8)
    labels[1:3, 2:5, 2:5] = IPH  # the false region, on slices 1-2 ...
    labels[3, 2:15, 2:15] = IPH  # ... touching a large IPH on slice 3
    removed = remove_region(labels, make_prompt(IPH, 1, labels.shape, negative=[(3, 3)]))
    assert removed and not labels[1:3].any() and (labels[3] == IPH).sum() == 169


def test_a_negative_click_on_a_false_rim_keeps_the_lesion(model, phantom, volume):  # noqa: ANN001
    """A false blob grown onto the true IPH's edge, one segment with it on one slice: a negative click on
    the blob takes the blob away and leaves the lesion (the plain removal took both)."""
    k, (ci, cj) = centre_click(phantom.labels_zyx, IPH)
    truth = phantom.labels_zyx[k] == IPH
    edge = np.argwhere(truth & ~np.roll(truth, -1, axis=1))  # pixels whose right neighbour is outside
    j, i = edge[np.argmin(np.abs(edge[:, 0] - cj))]
    jj, ii = np.ogrid[: truth.shape[0], : truth.shape[1]]
    blob = ((jj - j) ** 2 + (ii - (i + 5)) ** 2 <= 25) & (phantom.labels_zyx[k] == 0)
    labels = phantom.labels_zyx.copy()
    labels[k][blob] = IPH
    session = InteractiveSession(volume, model, labels_zyx=labels)
    session.add_prompt(IPH, k, negative=[(int(i) + 6, int(j))])
    after = session.labels_zyx[k] == IPH
    assert np.count_nonzero(after & blob) < 0.5 * np.count_nonzero(blob)
    assert dice(after, truth) > 0.6
