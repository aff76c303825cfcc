"""Frozen pretrained-encoder embeddings of training slices, computed once (the lite preset's training).

LiteMedSAM's encoder costs about 1.5 s a slice on a 2-core CPU, so training it, or even running it at
every step, is out of reach there; frozen, each training slice is encoded once, in a weak view (the
slice as inference sees it) and a strong view (``augment.photometric``: window jitter, blur, noise),
and DFE + the coarse head train on the stored embeddings with ``sss``'s weak-to-strong losses
(``training/lite_train.py``). The same idea as ``feature_bank.py`` (the decoder fine-tune), one step
earlier in the network: the embeddings are stored *before* DFE, because DFE trains here.

One file per phantom case (``case_<seed>.pt``, tensors only, written atomically), so a long encoding
run can be stopped and resumed, and training can start from the cases finished so far. Per kept
slice: ``emb_w`` / ``emb_s`` (N, C, S/4, S/4) float16 encoder embeddings, ``img_w`` / ``img_s``
(N, 3, S, S) uint8 windowed input (the coarse head's detail stem reads it), ``labels`` (N, S, S) uint8
on the model grid.

Kept slices: every slice with a label, plus up to ``negatives`` slices with intracranial content and no
label (where the inner-table band, calcifications and skull base teach the head what is not blood).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..fsutil import atomic_path
from ..inference.coarse import intracranial_slices
from ..inference.encode import cpu_bf16
from ..model.preprocess import ct_to_model_input
from ..model.sss_model import SSSModel
from ..progress import ProgressCallback, silent
from .augment import photometric
from .data import from_unit_uint8, labels_to_model_grid, to_unit_uint8


@dataclass
class EncoderBank:
    """Stored embeddings of N slices (see the module docstring for shapes)."""

    emb_w: torch.Tensor
    emb_s: torch.Tensor
    img_w: torch.Tensor
    img_s: torch.Tensor
    labels: torch.Tensor

    @property
    def num_slices(self) -> int:
        return int(self.labels.shape[0])

    def images(self, index: torch.Tensor, strong: bool) -> torch.Tensor:
        """Normalised model input (B, 3, S, S) float32 of slices ``index``."""
        return from_unit_uint8((self.img_s if strong else self.img_w)[index])


def kept_slices(labels_zyx: np.ndarray, inside: np.ndarray, negatives: int, rng: np.random.Generator,
                max_labelled: int | None = None) -> np.ndarray:
    """Indices of the slices to store: every labelled slice (or ``max_labelled`` of them, evenly
    spread, on thin-slice cases), plus up to ``negatives`` unlabelled intracranial slices drawn at
    random (sorted)."""
    labelled = labels_zyx.reshape(labels_zyx.shape[0], -1).max(axis=1) > 0
    with_label = np.flatnonzero(labelled)
    if max_labelled is not None and len(with_label) > max_labelled:
        with_label = with_label[np.linspace(0, len(with_label) - 1, max_labelled).round().astype(int)]
    empty = np.flatnonzero(inside & ~labelled)
    extra = rng.choice(empty, size=min(negatives, len(empty)), replace=False) if len(empty) else empty
    return np.sort(np.concatenate([with_label, extra]).astype(int))


@torch.no_grad()
def encode_case(model: SSSModel, hu_zyx: np.ndarray, labels_zyx: np.ndarray, keep: np.ndarray, seed: int,
                batch: int = 4, bf16: bool = True, strong_embedding: bool = True) -> dict[str, torch.Tensor]:
    """The stored tensors of slices ``keep`` of one case (HU (K, J, I), labels (K, J, I)); the encoder
    runs under bfloat16 autocast with ``bf16`` (as the lite preset's inference does). Without
    ``strong_embedding`` the strong view is kept as an image only (half the encoding time); the bank
    then uses the weak embedding in its place (``load_bank``)."""
    images, frame = ct_to_model_input(hu_zyx[keep], model.preset.image_size)
    gen = torch.Generator().manual_seed(seed)
    strong = photometric(images, gen)
    encoder = model.sam.image_encoder
    emb_w, emb_s = [], []
    with cpu_bf16(torch.device("cpu"), bf16):
        for lo in range(0, len(keep), batch):
            emb_w.append(encoder(images[lo:lo + batch])["backbone_fpn"][0].half())
            if strong_embedding:
                emb_s.append(encoder(strong[lo:lo + batch])["backbone_fpn"][0].half())
    tensors = {"emb_w": torch.cat(emb_w), "img_w": to_unit_uint8(images), "img_s": to_unit_uint8(strong),
               "labels": torch.from_numpy(labels_to_model_grid(labels_zyx[keep], frame))}
    if strong_embedding:
        tensors["emb_s"] = torch.cat(emb_s)
    return tensors


def build_case_files(model: SSSModel, seeds: Sequence[int], out_dir: Path, matrix: int = 256,
                     negatives: int = 4, progress: ProgressCallback = silent,
                     geometry_variants: tuple[str, ...] = (), max_labelled: int | None = None,
                     strong_embedding: bool = True) -> list[Path]:
    """Generate phantom ``seed`` for each seed and store its kept slices' embeddings in ``out_dir``
    (``case_<seed>.pt``); cases already stored are skipped. Returns the files, in seed order.
    ``geometry_variants``: the real-geometry variants drawn from (``PhantomConfig``); ``max_labelled``:
    at most that many labelled slices a case (``kept_slices``); ``strong_embedding``: ``encode_case``."""
    from ..phantoms import PhantomConfig, generate_phantom

    config = PhantomConfig(matrix=matrix, p_no_lesion=0.1, geometry_variants=geometry_variants)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, seed in enumerate(seeds):
        path = out_dir / f"case_{seed}.pt"
        if not path.is_file():
            phantom = generate_phantom(seed, config)
            inside = intracranial_slices(phantom.hu_zyx, phantom.geometry)
            keep = kept_slices(phantom.labels_zyx, inside, negatives, np.random.default_rng(seed), max_labelled)
            if len(keep):
                tensors = encode_case(model, phantom.hu_zyx, phantom.labels_zyx, keep, seed,
                                      strong_embedding=strong_embedding)
                with atomic_path(path) as tmp:
                    torch.save(tensors, tmp)
        if path.is_file():
            paths.append(path)
        progress("encode", (n + 1) / len(seeds), f"case {n + 1}/{len(seeds)}")
    return paths


def load_bank(paths: Sequence[Path]) -> EncoderBank:
    """All stored cases of ``paths`` as one EncoderBank (tensors only, ``weights_only`` load); a case
    stored without a strong embedding lends its weak one."""
    parts = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    for part in parts:
        part.setdefault("emb_s", part["emb_w"])
    keys = ("emb_w", "emb_s", "img_w", "img_s", "labels")
    return EncoderBank(*(torch.cat([part[k] for part in parts]) for k in keys))


def main(argv: list[str] | None = None) -> int:
    """``python -m SSSSegmentLib.training.encoder_bank OUT_DIR FIRST_SEED END_SEED [options]``: encode
    phantoms FIRST_SEED..END_SEED-1 with the lite preset's frozen encoder into OUT_DIR (resumable)."""
    import argparse
    import time

    from ..model import build_model
    from ..phantoms.config import GEOMETRY_VARIANT_NAMES

    ap = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("first_seed", type=int)
    ap.add_argument("end_seed", type=int)
    ap.add_argument("--matrix", type=int, default=256)
    ap.add_argument("--negatives", type=int, default=4, help="unlabelled intracranial slices a case")
    ap.add_argument("--geometry-variants", nargs="+", default=[], choices=GEOMETRY_VARIANT_NAMES)
    ap.add_argument("--max-labelled", type=int, help="at most this many labelled slices a case")
    ap.add_argument("--weak-only", action="store_true", help="no strong-view embedding (half the time)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    paths = build_case_files(build_model("lite"), range(args.first_seed, args.end_seed), args.out_dir, args.matrix,
                             args.negatives, lambda _s, _f, msg: print(f"{time.perf_counter() - start:.0f} s {msg}",
                                                                          flush=True),
                             tuple(args.geometry_variants), args.max_labelled, not args.weak_only)
    print(f"{len(paths)} case files in {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
