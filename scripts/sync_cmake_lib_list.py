"""Rewrite LIB_PYTHON_SCRIPTS / LIB_PYTHON_RESOURCES in SSSSegment/CMakeLists.txt from SSSSegmentLib/.

Run after adding or removing a file of the engine package (Testing/test_module_static.py fails
until the list matches):  .venv/bin/python scripts/sync_cmake_lib_list.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "SSSSegmentLib"
CMAKE = ROOT / "SSSSegment" / "CMakeLists.txt"


def lib_files() -> tuple[list[str], list[str]]:
    """(python files, data files) of the engine package, relative to it, sorted."""
    files = [p for p in LIB.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    scripts = sorted(p.relative_to(LIB).as_posix() for p in files if p.suffix == ".py")
    resources = sorted(p.relative_to(LIB).as_posix() for p in files if p.suffix != ".py")
    return scripts, resources


def main() -> None:
    text = CMAKE.read_text()
    scripts, resources = lib_files()
    for var, items in (("LIB_PYTHON_SCRIPTS", scripts), ("LIB_PYTHON_RESOURCES", resources)):
        body = "".join(f"  {item}\n" for item in items)
        text, count = re.subn(rf"set\({var}\n.*?  \)", f"set({var}\n{body}  )", text, flags=re.S)
        if count != 1:
            raise SystemExit(f"{CMAKE}: no set({var} ...) block to rewrite")
    CMAKE.write_text(text)
    print(f"{CMAKE.relative_to(ROOT)}: {len(scripts)} scripts, {len(resources)} resources")


if __name__ == "__main__":
    main()
