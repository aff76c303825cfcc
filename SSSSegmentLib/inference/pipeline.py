"""One call from a CT volume to a hemorrhage label map: the engine's inference pipeline."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..evaluation.metrics import class_volumes_ml
from ..progress import ProgressCallback, silent
from ..prompts.components import candidate_label_map
from ..prompts.generator import decision_log_lines, prompts_from_candidates
from ..volumes.geometry import CTVolume, Geometry
from ..volumes.orientation import to_axial
from .coarse import coarse_candidates
from .config import InferenceConfig, inference_config_for
from .encode import cpu_bf16, encode_features, encode_volume
from .refine import decode_prompts, fuse_refined
from .timing import StageClock

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

    Steps: encode the k-slices (batched; a tilted DICOM stack's acquired planes, see
    ``coarse.coarse_candidates``) -> coarse per-label candidates on the volume grid -> prompts from
    the physically-constrained generator -> SAM-2 decoder refinement of each prompt (features of the
    prompted slices, encoded again unless ``config.keep_features``) -> fusion to one label per voxel.
    Without ``config``, the model's own recommended settings (``inference_config_for``) apply.
    ``timings_s``: totals "encode", "prompts", "refine" and their parts "preprocess", "encoder",
    "dfe_head", "to_grid", "decoder", "fusion" (seconds).
    """
    config = config or inference_config_for(model)
    clock = StageClock()
    model.eval()
    progress("encode", 0.1, "image encoder")
    with clock.stage("encode"), cpu_bf16(device, config.bf16):
        candidates, encoded, batch = _coarse(volume, model, device, config, progress, clock, log)
    progress("prompts", 0.72, "physical constraints")
    with clock.stage("prompts"):
        prompt_set = prompts_from_candidates(candidates, volume.hu_zyx, volume.geometry, config.prompts)
    for line in (*prompt_set.notes, *decision_log_lines(prompt_set.decisions)):
        (log or LOG.info)(f"PCPG: {line}")
    prompts = list(prompt_set.prompts)
    with clock.stage("refine"):
        labels_zyx = np.asarray(prompt_set.kept_zyx, dtype=np.uint8)
        if config.refine and prompts:
            with cpu_bf16(device, config.bf16):
                labels_zyx = _refine(volume, model, device, config, prompts, prompt_set, encoded, progress,
                                     clock)
    progress("done", 1.0, f"{len(prompts)} prompts")
    return SegmentationResult(
        labels_zyx=labels_zyx,
        geometry=volume.geometry,
        volumes_ml=class_volumes_ml(labels_zyx, volume.geometry.spacing_mm),
        prompt_set=prompt_set,
        timings_s=dict(clock.seconds),
        encoder_batch_size=batch,
        working_geometry=volume.geometry,
    )


def _coarse(volume: CTVolume, model: torch.nn.Module, device: torch.device, config: InferenceConfig,
            progress: ProgressCallback, clock: StageClock, log: Callable[[str], None] | None
            ) -> tuple[np.ndarray, object | None, int]:
    """(candidates uint8 (K, J, I), the reference path's ``EncodedVolume`` or None, encoder batch size)."""
    threshold = config.prompts.prob_threshold
    if config.keep_features:
        encoded = encode_volume(model, volume.hu_zyx, device, config.batch_size, progress, log=log, clock=clock)
        return candidate_label_map(encoded.prob_lzyx, threshold), encoded, encoded.batch_size
    candidates, n_encoded, batch = coarse_candidates(model, volume, device, threshold, config.acquired_planes,
                                                     config.batch_size, progress, clock, log,
                                                     config.intracranial_only)
    if config.intracranial_only:
        (log or LOG.info)(f"encoded the {n_encoded} slices or acquired planes with intracranial content")
    elif n_encoded < volume.shape_zyx[0]:
        (log or LOG.info)(f"encoded the {n_encoded} acquired planes, not the {volume.shape_zyx[0]} resampled slices")
    return candidates, None, batch


def _refine(volume: CTVolume, model: torch.nn.Module, device: torch.device, config: InferenceConfig,
            prompts: list, prompt_set: object, encoded: object | None, progress: ProgressCallback,
            clock: StageClock) -> np.ndarray:
    """Labels uint8 (K, J, I) from the decoder's masks of ``prompts``; without the reference path's
    ``encoded`` features, the slices that hold prompts are encoded (again) here."""
    if encoded is not None:
        features, frame, local = encoded.features, encoded.frame, prompts
    else:
        ks = sorted({p.slice_k for p in prompts})
        features, frame = encode_features(model, volume.hu_zyx[ks], device, config.batch_size, clock)
        row = {k: n for n, k in enumerate(ks)}
        local = [dataclasses.replace(p, slice_k=row[p.slice_k]) for p in prompts]
    with clock.stage("decoder"):
        masks = decode_prompts(model, features, frame, local, device, config.prompt_batch, progress)
    with clock.stage("fusion"):
        return fuse_refined(prompts, masks, volume.shape_zyx, config.mask_threshold, config.box_margin_px,
                            prompt_set.plausible_zyx)
