"""MRML conversions, segmentation writing and the segment job, headless with slicer-core.

The engine child is replaced by a small fake engine (spawn injection) that writes a .seg.nrrd
with the engine's own writer, so the whole volume node -> engine -> segmentation node path runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import slicer  # slicer-core: headless MRML (pinned in scripts/requirements.txt)

from SSSSegmentLib.classes import HEMORRHAGE_CLASSES
from SSSSegmentLib.errors import Cancelled, CheckpointError, InputError, OutputError
from SSSSegmentLib.fsutil import file_sha256
from SSSSegmentLib.slicer_bridge.batch import VOLUMES_CSV, case_name, segment_files
from SSSSegmentLib.slicer_bridge.checkpoints import import_checkpoint
from SSSSegmentLib.slicer_bridge.dependencies import NEVER_INSTALL, PIP_REQUIREMENTS, install_steps
from SSSSegmentLib.slicer_bridge.engine import SegmentOptions, engine_device, segment_command
from SSSSegmentLib.slicer_bridge.segment_job import SegmentationJob
from SSSSegmentLib.slicer_bridge.segmentations import (
    labelmap_to_segmentation,
    load_segmentation,
    save_segmentation,
    segment_id,
    segment_mask,
    segmentation_to_labelmap,
)
from SSSSegmentLib.slicer_bridge.volume_nodes import (
    ct_to_volume_node,
    numpy_from_vtk_matrix,
    volume_node_to_ct,
    vtk_matrix_from_numpy,
)
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry
from SSSSegmentLib.volumes.io import read_volume
from SSSSegmentLib.volumes.segfile import read_labelmap, slicer_terminology_tag

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# An oblique grid (rotated about i) with anisotropic spacing: catches any axis or sign slip.
_C, _S = np.cos(0.3), np.sin(0.3)
OBLIQUE = Geometry((0.7, 0.8, 3.0), (-20.0, 35.5, 12.25), (1, 0, 0, 0, _C, -_S, 0, _S, _C))


@pytest.fixture(scope="module")
def real_ct(tilted_ct_dir: Path) -> CTVolume:
    return read_volume(tilted_ct_dir)


@pytest.fixture()
def scene():  # noqa: ANN201
    return slicer.vtkMRMLScene()


def _labels(shape=(6, 7, 8), seed: int = 0) -> np.ndarray:  # noqa: ANN001
    """Random labels 0..4 (class 5 = SDH left empty on purpose)."""
    return np.random.default_rng(seed).integers(0, 5, size=shape).astype(np.uint8)


def _ijk_to_ras(node) -> np.ndarray:  # noqa: ANN001
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return numpy_from_vtk_matrix(m)


# -- volume nodes -----------------------------------------------------------------------------------
def test_real_ct_round_trips_through_a_volume_node(real_ct: CTVolume, scene) -> None:  # noqa: ANN001
    node = ct_to_volume_node(real_ct, scene, "head")
    np.testing.assert_allclose(_ijk_to_ras(node), real_ct.geometry.ijk_to_ras(), atol=1e-9)
    back = volume_node_to_ct(node)
    np.testing.assert_array_equal(back.hu_zyx, real_ct.hu_zyx)
    assert back.hu_zyx.dtype == np.float32 and back.shape_zyx == real_ct.shape_zyx
    np.testing.assert_allclose(back.geometry.ijk_to_ras(), real_ct.geometry.ijk_to_ras(), atol=1e-9)
    assert back.geometry.allclose(real_ct.geometry, atol=1e-9)


def test_linear_parent_transform_is_applied_and_nonlinear_refused(scene) -> None:  # noqa: ANN001
    ct = CTVolume(np.arange(24, dtype=np.float32).reshape(2, 3, 4), OBLIQUE)
    node = ct_to_volume_node(ct, scene, "v")
    shift = np.eye(4)
    shift[:3, 3] = (5.0, -3.0, 2.0)  # RAS translation
    linear = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    linear.SetMatrixTransformToParent(vtk_matrix_from_numpy(shift))
    node.SetAndObserveTransformNodeID(linear.GetID())
    moved = volume_node_to_ct(node).geometry
    np.testing.assert_allclose(moved.ijk_to_ras(), shift @ OBLIQUE.ijk_to_ras(), atol=1e-9)
    np.testing.assert_allclose(_ijk_to_ras(node), OBLIQUE.ijk_to_ras(), atol=1e-9)  # node untouched
    grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(InputError, match="non-linear"):
        volume_node_to_ct(node)


# -- segmentation nodes -----------------------------------------------------------------------------
def test_new_segmentation_has_five_coded_segments_and_survives_seg_nrrd(scene, tmp_path: Path) -> None:  # noqa: ANN001
    labels = _labels()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    labelmap_to_segmentation(labels, OBLIQUE, node)
    segmentation = node.GetSegmentation()
    assert list(segmentation.GetSegmentIDs()) == [segment_id(c) for c in HEMORRHAGE_CLASSES]
    for hclass in HEMORRHAGE_CLASSES:
        segment = segmentation.GetSegment(segment_id(hclass))
        assert segment.GetName() == hclass.name
        assert segment.GetTerminology() == slicer_terminology_tag(hclass)
        assert hclass.property_type.value in segment.GetTerminology()
        np.testing.assert_allclose(segment.GetColor(), np.array(hclass.color_rgb) / 255.0, atol=1e-6)
    np.testing.assert_array_equal(segmentation_to_labelmap(node, OBLIQUE, labels.shape), labels)

    path = tmp_path / "result.seg.nrrd"
    save_segmentation(node, path)
    fresh_scene = slicer.vtkMRMLScene()
    reloaded = load_segmentation(path, fresh_scene)
    assert reloaded.GetSegmentation().GetNumberOfSegments() == 5  # the empty SDH segment too
    iph = reloaded.GetSegmentation().GetSegment(segment_id(HEMORRHAGE_CLASSES[1]))
    assert iph.GetName() == "Intraparenchymal hemorrhage"
    np.testing.assert_array_equal(segmentation_to_labelmap(reloaded, OBLIQUE, labels.shape), labels)
    engine_labels, engine_geometry, _ = read_labelmap(path)  # the engine's reader agrees with Slicer's writer
    np.testing.assert_array_equal(engine_labels, labels)
    assert engine_geometry.allclose(OBLIQUE, atol=1e-6)


def test_existing_segmentation_keeps_user_segments_and_rerun_replaces_ours(scene) -> None:  # noqa: ANN001
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    user_mask = np.zeros((6, 7, 8), dtype=np.uint8)
    user_mask[2:4, 1:5, 3:7] = 1
    user_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "user source")
    labelmap_to_segmentation(user_mask, OBLIQUE, user_node)  # a binary labelmap on the same grid
    user_image = slicer.vtkOrientedImageData()
    user_node.GetBinaryLabelmapRepresentation(segment_id(HEMORRHAGE_CLASSES[0]), user_image)
    node.GetSegmentation().SetSourceRepresentationName("Binary labelmap")
    node.AddSegmentFromBinaryLabelmapRepresentation(user_image, "My annotation", [0.1, 0.2, 0.3])
    user_id = node.GetSegmentation().GetSegmentIdBySegmentName("My annotation")

    first, second = _labels(seed=1), _labels(seed=2)
    labelmap_to_segmentation(first, OBLIQUE, node)
    labelmap_to_segmentation(second, OBLIQUE, node)

    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 6  # five of ours (not ten) + the user's
    assert segmentation.GetSegment(user_id).GetName() == "My annotation"
    np.testing.assert_allclose(segmentation.GetSegment(user_id).GetColor(), (0.1, 0.2, 0.3), atol=1e-6)
    user_after = segment_mask(node, user_id, OBLIQUE, user_mask.shape)
    np.testing.assert_array_equal(user_after, user_mask.astype(bool))
    np.testing.assert_array_equal(segmentation_to_labelmap(node, OBLIQUE, second.shape), second)


def test_bad_label_maps_are_refused(scene) -> None:  # noqa: ANN001
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    with pytest.raises(InputError, match="0..5"):
        labelmap_to_segmentation(np.full((2, 2, 2), 7, np.uint8), OBLIQUE, node)
    with pytest.raises(InputError, match="3D"):
        labelmap_to_segmentation(np.zeros((2, 2), np.uint8), OBLIQUE, node)
    assert node.GetSegmentation().GetNumberOfSegments() == 0


# -- engine command, dependencies, checkpoints ----------------------------------------------------
def test_default_options_let_the_engine_pick_the_bundled_model(tmp_path: Path) -> None:
    """No preset in the options: no --preset on the command line, so the engine's default applies."""
    assert SegmentOptions().preset is None
    command = segment_command(tmp_path / "in.nrrd", tmp_path / "out.seg.nrrd", SegmentOptions(device="cpu"))
    assert "--preset" not in command and "--checkpoint" not in command and "--untrained" not in command


