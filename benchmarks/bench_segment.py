"""Benchmark: the whole `sssseg segment` process, per preset and volume, against the encoder floor.

Each run is the real command in a fresh child process (start-up, reading, tilt correction,
segmentation and writing all count); its peak RSS comes from the OS. Per preset x volume it prints
the cold first run, the median of the warm runs after it, the peak RSS, the stage split of the
median run (from the command's JSON ``done`` event; "start-up" is the rest: the interpreter,
argparse, output checks), and the bare SAM-2 image encoder on the slices the model actually sees
(the acquired planes of a tilted series), measured in the same run, with the ratio to it.
Timings are not tests: run it on an otherwise idle machine.

    .venv/bin/python benchmarks/bench_segment.py                       # tiny (bundled) and fast, 3 volumes
    .venv/bin/python benchmarks/bench_segment.py --preset tiny --volume GE --repeat 5
    .venv/bin/python benchmarks/bench_segment.py --preset paper --device cuda     # a GPU machine

The floor column also gives the encoder's achieved rate (its FLOP count per slice from
``torch.utils.flop_counter`` over the floor time); on CUDA the peak GPU memory of the whole run
comes from the command's ``done`` event (``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inputs import DEFAULT_CACHE, prepare_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("imports", "read", "model_load", "preprocess", "encoder", "dfe_head", "to_grid", "prompts",
          "decoder", "fusion", "write")
# A fresh launcher per run, so RUSAGE_CHILDREN's peak is this run's alone.
LAUNCHER = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(json.dumps([p.returncode, time.perf_counter() - t, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.stdout, p.stderr]))")


def segment_command(input_path: Path, output: Path, preset: str, device: str = "cpu") -> list[str]:
    """`sssseg segment` as the README runs it: ``tiny`` is the bundled default, others random weights."""
    cmd = [sys.executable, "-m", "SSSSegmentLib.cli", "segment", str(input_path), str(output), "--device", device,
           "--progress", "json", "--overwrite"]
    return cmd if preset == "tiny" else [*cmd, "--preset", preset, "--untrained"]


def run_once(input_path: Path, preset: str, root: Path = ROOT, device: str = "cpu") -> dict:
    """One whole process of the code in ``root``: wall_s, peak_rss_mib, peak_gpu_mib (None off CUDA),
    stages_s (from the done event), encoded slice count (None when the run did not log it)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = segment_command(input_path, Path(tmp) / "bench.seg.nrrd", preset, device)
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], capture_output=True, text=True, cwd=root)
    code, wall_s, peak_kib, stdout, stderr = json.loads(proc.stdout)
    if code != 0:
        raise SystemExit(f"segment failed ({code}): {stderr.strip()[-400:]}")
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    done = [e for e in events if e["event"] == "done"][-1]
    planes = [e["message"] for e in events if e["event"] == "log" and "acquired planes" in e.get("message", "")]
    return {"wall_s": wall_s, "peak_rss_mib": peak_kib / 1024, "peak_gpu_mib": done.get("peak_gpu_mib"),
            "stages_s": done["timings_s"],
            "encoded": int(planes[0].split()[2]) if planes else None}


