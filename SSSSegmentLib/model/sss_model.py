"""SSSModel: SAM-2 (image encoder, prompt encoder, mask decoder) + DFE + coarse-mask head.

Segmentation is per axial slice: a volume is a batch of 2D slices (B, 3, S, S) prepared by
``preprocess.ct_to_model_input``. Prompts are in model-input pixel coordinates (x, y).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import SSSSegError
from .dfe import DFE, ChannelLayerNorm
from .heads import CoarseHead
from .presets import ModelPreset

BOX_CORNER_LABELS = (2, 3)  # SAM-2 encodes a box as its top-left / bottom-right corner points


@dataclass
class SliceFeatures:
    """Encoder output for B slices (S = model input size, C = SAM-2 hidden width).

    ``image_embed`` (B, C, S/16, S/16): DFE-enhanced lowest-resolution level plus SAM-2's
    ``no_mem_embed`` (as SAM2ImagePredictor does without memory). ``high_res`` [(B, C/8, S/4, S/4),
    (B, C/4, S/8, S/8)]: DFE-enhanced levels projected by the decoder's conv_s0 / conv_s1.
    ``fpn_stride4`` (B, C, S/4, S/4): the DFE-enhanced stride-4 FPN level and ``detail``
    (B, 16, S/2, S/2): the coarse head's image stem; both only feed the coarse head.
    """

    image_embed: torch.Tensor
    high_res: list[torch.Tensor]
    fpn_stride4: torch.Tensor
    detail: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.image_embed.shape[0]


class SSSModel(nn.Module):
    """The SSS network. ``sam`` is a ``sam2.modeling.sam2_base.SAM2Base``."""

    def __init__(self, sam: nn.Module, preset: ModelPreset) -> None:
        super().__init__()
        if preset.backbone == "sam2" and not sam.use_high_res_features_in_sam:
            raise SSSSegError(f"preset {preset.name!r}: the SAM-2 config must use high-res decoder features")
        # One mask token, the one training supervises (token 0): in eval mode SAM-2 would otherwise swap
        # in tokens 1-3 when token 0 looks unstable, picked by an IoU head no training of ours trains.
        sam.sam_mask_decoder.dynamic_multimask_via_stability = False
        self.sam = sam
        self.preset = preset
        channels = preset.dfe_channels or sam.hidden_dim
        # DFE's input: the encoder's levels, or their learned projection to ``preset.dfe_channels``.
        self.level_proj = None if channels == sam.hidden_dim else nn.Sequential(
            nn.Conv2d(sam.hidden_dim, channels, kernel_size=1), ChannelLayerNorm(channels))
        # SAM-2: three FPN levels (stride 4, 8, 16); LiteMedSAM: one image embedding (stride 4).
        self.dfe = nn.ModuleList(DFE(channels, preset.dfe_hidden) for _ in range(self.num_levels))
        self.coarse_head = CoarseHead(channels)
        self.sam2_checkpoint_sha256: str | None = None  # set by build_model / load_sss_checkpoint
        self.checkpoint_info: dict | None = None  # SSS checkpoint metadata, set by load_sss_checkpoint

    @property
    def num_levels(self) -> int:
        """Feature levels the encoder gives: 3 for SAM-2 (stride 4, 8, 16), 1 for LiteMedSAM (stride 4)."""
        return 3 if self.preset.backbone == "sam2" else 1

    @property
    def mask_stride(self) -> int:
        """Model-input pixels per cell of ``decode``'s masks: 4 for SAM-2 (S/4), 1 for LiteMedSAM (S)."""
        return 4 if self.preset.backbone == "sam2" else 1

    @property
    def image_size(self) -> int:
        return int(self.sam.image_size)

    def encode(self, images: torch.Tensor, images_strong: torch.Tensor | None = None) -> SliceFeatures:
        """Slices (B, 3, S, S) -> SliceFeatures. With ``images_strong`` (same shape), DFE fuses the
        weak (``images``) and strong views and the features are those of the strong view."""
        return self.features_from_levels(*self.enhanced_levels(images, images_strong))

    def enhanced_levels(self, images: torch.Tensor, images_strong: torch.Tensor | None = None
                        ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The DFE-enhanced FPN levels [(B, C, S/4, S/4), (B, C, S/8, S/8), (B, C, S/16, S/16)] and the
        coarse head's detail features (B, 16, S/2, S/2) of slices (B, 3, S, S) (see ``encode``). For
        LiteMedSAM: [DFE-enhanced embedding, the encoder's embedding] (B, 256, S/4, S/4) each."""
        fpn = fpn_weak = self._fpn(images)
        if images_strong is None:
            levels = [dfe(self.dfe_input(f)) for dfe, f in zip(self.dfe, fpn, strict=True)]
            detail = self.coarse_head.detail_stem(images)
        else:
            fpn = self._fpn(images_strong)
            levels = [dfe(self.dfe_input(f), self.dfe_input(fs)) for dfe, f, fs in zip(self.dfe, fpn_weak, fpn,
                                                                                        strict=True)]
            detail = self.coarse_head.detail_stem(images_strong)
        if self.preset.backbone != "sam2":
            # LiteMedSAM's decoder reads the encoder's own embedding, the one it was trained on (it
            # stays pretrained); DFE's output feeds the coarse head. levels = [DFE(embedding), embedding].
            levels = [*levels, fpn[0]]
        return levels, detail

    def dfe_input(self, level: torch.Tensor) -> torch.Tensor:
        """An encoder level (B, C_enc, h, w) as DFE takes it: itself, or projected to ``preset.dfe_channels``."""
        return level if self.level_proj is None else self.level_proj(level)

    def features_from_levels(self, levels: list[torch.Tensor], detail: torch.Tensor) -> SliceFeatures:
        """SliceFeatures from the DFE-enhanced FPN levels [(B, C, S/4, S/4), (B, C, S/8, S/8),
        (B, C, S/16, S/16)] and the detail stem's output: the decoder's own projections (conv_s0 /
        conv_s1) and SAM-2's ``no_mem_embed`` are applied here, so a decoder fine-tune can start
        from stored levels (the encoder, DFE and coarse head frozen) and still train conv_s0 / conv_s1."""
        decoder = self.sam.sam_mask_decoder
        high_res = [decoder.conv_s0(levels[0]), decoder.conv_s1(levels[1])] if decoder.use_high_res_features else []
        image_embed = levels[-1]
        if self.sam.directly_add_no_mem_embed:
            image_embed = image_embed + self.sam.no_mem_embed.view(1, -1, 1, 1)
        return SliceFeatures(image_embed=image_embed, high_res=high_res, fpn_stride4=levels[0], detail=detail)

    def coarse_logits(self, feats: SliceFeatures) -> torch.Tensor:
        """Per-class logits (B, 6, S/2, S/2) (softmax over background + 5 classes)."""
        return self.coarse_head(feats.fpn_stride4, feats.detail)

    def coarse_logits_of(self, images: torch.Tensor) -> torch.Tensor:
        """``coarse_logits(encode(images))`` for slices (B, 3, S, S), without what only the decoder reads:
        the DFE of the stride-8 and stride-16 levels and the decoder's projections are skipped."""
        fpn = self._fpn(images)
        return self.coarse_head(self.dfe[0](self.dfe_input(fpn[0])), self.coarse_head.detail_stem(images))

    def decode(
        self,
        feats: SliceFeatures,
        image_index: torch.Tensor,
        boxes_xyxy: torch.Tensor | None = None,
        points_xy: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refine N prompts into masks: (mask_logits (N, 1, S/m, S/m), iou (N, 1)), m = ``mask_stride``.

        Prompt n applies to slice ``image_index[n]`` of ``feats``. ``boxes_xyxy`` (N, 4),
        ``points_xy`` (N, P, 2) with ``point_labels`` (N, P) (1 positive, 0 negative, -1 padding),
        all in model-input pixel coordinates. With ``multimask`` the decoder proposes 3 masks and
        the one with the highest predicted IoU is returned. A single-mask request always returns
        mask token 0, the one training supervises (SAM-2's eval-mode stability fallback is off).
        """
        idx = image_index.to(device=feats.image_embed.device, dtype=torch.long)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= feats.batch_size):
            raise SSSSegError(f"image_index out of range for {feats.batch_size} encoded slices")
        sparse, dense = self._prompt_embeddings(image_index, boxes_xyxy, points_xy, point_labels)
        masks, iou, _, _ = self.sam.sam_mask_decoder(
            image_embeddings=feats.image_embed[idx],
            image_pe=self._dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=False,
            high_res_features=[level[idx] for level in feats.high_res],
        )
        if multimask:
            best = iou.argmax(dim=1)
            rows = torch.arange(masks.shape[0], device=masks.device)
            masks, iou = masks[rows, best][:, None], iou[rows, best][:, None]
        return masks.float(), iou.float()

    def _dense_pe(self) -> torch.Tensor:
        """SAM-2's dense positional encoding of the image grid (1, C, S/16, S/16). It depends only on a
        fixed buffer and the grid size, so it is computed once per device (an interactive click decodes
        one prompt at a time, and recomputing it cost about a quarter of each decode on the CPU)."""
        device = self.sam.no_mem_embed.device
        cache = self.__dict__.setdefault("_dense_pe_cache", {})
        if device not in cache:
            with torch.no_grad():
                cache[device] = self.sam.sam_prompt_encoder.get_dense_pe()
        return cache[device]

    def _prompt_embeddings(self, image_index, boxes_xyxy, points_xy, point_labels):
        """Sparse (N, P', C) and dense prompt embeddings. SAM-2 takes a box as two corner points (plus
        a padding point); LiteMedSAM was trained with SAM's box input (corners, no padding point), and
        ``points`` given with a box are embedded without padding, as in SAM."""
        encoder = self.sam.sam_prompt_encoder
        if self.preset.backbone == "sam2" or boxes_xyxy is None:
            return encoder(points=self._prompt_points(image_index, boxes_xyxy, points_xy, point_labels),
                           boxes=None, masks=None)
        points = None
        if points_xy is not None:
            points = self._prompt_points(image_index, None, points_xy, point_labels)
        self._prompt_points(image_index, boxes_xyxy, None, None)  # checks the boxes' shape
        return encoder(points=points, boxes=boxes_xyxy.to(self.sam.no_mem_embed.device, torch.float32), masks=None)

    def _prompt_points(self, image_index, boxes_xyxy, points_xy, point_labels):
        """SAM-2 point prompts (N, P', 2) float and labels (N, P') int32: box corners first, then points."""
        n = image_index.shape[0]
        device = self.sam.no_mem_embed.device
        parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        if boxes_xyxy is not None:
            if boxes_xyxy.shape != (n, 4):
                raise SSSSegError(f"boxes_xyxy must be ({n}, 4), got {tuple(boxes_xyxy.shape)}")
            corner_labels = torch.tensor(BOX_CORNER_LABELS, dtype=torch.int32, device=device).expand(n, 2)
            parts.append((boxes_xyxy.to(device, torch.float32).reshape(n, 2, 2), corner_labels))
        if points_xy is not None:
            ok = points_xy.ndim == 3 and points_xy.shape[0] == n and points_xy.shape[2] == 2
            if not ok or point_labels is None or point_labels.shape != points_xy.shape[:2]:
                raise SSSSegError(f"points_xy must be ({n}, P, 2) with point_labels ({n}, P)")
            parts.append((points_xy.to(device, torch.float32), point_labels.to(device, torch.int32)))
        if not parts:
            raise SSSSegError("decode needs a box or points for every prompt")
        return torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts], dim=1)

    def _fpn(self, images: torch.Tensor) -> list[torch.Tensor]:
        """SAM-2's FPN levels (stride 4, 8, 16) of checked slices (B, 3, S, S)."""
        self._check_images(images)
        return self.sam.image_encoder(images)["backbone_fpn"]

    def _check_images(self, images: torch.Tensor) -> None:
        size = self.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise SSSSegError(
                f"preset {self.preset.name!r} expects images (B, 3, {size}, {size}), "
                f"got {tuple(images.shape)}"
            )

    def count_parameters(self) -> dict[str, int]:
        """Parameter counts by part: encoder, decoder (prompt encoder + mask decoder), dfe,
        coarse_head, sam_memory (SAM-2's video-memory modules, unused per slice) and total."""
        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        sam = self.sam
        counts: dict[str, int] = {
            "encoder": count(sam.image_encoder),
            "decoder": count(sam.sam_prompt_encoder) + count(sam.sam_mask_decoder),
            "dfe": count(self.dfe) + (count(self.level_proj) if self.level_proj is not None else 0),
            "coarse_head": count(self.coarse_head),
        }
        counts["sam_memory"] = count(sam) - counts["encoder"] - counts["decoder"]
        counts["total"] = count(self)
        return counts
