"""Fine-tune the SAM-2 decoder on click prompts (SAM-2's interactive training), everything else frozen.

    OMP_NUM_THREADS=1 .venv/bin/python -m SSSSegmentLib.training.decoder_tune --config configs/decoder_clicks_tiny.yaml

Starts from an SSS checkpoint. The image encoder, DFE, coarse head and SAM-2's memory modules are
frozen, so the automatic result without refinement is bit-identical; what trains is the prompt
encoder and the mask decoder, including its conv_s0 / conv_s1 projections, which only the decoder
uses. Each step draws slices from the frozen features of labelled training cases
(:mod:`feature_bank`), gives each object a first prompt, then ``rounds`` corrective clicks from the
error of the previous prediction (:mod:`click_prompts`), and averages BCE + soft Dice over the
rounds, on mask logits upsampled to the model grid (as inference upsamples them). No dense mask
prompt is fed back: the engine's decoder call (``inference.refine.decode_prompts``) sends none.

Writes ``output`` (an SSS checkpoint whose ``info.decoder_finetune`` says how it was trained) and a
``.jsonl`` log beside it, with the validation Dice after each round before and after training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf

from ..errors import SSSSegError
from ..model.sss_model import SSSModel
from .click_prompts import ClickPrompts, ClickSampling, add_corrective_clicks, first_prompts
from .feature_bank import FeatureBank, cached_bank
from .loop import learning_rate
from .losses import BoxPrompts, decoder_loss

GRAD_CLIP = 1.0


@dataclass(frozen=True)
class DecoderTuneConfig:
    """What a decoder fine-tune reads, trains and writes (paths relative to the yaml file).

    dataset_dir: a ``dataset.json`` folder of labelled training phantoms; its last ``val_cases``
    labelled cases are held out for validation; ``max_cases`` limits the rest. steps of
    ``batch_slices`` slices, each with up to ``max_prompts`` objects and ``rounds`` corrective
    clicks; AdamW at ``lr`` with ``warmup_steps`` and cosine decay to ``min_lr_ratio``.
    """

    dataset_dir: str
    init_checkpoint: str
    output: str
    seed: int = 0
    steps: int = 1500
    batch_slices: int = 16
    max_prompts: int = 24
    rounds: int = 3
    lr: float = 1e-4
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    warmup_steps: int = 50
    val_cases: int = 16
    max_cases: int | None = None
    log_every: int = 25
    sampling: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_slices, self.max_prompts, self.log_every) < 1:
            raise SSSSegError("steps, batch_slices, max_prompts and log_every must be >= 1")
        if self.rounds < 0 or self.val_cases < 1 or not 0 < self.min_lr_ratio <= 1:
            raise SSSSegError("rounds must be >= 0, val_cases >= 1 and min_lr_ratio in (0, 1]")
        self.click_sampling()  # unknown sampling keys fail here

    def click_sampling(self) -> ClickSampling:
        try:
            return ClickSampling(**self.sampling)
        except TypeError as exc:
            raise SSSSegError(f"invalid sampling setting: {exc}") from None

    @classmethod
    def load(cls, path: Path | str) -> DecoderTuneConfig:
        """Read a yaml file (``yaml.safe_load``); unknown keys are an error."""
        import yaml

        path = Path(path)
        values = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SSSSegError(f"unknown decoder fine-tune key(s): {', '.join(unknown)}")
        for key in ("dataset_dir", "init_checkpoint", "output"):
            if key in values and not Path(values[key]).is_absolute():
                values[key] = str(path.parent / values[key])
        return cls(**values)


def decoder_parameters(model: SSSModel) -> list[torch.nn.Parameter]:
    """Make the prompt encoder and mask decoder (conv_s0 / conv_s1 included) the only trainable
    parameters of ``model``; return them."""
    for param in model.parameters():
        param.requires_grad_(False)
    sam = model.sam
    params = [*sam.sam_prompt_encoder.parameters(), *sam.sam_mask_decoder.parameters()]
    for param in params:
        param.requires_grad_(True)
    return params


def decode_rounds(model: SSSModel, bank: FeatureBank, index: torch.Tensor, rounds: int, max_prompts: int,
                  gen: torch.Generator, sampling: ClickSampling) -> tuple[list[torch.Tensor], ClickPrompts] | None:
    """Mask logits (N, 1, S, S) after the first prompt and after each of ``rounds`` corrective clicks on
    the bank's slices ``index``, and the final prompts; None when those slices hold no object."""
    device = model.sam.no_mem_embed.device
    prompts = first_prompts(bank.labels[index].long(), bank.coarse[index].long(), max_prompts, gen, sampling)
    if prompts is None:
        return None
    feats = bank.features(model, index, device)
    size = bank.labels.shape[-1]
    outputs = []
    for n in range(rounds + 1):
        logits, _ = model.decode(feats, prompts.image_index.to(device), prompts.boxes, prompts.points,
                                 prompts.point_labels)
        outputs.append(nnf.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False))
        if n < rounds:
            prompts = add_corrective_clicks(prompts, logits, gen, sampling)
    return outputs, prompts


