"""Evaluation metrics (hand-computed cases), per-case results, summaries, and evaluate_dirs on files."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from SSSSegmentLib.classes import CLASS_BY_KEY, HEMORRHAGE_CLASSES
from SSSSegmentLib.errors import InputError, OutputError
from SSSSegmentLib.evaluation import (
    LabelMap,
    case_name,
    dice,
    evaluate_case,
    evaluate_dirs,
    format_summary_table,
    hd95_mm,
    is_present,
    run_evaluation,
    sensitivity_specificity,
    summarize,
    volume_ml,
)

ANISO_SPACING = (0.5, 0.5, 5.0)  # ITK order (i, j, k), mm
IPH, SDH = CLASS_BY_KEY["IPH"].label, CLASS_BY_KEY["SDH"].label


def box(shape_zyx, k, j, i) -> np.ndarray:
    """Boolean mask with the box [k0:k1, j0:j1, i0:i1] set."""
    mask = np.zeros(shape_zyx, dtype=bool)
    mask[k[0] : k[1], j[0] : j[1], i[0] : i[1]] = True
    return mask


# ---------------------------------------------------------------- Dice, volume, detection


def test_dice_identical_masks_is_one():
    mask = box((6, 20, 20), (1, 5), (3, 9), (4, 12))
    assert dice(mask, mask.copy()) == 1.0


def test_dice_of_known_overlapping_boxes():
    a = box((12, 12, 20), (1, 11), (1, 11), (0, 10))  # 1000 voxels
    b = box((12, 12, 20), (1, 11), (1, 11), (5, 15))  # 1000 voxels, 500 shared
    assert dice(a, b) == pytest.approx(2 * 500 / 2000)
    small = box((12, 12, 20), (1, 3), (1, 5), (0, 4))  # 32 voxels inside a 64-voxel box
    big = box((12, 12, 20), (1, 5), (1, 5), (0, 4))
    assert dice(small, big) == pytest.approx(2 * 32 / 96)


def test_dice_absent_class_convention():
    empty = np.zeros((4, 5, 6), dtype=bool)
    some = box((4, 5, 6), (1, 2), (1, 3), (1, 3))
    assert math.isnan(dice(empty, empty))  # absent from both: undefined
    assert dice(some, empty) == 0.0  # absent in truth, present in prediction
    assert dice(empty, some) == 0.0  # missed


def test_volume_ml_from_spacing():
    mask = box((10, 10, 10), (0, 10), (0, 10), (0, 10))  # 1000 voxels
    assert volume_ml(mask, (1.0, 1.0, 1.0)) == pytest.approx(1.0)
    assert volume_ml(mask, (0.5, 0.5, 2.0)) == pytest.approx(0.5)
    assert volume_ml(mask[:5], ANISO_SPACING) == pytest.approx(500 * 1.25 / 1000)


def test_is_present_honours_minimum_volume():
    mask = box((10, 10, 10), (0, 1), (0, 10), (0, 10))  # 100 voxels of 1 mm^3 = 0.1 mL
    assert is_present(mask, (1, 1, 1))
    assert is_present(mask, (1, 1, 1), min_volume_ml=0.05)
    assert not is_present(mask, (1, 1, 1), min_volume_ml=0.2)
    assert not is_present(np.zeros_like(mask), (1, 1, 1))


def test_sensitivity_specificity_over_cases():
    pred = [True, True, False, False, True]
    true = [True, False, True, False, True]
    sens, spec = sensitivity_specificity(pred, true)
    assert sens == pytest.approx(2 / 3)
    assert spec == pytest.approx(1 / 2)
    sens, spec = sensitivity_specificity([False, True], [False, False])
    assert math.isnan(sens) and spec == pytest.approx(0.5)


# ---------------------------------------------------------------- HD95


@pytest.mark.parametrize(
    ("axis", "shift", "expected_mm"),
    [(0, 2, 10.0), (2, 2, 1.0), (1, 3, 1.5)],  # array axes (k, j, i); spacing k 5 mm, j and i 0.5 mm
)
def test_hd95_of_shifted_box_in_anisotropic_spacing(axis, shift, expected_mm):
    truth = box((12, 30, 30), (2, 6), (8, 18), (8, 18))
    pred = np.roll(truth, shift, axis=axis)
    assert hd95_mm(pred, truth, ANISO_SPACING) == pytest.approx(expected_mm)
    assert hd95_mm(truth, pred, ANISO_SPACING) == pytest.approx(expected_mm)


def test_hd95_identical_masks_and_masks_on_the_array_border():
    truth = box((6, 10, 10), (0, 6), (0, 10), (0, 4))  # touches every border
    assert hd95_mm(truth, truth.copy(), ANISO_SPACING) == 0.0
    pred = box((6, 10, 10), (0, 6), (0, 10), (0, 6))  # grown by 2 voxels along i
    assert hd95_mm(pred, truth, ANISO_SPACING) == pytest.approx(1.0)


def test_hd95_of_concentric_spheres_is_radius_difference():
    k, j, i = np.mgrid[:40, :40, :40]
    r = np.sqrt((k - 20) ** 2 + (j - 20) ** 2 + (i - 20) ** 2)
    assert hd95_mm(r <= 14, r <= 10, (1, 1, 1)) == pytest.approx(4.0, abs=0.6)


def test_hd95_empty_mask_convention():
    empty = np.zeros((4, 5, 6), dtype=bool)
    some = box((4, 5, 6), (1, 2), (1, 3), (1, 3))
    assert math.isnan(hd95_mm(empty, empty, (1, 1, 1)))
    assert math.isinf(hd95_mm(some, empty, (1, 1, 1)))
    assert math.isinf(hd95_mm(empty, some, (1, 1, 1)))


# ---------------------------------------------------------------- per case and summary


def _case(pred_boxes, true_boxes, shape=(8, 20, 20)):
    """Label maps from {label: box-kwargs} for prediction and truth."""
    pred, true = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    for labels, boxes in ((pred, pred_boxes), (true, true_boxes)):
        for label, (k, j, i) in boxes.items():
            labels[box(shape, k, j, i)] = label
    return pred, true


def test_evaluate_case_per_class_and_detection():
    iph = ((1, 3), (2, 12), (2, 12))  # 200 voxels
    pred, true = _case({IPH: iph, SDH: ((5, 6), (0, 2), (0, 2))}, {IPH: iph})
    result = evaluate_case(pred, true, (1.0, 1.0, 1.0), case_id="c1")
    assert [r.key for r in result.classes] == [c.key for c in HEMORRHAGE_CLASSES]
    assert result.by_key("IPH").dice == 1.0 and result.by_key("IPH").hd95_mm == 0.0
    assert result.by_key("IPH").true_ml == pytest.approx(0.2)
    sdh = result.by_key("SDH")
    assert sdh.dice == 0.0 and math.isinf(sdh.hd95_mm) and sdh.pred_present and not sdh.true_present
    assert sdh.abs_volume_error_ml == pytest.approx(0.004)
    assert not result.by_key("EDH").dice_defined
    assert result.bleed_pred and result.bleed_true
    # a 4-voxel (0.004 mL) speck is not a detection when the minimum is 0.01 mL
    strict = evaluate_case(*_case({SDH: ((5, 6), (0, 2), (0, 2))}, {}), (1.0, 1.0, 1.0), min_volume_ml=0.01)
    assert not strict.bleed_pred and not strict.by_key("SDH").pred_present


def test_summary_excludes_undefined_dice_and_counts_it():
    iph = ((1, 3), (2, 12), (2, 12))
    half = ((1, 3), (2, 12), (7, 17))  # overlaps iph by half
    cases = [
        evaluate_case(*_case({IPH: iph}, {IPH: iph}), (1, 1, 1), "a"),  # IPH Dice 1
        evaluate_case(*_case({IPH: half}, {IPH: iph}), (1, 1, 1), "b"),  # IPH Dice 0.5
        evaluate_case(*_case({}, {}), (1, 1, 1), "c"),  # no bleed at all
    ]
    summary = summarize(cases)
    iph_summary = summary.per_class[IPH - 1]
    assert iph_summary.key == "IPH"
    assert iph_summary.dice_mean == pytest.approx(0.75)
    assert iph_summary.dice_sd == pytest.approx(np.std([1.0, 0.5], ddof=1))
    assert (iph_summary.n_dice, iph_summary.n_dice_undefined) == (2, 1)
    assert iph_summary.hd95_mean_mm == pytest.approx(2.5)  # (0 + 5) / 2: shifted 5 voxels along i
    sdh_summary = summary.per_class[SDH - 1]
    assert math.isnan(sdh_summary.dice_mean) and sdh_summary.n_dice_undefined == 3
    assert summary.mean_dice == pytest.approx(0.75)  # only IPH has a defined mean
    assert summary.mean_dice_true == pytest.approx(0.75)
    assert (summary.bleed_sensitivity, summary.bleed_specificity) == (1.0, 1.0)
    table = format_summary_table(summary)
    for cls in HEMORRHAGE_CLASSES:
        assert cls.key in table
    assert "0.750" in table and "n/a" in table


def test_dice_over_cases_with_the_class_in_the_truth_ignores_false_positive_classes():
    iph = ((1, 3), (2, 12), (2, 12))
    cases = [
        evaluate_case(*_case({IPH: iph}, {IPH: iph}), (1, 1, 1), "hit"),
        evaluate_case(*_case({IPH: iph}, {}), (1, 1, 1), "false positive"),
    ]
    summary = summarize(cases)
    iph_summary = summary.per_class[IPH - 1]
    assert iph_summary.dice_mean == pytest.approx(0.5) and iph_summary.n_dice == 2
    assert iph_summary.dice_mean_true == 1.0 and iph_summary.n_true == 1
    assert iph_summary.specificity == 0.0  # the false positive shows here instead
    assert (summary.mean_dice, summary.mean_dice_true) == (pytest.approx(0.5), 1.0)


# ---------------------------------------------------------------- files and directories


def _write_sitk(path: Path, labels_zyx: np.ndarray, spacing=ANISO_SPACING) -> Path:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(labels_zyx.astype(np.uint8))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _write_slicer_labelmap_seg(
    path: Path, labels_zyx: np.ndarray, segments: dict[int, str], spacing=ANISO_SPACING
) -> Path:
    """A Slicer-style .seg.nrrd: one 3D layer, segments named, with their own label values."""
    import nrrd

    header = {
        "space": "left-posterior-superior",
        "space directions": np.diag(np.asarray(spacing, dtype=float)),
        "space origin": np.zeros(3),
        "kinds": ["domain"] * 3,
    }
    for n, (value, name) in enumerate(sorted(segments.items())):
        header.update({f"Segment{n}_ID": f"Segment_{value}", f"Segment{n}_Name": name,
                       f"Segment{n}_LabelValue": str(value), f"Segment{n}_Layer": "0"})
    nrrd.write(str(path), labels_zyx.astype(np.uint8), header, index_order="C")
    return path


@pytest.fixture()
def case_dirs(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """gt/: case01.nii.gz, case02_seg.nii.gz; pred/: case01_pred.seg.nrrd (Slicer labelmap), case02.nrrd."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    truth1 = np.zeros((6, 16, 16), np.uint8)
    truth1[1:4, 2:8, 2:8] = IPH
    truth1[2:5, 10:14, 9:15] = SDH
    _write_sitk(gt_dir / "case01.nii.gz", truth1)
    # the same labels stored as Slicer segments with label values 1 (IPH) and 2 (SDH)
    slicer_values = np.select([truth1 == IPH, truth1 == SDH], [1, 2], 0)
    segments = {1: "IPH", 2: "Subdural hemorrhage"}
    _write_slicer_labelmap_seg(pred_dir / "case01_pred.seg.nrrd", slicer_values, segments)
    truth2 = np.zeros((6, 16, 16), np.uint8)
    _write_sitk(gt_dir / "case02_seg.nii.gz", truth2)
    pred2 = truth2.copy()
    pred2[3, 4:6, 4:6] = CLASS_BY_KEY["SAH"].label  # a false positive
    _write_sitk(pred_dir / "case02.nrrd", pred2)
    return pred_dir, gt_dir, truth1


