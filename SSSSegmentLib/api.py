"""Python API of the engine: numpy / SimpleITK / files in, hemorrhage label maps out.

    from SSSSegmentLib import api
    model = api.load_model()                                         # the best bundled model installed
    model = api.load_model(checkpoint="site_model.safetensors")      # or a site's own checkpoint
    result = api.segment_array(hu_zyx, geometry, model=model)       # numpy (K, J, I) in HU
    labels_img = api.segment_sitk(sitk_image, model=model)           # SimpleITK in, SimpleITK out
    api.segment_file("ct_dir/", "out.seg.nrrd", model=model)         # DICOM/NIfTI/NRRD in, .seg.nrrd out

Any orientation is accepted: coronal, sagittal or axis-flipped volumes are segmented on axial planes
(a lossless axis permutation, logged once) and the labels always come back on the input's own grid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundled_models import (  # noqa: F401  (re-exported: the API's view of the bundled models)
    BUNDLED_MODEL_NOTICE,
    BUNDLED_MODELS_DIR,
    UNFIT_BUNDLED,
    bundled_model_path,
    default_preset,
    installed_bundled_presets,
    no_model_message,
)
from .errors import CheckpointError, OutputError
from .fsutil import check_not_input, check_writable_output
from .inference import InferenceConfig, SegmentationResult
from .progress import ProgressCallback, silent
from .volumes.geometry import CTVolume, Geometry

LOG = logging.getLogger("sssseg")
QC_PNG_BYTES = 16 << 20  # generous: the QC picture of 21 finding slices at 320 px takes 2.3 MB
LABEL_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with where its weights came from (for logs and reports)."""

    model: object  # SSSModel
    device: object  # torch.device
    source: str  # "checkpoint PATH", "bundled NAME", "SAM-2 weights PATH (heads untrained)", "untrained"
    trained: bool
    bundled: bool = False  # the bundled demonstration model (see bundled_models.BUNDLED_MODEL_NOTICE)
    weights: Path | None = None  # the file the weights came from (None: random weights)

    def notices(self) -> list[str]:
        """The lines every run with this model logs about it: the bundled model's NOTE, a WARNING for a
        bundled model not fit to read scans with (``UNFIT_BUNDLED``) and for untrained weights."""
        lines = [f"NOTE: {BUNDLED_MODEL_NOTICE}"] if self.bundled else []
        unfit = UNFIT_BUNDLED.get(self.model.preset.name) if self.bundled else None
        if unfit:
            lines.append(f"WARNING: {unfit}")
        if not self.trained:
            lines.append("WARNING: the model weights are UNTRAINED: the segmentation is not meaningful")
        return lines


