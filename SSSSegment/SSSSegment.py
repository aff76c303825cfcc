"""SSSSegment: one-click intracranial hemorrhage segmentation on head CT (3D Slicer module).

Thin Slicer layer: the Widget shows and collects, the Logic converts nodes and calls the engine
(``SSSSegmentLib``) in a child process, the Test runs the whole path on a synthetic phantom.
All computation lives in ``SSSSegmentLib``; see docs/slicer.md.
"""

# ruff: noqa: N815  (Slicer's parameter names are camelCase, like its API)
# No "from __future__ import annotations": parameterNodeWrapper reads the real annotation objects.

import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Developer mode (module path = <repo>/SSSSegment): the Lib sits one folder up. An installed
# extension ships SSSSegmentLib next to this file, which is on sys.path already.
_REPO_DIR = Path(__file__).resolve().parent.parent
if (_REPO_DIR / "SSSSegmentLib").is_dir() and str(_REPO_DIR) not in sys.path:
    sys.path.insert(0, str(_REPO_DIR))

DEVICES = ["auto", "cpu", "gpu"]
POLL_INTERVAL_MS = 200
UNLABELED_DIR_SETTING = "SSSSegment/UnlabeledScansDir"  # Slicer setting: the site's unlabeled local scans


class SSSSegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SSSSegment"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations"]
        self.parent.contributors = ["SSSSegment developers"]
        self.parent.helpText = (
            "Segments intracranial hemorrhage (EDH, IPH, IVH, SAH, SDH) on non-contrast head CT with "
            "semi-supervised SAM-2. Select the CT, click <b>Segment hemorrhage</b>, correct the result "
            "in the Segment Editor. Not a medical device: every result needs review by a radiologist."
        )
        self.parent.acknowledgementText = (
            "Method: SSS (Zhu et al., 2025, arXiv 2506.08949) on SAM-2 (Meta AI). Built on 3D Slicer."
        )


@parameterNodeWrapper
class SSSSegmentParameterNode:
    """inputVolume: the CT. outputSegmentation: target node (None: a new one is created).
    model: key of the chosen installed model (``SSSSegmentLogic.installedModels``; '' = the default,
    the best bundled model). The Widget fills its list, which changes when models are imported, so
    it is not bound through the .ui. device: engine option. show3D: show the segments in 3D."""

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    model: str = ""
    device: Annotated[str, Choice(DEVICES)] = "auto"
    show3D: bool = False


class SSSSegmentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """GUI only: collects parameters, starts/cancels the job, shows progress and volumes."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._jobStarted = 0.0
        self._timer = None
        self._finetuneJob = None  # the running ``sssseg finetune`` child, separate from segmentation
        self._finetuneTimer = None
        self._models = []  # InstalledModel entries shown in modelComboBox, in order
        self._promptNodes = {}  # markups class name -> the node whose placed points/boxes are prompts

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SSSSegment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SSSSegmentLogic()
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onPollTimer)
        self._finetuneTimer = qt.QTimer()
        self._finetuneTimer.setInterval(POLL_INTERVAL_MS)
        self._finetuneTimer.connect("timeout()", self.onFinetunePollTimer)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModelButton)
        self.ui.addToSiteButton.connect("clicked(bool)", self.onAddToSiteButton)
        self.ui.rollbackModelButton.connect("clicked(bool)", self.onRollbackModelButton)
        self.ui.finetuneButton.connect("clicked(bool)", self.onFinetuneButton)
        self.ui.unlabeledDirPathLineEdit.currentPath = qt.QSettings().value(UNLABELED_DIR_SETTING, "") or ""
        self.ui.unlabeledDirPathLineEdit.connect("currentPathChanged(QString)", self.onUnlabeledDirChanged)
        self.ui.finetuneCancelButton.connect("clicked(bool)", self.onFinetuneCancelButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelSelected)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependenciesButton)
        self.ui.show3DCheckBox.connect("toggled(bool)", self.onShow3DToggled)
        self._setupRefine()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._stopPlacing()
        if self._job is not None:
            self._job.cancel()
        if self._finetuneJob is not None:
            self._finetuneJob.cancel()
        self._timer.stop()
        self._finetuneTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        if self._job is not None:
            self.onCancelButton()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.inputVolume = firstVolume
        self._refreshModels()

    def _refreshModels(self) -> None:
        """List the installed models (bundled ones first, the default; then imported files)."""
        models = []
        with slicer.util.tryWithErrorDisplay("Could not list the installed models."):
            models = self.logic.installedModels()
        self._models = models
        wanted = self._parameterNode.model if self._parameterNode else ""
        keys = [m.key for m in models]
        combo = self.ui.modelComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for model in models:
            combo.addItem(model.label)
        if not models:
            combo.addItem("No model installed: use Import model…")
        combo.currentIndex = keys.index(wanted) if wanted in keys else 0
        combo.blockSignals(wasBlocked)

    def onModelSelected(self, index: int) -> None:
        if self._parameterNode and 0 <= index < len(self._models):
            self._parameterNode.model = self._models[index].key

    def _selectedModel(self):
        """The InstalledModel chosen in the list (None when nothing is installed)."""
        index = self.ui.modelComboBox.currentIndex
        return self._models[index] if 0 <= index < len(self._models) else None

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._updateButtons()

    def _updateButtons(self, caller=None, event=None) -> None:
        busy = self._job is not None
        ready = bool(self._parameterNode and self._parameterNode.inputVolume)
        self.ui.segmentButton.enabled = ready and not busy
        self.ui.segmentButton.toolTip = "Segment hemorrhage" if ready else "Select a head CT first"
        self.ui.cancelButton.enabled = busy
        self.ui.inputsCollapsibleButton.enabled = not busy
        self.ui.settingsCollapsibleButton.enabled = not busy

    def onSegmentButton(self) -> None:
        params = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not start the hemorrhage segmentation.", waitCursor=True):
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = "Preparing the volume…"
            model = self._selectedModel()
            self._job = self.logic.segmentVolume(
                params.inputVolume, params.outputSegmentation, preset=model.preset if model else None,
                device=params.device, checkpoint=model.checkpoint if model else None, wait=False,
                progressCallback=self._showProgress,
            )
            self._jobStarted = time.monotonic()
            self._timer.start()
        self._updateButtons()

    def _showProgress(self, stage: str, fraction: float, message: str = "") -> None:
        self.ui.progressBar.value = int(round(1000 * fraction))
        self.ui.statusLabel.text = f"{stage}: {message}" if message else stage

    def onPollTimer(self) -> None:
        finished = True  # an exception ends the job too (reported by tryWithErrorDisplay)
        with slicer.util.tryWithErrorDisplay("Hemorrhage segmentation failed."):
            finished = self._job is None or self._job.poll()
        if finished:
            self._endJob()

    def onCancelButton(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self._timer.stop()
        self._job = None
        self.ui.statusLabel.text = "Cancelled: the scene was not changed."
        self.ui.progressBar.value = 0
        self._updateButtons()

    def _endJob(self) -> None:
        self._timer.stop()
        job, self._job = self._job, None
        self._updateButtons()
        if job is None or not job.finished:
            self.ui.statusLabel.text = "Failed (see the error message and the Python console)."
            return
        self._parameterNode.outputSegmentation = job.result_node
        self._showVolumes(job.volumes_ml)
        with slicer.util.tryWithErrorDisplay("Could not show the segmentation in 3D."):
            self.logic.setShow3D(job.result_node, self._parameterNode.show3D)
        self.ui.progressBar.value = 1000
        warning = "" if job.trained else " WARNING: untrained model, the result is not meaningful."
        self.ui.statusLabel.text = f"Done in {time.monotonic() - self._jobStarted:.1f} s. Review before use.{warning}"

    def _showVolumes(self, volumesMl: dict) -> None:
        from SSSSegmentLib.classes import HEMORRHAGE_CLASSES

        table = self.ui.volumesTable
        table.setRowCount(len(HEMORRHAGE_CLASSES))
        for row, hclass in enumerate(HEMORRHAGE_CLASSES):
            value = volumesMl.get(hclass.key)
            table.setItem(row, 0, qt.QTableWidgetItem(hclass.name))
            table.setItem(row, 1, qt.QTableWidgetItem("—" if value is None else f"{value:.2f}"))

    def onShow3DToggled(self, checked: bool) -> None:
        with slicer.util.tryWithErrorDisplay("Could not change the 3D display."):
            self.logic.setShow3D(self._parameterNode.outputSegmentation, checked)

    def onImportModelButton(self) -> None:
        path = qt.QFileDialog.getOpenFileName(
            slicer.util.mainWindow(), "Import model file", "", "Model files (*.pt *.pth *.ckpt *.safetensors)"
        )
        if not path:
            return
        expected = qt.QInputDialog.getText(
            slicer.util.mainWindow(), "Import model", "Published SHA-256 of the file (optional):"
        )
        with slicer.util.tryWithErrorDisplay("Could not import the model file.", waitCursor=True):
            copied = self.logic.importCheckpoint(path, expected.strip() or None)
            self._parameterNode.model = str(copied)
            self._refreshModels()
            self.ui.statusLabel.text = f"Model imported: {copied}"

    def onAddToSiteButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not add the case to the site training set.", waitCursor=True):
            case = self.logic.addToSiteTrainingSet(self._parameterNode.inputVolume,
                                                   self._parameterNode.outputSegmentation)
            kind = "confirmed normal" if case.normal else "with findings"
            self.ui.statusLabel.text = f"Added to the site training set: {case.case_id} ({kind})"

    def onRollbackModelButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not roll back the model.", waitCursor=True):
            version = self.logic.activateModel()
            self._refreshModels()
            self.ui.statusLabel.text = f"Active model: {version.version} ({version.source})"

    def onFinetuneButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not start fine-tuning.", waitCursor=True):
            self.ui.finetuneProgressBar.value = 0
            self.ui.finetuneStatusLabel.text = "Starting fine-tuning on the site training set…"
            unlabeled = self.ui.unlabeledDirPathLineEdit.currentPath or None
            self._finetuneJob = self.logic.startFinetune(unlabeledDir=unlabeled)
            self._finetuneTimer.start()
        self._updateFinetuneButtons()

    def onUnlabeledDirChanged(self, path: str) -> None:
        qt.QSettings().setValue(UNLABELED_DIR_SETTING, path)

    def onFinetunePollTimer(self) -> None:
        from SSSSegmentLib.runner import DoneEvent, ErrorEvent, LogEvent, ProgressEvent

        job = self._finetuneJob
        if job is None:
            self._finetuneTimer.stop()
            return
        for event in job.poll():
            if isinstance(event, ProgressEvent):
                self.ui.finetuneProgressBar.value = int(round(1000 * event.fraction))
                self.ui.finetuneStatusLabel.text = f"{event.stage}: {event.message}" if event.message else event.stage
            elif isinstance(event, LogEvent):
                logging.info(f"SSSSegment fine-tune: {event.message}")  # the whole log, in Slicer's log
                self.ui.finetuneStatusLabel.text = event.message
            elif isinstance(event, DoneEvent):
                self.ui.finetuneProgressBar.value = 1000
                self.ui.finetuneStatusLabel.text = "Fine-tuning done (the gate's verdict is in the log)."
            elif isinstance(event, ErrorEvent):
                self.ui.finetuneStatusLabel.text = f"Fine-tuning failed: {event.message}"
        if job.finished:
            self._finetuneTimer.stop()
            self._finetuneJob = None
            self._refreshModels()
            self._updateFinetuneButtons()

    def onFinetuneCancelButton(self) -> None:
        if self._finetuneJob is not None:
            self._finetuneJob.cancel()
        self._finetuneTimer.stop()
        self._finetuneJob = None
        self.ui.finetuneProgressBar.value = 0
        self.ui.finetuneStatusLabel.text = "Cancelled; the active model did not change. Fine-tune continues the run."
        self._updateFinetuneButtons()

    def _updateFinetuneButtons(self) -> None:
        running = self._finetuneJob is not None
        self.ui.finetuneButton.enabled = not running
        self.ui.finetuneCancelButton.enabled = running

    # -- Refine: clicks and boxes (markups) -> the Logic -> one segment updated in place -------------
    def _setupRefine(self) -> None:
        from SSSSegmentLib.classes import HEMORRHAGE_CLASSES

        for hclass in HEMORRHAGE_CLASSES:
            self.ui.refineClassComboBox.addItem(f"{hclass.key}: {hclass.name}")
        self.ui.refineClickButton.connect("toggled(bool)", self.onRefineClickToggled)
        self.ui.refineBoxButton.connect("clicked(bool)", self.onRefineBoxButton)
        self.ui.refineUndoButton.connect("clicked(bool)", self.onRefineUndoButton)

    def _refineClassKey(self) -> str:
        from SSSSegmentLib.classes import HEMORRHAGE_CLASSES

        return HEMORRHAGE_CLASSES[max(0, self.ui.refineClassComboBox.currentIndex)].key

    def _startRefine(self) -> bool:
        """Start refinement on the selected CT and segmentation (True when it could start)."""
        params, started = self._parameterNode, False
        with slicer.util.tryWithErrorDisplay("Could not start refinement.", waitCursor=True):
            model = self._selectedModel()
            controller = self.logic.startRefine(params.inputVolume, params.outputSegmentation,
                                                preset=model.preset if model else None, device=params.device,
                                                checkpoint=model.checkpoint if model else None)
            if params.outputSegmentation is not controller.segmentation_node:
                params.outputSegmentation = controller.segmentation_node
            started = True
        self._showRefineStatus()
        return started

    def onRefineClickToggled(self, checked: bool) -> None:
        if not checked:
            self._stopPlacing()
        elif self._startRefine():
            self._placeMarkups("vtkMRMLMarkupsFiducialNode", persistent=True)
        else:
            self.ui.refineClickButton.checked = False

    def onRefineBoxButton(self) -> None:
        self.ui.refineClickButton.checked = False
        if self._startRefine():
            self._placeMarkups("vtkMRMLMarkupsROINode", persistent=False)

    def onRefineUndoButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Nothing to undo."):
            self.logic.undoRefine()
        self._showRefineStatus()

    def _promptNode(self, className: str):
        node = self._promptNodes.get(className)
        if node is None or slicer.mrmlScene.GetNodeByID(node.GetID()) is None:
            node = slicer.mrmlScene.AddNewNodeByClass(className, "SSSSegment prompt")
            node.SetSaveWithScene(False)
            self.addObserver(node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPromptPlaced)
            self._promptNodes[className] = node
        return node

    def _placeMarkups(self, className: str, persistent: bool) -> None:
        """Put the slice views in place mode for the prompt node of ``className``."""
        node = self._promptNode(className)
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        selectionNode.SetReferenceActivePlaceNodeClassName(className)
        selectionNode.SetActivePlaceNodeID(node.GetID())
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        interactionNode.SetPlaceModePersistence(1 if persistent else 0)
        interactionNode.SetCurrentInteractionMode(interactionNode.Place)

    def _stopPlacing(self) -> None:
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        if interactionNode is not None:
            interactionNode.SetCurrentInteractionMode(interactionNode.ViewTransform)

    def onPromptPlaced(self, caller, event) -> None:
        """A point (Shift held: negative) or a box was placed: send it to the Logic, then clear it."""
        if caller.IsA("vtkMRMLMarkupsROINode"):
            bounds, centre = [0.0] * 6, [0.0] * 3
            caller.GetRASBounds(bounds)
            caller.GetCenterWorld(centre)
            prompt = {"boxRAS": [[bounds[0], bounds[2], centre[2]], [bounds[1], bounds[3], centre[2]]]}
        else:
            ras = [0.0] * 3
            caller.GetNthControlPointPositionWorld(caller.GetNumberOfControlPoints() - 1, ras)
            negative = bool(int(qt.QApplication.keyboardModifiers()) & int(qt.Qt.ShiftModifier))
            prompt = {"negativeRAS": [ras]} if negative else {"positiveRAS": [ras]}
        with slicer.util.tryWithErrorDisplay("Refinement failed."):
            self.logic.refinePrompt(self._refineClassKey(), **prompt)
        qt.QTimer.singleShot(0, caller.RemoveAllControlPoints)  # used: keep the views clean
        self._showRefineStatus()

    def _showRefineStatus(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not read the refinement status."):
            self.ui.refineStatusLabel.text = self.logic.refineStatus() or "Pick a class, then click in a slice view."

    def onInstallDependenciesButton(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not install the dependencies.", waitCursor=True):
            installed = self.logic.installDependencies(confirm=True)
            self.ui.statusLabel.text = "Dependencies installed." if installed else "Dependencies: nothing installed."


class SSSSegmentLogic(ScriptedLoadableModuleLogic):
    """Converts nodes and calls the engine. Raises SSSSegError subclasses; never shows dialogs
    except the confirmation of :meth:`installDependencies`."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._refine = None  # the RefineController of the nodes being refined
        self._refineModel = None  # the model it uses, loaded in-process once per (preset, device, file)
        self._refineModelKey = None

    def getParameterNode(self):
        return SSSSegmentParameterNode(super().getParameterNode())

    @staticmethod
    def registryDirectory():
        """The model registry the engine reads too ($SSSSEG_REGISTRY, else the user data folder;
        None when $SSSSEG_REGISTRY is set empty). See ``SSSSegmentLib.registry``."""
        from SSSSegmentLib.registry import default_registry_dir

        return default_registry_dir()

    def installedModels(self) -> list:
        """The models usable offline (``InstalledModel``), the default first: the registry's active
        version, the bundled models (best first), the other registry versions, imported SAM-2 weights."""
        from SSSSegmentLib.slicer_bridge.checkpoints import installed_models

        return installed_models(self.registryDirectory())

    def activateModel(self, version=None):
        """Make a registry version the active model; ``None``: roll back to the previously active one."""
        from SSSSegmentLib.registry import ModelRegistry

        return ModelRegistry(self._requireRegistry()).rollback(version)

    def addToSiteTrainingSet(self, volumeNode, segmentationNode, siteDir=None):
        """Save the CT and our five segments of ``segmentationNode`` (all empty = a confirmed-normal
        scan) into the site folder (``siteDir``, default ``site_data.default_site_dir()``),
        de-identified; returns the ``SiteCase``."""
        from SSSSegmentLib.errors import InputError
        from SSSSegmentLib.site_data import add_site_case, default_site_dir
        from SSSSegmentLib.slicer_bridge.segmentations import segmentation_to_labelmap
        from SSSSegmentLib.slicer_bridge.volume_nodes import volume_node_to_ct

        if volumeNode is None or segmentationNode is None:
            raise InputError("select the head CT and its corrected segmentation first")
        ct = volume_node_to_ct(volumeNode)
        labels = segmentation_to_labelmap(segmentationNode, ct.geometry, ct.shape_zyx)
        return add_site_case(Path(siteDir) if siteDir else default_site_dir(), ct.hu_zyx, ct.geometry, labels)

    def startFinetune(self, siteDir=None, unlabeledDir=None, steps=300, resume=None, device="auto"):
        """Start ``sssseg finetune`` on the site folder in a child process; returns the running
        ``ChildProcessRunner`` (``poll()`` for progress and log events, ``cancel()``). ``resume`` None:
        continue a run that was cancelled or killed, else start a new one."""
        from SSSSegmentLib.finetune.run import has_interrupted_run
        from SSSSegmentLib.site_data import default_site_dir
        from SSSSegmentLib.slicer_bridge.finetune_job import finetune_command, start_finetune

        self._requireDependencies()
        registry = self._requireRegistry()
        if resume is None:
            resume = has_interrupted_run(registry)
        command = finetune_command(Path(siteDir) if siteDir else default_site_dir(), registry,
                                   Path(unlabeledDir) if unlabeledDir else None, steps, resume, device)
        return start_finetune(command)

    def _requireRegistry(self) -> Path:
        from SSSSegmentLib.errors import InputError

        folder = self.registryDirectory()
        if folder is None:
            raise InputError("the model registry is turned off ($SSSSEG_REGISTRY is set empty)")
        return folder

    def segmentVolume(self, volumeNode, segmentationNode=None, preset=None, device="auto", checkpoint=None,
                      wait=False, progressCallback=None, allowUntrained=False):
        """Segment ``volumeNode``; write our five segments into ``segmentationNode`` (None: new node).

        The model: ``checkpoint`` (an SSS ``.safetensors`` or official SAM-2 ``.pt`` file), else the
        bundled model of ``preset``, else (the default) the best bundled model installed.

        ``wait=True`` blocks (console/batch; Qt events keep being processed) and returns the
        segmentation node. ``wait=False`` returns the running ``SegmentationJob``: call its
        ``poll()`` (True when done; then ``job.result_node``, ``job.volumes_ml``) or ``cancel()``.
        On error or cancel the scene is left as it was. ``allowUntrained``: random weights when no
        model is found (plumbing tests only: such a result is meaningless).
        """
        from SSSSegmentLib.errors import InputError
        from SSSSegmentLib.slicer_bridge.engine import SegmentOptions
        from SSSSegmentLib.slicer_bridge.segment_job import SegmentationJob

        if volumeNode is None:
            raise InputError("select a head CT volume first")
        self._requireDependencies()
        options = SegmentOptions(preset=preset, device=device, checkpoint=checkpoint or None,
                                 allow_untrained=allowUntrained)
        job = SegmentationJob(volumeNode, segmentationNode, options, progress_callback=progressCallback,
                              log_callback=logging.info).start()
        if not wait:
            return job
        return job.wait(should_cancel=_processEventsNeverCancel)

    def segmentFiles(self, paths, outputDir, preset=None, device="auto", checkpoint=None, overwrite=False, qc=True,
                     dicomSeg=False):
        """Batch on the engine's ``sssseg batch``: ``<outputDir>/<case_id>.seg.nrrd`` and its QC picture
        ``<case_id>.qc.png`` (``qc=False``: none) per case (a DICOM folder gives one case per series), and
        ``results.csv``; the same call again resumes. ``dicomSeg=True``: also a DICOM Segmentation
        ``<case_id>.dcm`` for each DICOM case (for PACS). Returns the CaseResults. The model is chosen as in
        :meth:`segmentVolume` (default: the best bundled model installed)."""
        from SSSSegmentLib.runner import ProgressEvent
        from SSSSegmentLib.slicer_bridge.batch import segment_files
        from SSSSegmentLib.slicer_bridge.engine import SegmentOptions

        self._requireDependencies()

        def report(name, event):
            if isinstance(event, ProgressEvent):
                slicer.util.showStatusMessage(f"{name}: {event.message} ({100 * event.fraction:.0f}%)")
            slicer.app.processEvents()

        options = SegmentOptions(preset, device, checkpoint or None, overwrite=overwrite)
        results = segment_files([Path(p) for p in paths], Path(outputDir), options, on_event=report, qc=qc,
                                dicom_seg=dicomSeg)
        for result in results:
            logging.info(f"{result.input_path}: {result.error or result.volumes_ml}")
        return results

    def importCheckpoint(self, path, expectedSha256=None) -> Path:
        """Verify a model file (SHA-256 if given; an SSS checkpoint's format and weights) and import it
        into the model registry (:meth:`registryDirectory`); return the stored file."""
        from SSSSegmentLib.slicer_bridge.checkpoints import import_checkpoint

        return import_checkpoint(Path(path), self._requireRegistry(), expectedSha256)

    def startRefine(self, volumeNode, segmentationNode=None, preset=None, device="auto", checkpoint=None):
        """Start (or continue) interactive refinement of ``segmentationNode`` on ``volumeNode``; returns
        the ``RefineController``. ``segmentationNode`` None: a new node. The model is chosen as in
        :meth:`segmentVolume` and runs in-process, so slice embeddings stay cached between clicks."""
        from SSSSegmentLib.errors import InputError
        from SSSSegmentLib.slicer_bridge.refine_session import RefineController, load_refine_model

        if volumeNode is None:
            raise InputError("select a head CT volume first")
        self._requireDependencies()
        current = self._refine
        if current is not None and current.volume_node is volumeNode and current.segmentation_node is segmentationNode:
            return current
        if segmentationNode is None:
            segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                                                  f"{volumeNode.GetName()} hemorrhage")
            segmentationNode.CreateDefaultDisplayNodes()
        key = (preset, device, checkpoint)
        if self._refineModelKey != key:
            self._refineModel, self._refineModelKey = load_refine_model(preset, device, checkpoint), key
        self._refine = RefineController(volumeNode, segmentationNode, self._refineModel)
        return self._refine

    def refinePrompt(self, className, positiveRAS=(), negativeRAS=(), boxRAS=None):
        """Clicks (world RAS points) and/or a box (two opposite RAS corners) for ``className`` ("IPH" or
        1..5) on one slice; updates that class's segment in place. Returns the engine's answer."""
        return self._requireRefine().add_prompt(className, positiveRAS, negativeRAS, boxRAS)

    def undoRefine(self):
        """Take back the last refinement prompt."""
        return self._requireRefine().undo()

    def refineStatus(self) -> str:
        """E.g. "12 slices cached; last answer 48 ms" ('' before refinement starts)."""
        return self._refine.status() if self._refine is not None else ""

    def _requireRefine(self):
        from SSSSegmentLib.errors import InputError

        if self._refine is None:
            raise InputError("start refinement first (Refine section)")
        return self._refine

    def setShow3D(self, segmentationNode, show: bool) -> None:
        """Show (build closed surfaces) or hide the segmentation in 3D views."""
        if segmentationNode is None:
            return
        if show:
            segmentationNode.CreateClosedSurfaceRepresentation()
        displayNode = segmentationNode.GetDisplayNode()
        if displayNode is not None:
            displayNode.SetVisibility3D(show)

    def installDependencies(self, confirm=True) -> bool:
        """Install what is missing: torch via the PyTorch extension, the pinned packages, sam2.

        Returns False when nothing was missing or the user declined. Never touches numpy or SimpleITK.
        """
        from SSSSegmentLib.errors import SSSSegError
        from SSSSegmentLib.slicer_bridge.dependencies import TORCH_REQUIREMENT, install_packages, missing_modules

        missing = missing_modules()
        if not missing:
            return False
        question = (f"SSSSegment needs these Python packages: {', '.join(missing)}.\n"
                    "They will be downloaded and installed into Slicer (several minutes; PyTorch is large). "
                    "Slicer's own numpy and SimpleITK are kept.\nInstall now?")
        if confirm and not slicer.util.confirmOkCancelDisplay(question, "SSSSegment dependencies"):
            return False
        if "torch" in missing:
            try:
                import PyTorchUtils
            except ImportError as exc:
                raise SSSSegError("PyTorch is missing: install the 'PyTorch' extension from the Extensions "
                                  "Manager, restart Slicer, then click Install dependencies again") from exc
            slicer.util.showStatusMessage("Installing PyTorch…")
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                            torchVersionRequirement=TORCH_REQUIREMENT) is None:
                raise SSSSegError("PyTorch was not installed (see the Python console)")
        install_packages(slicer.util.pip_install, report=slicer.util.showStatusMessage)
        return True

    def _requireDependencies(self) -> None:
        from SSSSegmentLib.errors import SSSSegError
        from SSSSegmentLib.slicer_bridge.dependencies import missing_modules

        missing = missing_modules()
        if missing:
            raise SSSSegError(f"missing Python packages: {', '.join(missing)}. "
                              "Open Model and device, click Install dependencies…")


