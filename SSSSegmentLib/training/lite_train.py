"""Train the lite preset's DFE + coarse head with ``sss`` on stored frozen-encoder embeddings.

The LiteMedSAM encoder and its prompt encoder / mask decoder stay as pretrained (the decoder reads
the encoder's own embedding, ``SSSModel.enhanced_levels``); DFE and the coarse head train. Per step,
on an ``EncoderBank`` (``encoder_bank.py``):

- supervised: ``batch_labeled`` slices, weak view, coarse CE + soft Dice against their labels;
- weak-to-strong (UniMatch V2 as in ``methods.py``): ``batch_unlabeled`` other slices (their labels
  unused) get pseudo-labels from the EMA teacher on the weak view (confidence >= ``conf_threshold``);
  the student sees two CutMixed copies of the strong view, DFE-fused with the identically mixed weak
  embeddings, with complementary channel dropout; masked CE to the (mixed) pseudo-labels.

CutMix acts on the stored embeddings (stride 4) and images alike: mixing embeddings is not the same
as embedding a mixed image (the encoder sees across the box edge), the price of encoding once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..model.heads import HEAD_STRIDE
from ..model.sss_model import SSSModel
from .augment import random_cutmix
from .encoder_bank import EncoderBank
from .loop import learning_rate
from .losses import coarse_supervised_loss, masked_ce_loss, pooled_labels
from .methods import complementary_dropout
from .model_setup import make_teacher, update_ema


@dataclass(frozen=True)
class LiteTrainConfig:
    """Settings of ``train_on_bank`` (the learning-rate fields are ``loop.LrSchedule``'s).

    ``crop_cells``: each step trains on crops of ``crop_cells`` x ``crop_cells`` embedding cells (the
    matching 4x larger image and label crops), centred on a labelled pixel with probability
    ``crop_on_label``: the coarse head at S/2 costs most of a step, and a 32-cell crop a quarter of
    the whole 64-cell slice; 0 = whole slices."""

    steps: int = 600
    batch_labeled: int = 6
    batch_unlabeled: int = 3
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 30
    weight_decay: float = 0.01
    ema_decay: float = 0.99
    conf_threshold: float = 0.95
    unsup_weight: float = 1.0
    seed: int = 0
    crop_cells: int = 32
    crop_on_label: float = 0.7


def trainable_lite_parts(model: SSSModel) -> list[torch.nn.Parameter]:
    """Freeze everything but the level projection, DFE and the coarse head; return their parameters."""
    for param in model.parameters():
        param.requires_grad_(False)
    params = [*model.level_proj.parameters(), *model.dfe.parameters(), *model.coarse_head.parameters()]
    for param in params:
        param.requires_grad_(True)
    return params


def _coarse(model: SSSModel, emb: torch.Tensor, images: torch.Tensor, emb_strong: torch.Tensor | None = None,
            images_strong: torch.Tensor | None = None) -> torch.Tensor:
    """Coarse logits (B, 6, S/2, S/2) from stored embeddings: one view, or DFE-fused weak + strong."""
    if emb_strong is None:
        return model.coarse_head(model.dfe[0](model.dfe_input(emb)), model.coarse_head.detail_stem(images))
    fused = model.dfe[0](model.dfe_input(emb), model.dfe_input(emb_strong))
    return model.coarse_head(fused, model.coarse_head.detail_stem(images_strong))


def crop_corners(labels: torch.Tensor, cells: int, grid: int, on_label: float,
                 gen: torch.Generator) -> list[tuple[int, int]]:
    """Top-left corners (row, column), in embedding cells, of one ``cells``-square crop per slice of
    ``labels`` (B, S, S) on a ``grid``-cell embedding: with probability ``on_label`` centred on a
    random labelled pixel of the slice (when it has one), else anywhere."""
    stride = labels.shape[-1] // grid
    corners = []
    for lab in labels:
        pixels = torch.nonzero(lab)
        if len(pixels) and float(torch.rand(1, generator=gen)) < on_label:
            y, x = pixels[int(torch.randint(len(pixels), (1,), generator=gen))].tolist()
            corner = (y // stride - cells // 2, x // stride - cells // 2)
        else:
            corner = tuple(int(v) for v in torch.randint(grid - cells + 1, (2,), generator=gen))
        corners.append(tuple(min(max(c, 0), grid - cells) for c in corner))
    return corners


def cropped(tensor: torch.Tensor, corners: list[tuple[int, int]], cells: int, grid: int) -> torch.Tensor:
    """Crops of ``tensor`` (B, ..., H, W) at ``corners`` (embedding cells; H / ``grid`` pixels a cell)."""
    scale = tensor.shape[-1] // grid
    size = cells * scale
    return torch.stack([t[..., y * scale:y * scale + size, x * scale:x * scale + size]
                        for t, (y, x) in zip(tensor, corners, strict=True)])


def _batch(bank: EncoderBank, idx: torch.Tensor, cfg: LiteTrainConfig, gen: torch.Generator,
           strong: bool) -> tuple[torch.Tensor, ...]:
    """(emb_w, emb_s or None, img_w, img_s or None, labels (B, S, S)) of slices ``idx``, cropped."""
    parts = [bank.emb_w[idx].float(), bank.emb_s[idx].float() if strong else None,
             bank.images(idx, strong=False), bank.images(idx, strong=True) if strong else None, bank.labels[idx]]
    grid = parts[0].shape[-1]
    if not cfg.crop_cells or cfg.crop_cells >= grid:
        return tuple(parts)
    corners = crop_corners(parts[-1], cfg.crop_cells, grid, cfg.crop_on_label, gen)
    return tuple(None if t is None else cropped(t, corners, cfg.crop_cells, grid) for t in parts)


def _step_loss(model: SSSModel, teacher: SSSModel, bank: EncoderBank, cfg: LiteTrainConfig,
               gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    n = bank.num_slices
    idx_x = torch.randint(n, (cfg.batch_labeled,), generator=gen)
    emb_x, _, img_x, _, lab_x = _batch(bank, idx_x, cfg, gen, strong=False)
    loss_x = coarse_supervised_loss(_coarse(model, emb_x, img_x), pooled_labels(lab_x, HEAD_STRIDE))
    if cfg.unsup_weight == 0:  # supervised only: the weak-to-strong branch is not computed at all
        return loss_x, {"loss_x": float(loss_x.detach())}
    idx_u = torch.randint(n, (cfg.batch_unlabeled,), generator=gen)
    emb_w, emb_s, img_w, img_s, _ = _batch(bank, idx_u, cfg, gen, strong=True)
    with torch.no_grad():
        conf, pseudo = torch.softmax(_coarse(teacher, emb_w, img_w).float(), dim=1).max(dim=1)
    valid = conf >= cfg.conf_threshold
    size = img_w.shape[-1]
    losses = []
    feats = []
    mixes = [random_cutmix(cfg.batch_unlabeled, size, gen) for _ in range(2)]
    for mix in mixes:
        feats.append((mix.apply(emb_w), mix.apply(emb_s), mix.apply(img_s)))
    fused = [model.dfe[0](model.dfe_input(w), model.dfe_input(s)) for w, s, _ in feats]
    drop1, drop2 = complementary_dropout(fused[0], fused[1], gen)
    for drop, (_, _, img), mix in zip((drop1, drop2), feats, mixes, strict=True):
        logits = model.coarse_head(drop, model.coarse_head.detail_stem(img))
        losses.append(masked_ce_loss(logits, mix.apply(pseudo), mix.apply(valid)))
    loss_u = 0.5 * (losses[0] + losses[1])
    stats = {"loss_x": float(loss_x.detach()), "loss_u": float(loss_u.detach()),
             "mask_ratio": float(valid.float().mean())}
    return loss_x + cfg.unsup_weight * loss_u, stats


def train_on_bank(model: SSSModel, bank: EncoderBank, cfg: LiteTrainConfig,
                  log: Callable[[str], None] = print, log_every: int = 20) -> SSSModel:
    """Train ``model``'s DFE + coarse head on ``bank`` for ``cfg.steps``; return the EMA teacher (eval)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    params = trainable_lite_parts(model)
    model.train()
    teacher = make_teacher(model)
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = time.perf_counter()
    for step in range(cfg.steps):
        for group in optim.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss, stats = _step_loss(model, teacher, bank, cfg, gen)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        update_ema(teacher, model, cfg.ema_decay, step)
        if step % log_every == 0 or step == cfg.steps - 1:
            figures = " ".join(f"{k} {v:.4f}" for k, v in stats.items())
            log(f"step {step} {figures} ({time.perf_counter() - start:.0f} s)")
    return teacher.eval()


# The lite model's recommended inference, stored in its checkpoint (``inference_config_for``): refine
# off (LiteMedSAM's decoder on PCPG's boxes scored lower than the coarse head on the test phantoms) and
# 2 slices an encoder batch (the whole GE-scan process at 1.2 GB peak RSS, 2.2 GB with 8). docs/models.md.
LITE_INFERENCE = {"intracranial_only": True, "bf16": True, "refine": False, "batch_size": 2}


def main(argv: list[str] | None = None) -> int:
    """``python -m SSSSegmentLib.training.lite_train BANK_DIR OUT.safetensors [--steps N ...]``: train
    the lite preset's DFE + coarse head on the stored embeddings of ``BANK_DIR`` (``encoder_bank``)."""
    import argparse
    import dataclasses
    from pathlib import Path

    from ..model import build_model, save_sss_checkpoint
    from .encoder_bank import load_bank

    ap = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    ap.add_argument("bank", type=Path)
    ap.add_argument("out", type=Path)
    for f in dataclasses.fields(LiteTrainConfig):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = ap.parse_args(argv)
    cfg = LiteTrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(LiteTrainConfig)})
    paths = sorted(args.bank.glob("case_*.pt"))
    bank = load_bank(paths)
    print(f"{bank.num_slices} slices of {len(paths)} cases", flush=True)
    teacher = train_on_bank(build_model("lite"), bank, cfg, log=lambda line: print(line, flush=True))
    info = {"method": "sss on stored frozen-encoder embeddings (training/lite_train.py)",
            "train": dataclasses.asdict(cfg), "data": {"cases": [p.stem for p in paths], "slices": bank.num_slices},
            "inference": LITE_INFERENCE}
    save_sss_checkpoint(args.out, teacher, info)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
