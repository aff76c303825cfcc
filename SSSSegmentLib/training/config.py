"""Training configuration: one frozen dataclass, read from yaml with ``yaml.safe_load``.

Every key of the yaml file must be a field of ``TrainConfig`` (unknown keys raise SSSSegError);
paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, SSSSegError

METHODS = ("supervised", "fixmatch", "unimatch_v2", "sss")
MIN_CUTMIX_BATCH = 2  # CutMix partners are other slices of the same unlabeled batch
_PATH_KEYS = ("dataset_dir", "unlabeled_dir", "output_dir", "sam2_checkpoint", "init_checkpoint")


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Data: ``dataset_dir`` holds a BHSD-like ``dataset.json`` (``training`` [{image, label}],
    optional ``unlabeled`` and ``test``); ``extra_dataset_dirs`` are more such folders whose cases
    join the training (e.g. lesions inserted into real bleed-free scans, ``phantoms.insertion``);
    ``unlabeled_dir`` adds every NIfTI in a folder as unlabeled; the last ``val_cases`` labeled
    cases of ``dataset_dir`` are held out for validation (fully automatic
    pipeline, every ``val_every`` steps); ``max_labeled`` / ``max_unlabeled`` cap the case counts.
    Model: ``preset``; ``sam2_checkpoint`` (official SAM-2 weights, sha256 ``sam2_sha256`` if given)
    or ``init_checkpoint`` (an SSS checkpoint to continue from; modules it lacks start fresh);
    ``freeze_encoder`` None = frozen when starting from SAM-2 weights, trainable from scratch;
    ``unfreeze_last_stage`` trains the last Hiera stage of a frozen encoder. Optimisation: AdamW
    (``lr``, ``weight_decay``), linear warm-up over ``warmup_steps`` then cosine decay to
    ``lr * min_lr_ratio``; ``grad_accum`` micro-batches per step, each with ``batch_labeled`` +
    ``batch_unlabeled`` slices per process (at least 2 unlabeled for the semi-supervised methods: CutMix
    pairs slices of one batch).
    Semi-supervision: ``conf_threshold`` on pseudo-labels, EMA teacher ``ema_decay``,
    ``unsup_weight``; ``decoder_weight`` for the SAM-2 decoder losses with at most ``max_prompts``
    box prompts per micro-batch; ``blood_slice_fraction`` of labeled slices are drawn from slices
    with hemorrhage, ``unlabeled_blood_slice_fraction`` of unlabeled slices from slices with a
    blood-density region in the CT (0 = uniform, as before this option existed).
    """

    dataset_dir: str = "data/phantoms"
    extra_dataset_dirs: tuple[str, ...] = ()
    unlabeled_dir: str | None = None
    output_dir: str = "runs/train"
    method: str = "sss"
    preset: str = "tiny"
    sam2_checkpoint: str | None = None
    sam2_sha256: str | None = None
    init_checkpoint: str | None = None
    freeze_encoder: bool | None = None
    unfreeze_last_stage: bool = False
    device: str = "auto"
    seed: int = 0
    steps: int = 1000
    batch_labeled: int = 4
    batch_unlabeled: int = 4
    grad_accum: int = 1
    lr: float = 5e-4
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    warmup_steps: int = 50
    ema_decay: float = 0.99
    conf_threshold: float = 0.95
    unsup_weight: float = 1.0
    decoder_weight: float = 1.0
    max_prompts: int = 16
    blood_slice_fraction: float = 0.6
    unlabeled_blood_slice_fraction: float = 0.0
    max_labeled: int | None = None
    max_unlabeled: int | None = None
    val_cases: int = 0
    val_every: int = 200
    checkpoint_every: int = 100
    log_every: int = 10

    def __post_init__(self) -> None:
        extra = self.extra_dataset_dirs
        if isinstance(extra, str) or not all(isinstance(d, str) for d in extra):
            raise SSSSegError(f"invalid training config: extra_dataset_dirs must be a list of folders, got {extra!r}")
        object.__setattr__(self, "extra_dataset_dirs", tuple(extra))
        checks = {
            f"method must be one of {', '.join(METHODS)}": self.method in METHODS,
            "steps must be >= 1": self.steps >= 1,
            "batch_labeled must be >= 1": self.batch_labeled >= 1,
            f"batch_unlabeled must be >= 2 for {self.method}: its strong views CutMix each unlabeled slice "
            "with another slice of the same batch, so 1 would mix every slice with itself (supervised: >= 0)":
                self.batch_unlabeled >= (0 if self.method == "supervised" else MIN_CUTMIX_BATCH),
            "grad_accum must be >= 1": self.grad_accum >= 1,
            "lr must be > 0": self.lr > 0,
            "ema_decay must be in [0, 1)": 0.0 <= self.ema_decay < 1.0,
            "conf_threshold must be in [0, 1]": 0.0 <= self.conf_threshold <= 1.0,
            "blood_slice_fraction must be in [0, 1]": 0.0 <= self.blood_slice_fraction <= 1.0,
            "unlabeled_blood_slice_fraction must be in [0, 1]": 0.0 <= self.unlabeled_blood_slice_fraction <= 1.0,
            "val_cases must be >= 0": self.val_cases >= 0,
            "val_every, checkpoint_every and log_every must be >= 1": min(
                self.val_every, self.checkpoint_every, self.log_every) >= 1,
            "max_prompts must be >= 1": self.max_prompts >= 1,
            "sam2_checkpoint and init_checkpoint exclude each other": not (
                self.sam2_checkpoint and self.init_checkpoint),
        }
        for message, ok in checks.items():
            if not ok:
                raise SSSSegError(f"invalid training config: {message}")

    @property
    def encoder_frozen(self) -> bool:
        """Whether the image encoder is frozen (default: frozen when starting from SAM-2 weights)."""
        if self.freeze_encoder is None:
            return self.sam2_checkpoint is not None
        return self.freeze_encoder

    @property
    def uses_unlabeled(self) -> bool:
        return self.method != "supervised"

    @classmethod
    def from_dict(cls, values: dict[str, Any], base_dir: Path | None = None) -> TrainConfig:
        """Build from a mapping; unknown keys raise SSSSegError; relative paths join ``base_dir``."""
        if not isinstance(values, dict):
            raise SSSSegError(f"training config must be a mapping of keys to values, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SSSSegError(
                f"unknown training config key(s): {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}")
        args = dict(values)
        if base_dir is not None:
            for key in _PATH_KEYS:
                if isinstance(args.get(key), str):
                    args[key] = _relative_to(base_dir, args[key])
            if isinstance(args.get("extra_dataset_dirs"), list | tuple):
                args["extra_dataset_dirs"] = [
                    _relative_to(base_dir, d) if isinstance(d, str) else d for d in args["extra_dataset_dirs"]]
        try:
            return cls(**args)
        except TypeError as exc:
            raise SSSSegError(f"invalid training config: {exc}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples as lists, as they come back from a saved config.json)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _relative_to(base_dir: Path, path: str) -> str:
    """``path`` joined to ``base_dir`` unless it is absolute."""
    return path if Path(path).is_absolute() else str(Path(base_dir) / path)


def load_train_config(path: Path | str) -> TrainConfig:
    """Read a yaml training config (``yaml.safe_load``); relative paths are relative to its folder."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"training config not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read training config {path}: {exc}") from None
    return TrainConfig.from_dict(values, base_dir=path.parent)