def test_case_name_strips_extensions_and_suffixes():
    assert case_name(Path("a_pred.seg.nrrd")) == "a"
    assert case_name(Path("b.nii.gz")) == "b"
    assert case_name(Path("c_seg.nrrd")) == "c"
    assert case_name(Path("d.nii")) == "d"
    assert case_name(Path("_pred.nii")) == "_pred"


def test_read_slicer_labelmap_seg_maps_segment_names(case_dirs):
    pred_dir, _, truth1 = case_dirs
    label_map = LabelMap.from_file(pred_dir / "case01_pred.seg.nrrd")
    np.testing.assert_array_equal(label_map.labels_zyx, truth1)
    assert label_map.geometry.spacing_mm == pytest.approx(ANISO_SPACING)


def test_evaluate_dirs_writes_csv_and_summary(case_dirs, tmp_path):
    pred_dir, gt_dir, _ = case_dirs
    csv_path = tmp_path / "eval.csv"
    summary = evaluate_dirs(pred_dir, gt_dir, csv_path)
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(HEMORRHAGE_CLASSES)
    by_key = {(r["case"], r["class"]): r for r in rows}
    assert float(by_key[("case01", "IPH")]["dice"]) == 1.0
    assert float(by_key[("case01", "SDH")]["hd95_mm"]) == 0.0
    assert float(by_key[("case01", "SDH")]["true_ml"]) == pytest.approx(3 * 4 * 6 * 1.25 / 1000)
    assert by_key[("case01", "EDH")]["dice"] == "nan"
    assert float(by_key[("case02", "SAH")]["dice"]) == 0.0 and by_key[("case02", "SAH")]["hd95_mm"] == "inf"
    assert (summary.bleed_sensitivity, summary.bleed_specificity) == (1.0, 0.0)
    assert summary.per_class[IPH - 1].dice_mean == 1.0
    # refuses to replace the CSV unless asked; the text report names the file
    with pytest.raises(OutputError):
        evaluate_dirs(pred_dir, gt_dir, csv_path)
    text = run_evaluation(pred_dir, gt_dir, csv_path, overwrite=True)
    assert "SDH" in text and str(csv_path) in text


