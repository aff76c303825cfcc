"""DFE: discriminative feature enhancement of one FPN scale (SSS: Zhu et al., 2025,
arXiv 2506.08949; where it sits in the model: docs/architecture.md).

Two views (training): weak features F_w and strong features F_s, both (B, C, H, W):

    A = Conv3x3(F_w), B = Conv3x3(F_s)                 (one shared conv)
    s = cos(GAP(A), GAP(B))                            (B,) one similarity per sample
    w = sigmoid(s)
    F = w * MLP(A) + (1 - w) * MLP(B) + (1 - s) * (B - A)
    out = F_s + F                                      (enhanced strong features, residual)

One view (inference): out = F_w + MLP(Conv3x3(F_w)), which is exactly the two-view formula with
F_s = F_w (then s = 1, B - A = 0 and w * MLP(A) + (1 - w) * MLP(A) = MLP(A)).

Initialisation choice: the MLP's last 1x1 conv is zero-initialised, so a fresh DFE is the
identity on one view and pretrained SAM-2 features reach the decoder unchanged until training
moves it (with two different views the (1 - s)(B - A) term is active from the start).
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, C, H, W) maps (per pixel)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nnf.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def pixel_mlp(channels: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """Per-pixel MLP channels -> hidden... -> channels as 1x1 convs with LayerNorm + ReLU between.

    The last layer is zero-initialised (weight and bias), so the MLP outputs 0 at initialisation.
    """
    layers: list[nn.Module] = []
    width = channels
    for h in hidden:
        layers += [nn.Conv2d(width, h, kernel_size=1), ChannelLayerNorm(h), nn.ReLU(inplace=True)]
        width = h
    last = nn.Conv2d(width, channels, kernel_size=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


class DFE(nn.Module):
    """Discriminative feature enhancement for one FPN scale of ``channels`` channels."""

    def __init__(self, channels: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        if channels < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"DFE widths must be positive, got channels={channels}, hidden={hidden}")
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.mlp = pixel_mlp(channels, tuple(hidden))

    def forward(self, f_w: torch.Tensor, f_s: torch.Tensor | None = None) -> torch.Tensor:
        """Enhanced features (B, C, H, W): of the strong view when ``f_s`` is given, else of ``f_w``."""
        if f_s is None:
            return f_w + self.mlp(self.conv(f_w))
        if f_s.shape != f_w.shape:
            raise ValueError(f"weak/strong shapes differ: {tuple(f_w.shape)} vs {tuple(f_s.shape)}")
        a = self.conv(f_w)
        b = self.conv(f_s)
        s = nnf.cosine_similarity(a.mean(dim=(2, 3)), b.mean(dim=(2, 3)), dim=1, eps=1e-8)
        s = s[:, None, None, None]
        w = torch.sigmoid(s)
        fused = w * self.mlp(a) + (1.0 - w) * self.mlp(b) + (1.0 - s) * (b - a)
        return f_s + fused