def test_installed_models_list_bundled_presets_with_a_file_then_imported_files(tmp_path: Path) -> None:
    from SSSSegmentLib.bundled_models import installed_bundled_presets
    from SSSSegmentLib.slicer_bridge.checkpoints import installed_models

    models = installed_models(None)
    assert [m.key for m in models] == installed_bundled_presets() == ["tiny"]
    assert models[0].bundled and models[0].preset == "tiny" and models[0].checkpoint is None
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "site_v3.safetensors").write_bytes(b"w" * 10)
    (folder / "sam2.1_hiera_small.pt").write_bytes(b"w" * 10)
    (folder / "notes.txt").write_text("not a model")
    (folder / "empty.safetensors").write_bytes(b"")
    models = installed_models(folder)
    imported = [str(folder / "sam2.1_hiera_small.pt"), str(folder / "site_v3.safetensors")]
    assert [m.key for m in models] == ["tiny", *imported]
    assert all(m.preset is None and m.checkpoint == m.key for m in models[1:])
    assert installed_models(tmp_path / "no_such_folder") == models[:1]


def test_segment_command_and_device_mapping(tmp_path: Path) -> None:
    command = segment_command(tmp_path / "in.nrrd", tmp_path / "out.seg.nrrd", SegmentOptions("paper", "cpu"))
    assert command[:3] == [sys.executable, "-m", "SSSSegmentLib.cli"]
    assert command[3:6] == ["segment", str(tmp_path / "in.nrrd"), str(tmp_path / "out.seg.nrrd")]
    assert command[6:8] == ["--preset", "paper"] and "--progress" in command and "json" in command
    assert engine_device("gpu") in ("cuda", "mps") and engine_device("AUTO") == "auto"
    with pytest.raises(InputError):
        engine_device("tpu")
    with pytest.raises(InputError, match="model file not found"):
        segment_command(tmp_path / "in.nrrd", tmp_path / "o.seg.nrrd", SegmentOptions(checkpoint="/nope.pt"))


