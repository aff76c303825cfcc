"""Fine-tune settings on the new site, without the gate: which parts, learning rate and steps help?

Each run trains the bundled tiny model as ``sssseg finetune`` would (the product's site plan and
training config, ``FINETUNE_DEFAULTS`` + the run's overrides) on ``site_N`` of ``new_site.py``
(``--profile shifted``), then scores its final checkpoint on ``N_TESTS`` unseen site phantoms with a
bleed (per case: mean Dice over the classes in its truth) and 2 without (mL called). ``score`` scores
given checkpoints on the same cases; ``gate SITE NEW ACTIVE`` re-judges two checkpoints with the
product's gate (default rule, full reference set). Results: ``WORK/<name>/result.json``, one JSON line each.

    .venv/bin/python benchmarks/finetune_sweep.py score SSSSegmentLib/resources/models/sss_tiny.safetensors
    .venv/bin/python benchmarks/finetune_sweep.py \\
        'coarse_lr1e-4_s30|16|30|{"method":"supervised","batch_unlabeled":0,"freeze_encoder":true,"decoder_weight":0}'
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import new_site as ns  # noqa: E402

from SSSSegmentLib import api  # noqa: E402
from SSSSegmentLib.bundled_models import bundled_model_path  # noqa: E402
from SSSSegmentLib.finetune.plan import FinetuneRequest, plan_site, write_run_index  # noqa: E402
from SSSSegmentLib.finetune.run import _train_config  # noqa: E402
from SSSSegmentLib.training import run_training  # noqa: E402

WORK = Path(os.environ.get("SWEEP_WORK", "/tmp/finetune_sweep"))
N_TESTS = int(os.environ.get("N_TESTS", 16))


def unseen() -> list:
    """The unseen site phantoms (the first ``--tests`` of ``new_site.py`` and more), cached in WORK."""
    cache = WORK / f"unseen_{N_TESTS}.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    profile = ns.PROFILES["shifted"]
    cases = [ns.site_phantom(ns.SEED_BASE["test"] + i, profile, 256) for i in range(N_TESTS)]
    cases += [ns.site_phantom(ns.SEED_BASE["test_normal"] + i, profile, 256, normal=True) for i in range(2)]
    cache.write_bytes(pickle.dumps(cases))
    return cases


def run(name: str, n: int, steps: int, overrides: dict) -> dict:
    """One fine-tune on ``site_n`` (built as ``new_site.py`` builds it), scored on the unseen cases."""
    out = WORK / name
    if (out / "result.json").is_file():
        return json.loads((out / "result.json").read_text())
    sss = overrides.get("method", "sss") != "supervised"  # with new_site.py's 16 unlabeled site phantoms
    site, unlabeled = ns.build_site(WORK, n, 16 if sss else 0, ns.PROFILES["shifted"], 256, api.read_ct(ns.GE_DIR))
    plan = plan_site(site, unlabeled if sss else None, 0.25)
    out.mkdir(exist_ok=True)
    write_run_index(plan, out)
    request = FinetuneRequest(site, out, steps=steps, device="cpu", overrides=overrides)
    config = _train_config(request, {"base_path": str(bundled_model_path("tiny"))}, plan, out)
    t0 = time.perf_counter()
    trained = run_training(config)
    train_s = time.perf_counter() - t0
    val = [json.loads(line) for line in trained.log_path.read_text().splitlines() if "val_mean_dice" in line]
    result = {"name": name, "n": n, "steps": steps, "overrides": overrides, "train_s": round(train_s),
              "heldout_val": val[-1]["val_mean_dice"] if val else None,
              **ns.score(trained.final_checkpoint, unseen()), "load": os.getloadavg()[0],
              "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    (out / "result.json").write_text(json.dumps(result))
    return result


def rejudge(site: Path, new_model: Path, active_model: Path) -> dict:
    """The product's gate (default rule and reference set) on ``new_model`` against ``active_model``
    for the site folder ``site``, as ``run_finetune`` would judge them."""
    from SSSSegmentLib.finetune.reference import ReferenceSpec, estimate_scanner_profile, reference_phantoms
    from SSSSegmentLib.finetune.run import _figures_of
    from SSSSegmentLib.registry import GateRule

    plan = plan_site(site, None, 0.25)
    reference = reference_phantoms(ReferenceSpec(), estimate_scanner_profile(plan.train + plan.heldout, print))
    decision = GateRule().decide(_figures_of(new_model, reference, plan, "cpu"),
                                 _figures_of(active_model, reference, plan, "cpu"))
    return {"passed": decision.passed, "parts": [part.line() for part in decision.parts]}


def main(argv: list[str]) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    if argv[:1] == ["gate"]:  # gate SITE NEW.safetensors ACTIVE.safetensors
        t0 = time.perf_counter()
        print(json.dumps({**rejudge(*map(Path, argv[1:4])), "seconds": round(time.perf_counter() - t0),
                          "load": os.getloadavg()[0]}))
        return 0
    if argv[:1] == ["score"]:
        for model in argv[1:]:
            t0 = time.perf_counter()
            print(json.dumps({"model": model, **ns.score(Path(model), unseen()),
                              "seconds": round(time.perf_counter() - t0), "load": os.getloadavg()[0]}), flush=True)
        return 0
    for spec in argv:
        name, n, steps, overrides = spec.split("|")
        print(json.dumps(run(name, int(n), int(steps), json.loads(overrides))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