def test_evaluate_dirs_rejects_geometry_mismatch(case_dirs, tmp_path):
    pred_dir, gt_dir, _ = case_dirs
    _write_sitk(pred_dir / "case02.nrrd", np.zeros((6, 16, 16), np.uint8), spacing=(0.5, 0.5, 2.5))
    with pytest.raises(InputError, match="spacing differs"):
        evaluate_dirs(pred_dir, gt_dir, tmp_path / "eval.csv")
    _write_sitk(pred_dir / "case02.nrrd", np.zeros((5, 16, 16), np.uint8))
    with pytest.raises(InputError, match="size differs"):
        evaluate_dirs(pred_dir, gt_dir, tmp_path / "eval.csv")
    assert not (tmp_path / "eval.csv").exists()


def test_evaluate_dirs_names_missing_prediction(case_dirs, tmp_path):
    pred_dir, gt_dir, _ = case_dirs
    (pred_dir / "case02.nrrd").unlink()
    with pytest.raises(InputError, match="case02"):
        evaluate_dirs(pred_dir, gt_dir, tmp_path / "eval.csv")


def test_unknown_segment_and_bad_label_values_are_rejected(tmp_path):
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[0, 1, 1] = 1
    seg = _write_slicer_labelmap_seg(tmp_path / "x.seg.nrrd", labels, {1: "Skull"})
    with pytest.raises(InputError, match="Skull"):
        LabelMap.from_file(seg)
    labels[1, 2, 2] = 9
    with pytest.raises(InputError, match="0..5"):
        LabelMap.from_file(_write_sitk(tmp_path / "y.nii.gz", labels))


