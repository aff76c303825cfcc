#!/usr/bin/env python3
"""Plant small bugs (mutations, ``scripts/mutations.py``) in a temporary copy of the repository, run the
tests that must catch each one, and print which were caught.

The repository itself is never written to: its files (``git ls-files``: tracked and untracked, not
ignored; with ``--committed`` the last commit's) are copied to a temporary folder, beside a link to
``../shared`` when it exists (the real-data tests), and every mutation is planted, tested and reverted
there. The copy's own ``SSSSegmentLib`` is imported (``PYTHONPATH``; checked before the first mutation).

    .venv/bin/python scripts/mutation_check.py              # all mutations (several minutes on 2 CPUs)
    .venv/bin/python scripts/mutation_check.py --list       # what would be planted
    .venv/bin/python scripts/mutation_check.py --only never-freeze best-inverted
    .venv/bin/python scripts/mutation_check.py --committed  # the last commit, not uncommitted edits

A mutation counts as caught when its tests fail (pytest exit code 1). Before the mutations, the same
tests run once on the unmutated copy and must pass, so a failure is the mutation's doing. Exit code 0
when every mutation was caught, 1 when one survived or could not be planted (stale: its text is no
longer in the file), 2 when the unmutated copy already fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutations import MUTATIONS, Mutation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CAUGHT, SURVIVED, STALE, ERROR = "caught", "SURVIVED", "STALE", "ERROR"


@dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    status: str
    seconds: float
    detail: str = ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", metavar="KEY", help="run only these mutations (keys from --list)")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    p.add_argument("--committed", action="store_true",
                   help="copy the last commit (HEAD) instead of the working tree, e.g. while others edit files")
    p.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    p.add_argument("--python", default=sys.executable, help="interpreter with the test dependencies")
    return p.parse_args(argv)


def selected(keys: list[str] | None) -> list[Mutation]:
    if not keys:
        return list(MUTATIONS)
    known = {m.key: m for m in MUTATIONS}
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise SystemExit(f"unknown mutation(s): {', '.join(unknown)}; see --list")
    return [known[k] for k in keys]


def repo_files(root: Path) -> list[Path]:
    """Files git knows or would add (tracked + untracked, not ignored), relative to ``root``."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout.decode()
    return sorted({Path(name) for name in listing.split("\0") if name and (root / name).is_file()})


def make_copy(root: Path, parent: Path, committed: bool = False) -> Path:
    """A copy of the repository's files in ``parent/<name>``, with ``parent/shared`` -> ``root/../shared``.

    The working tree (tracked and untracked files, not ignored), or with ``committed`` the files of HEAD.
    """
    copy = parent / root.name
    if copy.resolve().is_relative_to(root.resolve()) or root.resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"refusing to work in {copy}: it overlaps the repository {root}")
    copy.mkdir(parents=True)
    if committed:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=root, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(copy)], input=archive, check=True)
    else:
        for rel in repo_files(root):
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, copy / rel)
    shared = root.parent / "shared"
    if shared.is_dir():
        (parent / "shared").symlink_to(shared.resolve(), target_is_directory=True)
    return copy


def child_env(copy: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}


def check_isolated(copy: Path, python: str) -> None:
    """Stop unless the copy imports its own SSSSegmentLib (not the editable install of the repository)."""
    code = "import SSSSegmentLib; print(SSSSegmentLib.__file__)"
    found = subprocess.run([python, "-c", code], cwd=copy, env=child_env(copy), capture_output=True, text=True)
    if found.returncode != 0 or not Path(found.stdout.strip()).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"the copy does not import its own SSSSegmentLib: {found.stdout or found.stderr}")


def run_pytest(copy: Path, python: str, tests: tuple[str, ...], timeout: float) -> tuple[int, str]:
    """(pytest exit code, last lines of its output); 124 on timeout."""
    cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(cmd, cwd=copy, env=child_env(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s"
    tail = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()][-3:]
    return done.returncode, " | ".join(tail)


def plant_and_test(copy: Path, python: str, mutation: Mutation, timeout: float) -> Outcome:
    """Plant one mutation, run its tests, revert it."""
    path = copy / mutation.path
    original = path.read_text()
    count = original.count(mutation.old)
    if count != 1:
        return Outcome(mutation, STALE, 0.0, f"the text to mutate occurs {count} times in {mutation.path}")
    start = time.perf_counter()
    path.write_text(original.replace(mutation.old, mutation.new))
    try:
        code, tail = run_pytest(copy, python, mutation.tests, timeout)
    finally:
        path.write_text(original)
    status = CAUGHT if code == 1 else SURVIVED if code == 0 else ERROR
    return Outcome(mutation, status, time.perf_counter() - start, "" if code == 1 else f"exit {code}: {tail}")


def baseline_passes(copy: Path, python: str, mutations: list[Mutation], timeout: float) -> bool:
    tests = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
    print(f"baseline: {len(tests)} test target(s) on the unmutated copy ...", flush=True)
    code, tail = run_pytest(copy, python, tests, timeout * 2)
    if code != 0:
        print(f"baseline FAILED (exit {code}): {tail}")
    return code == 0


def report(outcomes: list[Outcome]) -> str:
    lines = [f"{'mutation':<28} {'area':<14} {'result':<9} {'s':>6}  bug"]
    for o in outcomes:
        lines.append(f"{o.mutation.key:<28} {o.mutation.area:<14} {o.status:<9} {o.seconds:>6.1f}  {o.mutation.bug}")
        if o.detail:
            lines.append(f"{'':<28} {o.detail}")
    caught = sum(o.status == CAUGHT for o in outcomes)
    lines.append(f"kill rate: {caught}/{len(outcomes)} mutations caught ({100.0 * caught / len(outcomes):.0f}%)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mutations = selected(args.only)
    if args.list:
        for m in mutations:
            print(f"{m.key:<28} {m.area:<14} {m.path}: {m.bug}\n{'':<43}tests: {' '.join(m.tests)}")
        return 0
    parent = Path(tempfile.mkdtemp(prefix="sssseg-mutants-"))
    start = time.perf_counter()
    try:
        copy = make_copy(REPO, parent, args.committed)
        print(f"copy of {REPO} ({'HEAD' if args.committed else 'working tree'}) in {copy}", flush=True)
        check_isolated(copy, args.python)
        if not baseline_passes(copy, args.python, mutations, args.timeout):
            return 2
        outcomes = []
        for n, mutation in enumerate(mutations, 1):
            outcomes.append(plant_and_test(copy, args.python, mutation, args.timeout))
            print(f"[{n}/{len(mutations)}] {mutation.key}: {outcomes[-1].status}", flush=True)
        print(report(outcomes))
        print(f"total {time.perf_counter() - start:.0f} s (copy, baseline and mutations)")
        return 0 if all(o.status == CAUGHT for o in outcomes) else 1
    finally:
        if args.keep:
            print(f"kept {parent}")
        else:
            shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
