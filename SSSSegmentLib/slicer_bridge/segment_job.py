"""One "segment this volume node" job: volume node -> temp NRRD -> engine child -> segmentation node.

No Qt: the Slicer widget calls :meth:`SegmentationJob.poll` from a QTimer; the console calls
:meth:`SegmentationJob.wait`. The scene is only changed when the engine succeeded: a new
segmentation node is created then (when none was given), and only our five segments are
written. A cancelled or failed job leaves the scene as it was and removes its temp folder.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import Cancelled, SSSSegError
from ..progress import ProgressCallback
from ..runner import (
    ChildProcessRunner,
    DoneEvent,
    ErrorEvent,
    LogEvent,
    ProgressEvent,
    Spawn,
    error_from_event,
)
from ..volumes.io import write_volume
from ..volumes.segfile import read_labelmap
from .engine import SegmentOptions, engine_environment, segment_command
from .segmentations import check_target_segmentation, labelmap_to_segmentation
from .volume_nodes import volume_node_to_ct

LogCallback = Callable[[str], None]


class SegmentationJob:
    """Segment ``volume_node`` with the engine in a child process.

    ``segmentation_node``: write into this node (our five segments replaced, others kept), or
    None to create ``"<volume name> hemorrhage"`` on success. After success ``result_node`` is
    the segmentation node and ``volumes_ml`` maps class key -> mL (as reported by the engine).
    """

    def __init__(
        self,
        volume_node,  # noqa: ANN001  (vtkMRMLScalarVolumeNode)
        segmentation_node=None,  # noqa: ANN001  (vtkMRMLSegmentationNode | None)
        options: SegmentOptions | None = None,
        *,
        progress_callback: ProgressCallback | None = None,
        log_callback: LogCallback | None = None,
        spawn: Spawn = subprocess.Popen,
        python: str | None = None,
    ) -> None:
        self.volume_node = volume_node
        self.segmentation_node = segmentation_node
        self.options = options or SegmentOptions()
        self._progress = progress_callback
        self._log = log_callback
        self._spawn = spawn
        self._python = python
        self._workdir: Path | None = None
        self._runner: ChildProcessRunner | None = None
        self.result_node = None
        self.volumes_ml: dict[str, float] = {}
        self.trained = True  # False: the engine ran with random weights
        self.finished = False

    def start(self) -> SegmentationJob:
        """Check the target, export the volume to a temp NRRD and start the engine. Returns self."""
        if self.segmentation_node is not None:
            check_target_segmentation(self.segmentation_node)
        ct = volume_node_to_ct(self.volume_node)
        self._workdir = Path(tempfile.mkdtemp(prefix="sssseg_job_"))
        try:
            input_path = write_volume(self._workdir / "input.nrrd", ct)
            command = segment_command(input_path, self._output_path, self.options, python=self._python)
            self._runner = ChildProcessRunner(command, env=engine_environment(), spawn=self._spawn).start()
        except BaseException:
            self._cleanup()
            raise
        return self

    @property
    def _output_path(self) -> Path:
        assert self._workdir is not None
        return self._workdir / "result.seg.nrrd"

    def poll(self) -> bool:
        """Handle the engine's new events; True once the job is finished (successfully).

        Raises the errors.py exception of the engine's error (the scene unchanged).
        """
        if self.finished or self._runner is None:
            return self.finished
        for event in self._runner.poll():
            if isinstance(event, ProgressEvent) and self._progress is not None:
                self._progress(event.stage, event.fraction, event.message)
            elif isinstance(event, LogEvent) and self._log is not None:
                self._log(event.message)
            elif isinstance(event, ErrorEvent):
                self._fail()
                raise error_from_event(event)
            elif isinstance(event, DoneEvent):
                self._succeed(event)
        return self.finished

    def wait(self, poll_interval_s: float = 0.1, should_cancel: Callable[[], bool] | None = None):  # noqa: ANN201
        """Block until the job ends; return the segmentation node. Raises Cancelled when asked to."""
        if self._runner is None:
            self.start()
        while not self.poll():
            if should_cancel is not None and should_cancel():
                self.cancel()
                raise Cancelled("segmentation cancelled by the user")
            if self._runner is not None and self._runner.finished and not self.finished:
                raise SSSSegError("the engine ended without a result")  # pragma: no cover
            time.sleep(poll_interval_s)
        return self.result_node

    def cancel(self) -> None:
        """Stop the engine (within about a second) and remove the temp files; the scene is untouched."""
        if self._runner is not None:
            self._runner.cancel()
        self._cleanup()

    @property
    def is_running(self) -> bool:
        return self._runner is not None and not self.finished and not self._runner.finished

    def _succeed(self, event: DoneEvent) -> None:
        try:
            labels, geometry, _ = read_labelmap(self._output_path)  # values are already our class labels
            self.result_node = self._write_result(labels, geometry)
            self.volumes_ml = dict(event.volumes_ml)
            self.trained = event.trained
            self.finished = True
        finally:
            self._cleanup()

    def _write_result(self, labels, geometry):  # noqa: ANN001, ANN202
        node = self.segmentation_node
        if node is not None:
            labelmap_to_segmentation(labels, geometry, node)
            return node
        scene = self.volume_node.GetScene()
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{self.volume_node.GetName()} hemorrhage")
        try:
            node.CreateDefaultDisplayNodes()
            node.SetReferenceImageGeometryParameterFromVolumeNode(self.volume_node)
            labelmap_to_segmentation(labels, geometry, node)
        except BaseException:
            scene.RemoveNode(node)
            raise
        return node

    def _fail(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