def test_pip_recipe_matches_the_project_pins() -> None:
    pins = {}
    for line in (PROJECT_ROOT / "scripts" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    expected = {f"{n}=={v}" for n, v in pins.items() if n not in NEVER_INSTALL}
    assert set(PIP_REQUIREMENTS) == expected
    sam2_step = install_steps()[1]
    assert sam2_step.args == ("--no-build-isolation", "--no-deps", "sam2==1.1.0")
    assert dict(sam2_step.env) == {"SAM2_BUILD_CUDA": "0"}
    assert not any(r.lower().startswith(("numpy", "simpleitk", "torch")) for r in PIP_REQUIREMENTS)


def test_import_checkpoint_verifies_and_copies(tmp_path: Path) -> None:
    source = tmp_path / "site_model.pt"
    source.write_bytes(b"weights" * 1000)
    digest = file_sha256(source)
    with pytest.raises(CheckpointError, match="SHA-256"):
        import_checkpoint(source, tmp_path / "models", expected_sha256="0" * 64)
    assert not (tmp_path / "models" / "site_model.pt").exists()
    copy = import_checkpoint(source, tmp_path / "models", expected_sha256=digest.upper())
    assert copy.read_bytes() == source.read_bytes()
    assert import_checkpoint(source, tmp_path / "models") == copy  # identical file: no error
    other = tmp_path / "other" / "site_model.pt"
    other.parent.mkdir()
    other.write_bytes(b"different")
    with pytest.raises(OutputError, match="already"):
        import_checkpoint(other, tmp_path / "models")
    with pytest.raises(CheckpointError, match="not found"):
        import_checkpoint(tmp_path / "missing.pt", tmp_path / "models")


# -- the segment job and the batch, with a fake engine -------------------------------------------
FAKE_ENGINE = """
import json, sys, time
import SimpleITK as sitk
import numpy as np
from SSSSegmentLib.volumes.geometry import Geometry
from SSSSegmentLib.volumes.segfile import write_labelmap

args = sys.argv[1:]
assert args[0] == "segment", args
src, dst = args[1], args[2]
image = sitk.ReadImage(src)
hu = sitk.GetArrayFromImage(image)
if hu.max() < -500:
    print(json.dumps({"event": "error", "message": "input is not a CT volume: all air", "exit_code": 2}))
    sys.exit(2)
for i in range(3):
    event = {"event": "progress", "stage": "encode", "fraction": i / 3, "message": f"step {i}"}
    print(json.dumps(event), flush=True)
    time.sleep(float(__import__("os").environ.get("FAKE_ENGINE_SLEEP", "0")))
labels = np.zeros(hu.shape, np.uint8)
labels[hu > 50] = 2
labels[hu > 90] = 4
write_labelmap(dst, labels, Geometry.from_sitk(image), overwrite=True)
print(json.dumps({"event": "done", "outputs": [dst], "volumes_ml": {"IPH": float((labels == 2).sum())}}))
"""


@pytest.fixture()
def fake_spawn(tmp_path: Path):  # noqa: ANN201
    script = tmp_path / "fake_engine.py"
    script.write_text(textwrap.dedent(FAKE_ENGINE))

    def spawn(args: list[str], **kwargs: object) -> subprocess.Popen:
        assert args[1:3] == ["-m", "SSSSegmentLib.cli"]
        return subprocess.Popen([sys.executable, str(script), *args[3:]], **kwargs)  # type: ignore[call-overload]

    return spawn


def _phantom_ct() -> CTVolume:
    hu = np.full((5, 6, 7), 30.0, dtype=np.float32)
    hu[1:3, 2:4, 2:5] = 70.0  # "IPH"
    hu[4, 0, 0] = 120.0  # "SAH"
    return CTVolume(hu, OBLIQUE)


def test_segment_job_creates_the_node_only_on_success(scene, fake_spawn) -> None:  # noqa: ANN001
    volume = ct_to_volume_node(_phantom_ct(), scene, "Head CT")
    seen: list[float] = []
    job = SegmentationJob(volume, spawn=fake_spawn, progress_callback=lambda s, f, m="": seen.append(f))
    node = job.start().wait(poll_interval_s=0.02)
    assert node.GetName() == "Head CT hemorrhage" and node.GetScene() is scene
    assert seen == pytest.approx([0.0, 1 / 3, 2 / 3], abs=1e-3)
    expected = np.zeros((5, 6, 7), np.uint8)
    expected[1:3, 2:4, 2:5] = 2
    expected[4, 0, 0] = 4
    np.testing.assert_array_equal(segmentation_to_labelmap(node, OBLIQUE, expected.shape), expected)
    assert job.volumes_ml == {"IPH": 12.0}
    assert node.GetSegmentation().GetNumberOfSegments() == 5


def test_segment_job_error_and_cancel_leave_the_scene_alone(scene, fake_spawn, monkeypatch) -> None:  # noqa: ANN001
    air = CTVolume(np.full((3, 4, 5), -1000.0, np.float32), OBLIQUE)
    volume = ct_to_volume_node(air, scene, "air")
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="not a CT volume"):
        SegmentationJob(volume, spawn=fake_spawn).wait(poll_interval_s=0.02)
    assert scene.GetNumberOfNodes() == nodes_before

    monkeypatch.setenv("FAKE_ENGINE_SLEEP", "5")
    head = ct_to_volume_node(_phantom_ct(), scene, "head")
    nodes_before = scene.GetNumberOfNodes()
    polls = iter(range(1000))
    job = SegmentationJob(head, spawn=fake_spawn)
    with pytest.raises(Cancelled):
        job.wait(poll_interval_s=0.02, should_cancel=lambda: next(polls) > 5)
    assert scene.GetNumberOfNodes() == nodes_before and job.result_node is None


