"""The model a run trains: where its weights start, which parts train, and its EMA teacher."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..model import SSSModel, build_model, load_sss_checkpoint
from .config import TrainConfig


def build_student(config: TrainConfig, device: torch.device) -> SSSModel:
    """SSSModel from an SSS checkpoint, from official SAM-2 weights, or random (seeded) init."""
    torch.manual_seed(config.seed)
    if config.init_checkpoint:
        model = load_sss_checkpoint(config.init_checkpoint, device="cpu", expected_preset=config.preset,
                                    allow_new_modules=True)
    else:
        model = build_model(config.preset, sam2_checkpoint=config.sam2_checkpoint, device="cpu",
                            expected_sha256=config.sam2_sha256)
    configure_trainable(model, config.encoder_frozen, config.unfreeze_last_stage)
    return model.to(device).train()


def configure_trainable(model: SSSModel, encoder_frozen: bool, unfreeze_last_stage: bool) -> None:
    """Set ``requires_grad``: DFE, coarse head, prompt encoder and mask decoder always train; the
    image encoder trains unless frozen (then optionally its last Hiera stage); SAM-2's video-memory
    modules, unused per slice, never train. A LiteMedSAM backbone (preset ``lite``) trains only its
    level projection, DFE and coarse head, whatever the flags say: its encoder, prompt encoder and
    decoder stay as pretrained (``lite_train.trainable_lite_parts``)."""
    if model.preset.backbone != "sam2":
        from .lite_train import trainable_lite_parts  # lite_train imports this module

        trainable_lite_parts(model)
        return
    for param in model.parameters():
        param.requires_grad_(False)
    sam = model.sam
    parts: list[nn.Module] = [model.dfe, model.coarse_head, sam.sam_prompt_encoder, sam.sam_mask_decoder]
    if not encoder_frozen:
        parts.append(sam.image_encoder)
    elif unfreeze_last_stage:
        trunk = sam.image_encoder.trunk
        first = trunk.stage_ends[-2] + 1
        parts += list(trunk.blocks[first:])
    for part in parts:
        for param in part.parameters():
            param.requires_grad_(True)
    sam.no_mem_embed.requires_grad_(True)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def make_teacher(model: SSSModel) -> SSSModel:
    """A frozen copy of the student (the EMA teacher)."""
    teacher = copy.deepcopy(model)
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher.train()


@torch.no_grad()
def update_ema(teacher: nn.Module, student: nn.Module, decay: float, step: int) -> None:
    """teacher = d * teacher + (1 - d) * student with d = min(decay, 1 - 1 / (step + 1)) for the parameters
    that train; frozen ones are copied (the mix would move them by rounding); buffers copied."""
    d = min(decay, 1.0 - 1.0 / (step + 1))
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        if s.requires_grad:
            t.mul_(d).add_(s.detach(), alpha=1.0 - d)
        else:
            t.copy_(s)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)
