"""What the Slicer module installs into Slicer's python on first use (same pins as scripts/).

Slicer ships its own numpy and SimpleITK: they are never installed or replaced. torch comes
through the PyTorch extension (``PyTorchUtils``), which picks the build for the machine's GPU.
sam2 is installed without build isolation and without dependencies (``SAM2_BUILD_CUDA=0``),
otherwise pip would build it in isolation and pull a CUDA torch and torchvision.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

# Keep in step with scripts/requirements.txt (Testing/test_slicer_bridge.py checks it), minus
# numpy and SimpleITK (Slicer's own), slicer-core (Slicer itself), pytest, ruff and dcmqi (test tools),
# and ray (the optional `cluster` extra: Slicer's batch runs one worker in its engine process).
PIP_REQUIREMENTS: tuple[str, ...] = (
    "scipy==1.16.3",
    "scikit-image==0.25.2",
    "pydicom==3.0.1",
    "pynrrd==1.1.3",
    "pyyaml==6.0.3",
    "pillow==11.3.0",
    "tqdm==4.67.1",
    "safetensors==0.6.2",
    "hydra-core==1.3.2",
    "iopath==0.1.10",
    "highdicom==0.28.2",
)
NEVER_INSTALL = ("numpy", "simpleitk", "slicer-core", "pytest", "ruff", "vtk", "dcmqi", "ray")  # dcmqi: a test reader
TORCH_VERSION = "2.13.0"  # the pin of scripts/setup.sh (CPU build)
# In Slicer, PyTorchUtils picks the build for the machine's GPU/driver, so only a floor is given:
# sam2 1.1.0 needs torch >= 2.5.1.
TORCH_REQUIREMENT = ">=2.5.1"
SAM2_REQUIREMENT = "sam2==1.1.0"
SAM2_PIP_ARGS = ("--no-build-isolation", "--no-deps")
SAM2_ENV: tuple[tuple[str, str], ...] = (("SAM2_BUILD_CUDA", "0"),)
IMPORT_CHECKS = (
    "scipy", "skimage", "pydicom", "nrrd", "yaml", "PIL", "tqdm", "safetensors", "hydra", "iopath", "highdicom",
)


@dataclass(frozen=True)
class InstallStep:
    """One ``pip install`` call: its arguments and extra environment variables."""

    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def as_pip_string(self) -> str:
        """The arguments as the single string ``slicer.util.pip_install`` takes."""
        return " ".join(self.args)


def install_steps() -> tuple[InstallStep, ...]:
    """The pip calls after torch: the pinned requirements, then sam2 (no isolation, no deps, no CUDA)."""
    return (
        InstallStep(PIP_REQUIREMENTS),
        InstallStep((*SAM2_PIP_ARGS, SAM2_REQUIREMENT), SAM2_ENV),
    )


def missing_modules() -> list[str]:
    """Import names of the engine's dependencies that cannot be found (torch and sam2 included)."""
    import importlib.util

    return [name for name in (*IMPORT_CHECKS, "torch", "sam2") if importlib.util.find_spec(name) is None]


def install_packages(pip_install: Callable[[str], None], report: Callable[[str], None] | None = None) -> None:
    """Run :func:`install_steps` through ``pip_install`` (``slicer.util.pip_install`` in Slicer).

    Each step's environment variables are set for its call only and restored afterwards.
    """
    for step in install_steps():
        if report is not None:
            report(f"Installing {step.as_pip_string()}")
        saved = {key: os.environ.get(key) for key, _ in step.env}
        os.environ.update(dict(step.env))
        try:
            pip_install(step.as_pip_string())
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
