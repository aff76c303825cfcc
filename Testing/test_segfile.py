"""Label-map files: 3D Slicer .seg.nrrd (five named, coloured, coded segments) and plain NIfTI."""

from __future__ import annotations

import math
from pathlib import Path

import nrrd
import numpy as np
import pytest

from SSSSegmentLib.classes import ANATOMIC_REGION, HEMORRHAGE_CLASSES, TERMINOLOGY_CATEGORY
from SSSSegmentLib.errors import InputError, OutputError
from SSSSegmentLib.volumes import Geometry, read_labelmap, write_labelmap
from SSSSegmentLib.volumes.segfile import slicer_terminology_tag

SHAPE_ZYX = (5, 30, 40)


def oblique_geometry() -> Geometry:
    """A rotated, anisotropic grid so axis or sign mix-ups show."""
    a, b = math.radians(30), math.radians(10)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return Geometry((0.5, 0.75, 4.0), (-120.0, 33.5, -7.25), tuple(float(x) for x in (rz @ rx).ravel()))


def sample_labels() -> np.ndarray:
    """IPH block and an SDH voxel; EDH, IVH and SAH stay empty."""
    labels = np.zeros(SHAPE_ZYX, dtype=np.uint8)
    labels[1:3, 10:14, 5:20] = 2
    labels[4, 29, 39] = 5
    return labels


def test_seg_nrrd_round_trip(tmp_path: Path) -> None:
    labels, geometry = sample_labels(), oblique_geometry()
    path = write_labelmap(tmp_path / "out.seg.nrrd", labels, geometry)
    labels_back, geometry_back, names = read_labelmap(path)
    np.testing.assert_array_equal(labels_back, labels)
    assert geometry_back.allclose(geometry, atol=1e-6)
    assert names == {c.label: c.name for c in HEMORRHAGE_CLASSES}


