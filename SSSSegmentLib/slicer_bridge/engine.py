"""How the Slicer module calls the engine: the ``segment`` command line, its environment, its options.

The engine runs as ``python -m SSSSegmentLib.cli`` in a child process (Slicer's python may not
have the ``sssseg`` console script on PATH), with ``--progress json`` so the module can show
progress and cancel (protocol in :mod:`SSSSegmentLib.progress`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..runner import python_module_command

ENGINE_MODULE = "SSSSegmentLib.cli"
LIB_PARENT_DIR = Path(__file__).resolve().parents[2]  # the folder that holds SSSSegmentLib/
DEVICE_CHOICES = ("auto", "cpu", "gpu", "cuda", "mps")
SAM2_CHECKPOINT_SUFFIXES = (".pt", ".pth")  # official SAM-2/2.1 weights; SSS checkpoints are .safetensors


@dataclass(frozen=True)
class SegmentOptions:
    """Engine options chosen in the GUI or console.

    ``preset``: None (the default) lets the engine pick the best bundled model installed;
    a preset name asks for that preset's bundled model (an error when it has none).
    ``device``: ``auto``, ``cpu``, ``gpu`` (CUDA; Apple's MPS on macOS), ``cuda`` or ``mps``.
    ``checkpoint``: an SSS checkpoint (``.safetensors``, passed as ``--checkpoint``) or official
    SAM-2 weights (``.pt``/``.pth``, passed as ``--sam2-checkpoint``); None: the bundled model.
    ``allow_untrained``: let the engine use random weights when no model is found (tests only).
    """

    preset: str | None = None
    device: str = "auto"
    checkpoint: str | None = None
    overwrite: bool = True  # the module writes into its own temp folder
    allow_untrained: bool = False


def engine_device(device: str) -> str:
    """The engine's ``--device`` value for a GUI device choice (``gpu`` -> ``cuda`` or ``mps``)."""
    choice = (device or "auto").strip().lower()
    if choice not in DEVICE_CHOICES:
        raise InputError(f"unknown device '{device}': use one of {', '.join(DEVICE_CHOICES)}")
    if choice == "gpu":
        return "mps" if sys.platform == "darwin" else "cuda"
    return choice


def segment_command(input_path: Path, output_path: Path, options: SegmentOptions,
                    python: str | None = None, qc_png: Path | None = None) -> list[str]:
    """``python -m SSSSegmentLib.cli segment INPUT OUTPUT --progress json ...`` as an argument list.

    ``qc_png``: also write the case's QC picture there (``--qc``).
    """
    args = ["segment", str(input_path), str(output_path)]
    if qc_png is not None:
        args += ["--qc", str(qc_png)]
    return python_module_command(ENGINE_MODULE, *args, *engine_options_args(options), python=python)


def engine_options_args(options: SegmentOptions) -> list[str]:
    """The engine flags for ``options`` (model, device, ``--progress json``, overwrite), as ``segment``
    and ``batch`` take them. InputError when the model file does not exist."""
    args = ["--preset", options.preset] if options.preset else []
    args += ["--device", engine_device(options.device), "--progress", "json"]
    if options.checkpoint:
        checkpoint = Path(options.checkpoint)
        if not checkpoint.is_file():
            raise InputError(f"model file not found: {checkpoint}")
        is_sam2 = checkpoint.suffix.lower() in SAM2_CHECKPOINT_SUFFIXES
        args += ["--sam2-checkpoint" if is_sam2 else "--checkpoint", str(checkpoint)]
    if options.overwrite:
        args.append("--overwrite")
    if options.allow_untrained:
        args.append("--untrained")
    return args


def engine_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ``base`` (default: ours) with SSSSegmentLib importable and unbuffered."""
    env = dict(os.environ if base is None else base)
    paths = [str(LIB_PARENT_DIR), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env