def test_slicer_written_cropped_multilayer_seg_lands_on_truth_grid(tmp_path):
    """A .seg.nrrd written by Slicer's own storage node (cropped, 2 layers) is read onto the truth grid."""
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLSegmentationNode"):
        pytest.skip("the installed 'slicer' module is not slicer-core")
    from SSSSegmentLib.evaluation import on_grid_of

    iph_mask = box((4, 8, 10), (1, 3), (2, 5), (3, 7))
    sdh_mask = box((4, 8, 10), (1, 3), (2, 5), (5, 9))  # overlaps IPH: Slicer stores it in a second layer
    truth = np.zeros((4, 8, 10), np.uint8)
    truth[iph_mask] = IPH
    truth[sdh_mask] = SDH
    seg_path = _write_with_slicer(tmp_path / "pred.seg.nrrd", {"IPH": iph_mask, "SDH": sdh_mask})
    pred = LabelMap.from_file(seg_path)
    assert pred.size_ijk != (10, 8, 4)  # Slicer cropped it to the segments' extent
    truth_path = _write_sitk(tmp_path / "truth.nii.gz", truth, spacing=(0.5, 0.6, 5.0))
    on_grid = on_grid_of(pred, LabelMap.from_file(truth_path))
    np.testing.assert_array_equal(on_grid, truth)  # later segment (SDH) wins on the overlap


