"""``run_finetune``: train from the active model on site data, register the result, apply the gate.

Run state lives in ``REGISTRY/work/`` (``run.json``: run id, base version and the case split;
``train/``: the training harness's output with its atomic ``train_state.pt``). A kill at any moment
loses at most the steps since the last checkpoint; ``resume=True`` continues, and a run killed
after registering its version does not register it twice (versions carry the run id). When the
run is complete its folder moves to ``REGISTRY/runs/<run id>/`` (logs and curves kept).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..datasets import CasePaths
from ..errors import CheckpointError, InputError, OutputError
from ..fsutil import atomic_path
from ..progress import ProgressCallback, silent
from ..registry import GateDecision, ModelFigures, ModelRegistry, ModelVersion
from ..registry.store import disk_full_message
from .plan import FINETUNE_DEFAULTS, FinetuneRequest, SitePlan, plan_site, write_run_index

RUN_FILE = "run.json"
# Held-out validations logged during a run. The final checkpoint is registered, not the best of
# these: the gate judges on the same held-out cases, and choosing on them would bias it to pass.
VALIDATIONS_PER_RUN = 6
LogFn = Callable[[str], None]


@dataclass(frozen=True)
class FinetuneResult:
    """The registered ``version``, the gate's ``decision`` and the version active afterwards."""

    version: ModelVersion
    decision: GateDecision
    active: str
    steps_done: int
    run_dir: Path


def run_finetune(request: FinetuneRequest, progress: ProgressCallback = silent,
                 log: LogFn = lambda _m: None) -> FinetuneResult:
    """Fine-tune as ``request`` says (see module docstring); OutputError on a full disk, with the
    active model unchanged."""
    registry = ModelRegistry(request.registry_dir)
    work = registry.root / "work"
    info = _resume_info(work) if request.resume else _new_run(registry, request, work, log)
    plan = _plan_from(info)
    log(plan.describe())
    log(f"gate: {request.gate.describe()}")
    if len(plan.heldout) < request.gate.min_heldout:
        log(few_heldout_warning(len(plan.heldout), request.gate.min_heldout))
    try:
        return _train_and_gate(registry, request, info, plan, progress, log)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputError(disk_full_message("the fine-tune checkpoint", exc)
                              + f"; free some space, then continue with --resume ({work})") from None
        raise


def _train_and_gate(registry: ModelRegistry, request: FinetuneRequest, info: dict, plan: SitePlan,
                    progress: ProgressCallback, log: LogFn) -> FinetuneResult:
    from ..training import run_training

    work = registry.root / "work"
    config = _train_config(request, info, plan, work)
    resuming = (work / "train" / "train_state.pt").is_file()
    log(f"{'resuming' if resuming else 'starting'} run {info['run_id']} from version {info['base']}: "
        f"{config.steps} steps of '{config.method}'")
    trained = run_training(config, resume=resuming, progress=eta_progress(progress))
    for line in validation_lines(trained.log_path):
        log(line)
    version = registry.find_run(info["run_id"])
    if version is None:
        version = _register(registry, request, info, plan, trained.final_checkpoint, config, log)
    decision = GateDecision.from_dict(version.metrics["gate"])
    log(decision.describe())
    if decision.passed:
        registry.activate(version.version)
    active = registry.active()
    run_dir = _archive(registry, info["run_id"])
    return FinetuneResult(version, decision, active.version if active else "", trained.steps_done, run_dir)


def _register(registry: ModelRegistry, request: FinetuneRequest, info: dict, plan: SitePlan,
              final: Path, config: object, log: LogFn) -> ModelVersion:
    """Measure the new model and the active one on the same cases, decide, then register the new one."""
    from .reference import estimate_scanner_profile, profile_to_dict, reference_phantoms

    profile = estimate_scanner_profile(plan.train + plan.heldout, log)
    reference = reference_phantoms(request.reference, profile)
    new = _figures_of(final, reference, plan, request.device)
    active = registry.active()
    old = _figures_of(active.model_path, reference, plan, request.device) if active else None
    log(f"new model: {new.describe()}")
    if old is not None:
        log(f"active model {active.version}: {old.describe()}")
    decision = request.gate.decide(new, old)
    metrics = {"figures": new.to_dict(), "active_version": active.version if active else None,
               "active_figures": old.to_dict() if old else None, "gate_rule": request.gate.describe(),
               "gate": decision.to_dict(), "reference_scanner": profile_to_dict(profile),
               "reference_cases": request.reference.cases}
    version = registry.add_version(final, source=f"fine-tuned on {info['site']}", base=info["base"],
                                   data_counts=plan.counts(), config=config.to_dict(), metrics=metrics,
                                   run_id=info["run_id"])
    log(f"registered version {version.version} (base {info['base']}, sha256 {version.sha256[:12]}...)")
    return version


def _figures_of(model_path: Path, reference: list, plan: SitePlan, device: str) -> ModelFigures:
    from ..model import load_sss_checkpoint, resolve_device
    from .metrics import model_figures

    torch_device = resolve_device(device)
    model = load_sss_checkpoint(model_path, device=str(torch_device))
    return model_figures(model, torch_device, reference, plan.heldout, plan.normal)