def test_segment_files_writes_outputs_and_a_volume_table(tmp_path: Path, fake_spawn) -> None:  # noqa: ANN001
    from SSSSegmentLib.volumes.io import write_volume

    good = write_volume(tmp_path / "case_a.nii.gz", _phantom_ct())
    bad = write_volume(tmp_path / "case_b.nrrd", CTVolume(np.full((3, 4, 5), -1000.0, np.float32), OBLIQUE))
    out = tmp_path / "out"
    out.mkdir()
    results = segment_files([good, bad, tmp_path / "missing.nrrd"], out, spawn=fake_spawn)
    assert [r.ok for r in results] == [True, False, False]
    assert (out / "case_a.seg.nrrd").is_file() and not (out / "case_b.seg.nrrd").exists()
    rows = (out / VOLUMES_CSV).read_text().splitlines()
    assert rows[0].split(",")[:3] == ["input", "output", "EDH_ml"]
    assert "12.000" in rows[1] and "not a CT volume" in rows[2] and "does not exist" in rows[3]
    assert case_name(good) == "case_a"
    with pytest.raises(OutputError, match="exists"):
        segment_files([good], out, spawn=fake_spawn)  # volumes.csv is not overwritten by default


def test_install_packages_sets_sam2_env_only_for_its_step(monkeypatch) -> None:  # noqa: ANN001
    from SSSSegmentLib.slicer_bridge.dependencies import install_packages

    monkeypatch.delenv("SAM2_BUILD_CUDA", raising=False)
    calls: list[tuple[str, str | None]] = []
    install_packages(lambda args: calls.append((args, os.environ.get("SAM2_BUILD_CUDA"))))
    assert calls[0][0].split() == list(PIP_REQUIREMENTS) and calls[0][1] is None
    assert calls[1] == ("--no-build-isolation --no-deps sam2==1.1.0", "0")
    assert "SAM2_BUILD_CUDA" not in os.environ


