"""`sssseg batch`: finding cases, the results table, resume decisions, bad studies, a kill mid-run, Ray.

The expected values come from outside the batch code: case ids and table rows written out by hand,
labels from `sssseg segment` run case by case, volumes from voxel counts times the CT's voxel size.
The Ray cluster test (two `ray start` nodes on this machine) is in test_batch_cluster.py.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_cli_series_nifti import _write_series

from SSSSegmentLib.batch.cases import Case, discover_cases
from SSSSegmentLib.batch.identity import ModelIdentity
from SSSSegmentLib.batch.plan import plan_batch, recover_staging
from SSSSegmentLib.batch.results import (
    COLUMNS,
    ResultRow,
    append_result,
    batch_lock,
    read_results,
    write_results,
)
from SSSSegmentLib.batch.worker import ModelSpec
from SSSSegmentLib.cli import main
from SSSSegmentLib.errors import InputError, OutputError
from SSSSegmentLib.volumes import read_labelmap, write_volume
from SSSSegmentLib.volumes.geometry import CTVolume

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SSSSEG = [sys.executable, "-m", "SSSSegmentLib.cli"]
RUN_TIMEOUT_S = 600


# -- inputs ------------------------------------------------------------------------------------------
def write_phantoms(folder: Path, seeds: range) -> list[Path]:
    """Small phantom head CTs (96 x 96, 8 slices) as ``folder/case<seed>.nii.gz``."""
    from SSSSegmentLib.phantoms import PhantomConfig, generate_phantom

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        phantom = generate_phantom(seed, PhantomConfig(matrix=96, num_slices=8))
        paths.append(write_volume(folder / f"case{seed}.nii.gz", CTVolume(phantom.hu_zyx, phantom.geometry)))
    return paths


def write_bad_studies(folder: Path, good: Path) -> dict[str, Path]:
    """A truncated .nii.gz (the first 3 kB of a good one) and an MR-like volume (no air, no HU)."""
    folder.mkdir(parents=True, exist_ok=True)
    truncated = folder / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[:3000])
    mr = np.random.default_rng(0).uniform(0, 4000, (8, 64, 64)).astype(np.float32)
    mr_path = folder / "mr_like.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(mr), str(mr_path))
    return {"truncated": truncated, "mr_like": mr_path}


def read_table(path: Path) -> list[dict[str, str]]:
    """results.csv read with the csv module alone; fails unless every line is a whole row."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "the table ends in the middle of a row"
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    assert tuple(header) == COLUMNS
    assert all(len(r) == len(COLUMNS) for r in rows), "a row has the wrong number of cells"
    return [dict(zip(header, r, strict=True)) for r in rows]


def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def labels_of(path: Path) -> np.ndarray:
    return read_labelmap(path)[0]