def load_model(
    preset: str | None = None,
    checkpoint: str | Path | None = None,
    sam2_checkpoint: str | Path | None = None,
    device: str = "auto",
    allow_untrained: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """Resolve and load the model, in this order of precedence.

    1. ``checkpoint``: an SSS checkpoint (its preset must match ``preset`` when one is given);
    2. ``sam2_checkpoint``: official SAM-2/2.1 weights for the encoder and decoder (our heads
       untrained); the preset defaults to the one the file name belongs to, else ``fast``;
    3. the active model of the site's model registry (``registry.default_registry_dir()``:
       ``$SSSSEG_REGISTRY``, else ``~/.local/share/sssseg/registry``; an empty variable turns it off),
       when one is active and its preset is ``preset`` (or no preset is asked);
    4. the bundled model of ``preset``; with no preset, the best bundled model installed
       (``bundled_models.default_preset()``; today ``tiny``);
    5. random weights (seeded), only when ``allow_untrained`` (with no preset: ``tiny``).
    Otherwise CheckpointError says what to pass, naming the presets that do have a bundled model.
    """
    import torch

    from .model import build_model, load_sss_checkpoint, resolve_device

    torch_device = resolve_device(device)
    if checkpoint is not None:
        model = load_sss_checkpoint(Path(checkpoint), device=str(torch_device), expected_preset=preset)
        return LoadedModel(model, torch_device, f"checkpoint {checkpoint}", trained=True, weights=Path(checkpoint))
    if sam2_checkpoint is not None:
        if preset is None:
            from .model.presets import DEFAULT_PRESET, preset_for_checkpoint_name

            owner = preset_for_checkpoint_name(Path(sam2_checkpoint).name)
            preset = owner.name if owner is not None else DEFAULT_PRESET
        model = build_model(preset, Path(sam2_checkpoint), device=str(torch_device))
        return LoadedModel(model, torch_device, f"SAM-2 weights {sam2_checkpoint} (SSS heads untrained)", False,
                           weights=Path(sam2_checkpoint))
    default = default_model_file(preset)
    if default is not None:
        model = load_sss_checkpoint(default.path, device=str(torch_device), expected_preset=default.preset)
        source = (f"registry version {default.version} ({default.path})" if default.version is not None
                  else f"bundled {default.path.name}")
        return LoadedModel(model, torch_device, source, trained=True, bundled=default.version is None,
                           weights=default.path)
    if not allow_untrained:
        raise CheckpointError(no_model_message(preset))
    preset = preset or default_preset() or "tiny"
    torch.manual_seed(seed)
    model = build_model(preset, None, device=str(torch_device))
    return LoadedModel(model, torch_device, "untrained (random weights)", trained=False)


@dataclass(frozen=True)
class DefaultModelFile:
    """The file the engine's default model is loaded from: ``version`` is the registry version (None:
    the bundled model); ``preset`` the preset the file must hold (None: any, a registry model when no
    preset was asked)."""

    path: Path
    version: str | None
    preset: str | None


def default_model_file(preset: str | None) -> DefaultModelFile | None:
    """Steps 3-4 of :func:`load_model` without loading anything: the registry's active model when it
    fits ``preset``, else the bundled model of ``preset`` (None: the best installed); None when neither
    exists. ``sssseg batch`` pins this file once for all its workers."""
    active = _active_registry_model(preset)
    if active is not None:
        return DefaultModelFile(Path(active[1]), active[0], preset)
    chosen = preset or default_preset()
    bundled = bundled_model_path(chosen) if chosen else None
    if bundled is not None and bundled.is_file():
        return DefaultModelFile(bundled, None, chosen)
    return None


def _active_registry_model(preset: str | None) -> tuple[str, Path] | None:
    """(version, file) of the registry's active model when it fits ``preset`` (None: any)."""
    from .model.checkpoint import read_checkpoint_info
    from .registry import active_model_path

    active = active_model_path()
    if active is None or (preset is not None and read_checkpoint_info(active[1]).get("preset") != preset):
        return None
    return active


def segment_volume(
    volume: CTVolume,
    model: LoadedModel,
    config: InferenceConfig | None = None,
    progress: ProgressCallback = silent,
    log: Callable[[str], None] | None = None,
) -> SegmentationResult:
    """Validate a CT volume and segment it (see ``inference.segment_volume``)."""
    from .inference import segment_volume as run
    from .volumes import validate_ct

    validate_ct(volume)
    return run(volume, model.model, model.device, config, progress, log)


def segment_array(
    hu_zyx: np.ndarray,
    geometry: Geometry,
    model: LoadedModel,
    config: InferenceConfig | None = None,
    progress: ProgressCallback = silent,
) -> SegmentationResult:
    """Segment a CT given as a numpy array (K, J, I) in HU on ``geometry`` (LPS)."""
    volume = CTVolume(np.asarray(hu_zyx, dtype=np.float32), geometry, source="array")
    return segment_volume(volume, model, config, progress)


def segment_sitk(image, model: LoadedModel, config: InferenceConfig | None = None):  # noqa: ANN001, ANN201
    """Segment a SimpleITK CT image (HU); returns a uint8 SimpleITK label image on the same grid."""
    import SimpleITK as sitk

    from .errors import InputError

    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"expected a 3D single-component image, got {image.GetDimension()}D "
                         f"with {image.GetNumberOfComponentsPerPixel()} component(s)")
    volume = CTVolume(sitk.GetArrayFromImage(image).astype(np.float32), Geometry.from_sitk(image), "SimpleITK image")
    result = segment_volume(volume, model, config)
    return volume.to_sitk(result.labels_zyx)


def output_paths(output: Path, also_nifti: bool) -> list[Path]:
    """The files ``segment_file`` writes for an OUTPUT argument."""
    paths = [output]
    name = output.name
    if also_nifti and name.endswith(".seg.nrrd"):
        paths.append(output.with_name(name[: -len(".seg.nrrd")] + ".nii.gz"))
    return paths


