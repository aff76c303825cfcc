"""The engine imports without Slicer, Qt or VTK, and does no heavy work at import time."""

from __future__ import annotations

import subprocess
import sys

_PROBE = r"""
import importlib, pkgutil, sys
import SSSSegmentLib
names = [m.name for m in pkgutil.walk_packages(SSSSegmentLib.__path__, "SSSSegmentLib.")
         if not m.name.endswith(".__main__")]  # entry points run on import
for name in names:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if m.split(".")[0] in {"slicer", "vtk", "qt", "ctk", "vtkmodules", "PythonQt"})
print(len(names), ",".join(bad))
"""


def test_importing_every_engine_module_imports_no_slicer_qt_or_vtk():
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    count, bad = proc.stdout.strip().split(" ", 1) if " " in proc.stdout.strip() else (proc.stdout.strip(), "")
    assert int(count) >= 10  # the walk really found the package's modules
    assert bad == "", f"engine modules imported {bad}"


def test_importing_the_package_root_does_not_import_torch():
    code = "import sys, SSSSegmentLib, SSSSegmentLib.classes, SSSSegmentLib.cli; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_volume_geometry_does_not_import_the_stack_resampler():
    """volumes.geometry is the base of volumes.stack_resample, never the other way round (no import circle)."""
    import ast
    from pathlib import Path

    import SSSSegmentLib.volumes.geometry as geometry

    tree = ast.parse(Path(geometry.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name and "stack_resample" in name for name in imported), imported
