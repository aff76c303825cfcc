"""Inference configuration (frozen, readable from a yaml mapping)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import CheckpointError, SSSSegError
from ..prompts import PromptConfig


@dataclass(frozen=True)
class InferenceConfig:
    """How a volume is segmented once the model is loaded.

    batch_size: slices per encoder batch; None sizes it from the device (CPU: preset default;
        CUDA: free memory). A CUDA out-of-memory error halves it and retries.
    refine: run the SAM-2 mask decoder on each prompt (False: coarse head + PCPG only).
    mask_threshold: probability above which a refined mask claims a voxel.
    box_margin_px: a refined mask may not reach further than this many slice pixels outside its
        prompt box (SAM masks can leak along similar-looking tissue).
    prompts: the prompt generator's rules.
    acquired_planes: encode the acquired planes of a DICOM stack that reading resampled along k
        (gantry tilt, uneven spacing) when there are fewer of them, and blend their probabilities
        onto the grid (``coarse.coarse_candidates``); False encodes the K resampled slices.
    intracranial_only: encode only the slices (or acquired planes) with intracranial content
        (``coarse.intracranial_slices``); the others are background without running the model.
        A heavy encoder's saving (the lite preset recommends it); PCPG drops extracranial
        candidates anyway.
    bf16: run the model under bfloat16 autocast on the CPU as well (CUDA always uses it).
    keep_features: the plain reference path: keep every slice's features and the full probability
        volume (memory grows with K). False streams: probabilities are reduced batch by batch and
        only the slices that hold prompts are encoded again for the decoder.
    """

    batch_size: int | None = None
    refine: bool = True
    mask_threshold: float = 0.5
    box_margin_px: int = 8
    prompt_batch: int = 64
    prompts: PromptConfig = field(default_factory=PromptConfig)
    acquired_planes: bool = True
    intracranial_only: bool = False
    bf16: bool = False
    keep_features: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> InferenceConfig:
        """Build from a plain mapping (e.g. ``yaml.safe_load``); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SSSSegError(f"unknown inference setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        args = dict(values)
        if isinstance(args.get("prompts"), dict):
            args["prompts"] = PromptConfig.from_dict(args["prompts"])
        return cls(**args)


def inference_config_for(model: object) -> InferenceConfig:
    """The settings a model recommends for itself, else the defaults.

    An SSS checkpoint may carry ``info["inference"]``: a mapping of InferenceConfig fields chosen
    when the model was validated (e.g. ``{"refine": false}`` for a model whose decoder masks, at
    stride 4, are coarser than its stride-2 coarse head). ``model`` is an SSSModel (its
    ``checkpoint_info`` is the checkpoint metadata, None for a model not loaded from one).
    """
    meta = getattr(model, "checkpoint_info", None)
    info = meta.get("info") if isinstance(meta, dict) else None
    values = info.get("inference") if isinstance(info, dict) else None
    if values is None:
        return InferenceConfig()
    if not isinstance(values, dict):
        raise CheckpointError(f"checkpoint inference settings must be a mapping, got {type(values).__name__}")
    try:
        return InferenceConfig.from_dict(values)
    except (SSSSegError, TypeError) as exc:
        raise CheckpointError(f"checkpoint inference settings are invalid: {exc}") from None


def config_for_run(model: object, batch_size: int | None = None, refine: str = "model") -> InferenceConfig:
    """``inference_config_for(model)`` with what a user gave on the command line: the encoder batch size
    (``--batch-size``; None keeps the model's own recommendation, e.g. the lite model's 2 for its
    memory, else the device default) and ``--refine`` ("model" keeps the model's, "on", "off")."""
    config = inference_config_for(model)
    if batch_size is not None:
        config = replace(config, batch_size=batch_size)
    return config if refine == "model" else replace(config, refine=refine == "on")