def check_outputs(
    output_path: str | Path | None,
    overwrite: bool = False,
    also_nifti: bool = False,
    qc_png: str | Path | None = None,
    input_path: str | Path | None = None,
) -> list[Path]:
    """The files a segmentation run will write, checked before any work (OutputError if unusable).

    Each must have a known suffix (label maps: ``LABEL_SUFFIXES``; the QC picture ``qc_png``:
    ``.png``), lie in a folder where a file can really be created, not be a folder, and not exist
    unless ``overwrite``. With ``input_path``, none may be the input CT (also through a hard or
    symbolic link) nor lie inside the input's DICOM folder, ``overwrite`` or not
    (``fsutil.check_not_input``). The label maps come first, the QC picture (if any) last.
    ``output_path`` None: no label map (a run that writes only a DICOM SEG, checked by
    ``export.check_dicom_seg_output``).
    """
    from .volumes.io import full_suffix, input_folder
    from .volumes.segfile import LABEL_SUFFIXES

    outputs = [] if output_path is None else output_paths(Path(output_path), also_nifti)
    if qc_png is not None:
        qc_png = Path(qc_png)
        if qc_png.suffix.lower() != ".png":
            raise OutputError(f"the QC picture must be a .png file, got '{qc_png.name}'")
    if input_path is not None:
        folder = input_folder(Path(input_path))
        for path in [*outputs, *([qc_png] if qc_png is not None else [])]:
            check_not_input(path, Path(input_path), folder)
    for path in outputs:
        if full_suffix(path, LABEL_SUFFIXES) is None and not path.is_dir():
            raise OutputError(f"unsupported output type '{path.name}': the name must end with one of "
                              f"{', '.join(LABEL_SUFFIXES)} (e.g. {path.name}.seg.nrrd)")
        check_writable_output(path, overwrite)
    if qc_png is not None:
        check_writable_output(qc_png, overwrite)
        outputs.append(qc_png)
    return outputs


def check_output_space(outputs: list[Path], shape_zyx: tuple[int, ...]) -> None:
    """OutputError unless each output's file system has room for the outputs of a volume of ``shape_zyx``.

    Checked after reading the CT (its size sets the need) and before loading the model. A label map
    takes at most one byte per voxel (it is written compressed) plus headers; a QC picture at most
    QC_PNG_BYTES.
    """
    from .fsutil import check_free_space

    voxels = int(np.prod(shape_zyx))
    needed: dict[Path, int] = {}
    for path in outputs:
        folder = path.parent if str(path.parent) else Path(".")
        size = QC_PNG_BYTES if path.suffix.lower() == ".png" else voxels + LABEL_HEADER_BYTES
        needed[folder] = needed.get(folder, 0) + size
    for folder, size in needed.items():
        check_free_space(folder, size)


def read_ct(
    input_path: str | Path, log: Callable[[str], None] | None = None, series_uid: str | None = None
) -> CTVolume:
    """Read a CT (DICOM folder, NIfTI, NRRD, MHA) and check that it is a usable CT volume."""
    from .volumes import read_volume, validate_ct

    volume = read_volume(Path(input_path), log=log, series_uid=series_uid)
    validate_ct(volume)
    return volume


def write_outputs(
    result: SegmentationResult,
    outputs: list[Path],
    overwrite: bool = False,
    volume: CTVolume | None = None,
    qc_title: str = "",
) -> None:
    """Write the label map to every label output and the QC picture to a ``.png`` output (``volume``:
    the CT segmented, needed for the picture), atomically and all or nothing: on any failure (a full
    disk becomes OutputError, exit code 4) the outputs this call created are removed."""
    from .fsutil import writing_outputs
    from .volumes import write_labelmap

    with writing_outputs(outputs):
        for path in outputs:
            if path.suffix.lower() == ".png":
                write_qc(result, path, volume, qc_title, overwrite)
            else:
                write_labelmap(path, result.labels_zyx, result.geometry, overwrite=overwrite)


def write_qc(result: SegmentationResult, out_png: Path, volume: CTVolume | None, title: str = "",
             overwrite: bool = False) -> Path:
    """The QC picture of ``result`` on ``volume`` (see :mod:`.qc.case_picture`)."""
    from .qc.case_picture import save_case_qc

    if volume is None:
        raise ValueError("the QC picture needs the CT volume that was segmented")
    return save_case_qc(volume, result.labels_zyx, out_png, title=title, overwrite=overwrite)


def segment_file(
    input_path: str | Path,
    output_path: str | Path,
    model: LoadedModel,
    config: InferenceConfig | None = None,
    progress: ProgressCallback = silent,
    log: Callable[[str], None] | None = None,
    overwrite: bool = False,
    also_nifti: bool = False,
    series_uid: str | None = None,
    qc_png: str | Path | None = None,
) -> tuple[SegmentationResult, list[Path]]:
    """Read a CT (DICOM folder, NIfTI, NRRD), segment it and write the label map (and a QC picture).

    Outputs are checked before any work (so a bad output path fails fast; free space once the CT is
    read) and written atomically, all or nothing, in the input's own (tilt-corrected) geometry.
    ``series_uid`` picks one series from a DICOM folder holding several; ``qc_png``: also write the
    QC picture there.
    """
    outputs = check_outputs(output_path, overwrite, also_nifti, qc_png, input_path)
    progress("read", 0.02, str(input_path))
    volume = read_ct(input_path, log, series_uid)
    check_output_space(outputs, volume.shape_zyx)
    result = segment_volume(volume, model, config, progress, log)
    write_outputs(result, outputs, overwrite, volume, qc_title=Path(input_path).name)
    return result, outputs
