"""Compare checkpoints on the unseen test phantoms (810000+), the demo phantom and the real GE scan.

The same test set as ``train_compare.py --evaluate-only`` (matrix 512), with the demo's phantom and
the mL each checkpoint calls on the real GE head CT of ``../shared/data`` beside it, all in one run:

    .venv/bin/python benchmarks/compare_checkpoints.py SSSSegmentLib/resources/models/sss_tiny.safetensors \
        runs/demo_tiny_stage6/final.safetensors

``--refine on`` / ``off`` overrides each checkpoint's recommended ``refine`` (the SAM-2 decoder on the
PCPG prompts); ``both`` runs every checkpoint twice, off then on. ``--inserted N`` adds the Dice per
class of lesions inserted into the GE scan (``real_scan_check.inserted_dice``, N cases a class) and
``--process`` the whole ``sssseg segment`` process on the GE scan (wall time and peak RSS, from
``/usr/bin/time -v``); ``--test 0`` leaves the phantoms out. ``--encoder-cache DIR`` keeps the frozen
encoder's output of every slice in DIR (``encoder_cache.py``), so lite checkpoints, which share
LiteMedSAM's encoder, encode each test slice once across checkpoints and runs.
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import numpy as np  # noqa: E402
from encoder_cache import cache_encoder  # noqa: E402
from train_compare import describe, evaluate_model  # noqa: E402

from SSSSegmentLib import api  # noqa: E402
from SSSSegmentLib.demo import DEMO_SEED  # noqa: E402
from SSSSegmentLib.evaluation import evaluate_case  # noqa: E402
from SSSSegmentLib.inference import inference_config_for, segment_volume  # noqa: E402
from SSSSegmentLib.model import resolve_device  # noqa: E402
from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom  # noqa: E402

GE_DIR = ROOT.parent / "shared" / "data" / "ct_head_ge_tilted"


def quiet(_message: str) -> None:
    """PCPG's per-component lines are not wanted here."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--test", type=int, default=24)
    ap.add_argument("--test-seed", type=int, default=810_000, help="seed of the first test phantom")
    ap.add_argument("--refine", choices=("model", "on", "off", "both"), default="model",
                    help="SAM-2 decoder refinement: as each checkpoint recommends (model), on, off, or both")
    ap.add_argument("--inserted", type=int, default=0, help="GE inserted-lesion cases per class (0: none)")
    ap.add_argument("--process", action="store_true", help="time the whole sssseg process on the GE scan")
    ap.add_argument("--encoder-cache", type=Path, help="folder caching a frozen encoder's output per slice")
    args = ap.parse_args()
    if not GE_DIR.is_dir():
        print(f"needs the real GE head CT at {GE_DIR}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    tests = [generate_phantom(args.test_seed + i, PhantomConfig(matrix=512)) for i in range(args.test)]
    demo = generate_phantom(DEMO_SEED)
    ge = api.read_ct(GE_DIR)
    print(f"data in {time.perf_counter() - t0:.0f} s", flush=True)
    dev = resolve_device("cpu")
    refines = {"model": [None], "on": [True], "off": [False], "both": [False, True]}[args.refine]
    for ckpt in args.checkpoints:
        loaded = api.load_model(checkpoint=ckpt, device="cpu")
        model = loaded.model
        if args.encoder_cache:
            cache_encoder(model, args.encoder_cache)
        for refine in refines:
            compare_one(ckpt, model, refine, tests, demo, ge, dev)
        if args.inserted:
            inserted_one(loaded, ge, args.inserted)
        if args.process:
            process_one(ckpt)
    return 0


def inserted_one(loaded: api.LoadedModel, ge: object, per_class: int) -> None:
    """Dice per class of lesions inserted into the GE scan (the checkpoint's recommended settings)."""
    from real_scan_check import inserted_dice

    t0 = time.perf_counter()
    scores = inserted_dice(ge, loaded, per_class, 0)
    means = {k: float(np.mean(v)) for k, v in scores.items()}
    print(f"GE inserted lesions ({per_class} a class, {time.perf_counter() - t0:.0f} s): "
          + ", ".join(f"{k} {v:.3f}" for k, v in means.items()) + f"; mean {np.mean(list(means.values())):.3f}",
          flush=True)


def process_one(ckpt: Path) -> None:
    """Wall time and peak RSS of ``sssseg segment GE_DIR out.nii.gz --checkpoint ckpt`` (a fresh process)."""
    import re
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["/usr/bin/time", "-v", str(Path(sys.executable).parent / "sssseg"), "segment", str(GE_DIR),
               str(Path(tmp) / "out.nii.gz"), "--checkpoint", str(ckpt), "--device", "cpu", "--progress", "none"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", out.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    if out.returncode or not wall or not rss:
        print(f"whole process failed ({out.returncode}): {out.stderr[-500:]}", flush=True)
        return
    seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    print(f"whole process on the GE scan: {seconds:.1f} s, peak RSS {int(rss.group(1)) / 1024:.0f} MiB", flush=True)


def compare_one(ckpt: Path, model: object, refine: bool | None, tests: list, demo: object, ge: object,
                dev: object) -> None:
    """Print one checkpoint's figures (``refine`` None: its recommended setting)."""
    t0 = time.perf_counter()
    config = inference_config_for(model)
    config = config if refine is None else dataclasses.replace(config, refine=refine)
    demo_case = evaluate_case(segment_volume(demo.to_ct_volume(), model, dev, config, log=quiet).labels_zyx,
                              demo.labels_zyx, demo.geometry.spacing_mm, "demo")
    demo_dice = np.mean(demo_case.dice_in_truth())
    ge_ml = segment_volume(ge, model, dev, config, log=quiet).volumes_ml
    print(f"== {ckpt}, refine {'on' if config.refine else 'off'} ({time.perf_counter() - t0:.0f} s)")
    if tests:
        print(describe(evaluate_model(model, tests, dev, refine)))
    print(f"demo phantom {DEMO_SEED}, the demo's measure: {demo_dice:.3f}")
    print("real GE scan, mL: " + ", ".join(f"{k} {v:.2f}" for k, v in ge_ml.items())
          + f"; total {sum(ge_ml.values()):.2f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