def probe_parts(preset: str, n_slices: int, device: str = "cpu") -> dict:
    """Import time, model load time, the encoder floor on ``n_slices`` and the encoder's GFLOP per slice
    (``bench_parts.py``)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_parts.py"), "--preset", preset, "--slices", str(n_slices),
           "--device", device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def slice_count(path: Path) -> int:
    from SSSSegmentLib.volumes import read_volume

    return read_volume(path).shape_zyx[0]


def bench(preset: str, name: str, path: Path, repeat: int, root: Path = ROOT, device: str = "cpu") -> dict:
    """Cold run, ``repeat`` warm runs, the encoder floor on the slices encoded; one result row."""
    cold = run_once(path, preset, root, device)
    warm = [run_once(path, preset, root, device) for _ in range(repeat)]
    median = sorted(warm, key=lambda r: r["wall_s"])[len(warm) // 2] if warm else cold
    encoded = cold["encoded"] or slice_count(path)
    parts = probe_parts(preset, encoded, device)
    gpu = [r["peak_gpu_mib"] for r in [cold, *warm] if r["peak_gpu_mib"] is not None]
    return {"preset": preset, "volume": name, "cold_s": cold["wall_s"],
            "warm_s": statistics.median(r["wall_s"] for r in warm) if warm else None, "runs": len(warm),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in [cold, *warm]), "peak_gpu_mib": max(gpu, default=None),
            "stages_s": median["stages_s"],
            "median_wall_s": median["wall_s"], "encoded": encoded, **parts}


def stage_text(row: dict) -> str:
    """'imports 1.2, read 0.4, ...' for the stages that took at least 5 ms, start-up first."""
    stages = row["stages_s"]
    known = sum(stages.get(s, 0.0) for s in STAGES)
    parts = [f"start-up {max(0.0, row['median_wall_s'] - known):.2f}"]
    parts += [f"{s} {stages[s]:.2f}" for s in STAGES if stages.get(s, 0.0) >= 0.005]
    return ", ".join(parts)


def floor_text(row: dict) -> str:
    """'0.30 (28 slices, 77 GFLOP/s)': the floor with the encoder's achieved rate (TFLOP/s when >= 1000)."""
    rate = row["encoder_gflop"] * row["encoded"] / row["floor_s"]
    rate_text = f"{rate / 1000:.1f} TFLOP/s" if rate >= 1000 else f"{rate:.0f} GFLOP/s"
    return f"{row['floor_s']:.2f} ({row['encoded']} slices, {rate_text})"


def table(rows: list[dict]) -> str:
    head = ("| preset | device | volume | cold (s) | warm median (s) | encoder floor (s) | warm / floor "
            "| peak RSS (MiB) | peak GPU (MiB) | stage split of the median warm run (s) |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        warm = f"{r['warm_s']:.2f} (n={r['runs']})" if r["warm_s"] is not None else "-"
        ratio = (r["warm_s"] or r["cold_s"]) / r["floor_s"]
        gpu = f"{r['peak_gpu_mib']:.0f}" if r.get("peak_gpu_mib") is not None else "-"
        lines.append(f"| `{r['preset']}` | {r['device']} | {r['volume']} | {r['cold_s']:.2f} | {warm} | "
                     f"{floor_text(r)} | {ratio:.2f} | {r['peak_rss_mib']:.0f} | {gpu} | {stage_text(r)} |")
    return "\n".join(lines)


def header(rows: list[dict]) -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    threads = rows[0]["threads"] if rows else "?"
    parts = "; ".join(f"`{r['preset']}`: import {r['import_s']:.2f} s, model load {r['load_s']:.2f} s"
                      for r in {r["preset"]: r for r in rows}.values())
    devices = ", ".join(sorted({r["device"] for r in rows})) or "?"
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {cpu}, {os.cpu_count()} CPUs, torch threads {threads}, "
            f"device {devices}{_gpu_name(devices)}. Cold start: {parts}.")


def _gpu_name(devices: str) -> str:
    if "cuda" not in devices:
        return ""
    import torch

    return f" ({torch.cuda.get_device_name(0)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["tiny", "fast"], help="tiny = bundled; others untrained")
    parser.add_argument("--volume", nargs="+", default=None, help="volume names starting with these words")
    parser.add_argument("--repeat", type=int, default=5, help="warm runs after the cold one")
    parser.add_argument("--repeat-long", type=int, default=None, help="warm runs for volumes over 100 slices")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (the command's --device)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="run the sssseg of this checkout (a git worktree of an older commit: before/after)")
    args = parser.parse_args()
    inputs = prepare_inputs(args.cache)
    if args.volume:
        inputs = {k: v for k, v in inputs.items() if any(k.startswith(w) for w in args.volume)}
    rows = []
    for preset in args.preset:
        for name, path in inputs.items():
            long = args.repeat_long is not None and slice_count(path) > 100
            rows.append(bench(preset, name, path, args.repeat_long if long else args.repeat, args.root.resolve(),
                              args.device))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(header(rows))
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