def test_seg_nrrd_header_has_slicer_fields(tmp_path: Path) -> None:
    labels, geometry = sample_labels(), oblique_geometry()
    header = nrrd.read_header(str(write_labelmap(tmp_path / "out.seg.nrrd", labels, geometry)))
    assert header["dimension"] == 3 and header["type"] in ("uint8", "unsigned char")
    assert header["space"] == "left-posterior-superior" and header["kinds"] == ["domain"] * 3
    np.testing.assert_allclose(header["sizes"], SHAPE_ZYX[::-1])
    np.testing.assert_allclose(np.asarray(header["space directions"]).T,
                               geometry.direction_matrix @ np.diag(geometry.spacing_mm), atol=1e-9)
    np.testing.assert_allclose(header["space origin"], geometry.origin_lps)
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert header["Segmentation_ContainedRepresentationNames"] == "Binary labelmap|"
    assert header["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
    assert "Segmentation_ConversionParameters" in header
    extents = {2: "5 19 10 13 1 2", 5: "39 39 29 29 4 4"}
    for n, hclass in enumerate(HEMORRHAGE_CLASSES):
        assert header[f"Segment{n}_ID"] == hclass.key
        assert header[f"Segment{n}_Name"] == hclass.name
        color = [float(x) for x in header[f"Segment{n}_Color"].split()]
        np.testing.assert_allclose(color, np.asarray(hclass.color_rgb) / 255.0, atol=1e-5)
        assert header[f"Segment{n}_LabelValue"] == str(hclass.label)
        assert header[f"Segment{n}_Layer"] == "0"
        assert header[f"Segment{n}_Extent"] == extents.get(hclass.label, "0 -1 0 -1 0 -1")
        tags = header[f"Segment{n}_Tags"]
        assert (f"TerminologyEntry:Segmentation category and type - 3D Slicer General Anatomy list"
                f"~SCT^49755003^Morphologically Altered Structure~SCT^{hclass.property_type.value}^"
                f"{hclass.property_type.meaning}~^^~Anatomic codes - DICOM master list~"
                f"{ANATOMIC_REGION.as_slicer()}~^^|") in tags
        assert TERMINOLOGY_CATEGORY.value == "49755003"
    assert "Segment5_ID" not in header


def test_slicer_reads_seg_nrrd_as_five_segments(tmp_path: Path) -> None:
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLSegmentationStorageNode"):
        pytest.skip("the installed 'slicer' module is not slicer-core")
    import vtk

    labels, geometry = sample_labels(), oblique_geometry()
    path = write_labelmap(tmp_path / "out.seg.nrrd", labels, geometry)
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 5
    for n, hclass in enumerate(HEMORRHAGE_CLASSES):
        segment = segmentation.GetSegment(hclass.key)
        assert segment.GetName() == hclass.name and segment.GetLabelValue() == hclass.label
        np.testing.assert_allclose(segment.GetColor(), np.asarray(hclass.color_rgb) / 255.0, atol=1e-5)
        tag = vtk.mutable("")
        assert segment.GetTag("TerminologyEntry", tag) and hclass.property_type.value in str(tag)
        assert segmentation.GetNthSegmentID(n) == hclass.key
    layer = segmentation.GetSegmentRepresentation("IPH", "Binary labelmap")
    matrix = vtk.vtkMatrix4x4()
    layer.GetImageToWorldMatrix(matrix)
    image_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    np.testing.assert_allclose(image_to_ras, geometry.ijk_to_ras(), atol=1e-5)


def _write_raw_seg(path: Path, data: np.ndarray, geometry: Geometry, segments: list[dict[str, str]],
                   space: str = "left-posterior-superior") -> Path:
    """A .seg.nrrd written field by field (3D, or 4D C-order [k, j, i, layer]) with ``segments``."""
    axes = (geometry.direction_matrix @ np.diag(geometry.spacing_mm)).T  # rows = axis vectors i, j, k
    origin = np.asarray(geometry.origin_lps)
    if space == "right-anterior-superior":
        axes, origin = axes * [-1.0, -1.0, 1.0], origin * [-1.0, -1.0, 1.0]
    if data.ndim == 4:
        axes, kinds = np.vstack([np.full(3, np.nan), axes]), ["list", "domain", "domain", "domain"]
    else:
        kinds = ["domain"] * 3
    header = {"space": space, "kinds": kinds, "space directions": axes, "space origin": origin}
    for n, fields in enumerate(segments):
        header.update({f"Segment{n}_{key}": value for key, value in fields.items()})
    nrrd.write(str(path), data, header, index_order="C")
    return path


def test_slicer_4d_layers_are_folded_onto_our_classes(tmp_path: Path) -> None:
    geometry = oblique_geometry()
    layers = np.zeros((*SHAPE_ZYX, 2), dtype=np.uint8)  # C order [k, j, i, layer]
    layers[0, :, :5, 0] = 1
    layers[1, :, :5, 0] = 2
    layers[0, :3, :3, 1] = 1  # overlaps the first segment, in its own layer
    sdh = HEMORRHAGE_CLASSES[4]
    segments = [  # mapped by key, by full name, and by the SNOMED code in the terminology tag
        {"ID": "A", "Name": "EDH", "LabelValue": "1", "Layer": "0"},
        {"ID": "B", "Name": "Intraparenchymal hemorrhage", "LabelValue": "2", "Layer": "0"},
        {"ID": "C", "Name": "bleed", "LabelValue": "1", "Layer": "1",
         "Tags": f"TerminologyEntry:{slicer_terminology_tag(sdh)}|"},
    ]
    path = _write_raw_seg(tmp_path / "multi.seg.nrrd", layers, geometry, segments)
    labels, geometry_back, names = read_labelmap(path)
    assert names == {1: "EDH", 2: "Intraparenchymal hemorrhage", 5: "bleed"}
    assert geometry_back.allclose(geometry, atol=1e-6)
    assert labels.shape == SHAPE_ZYX
    assert np.all(labels[0, 3:, :5] == 1) and np.all(labels[1, :, :5] == 2) and np.all(labels[0, :3, :3] == 5)
    assert np.count_nonzero(labels) == np.count_nonzero(layers[..., 0])


def test_seg_label_values_are_mapped_to_our_classes(tmp_path: Path) -> None:
    """Slicer numbers segments 1, 2, ... in its own order: value 1 named "IPH" must come out as IPH."""
    stored = np.zeros(SHAPE_ZYX, dtype=np.uint8)
    stored[1, 2:4, 3:6] = 1
    stored[3, 5, 7] = 2
    segments = [{"ID": "Segment_1", "Name": "IPH", "LabelValue": "1", "Layer": "0"},
                {"ID": "Segment_2", "Name": "4", "LabelValue": "2", "Layer": "0"}]  # bare class number: SAH
    path = _write_raw_seg(tmp_path / "slicer.seg.nrrd", stored, oblique_geometry(), segments)
    labels, _, names = read_labelmap(path)
    expected = np.zeros(SHAPE_ZYX, dtype=np.uint8)
    expected[stored == 1], expected[stored == 2] = 2, 4
    np.testing.assert_array_equal(labels, expected)
    assert names == {2: "IPH", 4: "4"}


def test_ras_seg_nrrd_is_read_in_lps(tmp_path: Path) -> None:
    labels, geometry = sample_labels(), oblique_geometry()
    segments = [{"ID": c.key, "Name": c.name, "LabelValue": str(c.label), "Layer": "0"} for c in HEMORRHAGE_CLASSES]
    path = _write_raw_seg(tmp_path / "ras.seg.nrrd", labels, geometry, segments, space="right-anterior-superior")
    labels_back, geometry_back, _ = read_labelmap(path)
    np.testing.assert_array_equal(labels_back, labels)
    assert geometry_back.allclose(geometry, atol=1e-6)
    header_path = _write_raw_seg(tmp_path / "xyz.seg.nrrd", labels, geometry, segments, space="scanner-xyz")
    with pytest.raises(InputError, match="unsupported NRRD space"):
        read_labelmap(header_path)


def test_unknown_segments_raise_unless_not_strict(tmp_path: Path) -> None:
    stored = np.zeros(SHAPE_ZYX, dtype=np.uint8)
    stored[0, 0, 0], stored[2, 3, 4] = 1, 2
    segments = [{"ID": "s1", "Name": "Skull", "LabelValue": "1", "Layer": "0"},
                {"ID": "s2", "Name": "SDH", "LabelValue": "2", "Layer": "0"}]
    path = _write_raw_seg(tmp_path / "mixed.seg.nrrd", stored, oblique_geometry(), segments)
    with pytest.raises(InputError, match=r"\['Skull'\].*IPH \(Intraparenchymal hemorrhage\)"):
        read_labelmap(path)
    labels, _, names = read_labelmap(path, strict=False)  # the user's own segment becomes background
    assert names == {5: "SDH"} and labels[2, 3, 4] == 5 and np.count_nonzero(labels) == 1


def test_plain_values_outside_classes_raise_unless_not_strict(tmp_path: Path) -> None:
    labels = sample_labels()
    labels[0, 0, 0] = 9
    path = tmp_path / "bad.nii.gz"
    import SimpleITK as sitk  # noqa: N813

    sitk.WriteImage(sitk.GetImageFromArray(labels), str(path))
    with pytest.raises(InputError, match=r"0\.\.5, found \[9\]"):
        read_labelmap(path)
    lenient, _, names = read_labelmap(path, strict=False)
    np.testing.assert_array_equal(lenient, sample_labels())
    assert names == {2: "Intraparenchymal hemorrhage", 5: "Subdural hemorrhage"}


@pytest.mark.parametrize("name", ["out.nii.gz", "out.nii", "out.nrrd"])
def test_plain_labelmap_round_trip(tmp_path: Path, name: str) -> None:
    labels, geometry = sample_labels(), oblique_geometry()
    labels_back, geometry_back, names = read_labelmap(write_labelmap(tmp_path / name, labels, geometry))
    np.testing.assert_array_equal(labels_back, labels)
    assert labels_back.dtype == np.uint8
    assert geometry_back.allclose(geometry, atol=1e-4)
    assert names == {2: "Intraparenchymal hemorrhage", 5: "Subdural hemorrhage"}


def test_overwrite_is_refused_unless_asked(tmp_path: Path) -> None:
    path = write_labelmap(tmp_path / "out.seg.nrrd", sample_labels(), oblique_geometry())
    before = path.read_bytes()
    with pytest.raises(OutputError, match="not overwriting"):
        write_labelmap(path, np.zeros(SHAPE_ZYX, np.uint8), oblique_geometry())
    assert path.read_bytes() == before
    write_labelmap(path, np.zeros(SHAPE_ZYX, np.uint8), oblique_geometry(), overwrite=True)
    assert not read_labelmap(path)[0].any()


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write a label map to out.png"):
        write_labelmap(tmp_path / "out.png", sample_labels(), oblique_geometry())
    with pytest.raises(OutputError, match="directory does not exist"):
        write_labelmap(tmp_path / "missing" / "out.seg.nrrd", sample_labels(), oblique_geometry())
    with pytest.raises(ValueError, match=r"values \[7\]"):
        write_labelmap(tmp_path / "out.seg.nrrd", sample_labels() + 2, oblique_geometry())
    with pytest.raises(ValueError, match="3D"):
        write_labelmap(tmp_path / "out.seg.nrrd", np.zeros((4, 4), np.uint8), oblique_geometry())
    with pytest.raises(InputError, match="does not exist"):
        read_labelmap(tmp_path / "none.seg.nrrd")
    (tmp_path / "labels.png").write_bytes(b"not a label map")
    with pytest.raises(InputError, match="not a label map file"):
        read_labelmap(tmp_path / "labels.png")
    (tmp_path / "labels.png").unlink()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_write(name, *args, **kwargs) -> None:  # noqa: ANN001
        Path(name).write_bytes(b"NRRD0004\npartial")
        raise OSError("disk full")

    monkeypatch.setattr(nrrd, "write", broken_write)
    with pytest.raises(OutputError, match="disk full"):
        write_labelmap(tmp_path / "out.seg.nrrd", sample_labels(), oblique_geometry())
    assert list(tmp_path.iterdir()) == []
