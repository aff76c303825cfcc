"""Frozen-encoder features of training slices, computed once, for training the SAM-2 decoder alone.

With the image encoder, DFE and coarse head frozen, a slice's DFE-enhanced FPN levels never change,
so they are computed once per slice (as inference computes them: one view, eval mode) and kept in
float16. The decoder's own projections (conv_s0 / conv_s1) train, so they are applied to the stored
levels at every step (``SSSModel.features_from_levels``).

Shapes (N kept slices, C = SAM-2 hidden width, S = model input size): ``levels`` [(N, C, S/4, S/4),
(N, C, S/8, S/8), (N, C, S/16, S/16)] float16; ``labels`` (N, S, S) uint8 on the model grid;
``coarse`` (N, S/2, S/2) uint8, the coarse head's argmax label; ``case_of_slice`` (N,) int and
``slice_k`` (N,) int: which case and which of its k-slices each row is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..model.preprocess import ct_to_model_input
from ..model.sss_model import SliceFeatures, SSSModel
from ..progress import ProgressCallback, silent
from .cases import CasePaths, read_case
from .data import labels_to_model_grid

MIN_COARSE_PIXELS = 16  # a slice without labels is kept when the coarse head calls this much bleed


@dataclass
class FeatureBank:
    """Stored features of the slices that hold a label or a coarse-head bleed (see module docstring)."""

    levels: list[torch.Tensor]
    labels: torch.Tensor
    coarse: torch.Tensor
    case_of_slice: np.ndarray
    slice_k: np.ndarray

    @property
    def num_slices(self) -> int:
        return int(self.labels.shape[0])

    def select(self, index: torch.Tensor) -> FeatureBank:
        """The bank restricted to slices ``index`` (N',) in that order."""
        rows = index.numpy()
        return FeatureBank([lv[index] for lv in self.levels], self.labels[index], self.coarse[index],
                           self.case_of_slice[rows], self.slice_k[rows])

    def features(self, model: SSSModel, index: torch.Tensor, device: torch.device) -> SliceFeatures:
        """SliceFeatures (float32, on ``device``) of slices ``index`` for decoding; the decoder's
        projections run here, with gradients when they train. The coarse head's inputs are left out:
        ``detail`` is an empty (B, 0, 1, 1) tensor."""
        levels = [lv[index].to(device, torch.float32) for lv in self.levels]
        return model.features_from_levels(levels, levels[0].new_zeros(len(index), 0, 1, 1))


@torch.no_grad()
def build_bank(model: SSSModel, cases: Sequence[CasePaths], device: torch.device, batch: int = 8,
               progress: ProgressCallback = silent) -> FeatureBank:
    """Encode every slice of ``cases`` (labelled) with the frozen model, keep those with a label or
    at least ``MIN_COARSE_PIXELS`` of coarse-head bleed."""
    model.eval()
    levels: list[list[torch.Tensor]] = [[], [], []]
    labels, coarse, owners, ks = [], [], [], []
    for n, case in enumerate(cases):
        volume, label_zyx = read_case(case)
        images, frame = ct_to_model_input(volume.hu_zyx, model.preset.image_size)
        grid = torch.from_numpy(labels_to_model_grid(label_zyx, frame))
        for lo in range(0, images.shape[0], batch):
            case_levels, case_coarse = _encode(model, images[lo:lo + batch].to(device))
            keep = (grid[lo:lo + batch].flatten(1).amax(1) > 0) | (
                (case_coarse > 0).flatten(1).sum(1) >= MIN_COARSE_PIXELS)
            for store, level in zip(levels, case_levels, strict=True):
                store.append(level[keep].to("cpu", torch.float16))
            labels.append(grid[lo:lo + batch][keep])
            coarse.append(case_coarse[keep].to(torch.uint8))
            owners.append(np.full(int(keep.sum()), n))
            ks.append(lo + np.flatnonzero(keep.numpy()))
        progress("data", (n + 1) / len(cases), f"case {n + 1}/{len(cases)}")
    return FeatureBank([torch.cat(s) for s in levels], torch.cat(labels), torch.cat(coarse), np.concatenate(owners),
                       np.concatenate(ks))


def _encode(model: SSSModel, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """DFE-enhanced levels of slices (b, 3, S, S) and the coarse head's argmax (b, S/2, S/2), on the CPU."""
    levels, detail = model.enhanced_levels(images)
    feats = model.features_from_levels(levels, detail)
    return [lv.cpu() for lv in levels], model.coarse_logits(feats).argmax(dim=1).cpu()


def cached_bank(model: SSSModel, cases: Sequence[CasePaths], path: Path) -> FeatureBank:
    """``build_bank`` on the CPU, kept in ``path`` (a tensors-only torch file) for later runs; reused
    when it was made from the same weights and case list."""
    from ..fsutil import atomic_path

    key = {"format": 2, "cases": [str(c.image) for c in cases], "weights": _weights_digest(model)}
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored.get("key") == json.dumps(key):
            return FeatureBank(list(stored["levels"]), stored["labels"], stored["coarse"],
                               stored["case_of_slice"].numpy(), stored["slice_k"].numpy())
    bank = build_bank(model, cases, torch.device("cpu"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"key": json.dumps(key), "levels": bank.levels, "labels": bank.labels, "coarse": bank.coarse,
                    "case_of_slice": torch.from_numpy(bank.case_of_slice), "slice_k": torch.from_numpy(bank.slice_k)},
                   tmp)
    return bank


def _weights_digest(model: SSSModel) -> str:
    """A digest of the frozen parts' weights (encoder, DFE, coarse head): what the features depend on."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(("sam.image_encoder.", "dfe.", "coarse_head.")):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
