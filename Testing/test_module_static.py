"""Static checks of the Slicer module (it cannot be imported without a real Slicer).

SSSSegment.py is parsed with ``ast``, the .ui file as XML and the CMake lists as text: widget
names, parameter bindings, the Logic's console API and the shipped file lists must agree.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "SSSSegment"
MODULE_PY = MODULE_DIR / "SSSSegment.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "SSSSegment.ui"
MODULE_CMAKE = MODULE_DIR / "CMakeLists.txt"
LIB_DIR = ROOT / "SSSSegmentLib"


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(MODULE_PY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ui() -> ET.Element:
    return ET.parse(UI_FILE).getroot()


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    assert found, f"class {name} missing from SSSSegment.py"
    return found[0]


def _ui_widget_names(ui: ET.Element) -> set[str]:
    names = {w.get("name") for w in ui.iter("widget")} | {lay.get("name") for lay in ui.iter("layout")}
    return {n for n in names if n}


def _ui_parameter_names(ui: ET.Element) -> dict[str, str]:
    """widget name -> SlicerParameterName."""
    bound = {}
    for widget in ui.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[widget.get("name")] = prop.findtext("string")
    return bound


def _cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\(\s*{variable}\s+(.*?)\)", text, re.S)
    assert match, f"{variable} not set in CMake"
    return [line.split("#")[0].strip() for line in match.group(1).splitlines() if line.split("#")[0].strip()]


def test_every_ui_name_the_widget_uses_exists(tree: ast.Module, ui: ET.Element) -> None:
    widget = _class(tree, "SSSSegmentWidget")
    used = {
        node.attr
        for node in ast.walk(widget)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "ui"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }
    assert {"segmentButton", "cancelButton", "progressBar", "volumesTable"} <= used
    assert used <= _ui_widget_names(ui), f"not in the .ui: {sorted(used - _ui_widget_names(ui))}"


# Parameters whose widget the Widget fills itself (the list of installed models changes when a model
# is imported; parameterNodeWrapper binds a combo box only to a fixed Choice).
WIDGET_MANAGED = {"model": "modelComboBox"}


def test_ui_bindings_match_the_parameter_node_fields(tree: ast.Module, ui: ET.Element) -> None:
    wrapper = _class(tree, "SSSSegmentParameterNode")
    decorators = {d.id if isinstance(d, ast.Name) else ast.unparse(d) for d in wrapper.decorator_list}
    assert "parameterNodeWrapper" in decorators
    fields = {n.target.id for n in wrapper.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    assert fields == {"inputVolume", "outputSegmentation", "model", "device", "show3D"}
    bound = _ui_parameter_names(ui)
    expected = fields - set(WIDGET_MANAGED)
    unknown = set(bound.values()) - expected
    assert not unknown, f"unknown or widget-managed parameters in the .ui: {unknown}"
    assert set(bound.values()) == expected, f"parameters without a widget: {expected - set(bound.values())}"
    assert len(bound) == len(set(bound.values())), "a parameter is bound to two widgets"
    widget_source = ast.unparse(_class(tree, "SSSSegmentWidget"))
    for parameter, widget_name in WIDGET_MANAGED.items():
        assert widget_name in _ui_widget_names(ui) and widget_name not in bound
        assert f"_parameterNode.{parameter} =" in widget_source, f"the Widget never sets {parameter}"


def test_model_list_and_defaults_come_from_what_is_installed(tree: ast.Module) -> None:
    """No hard-coded preset: the Logic defaults to the engine's choice (the best bundled model), the
    panel lists Logic.installedModels(), and the self-test uses the default model, trained."""
    source = MODULE_PY.read_text(encoding="utf-8")
    assert not re.search(r"""["'](fast|paper)["']""", source), "the module names a preset that may have no model"
    logic = {n.name: n for n in _class(tree, "SSSSegmentLogic").body if isinstance(n, ast.FunctionDef)}
    for name in ("segmentVolume", "segmentFiles"):
        args = logic[name].args
        defaults = dict(zip([a.arg for a in args.args][-len(args.defaults):], args.defaults, strict=True))
        assert ast.unparse(defaults["preset"]) == "None", f"{name}: preset default {ast.unparse(defaults['preset'])}"
    assert "installedModels" in logic
    assert "self.logic.installedModels()" in ast.unparse(_class(tree, "SSSSegmentWidget"))
    self_test = ast.unparse(_class(tree, "SSSSegmentTest"))
    assert "allowUntrained" not in self_test and "segmentVolume(" in self_test


def test_module_classes_follow_the_slicer_pattern(tree: ast.Module) -> None:
    bases = {
        "SSSSegment": {"ScriptedLoadableModule"},
        "SSSSegmentWidget": {"ScriptedLoadableModuleWidget", "VTKObservationMixin"},
        "SSSSegmentLogic": {"ScriptedLoadableModuleLogic"},
        "SSSSegmentTest": {"ScriptedLoadableModuleTest"},
    }
    for name, expected in bases.items():
        found = {ast.unparse(b) for b in _class(tree, name).bases}
        assert found == expected, f"{name} derives from {found}"
    test_methods = {n.name for n in _class(tree, "SSSSegmentTest").body if isinstance(n, ast.FunctionDef)}
    assert {"runTest", "setUp"} <= test_methods


def test_logic_console_api(tree: ast.Module) -> None:
    logic = _class(tree, "SSSSegmentLogic")
    methods = {n.name: n for n in logic.body if isinstance(n, ast.FunctionDef)}
    expected = {
        "segmentVolume": ["volumeNode", "segmentationNode", "preset", "device", "checkpoint", "wait",
                          "progressCallback"],
        "segmentFiles": ["paths", "outputDir"],
        "importCheckpoint": ["path", "expectedSha256"],
        "activateModel": ["version"],
        "addToSiteTrainingSet": ["volumeNode", "segmentationNode", "siteDir"],
        "startFinetune": ["siteDir", "unlabeledDir", "steps", "resume", "device"],
        "installDependencies": ["confirm"],
        "startRefine": ["volumeNode", "segmentationNode", "preset", "device", "checkpoint"],
        "refinePrompt": ["className", "positiveRAS", "negativeRAS", "boxRAS"],
        "undoRefine": [],
        "refineStatus": [],
    }
    for name, params in expected.items():
        assert name in methods, f"SSSSegmentLogic.{name} missing"
        args = [a.arg for a in methods[name].args.args][1:]
        assert args[: len(params)] == params, f"{name}{tuple(args)}"


def test_widget_actions_report_errors_through_try_with_error_display(tree: ast.Module) -> None:
    widget = _class(tree, "SSSSegmentWidget")
    for method in widget.body:
        if not isinstance(method, ast.FunctionDef):
            continue
        calls_logic = any(
            isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) and n.value.attr == "logic"
            and n.attr != "getParameterNode"
            for n in ast.walk(method)
        )
        if calls_logic:
            source = ast.unparse(method)
            assert "tryWithErrorDisplay" in source, f"{method.name} calls the Logic without tryWithErrorDisplay"


