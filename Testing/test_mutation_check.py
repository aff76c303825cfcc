"""scripts/mutation_check.py on a two-file toy repository: caught / survived / stale, and the source
repository is never written to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
from mutation_check import CAUGHT, STALE, SURVIVED, make_copy, plant_and_test  # noqa: E402
from mutations import MUTATIONS, Mutation  # noqa: E402

CODE = "def double(x):\n    return 2 * x\n"
TEST = "from toy import double\n\n\ndef test_double():\n    assert double(3) == 6\n"


@pytest.fixture()
def toy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "src" / "toy_repo"
    repo.mkdir(parents=True)
    (repo / "toy.py").write_text(CODE)
    (repo / "test_toy.py").write_text(TEST)
    (repo / ".gitignore").write_text("ignored.txt\n")
    (repo / "ignored.txt").write_text("not copied")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo


def _mutation(old: str, new: str) -> Mutation:
    return Mutation("toy", "toy", "toy bug", "toy.py", old, new, ("test_toy.py",))


def test_mutations_are_planted_in_a_copy_and_reverted(toy_repo: Path, tmp_path: Path) -> None:
    copy = make_copy(toy_repo, tmp_path / "work")
    assert sorted(p.name for p in copy.iterdir()) == [".gitignore", "test_toy.py", "toy.py"]
    caught = plant_and_test(copy, sys.executable, _mutation("2 * x", "3 * x"), timeout=120)
    survived = plant_and_test(copy, sys.executable, _mutation("2 * x", "x * 2"), timeout=120)
    stale = plant_and_test(copy, sys.executable, _mutation("4 * x", "5 * x"), timeout=120)
    assert (caught.status, survived.status, stale.status) == (CAUGHT, SURVIVED, STALE)
    assert (copy / "toy.py").read_text() == CODE == (toy_repo / "toy.py").read_text()


def test_committed_copy_holds_the_last_commit_not_the_working_tree(toy_repo: Path, tmp_path: Path) -> None:
    subprocess.run(["git", "add", "toy.py", "test_toy.py"], cwd=toy_repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "toy"], cwd=toy_repo,
                   check=True)
    (toy_repo / "toy.py").write_text(CODE + "# uncommitted edit\n")
    copy = make_copy(toy_repo, tmp_path / "work", committed=True)
    assert (copy / "toy.py").read_text() == CODE and not (copy / "ignored.txt").exists()


def test_a_copy_inside_the_repository_is_refused(toy_repo: Path) -> None:
    with pytest.raises(SystemExit, match="overlaps"):
        make_copy(toy_repo, toy_repo / "inside")


def test_mutation_keys_are_unique_and_span_the_required_areas() -> None:
    keys = [m.key for m in MUTATIONS]
    assert len(keys) == len(set(keys)) and len(keys) >= 20
    assert {"prompts", "volumes", "segfile", "training", "slicer bridge"} <= {m.area for m in MUTATIONS}
