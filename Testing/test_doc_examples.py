"""Every example in the documentation runs as written.

Each fenced block tagged ```bash or ```python in README.md and docs/*.md runs, file by file and in
order, in a fresh temporary folder holding

- ``ct.nii.gz``: a small synthetic phantom head CT with a bleed, made by the command the README gives
  for it (``EXAMPLE_CT_COMMAND``),
- ``ge_head/``: a copy of the real GE DICOM series from ../shared/data (blocks naming ``ge_head`` are
  skipped, saying why, when it is absent),

with the venv's ``bin/`` first on PATH. Python blocks of one file share one namespace. A block that
exits non-zero or raises fails its file's test, naming the file and line. Blocks that need what a test
cannot have (a user's data, the Slicer GUI, a GPU, minutes of benchmark) are tagged ```console or
```text instead. Also: every relative link in those files points to a file of the repository, and no
file cites a design document outside it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, REAL_CT_HOWTO, TILTED_CT_DIR

DOC_FILES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
RUN_TAGS = ("bash", "python")
EXAMPLE_CT_COMMAND = ("sssseg phantoms example --n 1 --seed 2 --matrix 256 --realism-cases 0 && "
                      "cp example/imagesTr/phantom_0000.nii.gz ct.nii.gz")
BLOCK_TIMEOUT_S = 300
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<tag>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class DocBlock:
    """One fenced code block: its file, the line of its opening fence (1-based), tag and code."""

    path: Path
    line: int
    tag: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(PROJECT_ROOT)}:{self.line}"


def doc_blocks(path: Path) -> list[DocBlock]:
    """Every fenced block of ``path`` in order (indented blocks, e.g. in list items, dedented)."""
    text = path.read_text()
    return [DocBlock(path, text.count("\n", 0, m.start()) + 1, m.group("tag"), textwrap.dedent(m.group("body")))
            for m in FENCE.finditer(text)]


def run_blocks(blocks: list[DocBlock], folder: Path) -> None:
    """Run the ```bash / ```python blocks in ``folder``, in order; AssertionError naming the first that fails."""
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for block in blocks:
            if block.tag == "bash":
                _run_bash(block, folder, env)
            elif block.tag == "python":
                _run_python(block, namespace)
    finally:
        os.chdir(cwd)


def _run_bash(block: DocBlock, folder: Path, env: dict[str, str]) -> None:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=folder, env=env, text=True,
                          capture_output=True, timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"{block.where}: the bash block exited with {done.returncode}:\n{block.code}\n"
                             f"--- stderr (end) ---\n{done.stderr[-3000:]}")


def _run_python(block: DocBlock, namespace: dict[str, object]) -> None:
    try:
        exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102  (the documented example)
    except Exception as error:
        raise AssertionError(f"{block.where}: the python block raised {type(error).__name__}: {error}\n"
                             f"{block.code}") from error


@pytest.fixture(scope="module")
def example_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every doc file's blocks start from: ct.nii.gz (by EXAMPLE_CT_COMMAND) and ge_head/."""
    folder = tmp_path_factory.mktemp("doc_examples")
    block = DocBlock(PROJECT_ROOT / "README.md", 0, "bash", EXAMPLE_CT_COMMAND)
    run_blocks([block], folder)
    shutil.rmtree(folder / "example")
    if TILTED_CT_DIR.is_dir():
        shutil.copytree(TILTED_CT_DIR, folder / "ge_head")
    return folder


def test_the_readme_gives_the_example_ct_command() -> None:
    """A reader without a scan makes the same ct.nii.gz the examples run on here."""
    assert EXAMPLE_CT_COMMAND in (PROJECT_ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_doc_examples_run(path: Path, example_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "work"
    shutil.copytree(example_folder, folder, symlinks=True)
    blocks = [b for b in doc_blocks(path) if b.tag in RUN_TAGS]
    skipped = [b for b in blocks if "ge_head" in b.code and not TILTED_CT_DIR.is_dir()]
    run_blocks([b for b in blocks if b not in skipped], folder)
    if skipped:
        pytest.skip(f"ran {len(blocks) - len(skipped)} block(s); skipped {', '.join(b.where for b in skipped)}, "
                    f"which use ge_head/: {REAL_CT_HOWTO}")


def test_the_runner_fails_on_a_wrong_flag_or_an_undefined_name(tmp_path: Path) -> None:
    """The runner itself: a wrong flag or an undefined name in a planted doc fails, naming the line."""
    doc = tmp_path / "planted.md"
    doc.write_text("Text.\n\n```bash\nsssseg segment ct.nii.gz out.seg.nrrd --no-such-flag\n```\n\n"
                   "- a list item:\n\n  ```python\n  print(undefined_name)\n  ```\n\n```console\nexit 1\n```\n")
    blocks = doc_blocks(doc)
    assert [(b.line, b.tag) for b in blocks] == [(3, "bash"), (9, "python"), (13, "console")]
    with pytest.raises(AssertionError, match=r"planted.md:3: the bash block exited with 2"):
        run_blocks([DocBlock(PROJECT_ROOT / "planted.md", 3, "bash", blocks[0].code)], tmp_path)
    with pytest.raises(AssertionError, match=r"NameError: name 'undefined_name'"):
        run_blocks([DocBlock(PROJECT_ROOT / "planted.md", 9, "python", blocks[1].code)], tmp_path)
    run_blocks([blocks[2]], tmp_path)  # a console block is shown, not run


LINK = re.compile(r"\]\((?!https?:|mailto:|#)(?P<target>[^)\s#]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    missing = [m.group("target") for m in LINK.finditer(path.read_text())
               if not (path.parent / m.group("target")).exists()]
    assert missing == [], f"{path.name} links to files that do not exist: {missing}"


def test_no_file_cites_a_design_document_outside_the_repository() -> None:
    name = "DESIGN" + ".md"  # spelled apart, so this file does not cite it either
    tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    text_suffixes = {".py", ".md", ".txt", ".yaml", ".toml", ".cfg", ".sh", ".json"}
    citing = [relative for relative in tracked.stdout.splitlines()
              if (path := PROJECT_ROOT / relative).suffix in text_suffixes and path.is_file()
              and name in path.read_text(errors="replace")]
    assert citing == [], f"these files cite {name}, which is not in the repository: {citing}"