def test_the_bundled_model_is_installed_with_the_module() -> None:
    """The model is a data file of SSSSegmentLib: CTK copies RESOURCES from SOURCE_DIR (the Lib) into
    qt-scripted-modules/SSSSegmentLib/ under the same relative path, where bundled_models.py looks."""
    from SSSSegmentLib.bundled_models import BUNDLED_MODELS_DIR, installed_bundled_presets

    text = MODULE_CMAKE.read_text(encoding="utf-8")
    resources = _cmake_list(text, "LIB_PYTHON_RESOURCES")
    for preset in installed_bundled_presets():
        assert f"resources/models/sss_{preset}.safetensors" in resources
    assert installed_bundled_presets(), "no bundled model in the package"
    assert BUNDLED_MODELS_DIR.relative_to(LIB_DIR).as_posix() == "resources/models"
    call = re.search(r"ctkMacroCompilePythonScript\((.*?)\n  \)", text, re.S)
    assert call, "ctkMacroCompilePythonScript(...) missing"
    assert re.search(r'RESOURCES\s+"\$\{LIB_PYTHON_RESOURCES\}"', call.group(1))
    assert re.search(r"SOURCE_DIR\s+\$\{CMAKE_CURRENT_SOURCE_DIR\}/\.\./\$\{LIB_NAME\}", call.group(1))
    assert re.search(r"DESTINATION_DIR\s+\$\{CMAKE_BINARY_DIR\}/\$\{Slicer_QTSCRIPTEDMODULES_LIB_DIR\}/\$\{LIB_NAME\}",
                     call.group(1))


def test_every_lib_file_is_shipped_with_the_module() -> None:
    text = MODULE_CMAKE.read_text(encoding="utf-8")
    listed = _cmake_list(text, "LIB_PYTHON_SCRIPTS")
    on_disk = sorted(p.relative_to(LIB_DIR).as_posix() for p in LIB_DIR.rglob("*.py") if "__pycache__" not in p.parts)
    missing = sorted(set(on_disk) - set(listed))
    stale = sorted(set(listed) - set(on_disk))
    assert not missing, f"add to LIB_PYTHON_SCRIPTS in SSSSegment/CMakeLists.txt: {missing}"
    assert not stale, f"listed in LIB_PYTHON_SCRIPTS but gone: {stale}"
    data_files = sorted(
        p.relative_to(LIB_DIR).as_posix()
        for p in LIB_DIR.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )
    match = re.search(r"set\(\s*LIB_PYTHON_RESOURCES\s+(.*?)\)", text, re.S)
    resources = [ln.strip() for ln in match.group(1).splitlines() if ln.strip()] if match else []
    assert sorted(resources) == data_files, "LIB_PYTHON_RESOURCES must list the package's data files"


def test_module_files_listed_in_cmake_exist() -> None:
    text = MODULE_CMAKE.read_text(encoding="utf-8")
    assert "slicerMacroBuildScriptedModule" in text and "WITH_GENERIC_TESTS" in text
    for variable in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
        for entry in _cmake_list(text, variable):
            path = MODULE_DIR / entry.replace("${MODULE_NAME}", "SSSSegment")
            assert path.is_file(), f"{variable} lists a missing file: {entry}"
    top = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for needed in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(SSSSegment)",
                   "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert needed in top, f"top-level CMakeLists.txt lacks {needed}"
    assert re.search(r'set\(EXTENSION_DEPENDS\s+"?PyTorch"?\)', top)


def test_icon_is_a_128_pixel_png() -> None:
    from PIL import Image

    with Image.open(MODULE_DIR / "Resources" / "Icons" / "SSSSegment.png") as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)