def _processEventsNeverCancel() -> bool:
    """Keep Slicer responsive while a blocking call waits; never asks to cancel."""
    slicer.app.processEvents()
    return False


class SSSSegmentTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: synthetic phantoms through the whole module path (engine included), with
    the module's default model (the bundled one): it must find a phantom's bleed and nothing on
    the same head without bleeds."""

    # Seed of an unseen demo phantom (demo seeds are never trained on). MAX_FALSE_ML is the goal for a
    # bleed-free scan (at most 1 mL in all); the stage-5 bundled model finds 0.56 mL on this head.
    PHANTOM_SEED = 90_000_100
    MIN_DICE = 0.5
    MAX_FALSE_ML = 1.0

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_DefaultModelIsInstalled()
        self.test_SegmentPhantom()
        self.test_NothingOnBleedFreePhantom()

    def _segmentPhantom(self, pNoLesion: float):
        """(phantom, segmentation node, its label map) for PHANTOM_SEED, segmented with the Logic's defaults
        (no preset, model or device given)."""
        from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom
        from SSSSegmentLib.slicer_bridge.segmentations import segmentation_to_labelmap
        from SSSSegmentLib.slicer_bridge.volume_nodes import ct_to_volume_node
        from SSSSegmentLib.volumes.geometry import CTVolume

        self.delayDisplay("Generating a phantom head CT")
        phantom = generate_phantom(self.PHANTOM_SEED, PhantomConfig(matrix=256, p_no_lesion=pNoLesion))
        ct = CTVolume(phantom.hu_zyx, phantom.geometry, source=f"phantom seed {self.PHANTOM_SEED}")
        volumeNode = ct_to_volume_node(ct, slicer.mrmlScene, "Phantom head CT")
        self.delayDisplay("Segmenting with the default model")
        segmentationNode = SSSSegmentLogic().segmentVolume(volumeNode, wait=True)  # every default: model, device
        labels = segmentation_to_labelmap(segmentationNode, phantom.geometry, phantom.labels_zyx.shape)
        return phantom, segmentationNode, labels

    def test_DefaultModelIsInstalled(self) -> None:
        models = SSSSegmentLogic().installedModels()
        self.assertTrue(models, "no model installed: the bundled model is missing from SSSSegmentLib/resources")
        self.assertTrue(models[0].bundled and models[0].checkpoint is None, f"default model: {models[0]}")

    def test_SegmentPhantom(self) -> None:
        from SSSSegmentLib.classes import HEMORRHAGE_CLASSES
        from SSSSegmentLib.slicer_bridge.segmentations import segment_id

        phantom, segmentationNode, labels = self._segmentPhantom(pNoLesion=0.0)
        segmentation = segmentationNode.GetSegmentation()
        for hclass in HEMORRHAGE_CLASSES:
            segment = segmentation.GetSegment(segment_id(hclass))
            self.assertIsNotNone(segment, f"segment {hclass.key} missing")
            self.assertEqual(segment.GetName(), hclass.name)
        self.assertEqual(segmentation.GetNumberOfSegments(), len(HEMORRHAGE_CLASSES))
        truth, found = phantom.labels_zyx > 0, labels > 0
        self.assertTrue(truth.any(), "the test phantom has no bleed")
        dice = 2.0 * float((truth & found).sum()) / float(truth.sum() + found.sum())
        self.assertGreaterEqual(dice, self.MIN_DICE, f"hemorrhage Dice {dice:.3f} on phantom {self.PHANTOM_SEED}")
        self.delayDisplay(f"Bleed found: Dice {dice:.2f}")

    def test_NothingOnBleedFreePhantom(self) -> None:
        phantom, _, labels = self._segmentPhantom(pNoLesion=1.0)
        self.assertFalse((phantom.labels_zyx > 0).any())
        falseMl = float((labels > 0).sum()) * phantom.geometry.voxel_volume_ml
        self.assertLessEqual(falseMl, self.MAX_FALSE_ML, f"{falseMl:.2f} mL found on a head without bleeds")
        self.delayDisplay("Test passed")
