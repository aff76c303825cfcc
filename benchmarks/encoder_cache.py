"""A disk cache of a frozen image encoder's output, for benchmarks that score many heads on one data set.

The lite preset's checkpoints share one frozen encoder (LiteMedSAM's, about 1.5 s a slice on a 2-core
CPU) and differ only in the level projection, DFE and the coarse head. Scoring several of them, or one
with refine on and off, on the same phantoms and scans would encode every slice again each time;
``cache_encoder(model, folder)`` wraps ``model.sam.image_encoder`` so that each distinct input slice
is encoded once and its output read back from ``folder`` afterwards. Used by benchmarks only, never by
the product: the key is the slice's exact input bytes (sha1), so a cached output is the output.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn


class CachedEncoder(nn.Module):
    """Wraps an encoder whose forward maps (B, 3, S, S) to ``{"backbone_fpn": [tensor (B, ...)]}``."""

    def __init__(self, encoder: nn.Module, folder: Path) -> None:
        super().__init__()
        self.encoder = encoder
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(image: torch.Tensor) -> str:
        """sha1 of one input slice's bytes (float32, contiguous)."""
        return hashlib.sha1(image.detach().float().contiguous().numpy().tobytes()).hexdigest()

    def forward(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        keys = [self.key(img) for img in images]
        paths = [self.folder / f"{k}.pt" for k in keys]
        missing = [i for i, p in enumerate(paths) if not p.is_file()]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = self.encoder(images[missing])["backbone_fpn"]
            if len(fresh) != 1:
                raise ValueError("CachedEncoder handles one-level encoders only")
            for row, i in enumerate(missing):
                tmp = paths[i].with_suffix(".tmp")
                torch.save(fresh[0][row].clone(), tmp)
                tmp.replace(paths[i])
        out = torch.stack([torch.load(p, weights_only=True) for p in paths])
        return {"backbone_fpn": [out]}


def cache_encoder(model: nn.Module, folder: Path) -> CachedEncoder:
    """Replace ``model.sam.image_encoder`` by a CachedEncoder on ``folder``; returns it."""
    encoder = model.sam.image_encoder
    if not isinstance(encoder, CachedEncoder):
        encoder = CachedEncoder(encoder, folder)
        model.sam.image_encoder = encoder
    return encoder