def test_checkpoint_kind_and_untrained_flag_reach_the_command(tmp_path: Path) -> None:
    sam2_weights, sss_model = tmp_path / "sam2.1_hiera_small.pt", tmp_path / "site.safetensors"
    sam2_weights.write_bytes(b"x")
    sss_model.write_bytes(b"y")
    options = SegmentOptions(checkpoint=str(sam2_weights))
    command = segment_command(tmp_path / "i.nrrd", tmp_path / "o.seg.nrrd", options)
    assert command[command.index("--sam2-checkpoint") + 1] == str(sam2_weights) and "--checkpoint" not in command
    command = segment_command(tmp_path / "i.nrrd", tmp_path / "o.seg.nrrd",
                              SegmentOptions(checkpoint=str(sss_model), allow_untrained=True))
    assert command[command.index("--checkpoint") + 1] == str(sss_model) and "--untrained" in command


def test_bridge_and_runner_import_without_slicer_or_vtk() -> None:
    code = (
        "import sys\n"
        "import SSSSegmentLib.runner\n"
        "from SSSSegmentLib.slicer_bridge import batch, checkpoints, dependencies, engine, segment_job\n"
        "from SSSSegmentLib.slicer_bridge import segmentations, volume_nodes\n"
        "bad = [m for m in ('slicer', 'vtk', 'qt', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT, timeout=60)


def test_segment_job_with_the_real_engine_cli(scene) -> None:  # noqa: ANN001
    """The real `python -m SSSSegmentLib.cli segment ... --progress json` child (tiny preset, bundled model)."""
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

    phantom = generate_phantom(0, PhantomConfig(matrix=128))
    volume = ct_to_volume_node(CTVolume(phantom.hu_zyx, phantom.geometry), scene, "phantom")
    stages: list[str] = []
    options = SegmentOptions(preset="tiny", device="cpu", allow_untrained=True)
    job = SegmentationJob(volume, options=options, progress_callback=lambda s, f, m="": stages.append(s))
    node = job.start().wait(poll_interval_s=0.05)
    assert [node.GetSegmentation().GetSegment(segment_id(c)).GetName() for c in HEMORRHAGE_CLASSES] == [
        c.name for c in HEMORRHAGE_CLASSES
    ]
    assert set(job.volumes_ml) == {c.key for c in HEMORRHAGE_CLASSES} and job.trained is True
    assert "encode" in stages
    labels = segmentation_to_labelmap(node, phantom.geometry, phantom.hu_zyx.shape)
    voxel_ml = phantom.geometry.voxel_volume_ml
    expected_ml = {c.key: float((labels == c.label).sum()) * voxel_ml for c in HEMORRHAGE_CLASSES}
    assert job.volumes_ml == pytest.approx(expected_ml, abs=1e-3)


def test_segment_job_refuses_a_transformed_target_before_running(scene, fake_spawn) -> None:  # noqa: ANN001
    volume = ct_to_volume_node(_phantom_ct(), scene, "head")
    target = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "target")
    target.SetAndObserveTransformNodeID(scene.AddNewNodeByClass("vtkMRMLLinearTransformNode").GetID())
    spawned: list[object] = []

    def spawn(*args: object, **kwargs: object) -> subprocess.Popen:
        spawned.append(args)
        return fake_spawn(*args, **kwargs)

    with pytest.raises(OutputError, match="transform"):
        SegmentationJob(volume, target, spawn=spawn).start()
    assert not spawned and target.GetSegmentation().GetNumberOfSegments() == 0


