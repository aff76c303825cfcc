"""The training methods, one harness: ``supervised``, ``fixmatch``, ``unimatch_v2`` and ``sss``.

All methods share the supervised part on labeled slices ``img_x`` (coarse head: CE + soft Dice
on the stride-2 logits; SAM-2 decoder: BCE + Dice with one box + point prompt per ground-truth component
on the stride-4 label map).
Unlabeled slices come as a weak view ``img_u_w`` and strong views ``img_u_s1`` / ``img_u_s2``
(CutMix ``mix1`` / ``mix2``):

- fixmatch: pseudo-labels from the student itself on the weak view, one strong view.
- unimatch_v2: pseudo-labels from the EMA teacher, two strong views, complementary channel
  dropout of the strong features (one half of the channels per view).
- sss: unimatch_v2 where the strong features are DFE-fused with the (identically mixed) weak
  ones, ``encode(img_u_w, img_u_s)``, plus the SAM-2 decoder trained on unlabeled slices with one
  box per component of the teacher's confident pseudo-label, supervised by that component's mask.

Pseudo-labels count only where the teacher's confidence reaches ``conf_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..model.heads import HEAD_STRIDE
from ..model.sss_model import SliceFeatures, SSSModel
from .augment import CutMix
from .losses import (
    STRIDE,
    coarse_supervised_loss,
    component_prompts,
    decoder_loss,
    masked_ce_loss,
    pooled_labels,
    pooled_valid,
)

_HEAD_TO_DECODER = STRIDE // HEAD_STRIDE  # coarse-head cells per decoder mask cell (per axis)


@dataclass
class Views:
    """One micro-batch. ``img_*`` (B, 3, S, S) model inputs; ``mask_x`` (B, S/2, S/2) int64 labels
    for the coarse head and ``mask_x_dec`` (B, S/4, S/4) for the decoder."""

    img_x: torch.Tensor
    mask_x: torch.Tensor
    mask_x_dec: torch.Tensor
    img_u_w: torch.Tensor | None = None
    img_u_s1: torch.Tensor | None = None
    img_u_s2: torch.Tensor | None = None
    mix1: CutMix | None = None
    mix2: CutMix | None = None


@dataclass(frozen=True)
class MethodSettings:
    method: str
    conf_threshold: float
    unsup_weight: float
    decoder_weight: float
    max_prompts: int


def _feature_split(feats: SliceFeatures, sizes: list[int]) -> list[SliceFeatures]:
    starts = [sum(sizes[:n]) for n in range(len(sizes))]
    return [SliceFeatures(feats.image_embed[s:s + n], [h[s:s + n] for h in feats.high_res],
                          feats.fpn_stride4[s:s + n], feats.detail[s:s + n])
            for s, n in zip(starts, sizes, strict=True)]


def complementary_dropout(f1: torch.Tensor, f2: torch.Tensor,
                          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep a random half of the channels in ``f1`` and the other half in ``f2`` (scaled x2)."""
    keep = (torch.rand(f1.shape[0], f1.shape[1], 1, 1, generator=gen) < 0.5).to(f1.device, f1.dtype)
    return f1 * keep * 2.0, f2 * (1.0 - keep) * 2.0


