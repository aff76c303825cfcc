"""One call from a CT volume to a hemorrhage label map: the engine's inference pipeline."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..evaluation.metrics import class_volumes_ml
from ..progress import ProgressCallback, silent
from ..volumes.geometry import CTVolume, Geometry
from ..volumes.orientation import to_axial
from .config import InferenceConfig, inference_config_for
from .encode import encode_volume
from .refine import decode_prompts, fuse_refined

LOG = logging.getLogger("sssseg")


@dataclass(frozen=True)
class SegmentationResult:
    """The output of ``segment_volume``.

    labels_zyx: uint8 (K, J, I), BHSD values (0 background, 1 EDH ... 5 SDH), on ``geometry``.
    geometry: the input volume's grid, exactly (whatever its orientation).
    volumes_ml: per-class volume in mL, keyed by class key ("EDH", ...), all five present.
    prompt_set: the PCPG output (prompts, kept components and the decision per component), indexed
    on ``working_geometry``: the axial grid the model saw.
    timings_s: wall time per stage.
    working_geometry: the axial (LPS-ordered) grid segmented; equal to ``geometry`` unless the input
    was coronal, sagittal or had flipped axes (see ``volumes.orientation``).
    """

    labels_zyx: np.ndarray
    geometry: Geometry
    volumes_ml: dict[str, float]
    prompt_set: object
    timings_s: dict[str, float] = field(default_factory=dict)
    encoder_batch_size: int = 0
    working_geometry: Geometry | None = None


def segment_volume(
    volume: CTVolume,
    model: torch.nn.Module,
    device: torch.device,
    config: InferenceConfig | None = None,
    progress: ProgressCallback = silent,
    log: Callable[[str], None] | None = None,
) -> SegmentationResult:
    """Segment hemorrhage in a CT volume of any orientation with a loaded ``SSSModel``.

    The model works on axial slices: a coronal, sagittal or axis-flipped volume is permuted losslessly
    to the closest LPS axes (``volumes.orientation.to_axial``, one line to ``log``, or to the "sssseg"
    logger without one), segmented there (``segment_axial``), and its labels are permuted back, so
    ``labels_zyx`` (K, J, I) lies exactly on the input's grid.
    """
    working, reorientation = to_axial(volume)
    if reorientation.is_identity:
        return segment_axial(volume, model, device, config, progress, log)
    (log or LOG.info)(reorientation.describe())
    result = segment_axial(working, model, device, config, progress, log)
    labels_zyx = np.ascontiguousarray(reorientation.to_input(result.labels_zyx))
    return dataclasses.replace(result, labels_zyx=labels_zyx, geometry=volume.geometry,
                               working_geometry=working.geometry)


def segment_axial(
    volume: CTVolume,
    model: torch.nn.Module,
    device: torch.device,
    config: InferenceConfig | None = None,
    progress: ProgressCallback = silent,
    log: Callable[[str], None] | None = None,
) -> SegmentationResult:
    """Segment a volume whose k-slices are taken as axial (no reorientation; see ``segment_volume``).

    Steps: encode all k-slices (batched) -> coarse per-label probabilities on the volume
    grid -> prompts from the physically-constrained generator -> SAM-2 decoder refinement of
    each prompt -> fusion to one label per voxel. Without ``config``, the model's own recommended
    settings (``inference_config_for``) apply.
    """
    from ..prompts import generate_prompts
    from ..prompts.generator import decision_log_lines

    config = config or inference_config_for(model)
    timings: dict[str, float] = {}
    model.eval()
    t0 = time.perf_counter()
    progress("encode", 0.1, "image encoder")
    encoded = encode_volume(model, volume.hu_zyx, device, config.batch_size, progress, log=log)
    timings["encode"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("prompts", 0.72, "physical constraints")
    prompt_set = generate_prompts(encoded.prob_lzyx, volume.hu_zyx, volume.geometry, config.prompts)
    timings["prompts"] = time.perf_counter() - t0
    for line in decision_log_lines(prompt_set.decisions):
        (log or LOG.info)(f"PCPG: {line}")

    t0 = time.perf_counter()
    prompts = list(prompt_set.prompts)
    if config.refine and prompts:
        masks = decode_prompts(model, encoded.features, encoded.frame, prompts, device, config.prompt_batch, progress)
        labels_zyx = fuse_refined(prompts, masks, volume.shape_zyx, config.mask_threshold, config.box_margin_px,
                                  prompt_set.plausible_zyx)
    else:
        labels_zyx = np.asarray(prompt_set.kept_zyx, dtype=np.uint8)
    timings["refine"] = time.perf_counter() - t0
    progress("done", 1.0, f"{len(prompts)} prompts")
    return SegmentationResult(
        labels_zyx=labels_zyx,
        geometry=volume.geometry,
        volumes_ml=class_volumes_ml(labels_zyx, volume.geometry.spacing_mm),
        prompt_set=prompt_set,
        timings_s=timings,
        encoder_batch_size=encoded.batch_size,
        working_geometry=volume.geometry,
    )