# -- the module's Logic and self-test, headless ----------------------------------------------------
def _stub_module(name: str, **attributes: object):  # noqa: ANN205
    import types

    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


@pytest.fixture()
def module_py(monkeypatch, tmp_path: Path):  # noqa: ANN001, ANN201
    """SSSSegment/SSSSegment.py imported headless: real MRML (slicer-core) and the real engine; only
    the Qt layer, ``slicer.app`` and the ScriptedLoadableModule base classes are stand-ins."""
    import importlib.util
    import types
    import unittest

    class Test(unittest.TestCase):
        def delayDisplay(self, message: str, msec: int | None = None) -> None:
            pass

    class Base:
        def __init__(self, *args: object) -> None:
            pass

    base = _stub_module("slicer.ScriptedLoadableModule", ScriptedLoadableModule=type("Module", (Base,), {}),
                        ScriptedLoadableModuleWidget=type("Widget", (Base,), {}),
                        ScriptedLoadableModuleLogic=type("Logic", (Base,), {}), ScriptedLoadableModuleTest=Test)
    wrapper = _stub_module("slicer.parameterNodeWrapper", Choice=lambda choices: tuple(choices),
                           parameterNodeWrapper=lambda cls: cls)
    monkeypatch.setitem(sys.modules, "qt", _stub_module("qt"))
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", base)
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", wrapper)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(processEvents=lambda: None), raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", slicer.vtkMRMLScene(), raising=False)
    monkeypatch.setenv("SSSSEG_MODEL_DIR", str(tmp_path / "imported_models"))
    spec = importlib.util.spec_from_file_location("SSSSegment_headless", PROJECT_ROOT / "SSSSegment" / "SSSSegment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_logic_defaults_to_the_installed_bundled_model(module_py, tmp_path: Path) -> None:  # noqa: ANN001
    import inspect

    logic = module_py.SSSSegmentLogic()
    for method in (logic.segmentVolume, logic.segmentFiles):
        assert inspect.signature(method).parameters["preset"].default is None
    models = logic.installedModels()
    assert [(m.key, m.bundled) for m in models] == [("tiny", True)]  # only what is installed: no fast/paper
    import_checkpoint(_write(tmp_path / "site_v3.safetensors", b"w" * 64), logic.modelDirectory())
    assert [m.label for m in logic.installedModels()] == [models[0].label, "site_v3.safetensors (imported)"]
    volume = ct_to_volume_node(_phantom_ct(), slicer.mrmlScene, "head")
    job = logic.segmentVolume(volume, device="cpu")  # wait=False: the running job, cancelled at once
    try:
        assert job.options.preset is None and job.options.checkpoint is None and not job.options.allow_untrained
    finally:
        job.cancel()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_module_self_test_segments_phantoms_with_the_default_model(module_py) -> None:  # noqa: ANN001
    """SSSSegmentTest as Slicer runs it: Logic defaults -> engine child -> segmentation node; the
    bundled model finds the phantom's bleed (Dice) and nothing on the same head without bleeds."""
    import unittest

    suite = unittest.TestSuite(
        module_py.SSSSegmentTest(name)
        for name in ("test_DefaultModelIsInstalled", "test_SegmentPhantom", "test_NothingOnBleedFreePhantom")
    )
    with open(os.devnull, "w") as sink:
        result = unittest.TextTestRunner(stream=sink, verbosity=0).run(suite)
    problems = [f"{test.id()}: {trace}" for test, trace in result.failures + result.errors]
    assert result.testsRun == 3 and not problems, "\n".join(problems)
