"""TinyViT image encoder in the layout of the LiteMedSAM checkpoint (our implementation).

Input (B, 3, S, S) with S divisible by 4; output (B, 256, S/4, S/4) (256 x 64 x 64 at S = 256):

    patch embedding   two 1x1 conv+BN (3 -> 32 -> 64 channels), full S x S grid
    stage 0           2 MBConv blocks at S x S, then a patch merge to S/2 (128 channels)
    stage 1           2 window-attention blocks (window 7) at S/2, merge to S/4 (160)
    stage 2           6 window-attention blocks (window 14) at S/4, merge without stride (320)
    stage 3           2 window-attention blocks (window 7) at S/4
    neck              1x1 conv, LayerNorm over channels, 3x3 conv, LayerNorm -> 256 channels

Module and parameter names follow the checkpoint's ``image_encoder.*`` keys, so its state dict
loads strictly. Every stage keeps its feature maps as (B, C, H, W) except inside the attention
blocks, which work on tokens (B, H*W, C). BatchNorm layers are only ever used in eval mode here
(frozen statistics from the checkpoint); training never updates them (``train`` keeps them in eval).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import nn

from .dfe import ChannelLayerNorm


@dataclass(frozen=True)
class TinyViTConfig:
    """The LiteMedSAM TinyViT's widths and depths (stage i: ``dims[i]``, ``depths[i]`` blocks)."""

    dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    heads: tuple[int, ...] = (2, 4, 5, 10)
    windows: tuple[int, ...] = (7, 7, 14, 7)
    mlp_ratio: int = 4
    mbconv_expand: int = 4
    out_channels: int = 256


class ConvBN(nn.Sequential):
    """Conv2d without bias followed by BatchNorm2d (names ``c`` and ``bn`` as in the checkpoint)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))


class PatchEmbed(nn.Module):
    """(B, 3, S, S) -> (B, dim, S, S): 1x1 ConvBN, GELU, 1x1 ConvBN."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(3, dim // 2), nn.GELU(), ConvBN(dim // 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project, residual add, GELU. (B, C, H, W)."""

    def __init__(self, dim: int, expand: int) -> None:
        super().__init__()
        hidden = dim * expand
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, kernel=3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nnf.gelu(self.conv2(nnf.gelu(self.conv1(x))))
        return nnf.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """(B, C, H, W) -> (B, C', H/s, W/s): 1x1, depthwise 3x3 with stride s (1 or 2), 1x1; GELU between."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, kernel=3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(nnf.gelu(self.conv2(nnf.gelu(self.conv1(x)))))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window of w x w tokens (B', w*w, C), with a learned bias per
    head for every (|dy|, |dx|) offset between two tokens of the window."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        cells = list(itertools.product(range(window), range(window)))
        offsets: dict[tuple[int, int], int] = {}
        index = [offsets.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(offsets))
                 for a in cells for b in cells]
        self.attention_biases = nn.Parameter(torch.zeros(heads, len(offsets)))
        self.register_buffer("bias_index", torch.tensor(index).view(len(cells), len(cells)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, self.heads, 3 * self.head_dim).permute(0, 2, 1, 3).split(
            self.head_dim, dim=3)
        bias = self.attention_biases[:, self.bias_index].to(q.dtype)
        out = nnf.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class TokenMlp(nn.Module):
    """LayerNorm, Linear (ratio x), GELU, Linear on tokens (B, N, C)."""

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * ratio)
        self.fc2 = nn.Linear(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nnf.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention (zero-padded to whole windows) + residual, depthwise 3x3 ConvBN, MLP + residual.
    (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: int) -> None:
        super().__init__()
        self.window = window
        self.attn = WindowAttention(dim, heads, window)
        self.local_conv = ConvBN(dim, dim, kernel=3, groups=dim)
        self.mlp = TokenMlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        win = self.window
        pad_h, pad_w = (-h) % win, (-w) % win
        tokens = nnf.pad(x.permute(0, 2, 3, 1), (0, 0, 0, pad_w, 0, pad_h))
        nh, nw = (h + pad_h) // win, (w + pad_w) // win
        windows = tokens.view(b, nh, win, nw, win, c).transpose(2, 3).reshape(b * nh * nw, win * win, c)
        attended = self.attn(windows).view(b, nh, nw, win, win, c).transpose(2, 3).reshape(b, nh * win, nw * win, c)
        x = x + attended[:, :h, :w].permute(0, 3, 1, 2)
        x = self.local_conv(x)
        flat = x.flatten(2).transpose(1, 2)
        flat = flat + self.mlp(flat)
        return flat.transpose(1, 2).reshape(b, c, h, w)


class Stage(nn.Module):
    """Blocks of one stage, then an optional patch merge (``downsample``)."""

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """The LiteMedSAM image encoder: (B, 3, S, S) -> (B, 256, S/4, S/4) (see the module docstring)."""

    def __init__(self, config: TinyViTConfig = TinyViTConfig()) -> None:  # noqa: B008 (frozen, immutable)
        super().__init__()
        dims = config.dims
        self.patch_embed = PatchEmbed(dims[0])
        stages = []
        for i, depth in enumerate(config.depths):
            if i == 0:
                blocks = [MBConv(dims[0], config.mbconv_expand) for _ in range(depth)]
            else:
                blocks = [TinyViTBlock(dims[i], config.heads[i], config.windows[i], config.mlp_ratio)
                          for _ in range(depth)]
            last = i == len(config.depths) - 1
            # The merge into the last stage keeps the grid (stride 1): output stride 4 overall.
            merge = None if last else PatchMerging(dims[i], dims[i + 1], stride=1 if i + 2 == len(dims) else 2)
            stages.append(Stage(blocks, merge))
        self.layers = nn.ModuleList(stages)
        out = config.out_channels
        self.neck = nn.Sequential(nn.Conv2d(dims[-1], out, 1, bias=False), ChannelLayerNorm(out),
                                  nn.Conv2d(out, out, 3, padding=1, bias=False), ChannelLayerNorm(out))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S) -> image embedding (B, 256, S/4, S/4)."""
        x = self.patch_embed(images)
        for stage in self.layers:
            x = stage(x)
        return self.neck(x)

    def train(self, mode: bool = True) -> TinyViT:
        """Switch mode, but keep every BatchNorm in eval mode (the checkpoint's statistics stay)."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self