def _train_config(request: FinetuneRequest, info: dict, plan: SitePlan, work: Path):  # noqa: ANN202
    from ..model.checkpoint import read_checkpoint_info
    from ..training import TrainConfig

    base_path = Path(info["base_path"])
    values = {**FINETUNE_DEFAULTS, "val_every": max(1, request.steps // VALIDATIONS_PER_RUN), **request.overrides}
    values.update(dataset_dir=str(work), output_dir=str(work / "train"), init_checkpoint=str(base_path),
                  preset=read_checkpoint_info(base_path)["preset"], steps=request.steps,
                  val_cases=len(plan.heldout), device=request.device, unlabeled_dir=None)
    return TrainConfig.from_dict(values)


def few_heldout_warning(n_heldout: int, min_heldout: int) -> str:
    """The log's warning when the gate has fewer than ``min_heldout`` held-out cases to judge by."""
    return (f"warning: {n_heldout} held-out case(s): the gate cannot judge improvement with fewer than "
            f"{min_heldout}; it decides on the reference set (forgetting) and the confirmed-normal cases alone. "
            f"Add corrected cases for the gate to see whether a fine-tune helps this site")


def has_interrupted_run(registry_dir: Path) -> bool:
    """True when a fine-tune run in this registry was stopped (killed, cancelled) before it ended:
    ``--resume`` continues it, and a new run is refused until it has."""
    return (Path(registry_dir) / "work" / RUN_FILE).is_file()


def _new_run(registry: ModelRegistry, request: FinetuneRequest, work: Path, log: LogFn) -> dict:
    if (work / RUN_FILE).is_file():
        raise OutputError(f"a fine-tune run is already in progress in {work}: continue it with --resume, "
                          "or delete that folder to start over")
    plan = plan_site(Path(request.site_dir), request.unlabeled_dir, request.heldout_share)
    base = _base_version(registry, request.base, log)
    try:
        work.mkdir(parents=True, exist_ok=True)
        write_run_index(plan, work)
        info = {"run_id": f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
                "base": base.version, "base_path": str(base.model_path), "site": str(request.site_dir),
                "plan": _plan_json(plan)}
        with atomic_path(work / RUN_FILE) as tmp:
            tmp.write_text(json.dumps(info, indent=2))
    except OSError as exc:
        raise OutputError(disk_full_message(f"the fine-tune run folder {work}", exc)) from None
    return info


def _base_version(registry: ModelRegistry, base: str | None, log: LogFn) -> ModelVersion:
    """``base``, else the active version; an empty registry starts from the bundled model (registered
    and activated as its first version, so it can be rolled back to)."""
    if base is not None:
        return registry.get(base)
    active = registry.active()
    if active is not None:
        return active
    if registry.versions():
        raise InputError(f"{registry.root} has versions but none is active: name one with --base, "
                         "or activate one (sssseg models activate VERSION)")
    from ..bundled_models import bundled_model_path, default_preset, no_model_message

    preset = default_preset()
    if preset is None:
        raise CheckpointError(no_model_message(None))
    first = registry.add_version(bundled_model_path(preset), source=f"bundled {preset} model")
    log(f"empty registry: registered the bundled '{preset}' model as {first.version} and activated it")
    return registry.activate(first.version)


def _resume_info(work: Path) -> dict:
    path = work / RUN_FILE
    if not path.is_file():
        raise InputError(f"no fine-tune run to resume in {work} (start one without --resume)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"the fine-tune run record {path} is damaged ({exc}); delete {work} to start "
                              "over") from None


def _plan_json(plan: SitePlan) -> dict:
    def cases(items: tuple[CasePaths, ...]) -> list:
        return [[c.case_id, str(c.image), None if c.label is None else str(c.label)] for c in items]

    return {"train": cases(plan.train), "heldout": cases(plan.heldout), "normal": cases(plan.normal),
            "unlabeled": cases(plan.unlabeled)}


def _plan_from(info: dict) -> SitePlan:
    def cases(key: str) -> tuple[CasePaths, ...]:
        return tuple(CasePaths(c, Path(i), None if lab is None else Path(lab)) for c, i, lab in info["plan"][key])

    return SitePlan(cases("train"), cases("heldout"), cases("normal"), cases("unlabeled"))


def _archive(registry: ModelRegistry, run_id: str) -> Path:
    """Move the finished run's folder to ``REGISTRY/runs/<run id>`` (the next run starts fresh)."""
    target = registry.root / "runs" / run_id
    target.parent.mkdir(exist_ok=True)
    os.replace(registry.root / "work", target)
    return target


def validation_lines(log_path: Path) -> list[str]:
    """The training log's validation records (held-out cases, the loop's measure), one line each."""
    if not Path(log_path).is_file():
        return []
    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    lines = []
    for r in (r for r in records if "val_mean_dice" in r):
        per_class = ", ".join(f"{k[len('val_dice_'):]} {v:.3f}" for k, v in r.items()
                              if k.startswith("val_dice_") and v is not None)
        mean = "n/a" if r["val_mean_dice"] is None else f"{r['val_mean_dice']:.3f}"
        lines.append(f"validation at step {r['step']}: mean Dice {mean} ({per_class or 'no class present'})")
    return lines


def eta_progress(progress: ProgressCallback) -> ProgressCallback:
    """``progress`` with an ETA appended to training-step messages (rate measured in this process)."""
    start: list[float] = []

    def report(stage: str, fraction: float, message: str = "") -> None:
        if stage == "train":
            now = time.perf_counter()
            if not start:
                start.extend((now, fraction))
            elif fraction > start[1]:
                eta = (now - start[0]) / (fraction - start[1]) * (1.0 - fraction)
                message = f"{message} ETA {eta:.0f} s"
        progress(stage, fraction, message)

    return report