def _write_with_slicer(path: Path, masks_zyx: dict[str, np.ndarray]) -> Path:
    """Write boolean masks as segments with slicer-core's segmentation storage node (LPS, identity)."""
    import slicer
    import vtk
    from vtkmodules.util import numpy_support

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    scene = slicer.vtkMRMLScene()
    node = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(node)
    for name, mask in masks_zyx.items():
        image = slicer.vtkOrientedImageData()
        image.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])
        image.SetSpacing(0.5, 0.6, 5.0)
        image.SetDirections([[-1, 0, 0], [0, -1, 0], [0, 0, 1]])  # RAS directions of an LPS-identity grid
        image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = mask.astype(np.uint8).ravel()
        segment_id = node.GetSegmentation().AddEmptySegment(name, name)
        slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(image, node, segment_id)
    node.AddDefaultStorageNode()
    storage = node.GetStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node), "slicer-core failed to write the segmentation"
    return path


def test_seg_nrrd_in_ras_space_is_converted_to_lps(tmp_path):
    import nrrd

    from SSSSegmentLib.evaluation import on_grid_of

    labels = np.zeros((3, 4, 5), np.uint8)
    labels[1, 2, 3] = 1
    header = {  # the LPS identity grid with origin (10, 20, 30), written in RAS terms
        "space": "right-anterior-superior",
        "space directions": np.diag([-0.5, -0.5, 5.0]),
        "space origin": np.array([-10.0, -20.0, 30.0]),
        "kinds": ["domain"] * 3,
        "Segment0_ID": "s", "Segment0_Name": "EDH", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
    }
    nrrd.write(str(tmp_path / "p.seg.nrrd"), labels, header, index_order="C")
    pred = LabelMap.from_file(tmp_path / "p.seg.nrrd")
    assert pred.geometry.origin_lps == pytest.approx((10.0, 20.0, 30.0))
    assert pred.geometry.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(np.zeros_like(labels))
    image.SetSpacing(ANISO_SPACING)
    image.SetOrigin((10.0, 20.0, 30.0))
    sitk.WriteImage(image, str(tmp_path / "t.nii.gz"))
    on_grid = on_grid_of(pred, LabelMap.from_file(tmp_path / "t.nii.gz"))
    assert on_grid[1, 2, 3] == CLASS_BY_KEY["EDH"].label and on_grid.sum() == CLASS_BY_KEY["EDH"].label
