"""The coarse-mask head of the prompt generator (PCPG): per-class logits at stride 4."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..classes import NUM_LABELS


class CoarseHead(nn.Module):
    """Light conv head on the stride-4 FPN map: (B, C, H, W) -> logits (B, num_labels, H, W).

    Softmax over the label axis gives background (label 0) + the hemorrhage classes. Two 3x3
    conv blocks (GroupNorm + GELU) and a 1x1 classifier whose bias starts at the prior
    ``background_prior`` for background (bleeds are rare), so early training is stable.
    """

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
        self._init_prior(background_prior)

    def _init_prior(self, background_prior: float) -> None:
        """Bias so that softmax at init gives ``background_prior`` to label 0, the rest shared evenly."""
        nn.init.zeros_(self.classifier.bias)
        fg_each = (1.0 - background_prior) / (self.num_labels - 1)
        with torch.no_grad():
            self.classifier.bias[0] = math.log(background_prior / fg_each)

    def forward(self, fpn_stride4: torch.Tensor) -> torch.Tensor:
        """Per-class logits (B, num_labels, H, W) at the input's (stride-4) resolution."""
        return self.classifier(self.body(fpn_stride4))
