"""``sssseg models list|activate|rollback|import`` and ``sssseg finetune``: thin argparse layers."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from .gate import GateDecision, GateRule
from .location import REGISTRY_ENV, default_registry_dir
from .store import ModelRegistry


def _registry_arg(parser: argparse.ArgumentParser, required: bool = False, inherited: bool = False) -> None:
    """``--registry DIR``. ``inherited``: on a ``models`` action, where it may also stand after the
    action (``sssseg models list --registry R``, README's form) as well as before it; its default is
    then left to the ``models`` parser (argparse.SUPPRESS keeps an absent one from overwriting it)."""
    if required:
        parser.add_argument("--registry", type=Path, required=True, help="model registry folder")
        return
    where = default_registry_dir()
    parser.add_argument("--registry", type=Path, default=argparse.SUPPRESS if inherited else where,
                        help=f"model registry folder (default: ${REGISTRY_ENV}, else {where})")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` and ``finetune`` sub-commands to the ``sssseg`` parser."""
    models = sub.add_parser("models", help="list, activate, roll back or import model versions")
    _registry_arg(models)
    actions = models.add_subparsers(dest="models_command", required=True)
    lst = actions.add_parser("list", help="the registered versions, the active one marked, with their gate figures")
    act = actions.add_parser("activate", help="make a version the active model")
    act.add_argument("version")
    back = actions.add_parser("rollback", help="activate an earlier version (default: the previously active one)")
    back.add_argument("version", nargs="?")
    imp = actions.add_parser("import", help="register an SSS checkpoint made elsewhere (verified)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--sha256", help="the published SHA-256 of the file")
    imp.add_argument("--activate", action="store_true", help="also make it the active model (no gate)")
    for action in (lst, act, back, imp):
        _registry_arg(action, inherited=True)

    ft = sub.add_parser("finetune", help="fine-tune on the site's corrected + unlabeled scans, behind the gate")
    ft.add_argument("--site", type=Path, required=True, help="site folder (dataset.json + corrected cases)")
    ft.add_argument("--unlabeled", type=Path,
                    help="folder of unlabeled local scans (NIfTI files, DICOM series folders), read in place")
    _registry_arg(ft, required=True)
    ft.add_argument("--base", help="version to start from (default: the active one)")
    ft.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    ft.add_argument("--resume", action="store_true", help="continue the interrupted run in REGISTRY/work")
    ft.add_argument("--heldout-share", type=float, default=0.25,
                    help="share of corrected cases held out for validation (at least 1; default 0.25)")
    ft.add_argument("--reference-margin", type=float, default=GateRule.reference_margin,
                    help="gate: non-inferiority margin on the fixed reference phantoms, the lowest tolerated lower "
                         f"end of the paired interval of the Dice difference (default {GateRule.reference_margin})")
    ft.add_argument("--max-dice-drop", type=float, default=0.0,
                    help="gate: tolerated Dice drop on the held-out corrected cases (default 0)")
    ft.add_argument("--max-normal-ml-increase", type=float, default=0.0,
                    help="gate: tolerated extra mL called bleed on confirmed-normal scans (default 0)")
    ft.add_argument("--train-config", type=Path, help="yaml of training settings overriding the fine-tune defaults")
    ft.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    ft.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto")


def _registry(args: argparse.Namespace) -> ModelRegistry:
    if args.registry is None:
        raise InputError(f"no model registry: pass --registry DIR (${REGISTRY_ENV} is set empty)")
    return ModelRegistry(args.registry)


def cmd_models(args: argparse.Namespace, out: object) -> int:
    registry = _registry(args)
    action = args.models_command
    if action == "list":
        print(format_versions(registry))
        return 0
    if action == "activate":
        chosen = registry.activate(args.version)
    elif action == "rollback":
        chosen = registry.rollback(args.version)
    else:
        chosen = registry.import_checkpoint(args.file, args.sha256, activate=args.activate)
        print(f"imported {args.file.name} as {chosen.version} (sha256 {chosen.sha256})")
        if not args.activate:
            return 0
    print(f"active model: {chosen.version} ({chosen.source})")
    return 0


def format_versions(registry: ModelRegistry) -> str:
    """One line per version (name, active mark, base, date, source), then one line per part of its gate
    decision with the figures (versions a fine-tune registered)."""
    active = registry.active()
    lines = [f"registry {registry.root}"]
    for v in registry.versions():
        mark = "*" if active is not None and v.version == active.version else " "
        lines.append(f"{mark} {v.version}  base {v.base or '-'}  {v.created} {v.source}")
        gate = (v.metrics or {}).get("gate")
        if gate:
            decision = GateDecision.from_dict(gate)
            lines.append(f"      gate {'passed' if decision.passed else 'refused'} against "
                         f"{v.metrics.get('active_version') or 'no active model'}:")
            lines += [f"        {reason}" for reason in decision.reasons]
    if len(lines) == 1:
        lines.append("  (no versions)")
    return "\n".join(lines)


def _overrides(path: Path | None) -> dict:
    if path is None:
        return {}
    from ..training import load_train_config
    from ..training.config import TrainConfig

    loaded = load_train_config(path).to_dict()
    defaults = TrainConfig().to_dict()
    return {k: v for k, v in loaded.items() if v != defaults[k]}


def _text_progress(log):  # noqa: ANN001, ANN202
    """Progress as log lines, at most one per 5% of the run (for logs and non-terminal output)."""
    last = [-1.0]

    def report(stage: str, fraction: float, message: str = "") -> None:
        if stage == "train" and (fraction - last[0] >= 0.05 or fraction >= 1.0):
            last[0] = fraction
            log(f"[{stage} {100 * fraction:5.1f}%] {message}")

    return report


def cmd_finetune(args: argparse.Namespace, out) -> int:  # noqa: ANN001  (cli.Reporter)
    from ..finetune import FinetuneRequest, run_finetune

    try:
        gate = GateRule(reference_margin=args.reference_margin, max_normal_ml_increase=args.max_normal_ml_increase,
                        max_dice_drop=args.max_dice_drop)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if args.steps < 1:
        raise InputError("--steps must be >= 1")
    if not 0.0 < args.heldout_share < 1.0:
        raise InputError(f"--heldout-share must be between 0 and 1 (exclusive), got {args.heldout_share}")
    request = FinetuneRequest(args.site, args.registry, args.unlabeled, args.base, args.steps, args.resume,
                              args.heldout_share, gate, args.device, _overrides(args.train_config))
    import logging

    progress = out.progress if out.mode in ("bar", "json") else _text_progress(out.log)
    engine_log = logging.getLogger("sssseg")
    level = engine_log.level
    engine_log.setLevel(logging.WARNING)  # the validation's per-component PCPG lines stay out of the log
    try:
        result = run_finetune(request, progress=progress, log=out.log)
    finally:
        engine_log.setLevel(level)
    out.close()
    if out.mode == "json":
        from ..progress import emit_json

        emit_json("done", outputs=[str(result.version.model_path)], version=result.version.version,
                  active=result.active, gate_passed=result.decision.passed)
        return 0
    state = "active" if result.active == result.version.version else f"kept {result.active} active"
    print(f"done: {result.steps_done} steps; registered {result.version.version} ({state}); run log "
          f"{result.run_dir}")
    return 0
