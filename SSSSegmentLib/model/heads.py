"""The coarse-mask head of the prompt generator (PCPG): per-class logits at stride 2.

SAM-2's finest FPN level is at stride 4 (cells of 4 model pixels, about 4 mm for the tiny preset
at 256 px): a thin subdural or subarachnoid bleed is one or two cells wide there, so the head
upsamples it to stride 2 with detail from a light convolutional stem on the input image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import nn

from ..classes import NUM_LABELS

HEAD_STRIDE = 2  # model-input pixels per coarse logit cell
DETAIL_CHANNELS = 16


def _conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv + GroupNorm(1) + GELU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=stride),
        nn.GroupNorm(1, out_channels),
        nn.GELU(),
    )


class DetailStem(nn.Module):
    """Model input (B, 3, S, S) -> detail features (B, DETAIL_CHANNELS, S/2, S/2)."""

    def __init__(self, channels: int = DETAIL_CHANNELS) -> None:
        super().__init__()
        self.layers = nn.Sequential(_conv_block(3, channels, stride=2), _conv_block(channels, channels))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


class CoarseHead(nn.Module):
    """Stride-4 FPN map (B, C, S/4, S/4) + detail (B, 16, S/2, S/2) -> logits (B, num_labels, S/2, S/2).

    Softmax over the label axis gives background (label 0) + the hemorrhage classes. A stride-4
    branch (two 3x3 conv blocks and a 1x1 classifier whose bias starts at the prior
    ``background_prior`` for background, so early training is stable) gives logits that are
    upsampled x2; a refinement branch adds a correction from the upsampled hidden map and the
    detail features. Its last layer starts at zero, so a freshly added refinement leaves the
    stride-4 prediction unchanged.
    """

    stride = HEAD_STRIDE

    def __init__(self, in_channels: int, num_labels: int = NUM_LABELS, mid_channels: int = 64,
                 background_prior: float = 0.99) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2 (background + classes), got {num_labels}")
        self.num_labels = num_labels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1),
            nn.GroupNorm(1, mid_channels),
            nn.GELU(),
            nn.Conv2d(mid_channels, mid_channels, kernel_size=3, padding=1),
            nn.GroupNorm(1, mid_channels),
            nn.GELU(),
        )
        self.classifier = nn.Conv2d(mid_channels, num_labels, kernel_size=1)
        self.detail_stem = DetailStem()
        self.refine = nn.Sequential(
            _conv_block(mid_channels + DETAIL_CHANNELS, 32),
            nn.Conv2d(32, num_labels, kernel_size=1),
        )
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)
        self._init_prior(background_prior)

    def _init_prior(self, background_prior: float) -> None:
        """Bias so that softmax at init gives ``background_prior`` to label 0, the rest shared evenly."""
        nn.init.zeros_(self.classifier.bias)
        fg_each = (1.0 - background_prior) / (self.num_labels - 1)
        with torch.no_grad():
            self.classifier.bias[0] = math.log(background_prior / fg_each)

    def forward(self, fpn_stride4: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        """Per-class logits (B, num_labels, S/2, S/2)."""
        hidden = self.body(fpn_stride4)
        size = detail.shape[-2:]
        logits = nnf.interpolate(self.classifier(hidden), size=size, mode="bilinear", align_corners=False)
        hidden_up = nnf.interpolate(hidden, size=size, mode="bilinear", align_corners=False)
        return logits + self.refine(torch.cat([hidden_up, detail], dim=1))