class TrainStep(nn.Module):
    """The student model and its loss; ``forward`` returns (loss, stats). DDP wraps this module."""

    def __init__(self, model: SSSModel, settings: MethodSettings) -> None:
        super().__init__()
        self.model = model
        self.settings = settings

    def forward(self, views: Views, teacher: SSSModel | None, gen: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        method = self.settings.method
        if method == "supervised":
            feats_x = self.model.encode(views.img_x)
            return self._supervised(feats_x, views, gen, {})
        pseudo, conf = self._pseudo_labels(views.img_u_w, teacher if method != "fixmatch" else self.model)
        valid = conf >= self.settings.conf_threshold
        stats = {"mask_ratio": valid.float().mean(), "pseudo_fg_ratio": ((pseudo > 0) & valid).float().mean()}
        if method == "fixmatch":
            return self._fixmatch(views, pseudo, valid, gen, stats)
        return self._unimatch(views, pseudo, valid, gen, stats)

    @torch.no_grad()
    def _pseudo_labels(self, img_u_w: torch.Tensor, source: SSSModel) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.softmax(source.coarse_logits(source.encode(img_u_w)).float(), dim=1)
        conf, pseudo = probs.max(dim=1)
        return pseudo, conf

    def _supervised(self, feats_x: SliceFeatures, views: Views, gen: torch.Generator,
                    stats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss_x = coarse_supervised_loss(self.model.coarse_logits(feats_x), views.mask_x)
        loss_dec = self._decoder_term(feats_x, views.mask_x_dec, None, gen)
        stats.update(loss_x=loss_x.detach(), loss_dec_x=loss_dec.detach())
        return loss_x + self.settings.decoder_weight * loss_dec, stats

    def _decoder_term(self, feats: SliceFeatures, labels: torch.Tensor, valid: torch.Tensor | None,
                      gen: torch.Generator) -> torch.Tensor:
        prompts = None
        # Skipped with a zero weight, and on LiteMedSAM, whose decoder reads only frozen parts (nothing to train).
        if self.model.preset.backbone == "sam2" and self.settings.decoder_weight > 0:
            prompts = component_prompts(labels, self.settings.max_prompts, gen, valid)
        if prompts is None:  # keep the decoder in the graph so every rank reduces the same tensors
            return feats.image_embed.sum() * 0.0
        masks, _ = self.model.decode(feats, prompts.image_index, boxes_xyxy=prompts.boxes,
                                     points_xy=prompts.points, point_labels=prompts.point_labels)
        return decoder_loss(masks, prompts)

    def _fixmatch(self, views: Views, pseudo, valid, gen, stats):  # noqa: ANN001, ANN202
        n = views.img_x.shape[0]
        feats = self.model.encode(torch.cat([views.img_x, views.img_u_s1]))
        feats_x, feats_s = _feature_split(feats, [n, views.img_u_s1.shape[0]])
        loss_sup, stats = self._supervised(feats_x, views, gen, stats)
        loss_u = masked_ce_loss(self.model.coarse_logits(feats_s), views.mix1.apply(pseudo),
                                views.mix1.apply(valid))
        stats["loss_u"] = loss_u.detach()
        return loss_sup + self.settings.unsup_weight * loss_u, stats

    def _unimatch(self, views: Views, pseudo, valid, gen, stats):  # noqa: ANN001, ANN202
        n_u = views.img_u_w.shape[0]
        pseudo1, pseudo2 = views.mix1.apply(pseudo), views.mix2.apply(pseudo)
        valid1, valid2 = views.mix1.apply(valid), views.mix2.apply(valid)
        strong = torch.cat([views.img_u_s1, views.img_u_s2])
        if self.settings.method == "sss":
            feats_x = self.model.encode(views.img_x)
            weak = torch.cat([views.mix1.apply(views.img_u_w), views.mix2.apply(views.img_u_w)])
            feats_s1, feats_s2 = _feature_split(self.model.encode(weak, strong), [n_u, n_u])
        else:
            feats = self.model.encode(torch.cat([views.img_x, strong]))
            feats_x, feats_s1, feats_s2 = _feature_split(feats, [views.img_x.shape[0], n_u, n_u])
        loss_sup, stats = self._supervised(feats_x, views, gen, stats)
        drop1, drop2 = complementary_dropout(feats_s1.fpn_stride4, feats_s2.fpn_stride4, gen)
        loss_u1 = masked_ce_loss(self.model.coarse_head(drop1, feats_s1.detail), pseudo1, valid1)
        loss_u2 = masked_ce_loss(self.model.coarse_head(drop2, feats_s2.detail), pseudo2, valid2)
        loss_u = 0.5 * (loss_u1 + loss_u2)
        total = loss_sup + self.settings.unsup_weight * loss_u
        stats["loss_u"] = loss_u.detach()
        if self.settings.method == "sss":
            confident = pooled_labels(torch.where(valid1, pseudo1, torch.zeros_like(pseudo1)), _HEAD_TO_DECODER)
            loss_dec_u = self._decoder_term(feats_s1, confident, pooled_valid(valid1, _HEAD_TO_DECODER), gen)
            stats["loss_dec_u"] = loss_dec_u.detach()
            total = total + self.settings.unsup_weight * self.settings.decoder_weight * loss_dec_u
        return total, stats
