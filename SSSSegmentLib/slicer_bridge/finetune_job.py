"""The panel's **Fine-tune**: ``sssseg finetune`` in a child process (JSON-lines progress, Cancel).

Slicer stays responsive and segmenting keeps working meanwhile: the training runs in its own
process, and the active model switches (atomically) only at the end, if the gate lets it.
"""

from __future__ import annotations

from pathlib import Path

from ..runner import ChildProcessRunner, Spawn, python_module_command
from .engine import ENGINE_MODULE, engine_device, engine_environment


def finetune_command(site_dir: Path, registry_dir: Path, unlabeled_dir: Path | None = None, steps: int = 300,
                     resume: bool = False, device: str = "auto", python: str | None = None) -> list[str]:
    """``python -m SSSSegmentLib.cli finetune --site ... --registry ... --progress json`` as a list."""
    args = ["finetune", "--site", str(site_dir), "--registry", str(registry_dir), "--steps", str(int(steps)),
            "--device", engine_device(device), "--progress", "json"]
    if unlabeled_dir is not None:
        args += ["--unlabeled", str(unlabeled_dir)]
    if resume:
        args.append("--resume")
    return python_module_command(ENGINE_MODULE, *args, python=python)


def start_finetune(command: list[str], spawn: Spawn | None = None) -> ChildProcessRunner:
    """Start the child; the caller polls the returned runner (``poll()``, ``cancel()``)."""
    kwargs = {"spawn": spawn} if spawn is not None else {}
    return ChildProcessRunner(command, env=engine_environment(), **kwargs).start()