# -- finding cases -------------------------------------------------------------------------------------
def test_discovery_finds_volume_files_and_one_case_per_dicom_series(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    for rel in ("2024/p1.nii.gz", "2024/p2.nrrd", "2025/deep/p3.mha", ".hidden/p4.nii.gz", "out/old.seg.nrrd"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "2024" / "notes.txt").write_text("not a scan")
    one, two = root / "2025" / "study_a", root / "study_b"
    for folder in (one, two):
        folder.mkdir(parents=True)
    _write_series(one, 3, 0.0)
    uids = sorted([_write_series(two, 3, 0.0), _write_series(two, 4, 50.0)])
    cases = discover_cases([root], exclude=root / "out")
    by_uid = sorted((f"study_b__s{hashlib.sha1(uid.encode()).hexdigest()[:8]}", "study_b", uid) for uid in uids)
    assert [(c.case_id, c.path.relative_to(root).as_posix(), c.series_uid) for c in cases] == [
        ("2024__p1", "2024/p1.nii.gz", None),
        ("2024__p2", "2024/p2.nrrd", None),
        ("2025__deep__p3", "2025/deep/p3.mha", None),
        ("2025__study_a", "2025/study_a", None),
        *by_uid,
    ]
    # a single file or series folder given itself is named after itself
    assert [c.case_id for c in discover_cases([root / "2024" / "p1.nii.gz", one])] == ["p1", "study_a"]


def test_a_csv_list_names_cases_and_refuses_duplicates(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    for name in ("a.nii.gz", "b.nii.gz"):
        (tmp_path / "scans" / name).write_bytes(b"x")
    listing = tmp_path / "list.csv"
    listing.write_text("input,case_id\nscans/a.nii.gz,patient 7 / visit 1\nscans/b.nii.gz,\n")
    cases = discover_cases([listing])
    assert [(c.case_id, c.path) for c in cases] == [
        ("b", tmp_path / "scans" / "b.nii.gz"), ("patient_7_visit_1", tmp_path / "scans" / "a.nii.gz")]
    with pytest.raises(InputError, match="same case id 'a'"):
        discover_cases([tmp_path / "scans" / "a.nii.gz", tmp_path / "scans"])
    with pytest.raises(InputError, match="does not exist"):
        discover_cases([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no CT found"):
        discover_cases([tmp_path / "empty"])


# -- the results table ---------------------------------------------------------------------------------
MODEL = ModelIdentity("bundled sss_tiny.safetensors", "ab" * 32)


def _row(case_id: str, status: str = "ok", **fields: object) -> ResultRow:
    defaults = {"model": MODEL.name, "model_sha256": MODEL.sha256, "label_file": f"{case_id}.seg.nrrd",
                "qc_file": f"{case_id}.qc.png"} if status == "ok" else {"error": "broken"}
    return ResultRow(case_id, status, f"/in/{case_id}.nii.gz", **{**defaults, **fields})


def test_rows_are_appended_whole_and_a_cut_last_line_is_ignored(tmp_path: Path) -> None:
    table = tmp_path / "results.csv"
    write_results(table, [])
    append_result(table, _row("a", volumes_ml={"IPH": 12.3456, "EDH": 0.0}, seconds=4.321))
    append_result(table, _row("b", "failed", error="line one\nline two, with a comma"))
    with open(table, "a", encoding="utf-8") as fh:
        fh.write("c,ok,,/in/c.nii.gz")  # a crash in the middle of a row
    rows = read_results(table)
    assert list(rows) == ["a", "b"]
    assert rows["a"].volumes_ml == {"EDH": 0.0, "IPH": 12.346} and rows["a"].seconds == 4.32
    assert rows["b"].error == "line one line two, with a comma"
    lines = table.read_text().splitlines()
    assert lines[1].startswith("a,ok,,/in/a.nii.gz,,0.000,12.346,,,,bundled sss_tiny.safetensors,")
    other = tmp_path / "other.csv"
    other.write_text("input,output\n")
    with pytest.raises(OutputError, match="not a results table"):
        read_results(other)


def test_a_second_batch_cannot_write_to_the_same_folder(tmp_path: Path) -> None:
    with batch_lock(tmp_path), pytest.raises(OutputError, match="another 'sssseg batch'"):
        code = "import sys; from pathlib import Path; from SSSSegmentLib.batch.results import batch_lock\n" \
               "with batch_lock(Path(sys.argv[1])): pass\n"
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                              timeout=60, cwd=PROJECT_ROOT)
        raise OutputError(proc.stderr.strip().splitlines()[-1]) if proc.returncode else AssertionError("no lock")
    with batch_lock(tmp_path):  # released when its holder ends
        pass


# -- what a rerun does ---------------------------------------------------------------------------------
def test_rerun_keeps_done_cases_and_redoes_only_what_it_must(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cases = [Case(name, tmp_path / f"{name}.nii.gz") for name in
             ("done", "no_files", "failed", "theirs", "new", "other_model")]
    for name in ("done.seg.nrrd", "done.qc.png", "theirs.seg.nrrd", "other_model.seg.nrrd", "other_model.qc.png"):
        (out / name).write_bytes(b"x")
    rows = {"done": _row("done"), "no_files": _row("no_files"), "failed": _row("failed", "failed"),
            "gone": _row("gone"), "other_model": _row("other_model", model_sha256="cd" * 32)}
    spec = ModelSpec()
    with pytest.raises(OutputError, match="1 case.s. done with another model"):
        plan_batch(cases, rows, MODEL, spec, out)
    plan = plan_batch(cases, rows, MODEL, spec, out, overwrite=True)
    assert [c.case_id for c in plan.todo] == ["no_files", "theirs", "new", "other_model"]
    assert sorted(r.case_id for r in plan.rows) == ["done", "failed", "gone"]  # 'gone': input not found now
    del rows["other_model"]  # its files stay: files without a row are not ours to replace
    plan = plan_batch(cases, rows, MODEL, spec, out)
    assert [c.case_id for c in plan.todo] == ["no_files", "new"]
    skipped = {r.case_id: r for r in plan.rows}["theirs"]
    assert skipped.status == "skipped" and "theirs.seg.nrrd" in skipped.error and "--overwrite" in skipped.error
    assert (plan.kept_ok, plan.kept_failed, plan.skipped) == (1, 1, 2)
    plan = plan_batch(cases, rows, MODEL, spec, out, redo_failed=True)
    assert [c.case_id for c in plan.todo] == ["no_files", "failed", "new"]
    plan = plan_batch(cases, rows, MODEL, ModelSpec(qc=False), out)  # no QC asked: the label map is enough
    assert "done" not in [c.case_id for c in plan.todo]


def test_staged_outputs_of_a_written_row_are_moved_in_and_others_removed(tmp_path: Path) -> None:
    staging = tmp_path / ".staging"
    for case_id in ("written", "unwritten"):
        (staging / case_id).mkdir(parents=True)
        for suffix in (".seg.nrrd", ".qc.png"):
            (staging / case_id / f"{case_id}{suffix}").write_text(case_id + suffix)
    assert recover_staging(tmp_path, {"written": _row("written")}) == ["written"]
    assert (tmp_path / "written.seg.nrrd").read_text() == "written.seg.nrrd"
    assert (tmp_path / "written.qc.png").read_text() == "written.qc.png"
    assert not (tmp_path / "unwritten.seg.nrrd").exists() and list(staging.iterdir()) == []


def test_more_workers_without_ray_or_a_missing_input_end_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    scan = write_phantoms(tmp_path / "in", range(1))[0]
    code = main(["batch", str(scan), str(tmp_path / "out"), "--workers", "2", "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("sssseg: error: ") and "pip install 'sssseg[cluster]'" in err[0]
    assert not (tmp_path / "out").exists()
    code = main(["batch", str(scan), str(tmp_path / "missing.nii.gz"), str(tmp_path / "out"), "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"sssseg: error: input does not exist: {tmp_path / 'missing.nii.gz'}"]
    assert not (tmp_path / "out").exists()  # nothing created for a batch that cannot start


# -- whole batches -------------------------------------------------------------------------------------
def test_twelve_phantoms_and_two_bad_studies_on_two_ray_workers(tmp_path: Path) -> None:
    good = write_phantoms(tmp_path / "in" / "site_a", range(700, 706)) + write_phantoms(
        tmp_path / "in" / "site_b", range(706, 712))
    bad = write_bad_studies(tmp_path / "in" / "bad", good[0])
    out = tmp_path / "out"
    proc = subprocess.run([*SSSSEG, "batch", str(tmp_path / "in"), str(out), "--workers", "2", "--progress", "json"],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=PROJECT_ROOT)
    assert proc.returncode == 5, proc.stderr[-3000:]  # 5: the batch ended, some cases failed
    events = json_events(proc.stdout)
    rows = {r["case_id"]: r for r in read_table(out / "results.csv")}
    expected_ok = [f"site_a__case{s}" for s in range(700, 706)] + [f"site_b__case{s}" for s in range(706, 712)]
    assert sorted(rows) == sorted([*expected_ok, "bad__truncated", "bad__mr_like"])
    assert [rows[c]["status"] for c in expected_ok] == ["ok"] * 12
    assert rows["bad__mr_like"]["status"] == "failed" and "Hounsfield" in rows["bad__mr_like"]["error"]
    assert rows["bad__truncated"]["status"] == "failed"
    assert "truncated" in rows["bad__truncated"]["error"] or "ended before" in rows["bad__truncated"]["error"]
    assert rows["bad__mr_like"]["input"] == str(bad["mr_like"])
    assert len({rows[c]["worker"] for c in expected_ok}) == 2  # both workers took cases
    for case_id, scan in zip(expected_ok, good, strict=True):
        reference = tmp_path / "segment" / f"{case_id}.seg.nrrd"
        reference.parent.mkdir(exist_ok=True)
        assert main(["segment", str(scan), str(reference), "--progress", "none"]) == 0
        labels = labels_of(out / rows[case_id]["label_file"])
        np.testing.assert_array_equal(labels, labels_of(reference), err_msg=case_id)
        voxel_ml = float(np.prod(sitk.ReadImage(str(scan)).GetSpacing())) / 1000.0
        for label, key in enumerate(("EDH", "IPH", "IVH", "SAH", "SDH"), start=1):
            assert float(rows[case_id][f"{key}_ml"]) == pytest.approx((labels == label).sum() * voxel_ml, abs=2e-3)
        assert (out / rows[case_id]["qc_file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(e["case_id"] for e in events if e["event"] == "case") == sorted(rows)
    progress = [e["message"] for e in events if e["event"] == "progress"]
    assert progress[-1].startswith("14/14 cases, 2 failed,") and "cases/min, ETA" in progress[-1]
    done = events[-1]
    assert done["event"] == "done" and (done["cases"], done["ok"], done["failed"]) == (14, 12, 2)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".sssseg-batch.lock", "results.csv", *[f"{c}.seg.nrrd" for c in expected_ok], *[f"{c}.qc.png" for c in
                                                                                       expected_ok]])
    again = subprocess.run([*SSSSEG, "batch", str(tmp_path / "in"), str(out), "--progress", "json"],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=PROJECT_ROOT)
    assert again.returncode == 5 and not [e for e in json_events(again.stdout) if e["event"] == "case"]
    assert read_table(out / "results.csv") == sorted(rows.values(), key=lambda r: r["case_id"])


KILL_AFTER_CASES = 2
NO_RAY = ("import sys; sys.modules['ray'] = None; sys.argv[0] = 'sssseg'; "  # --workers 1 needs no Ray
          "from SSSSegmentLib.cli import run; run()")


def _batch_killed_after(n_cases: int, args: list[str]) -> set[str]:
    """Start the batch, SIGKILL it once ``n_cases`` case events came; the case ids it reported."""
    proc = subprocess.Popen([sys.executable, "-c", NO_RAY, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=PROJECT_ROOT, start_new_session=True)
    reported: set[str] = set()
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "case":
                reported.add(event["case_id"])
            if len(reported) == n_cases:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the batch ended before it was killed"
    return reported


def test_a_killed_batch_resumes_without_losing_or_repeating_a_case(tmp_path: Path) -> None:
    scans = write_phantoms(tmp_path / "in", range(720, 726))
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "in"), str(out), "--workers", "1", "--progress", "json", "--no-qc"]
    reported = _batch_killed_after(KILL_AFTER_CASES, args)
    before = {r["case_id"]: r for r in read_table(out / "results.csv")}  # valid CSV after the kill
    assert set(before) >= reported and all(r["status"] == "ok" for r in before.values())
    assert all((out / r["label_file"]).is_file() for r in before.values())
    assert len(before) < len(scans)
    proc = subprocess.run([sys.executable, "-c", NO_RAY, *args], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = json_events(proc.stdout)
    redone = [e["case_id"] for e in events if e["event"] == "case"]
    assert f"{len(before)} done before, {len(scans) - len(before)} to do" in events[0]["message"]
    assert len(redone) == len(set(redone)) and not set(redone) & set(before)  # nothing done twice
    after = read_table(out / "results.csv")
    assert sorted(r["case_id"] for r in after) == sorted(f"case{s}" for s in range(720, 726))  # nothing lost
    assert set(redone) | set(before) == {r["case_id"] for r in after}
    assert all(r["status"] == "ok" and (out / r["label_file"]).is_file() for r in after)
    assert [r for r in after if r["case_id"] in before] == sorted(before.values(), key=lambda r: r["case_id"])
    assert not (out / ".staging").exists()


def test_slicer_logic_batch_runs_on_the_batch_engine_and_resumes(tmp_path: Path) -> None:
    from SSSSegmentLib.runner import LogEvent
    from SSSSegmentLib.slicer_bridge.batch import segment_files

    scan = write_phantoms(tmp_path / "in", range(730, 731))[0]
    mr = write_bad_studies(tmp_path / "bad", scan)["mr_like"]
    out = tmp_path / "out"
    out.mkdir()
    results = segment_files([scan, mr], out)
    assert [(r.case_id, r.ok) for r in results] == [("case730", True), ("mr_like", False)]
    assert "Hounsfield" in results[1].error and results[1].output_path == ""
    assert results[0].output_path == str(out / "case730.seg.nrrd") and results[0].qc_path == str(out / "case730.qc.png")
    labels = labels_of(out / "case730.seg.nrrd")
    voxel_ml = float(np.prod(sitk.ReadImage(str(scan)).GetSpacing())) / 1000.0
    assert results[0].volumes_ml["IPH"] == pytest.approx((labels == 2).sum() * voxel_ml, abs=2e-3)
    logs: list[str] = []
    again = segment_files([scan, mr], out, on_event=lambda name, e: logs.append(e.message)
                          if isinstance(e, LogEvent) else None)
    assert again == results and any("1 done before, 0 to do, 1 failed before" in line for line in logs)
    quiet = tmp_path / "no_qc"
    quiet.mkdir()
    (result,) = segment_files([scan], quiet, qc=False)
    assert result.ok and result.qc_path == "" and not list(quiet.glob("*.png"))
