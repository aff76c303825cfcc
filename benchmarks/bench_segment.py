"""Benchmark: wall time and peak memory of `sssseg segment` on one CT.

Runs the real command in a child process (so start-up, reading, tilt correction and writing are
counted) and reads its peak RSS from the OS. Prints one table row per preset.

    .venv/bin/python benchmarks/bench_segment.py --input ../shared/data/ct_head_ge_tilted --preset fast
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import torch


def run_once(input_path: Path, preset: str, device: str, checkpoint: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "bench.seg.nrrd"
        cmd = [sys.executable, "-m", "SSSSegmentLib.cli", "segment", str(input_path), str(output),
               "--preset", preset, "--device", device, "--progress", "json"]
        cmd += ["--checkpoint", str(checkpoint)] if checkpoint else ["--untrained"]
        # A fresh launcher per run, so RUSAGE_CHILDREN's peak is this run's alone.
        launcher = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
                    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
                    "print(json.dumps([p.returncode, time.perf_counter() - t, "
                    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.stdout, p.stderr]))")
        proc = subprocess.run([sys.executable, "-c", launcher, *cmd], capture_output=True, text=True)
    code, wall_s, peak_kib, stdout, stderr = json.loads(proc.stdout)
    if code != 0:
        raise SystemExit(f"segment failed ({code}): {stderr.strip()[-400:]}")
    done = [json.loads(line) for line in stdout.splitlines() if '"event": "done"' in line][-1]
    return {"wall_s": wall_s, "peak_rss_mib": peak_kib / 1024, "stages_s": done["timings_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=Path("../shared/data/ct_head_ge_tilted"))
    parser.add_argument("--preset", nargs="+", default=["fast"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"# {date.today()} {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"device {args.device}, input {args.input}")
    print("| preset | wall time (s) | peak RSS (MiB) | encode (s) | prompts (s) | refine (s) |")
    print("|---|---|---|---|---|---|")
    for preset in args.preset:
        for _ in range(args.repeat):
            r = run_once(args.input, preset, args.device, args.checkpoint)
            st = r["stages_s"]
            print(f"| {preset} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} | {st.get('encode', 0):.1f} | "
                  f"{st.get('prompts', 0):.2f} | {st.get('refine', 0):.2f} |")


if __name__ == "__main__":
    main()
