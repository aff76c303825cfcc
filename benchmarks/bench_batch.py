"""Benchmark: `sssseg batch` throughput with 1 worker (in-process) and 2 (Ray actors) on this machine.

Writes N phantom head CTs (``sssseg phantoms``' generator, 512 x 512 by default), then runs the real
command in a child process once per worker count, each into a fresh output folder, and prints per
run: the whole command's wall time (start-up, Ray, model loads included) and cases per minute, and
the steady rate (cases per minute between the first and the last case to end, without start-up).
The load average is printed before and after each run: on a shared machine the figures move with it.
Timings are not tests.

    .venv/bin/python benchmarks/bench_batch.py                          # 12 cases, --workers 1 and 2
    .venv/bin/python benchmarks/bench_batch.py --cases 24 --workers 1 2 4 --device cuda --gpus-per-worker 0.25
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_cases(folder: Path, count: int, matrix: int, seed: int = 910000) -> None:
    """``count`` phantom CTs as ``folder/case<seed>.nii.gz`` (seeds never used in training)."""
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
    from SSSSegmentLib.volumes import write_volume
    from SSSSegmentLib.volumes.geometry import CTVolume

    folder.mkdir(parents=True, exist_ok=True)
    for s in range(seed, seed + count):
        phantom = generate_phantom(s, PhantomConfig(matrix=matrix))
        write_volume(folder / f"case{s}.nii.gz", CTVolume(phantom.hu_zyx, phantom.geometry))


def run_batch(inputs: Path, out: Path, workers: int, extra: list[str]) -> dict:
    """One `sssseg batch` run: wall_s, the time each case ended (s from the start), exit code."""
    cmd = [sys.executable, "-m", "SSSSegmentLib.cli", "batch", str(inputs), str(out), "--workers", str(workers),
           "--progress", "json", *extra]
    start = time.perf_counter()
    ends: list[float] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stdout:
        if json.loads(line).get("event") == "case":
            ends.append(time.perf_counter() - start)
    stderr = proc.stderr.read()
    proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"sssseg batch --workers {workers} failed ({proc.returncode}):\n{stderr[-2000:]}")
    return {"wall_s": time.perf_counter() - start, "ends_s": ends}


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def _cpu_name() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--matrix", type=int, default=512, help="phantom in-plane size (default 512, as real scans)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--no-qc", action="store_true", help="skip the QC pictures")
    args = parser.parse_args()
    extra = ["--device", args.device]
    extra += ["--gpus-per-worker", str(args.gpus_per_worker)] if args.gpus_per_worker else []
    extra += ["--no-qc"] if args.no_qc else []
    print(f"machine: {os.cpu_count()} cores, {_cpu_name()}; python {platform.python_version()}; "
          f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        inputs = Path(tmp) / "in"
        write_cases(inputs, args.cases, args.matrix)
        print(f"{args.cases} phantom cases, {args.matrix} x {args.matrix}; device {args.device}; "
              f"QC pictures {'off' if args.no_qc else 'on'}")
        print("| workers | wall (s) | cases/min, whole command | cases/min, steady | load 1/5/15 min before -> after |")
        print("|---|---|---|---|---|")
        for workers in args.workers:
            before = _load()
            run = run_batch(inputs, Path(tmp) / f"out_w{workers}", workers, extra)
            ends = run["ends_s"]
            steady = 60.0 * (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 and ends[-1] > ends[0] else 0.0
            print(f"| {workers} | {run['wall_s']:.1f} | {60.0 * len(ends) / run['wall_s']:.1f} | {steady:.1f} "
                  f"| {before} -> {_load()} |", flush=True)


if __name__ == "__main__":
    main()