def click_loss(outputs: list[torch.Tensor], prompts: ClickPrompts) -> torch.Tensor:
    """Mean over rounds of BCE + soft Dice of upsampled mask logits (N, 1, S, S) against the targets."""
    targets = prompts.targets.to(outputs[0].device)
    box_prompts = BoxPrompts(prompts.image_index, prompts.boxes, targets, torch.ones_like(targets))
    return torch.stack([decoder_loss(logits, box_prompts) for logits in outputs]).mean()


@torch.no_grad()
def round_dice(model: SSSModel, bank: FeatureBank, config: DecoderTuneConfig, batch: int = 16) -> list[float]:
    """Mean Dice of the objects' masks after each round on ``bank`` (fixed prompts: seed 0)."""
    gen = torch.Generator().manual_seed(0)
    scores: list[list[float]] = [[] for _ in range(config.rounds + 1)]
    for lo in range(0, bank.num_slices, batch):
        index = torch.arange(lo, min(lo + batch, bank.num_slices))
        found = decode_rounds(model, bank, index, config.rounds, 4 * batch, gen, config.click_sampling())
        if found is None:
            continue
        outputs, prompts = found
        truth = prompts.targets.cpu()[:, 0] > 0.5
        real = truth.flatten(1).any(1)
        for n, logits in enumerate(outputs):
            pred = logits.cpu()[:, 0] > 0
            inter = (pred & truth).flatten(1).sum(1).float()
            dice = 2 * inter / (pred.flatten(1).sum(1) + truth.flatten(1).sum(1)).clamp(min=1)
            scores[n] += dice[real].tolist()
    return [float(np.mean(s)) if s else float("nan") for s in scores]


def train_decoder(model: SSSModel, train: FeatureBank, config: DecoderTuneConfig,
                  log: Any = print) -> list[dict[str, float]]:
    """Train ``model``'s decoder in place on ``train`` for ``config.steps`` steps; the log records."""
    params = decoder_parameters(model)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sampling, records, t0 = config.click_sampling(), [], time.perf_counter()
    for step in range(config.steps):
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        index = torch.randint(train.num_slices, (config.batch_slices,), generator=gen)
        found = decode_rounds(model, train, index, config.rounds, config.max_prompts, gen, sampling)
        if found is None:
            continue
        loss = click_loss(*found)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        optimizer.step()
        if (step + 1) % config.log_every == 0 or step == 0:
            record = {"step": step + 1, "loss": float(loss.detach()), "lr": learning_rate(config, step),
                      "seconds": round(time.perf_counter() - t0, 1)}
            records.append(record)
            log(json.dumps(record))
    return records


def run(config: DecoderTuneConfig, log: Any = print) -> dict[str, Any]:
    """Build the banks, validate, train, validate, write the checkpoint; the summary it stores."""
    from ..model import load_sss_checkpoint, save_sss_checkpoint
    from .cases import load_split

    torch.manual_seed(config.seed)
    model = load_sss_checkpoint(config.init_checkpoint, device="cpu")
    split = load_split(config.dataset_dir, val_cases=config.val_cases, max_labeled=config.max_cases)
    t0 = time.perf_counter()
    cache = Path(config.output).with_name("feature_bank.pt")
    train, val = (cached_bank(model, cases, cache.with_stem(f"{cache.stem}_{name}"))
                  for name, cases in (("train", split.labeled), ("val", split.validation)))
    log(f"features of {train.num_slices} training / {val.num_slices} validation slices in "
        f"{time.perf_counter() - t0:.0f} s")
    before = round_dice(model, val, config)
    log(f"validation Dice after rounds 0..{config.rounds}, before: {_fmt(before)}")
    records = train_decoder(model, train, config, log)
    model.eval()
    after = round_dice(model, val, config)
    log(f"validation Dice after rounds 0..{config.rounds}, after: {_fmt(after)}")
    summary = {"config": dataclasses.asdict(config), "train_cases": len(split.labeled),
               "val_cases": len(split.validation), "train_slices": train.num_slices,
               "val_round_dice_before": before, "val_round_dice_after": after,
               "final_loss": records[-1]["loss"] if records else None,
               "init_checkpoint_sha256": _sha(config.init_checkpoint),
               "trained": "prompt encoder + mask decoder (incl. conv_s0/conv_s1); encoder, DFE, coarse head frozen"}
    info = dict((model.checkpoint_info or {}).get("info") or {})
    info["decoder_finetune"] = summary
    sha = save_sss_checkpoint(config.output, model, info)
    log(f"wrote {config.output} (sha256 {sha})")
    return summary


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def _sha(path: str) -> str:
    from ..fsutil import file_sha256

    return file_sha256(Path(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=None, help="override the config's steps")
    args = parser.parse_args(argv)
    try:
        config = DecoderTuneConfig.load(args.config)
        if args.steps is not None:
            config = dataclasses.replace(config, steps=args.steps)
        run(config)
    except SSSSegError as exc:
        print(f"decoder_tune: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
