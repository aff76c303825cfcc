"""The mutations ``scripts/mutation_check.py`` plants: one small bug each, and the tests that must catch it.

``old`` must occur exactly once in ``path`` (else the mutation is reported as stale: the code moved on,
update the entry). ``tests`` are pytest node ids or files, run from the repository root.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    key: str
    area: str
    bug: str  # the planted bug, in words
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


LOCATION = "Testing/test_prompt_location.py"
SEGFILE = "Testing/test_segfile.py"
BRIDGE = "Testing/test_slicer_bridge.py"
WEIGHTS = "Testing/test_training_weights.py"
CUTMIX = "Testing/test_training_data.py::test_cutmix_takes_its_box_from_another_slice_and_refuses_a_batch_of_one"

PROMPTS = (
    Mutation("extra-axial-and-or", "prompts", "extra-axial check: 'and' -> 'or' (nearest OR median close)",
             "SSSSegmentLib/prompts/location.py",
             "ok = closest <= cfg.extra_axial_max_min_mm and median",
             "ok = closest <= cfg.extra_axial_max_min_mm or median",
             (LOCATION,)),
    Mutation("ivh-depth-dropped", "prompts", "IVH depth check removed (only the CSF test left)",
             "SSSSegmentLib/prompts/location.py",
             "if depth < cfg.ivh_min_median_depth_mm:", "if False:", (LOCATION,)),
    Mutation("csf-shell-cavity-dropped", "prompts", "IVH CSF shell no longer limited to the cavity",
             "SSSSegmentLib/prompts/location.py",
             "& ~view.mask & (distance_crop > 0)", "& ~view.mask", (LOCATION,)),
    Mutation("iph-near-limit", "prompts", "IPH near-table share: '<=' -> '<' at the limit",
             "SSSSegmentLib/prompts/location.py",
             "ok = near <= cfg.iph_max_near_fraction", "ok = near < cfg.iph_max_near_fraction", (LOCATION,)),
    Mutation("window-share-limit", "prompts", "continuity: a component at exactly the window share fails ('>=' -> '>')",
             "SSSSegmentLib/prompts/continuity.py",
             "if fraction < cfg.min_window_fraction:", "if fraction <= cfg.min_window_fraction:", (LOCATION,)),
    Mutation("two-slices-as-one", "prompts", "continuity: two-slice components held to the one-slice volume bar",
             "SSSSegmentLib/prompts/continuity.py",
             "elif n_slices == 1:", "elif n_slices <= 2:", (LOCATION,)),
    Mutation("one-slice-bar-limit", "prompts", "continuity: one-slice volume bar '<' -> '<=' at the limit",
             "SSSSegmentLib/prompts/continuity.py",
             "if volume_ml < cfg.single_slice_min_ml:", "if volume_ml <= cfg.single_slice_min_ml:", (LOCATION,)),
    Mutation("candidates-unthresholded", "prompts", "every voxel's arg-max class is a candidate, however unlikely",
             "SSSSegmentLib/prompts/components.py",
             "labels[best < threshold] = 0", "labels[best < 0.0] = 0",
             ("Testing/test_prompts.py::test_probability_threshold_selects_candidates",)),
    Mutation("6-connectivity", "prompts", "components with 6- instead of 26-connectivity",
             "SSSSegmentLib/prompts/components.py",
             "STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)",
             "STRUCTURE_26 = ndimage.generate_binary_structure(3, 1)",
             ("Testing/test_prompts.py::test_components_use_26_connectivity",)),
)

VOLUMES = (
    Mutation("series-uid-inverted", "volumes", "--series-uid picks a series other than the one asked for",
             "SSSSegmentLib/volumes/dicom.py",
             "chosen = [s for s in series if s.uid == series_uid]",
             "chosen = [s for s in series if s.uid != series_uid]",
             ("Testing/test_cli_series_nifti.py::test_series_uid_picks_one_of_two_series_in_a_folder",)),
    Mutation("nan-check-dropped", "volumes", "NaN/inf voxels no longer refused",
             "SSSSegmentLib/volumes/checks.py", "if not finite.all():", "if False:",
             ("Testing/test_volumes_io.py::test_validate_ct_refuses",
              "Testing/test_cli_segment.py::test_bad_input_gives_a_clear_error_and_no_output")),
    Mutation("tilt-blend-flipped", "volumes", "tilt resampling blends the two slices with swapped weights",
             "SSSSegmentLib/volumes/stack_resample.py",
             "weight = (out_heights - heights[lower]) / (heights[upper] - heights[lower])",
             "weight = (heights[upper] - out_heights) / (heights[upper] - heights[lower])",
             ("Testing/test_volumes_io.py",)),
    Mutation("nifti-copy-dropped", "volumes", "--nifti writes no .nii.gz beside the .seg.nrrd",
             "SSSSegmentLib/api.py", "if also_nifti and name.endswith", "if False and name.endswith",
             ("Testing/test_cli_series_nifti.py::test_nifti_output_holds_the_labels_on_the_input_grid",)),
    Mutation("ras-lps-sign", "volumes", "RAS <-> LPS conversion of volume nodes loses its x flip",
             "SSSSegmentLib/slicer_bridge/volume_nodes.py",
             "RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])", "RAS_FROM_LPS = np.diag([1.0, -1.0, 1.0, 1.0])",
             (f"{BRIDGE}::test_linear_parent_transform_is_applied_and_nonlinear_refused",)),
)

SEGFILES = (
    Mutation("sdh-wrong-code", "segfile", "a wrong SNOMED CT code for the region of EDH and SDH",
             "SSSSegmentLib/classes.py",
             '_DURA_MATER = CodedTerm("SCT", "18545000", "Dura mater")',
             '_DURA_MATER = CodedTerm("SCT", "18545001", "Dura mater")', (SEGFILE,)),
    Mutation("disorder-type", "segfile", "type written as a disorder code (subarachnoid hemorrhage) again",
             "SSSSegmentLib/classes.py",
             'TERMINOLOGY_TYPE = CodedTerm("SCT", "50960005", "Hemorrhage")',
             'TERMINOLOGY_TYPE = CodedTerm("SCT", "21454007", "Subarachnoid hemorrhage")', (SEGFILE,)),
    Mutation("color-auto-generated", "segfile", "ColorAutoGenerated=1 in .seg.nrrd files",
             "SSSSegmentLib/volumes/segfile.py",
             'f"Segment{n}_ColorAutoGenerated": "0"', 'f"Segment{n}_ColorAutoGenerated": "1"', (SEGFILE,)),
    Mutation("extent-off-by-one", "segfile", "segment extent one voxel too wide in i",
             "SSSSegmentLib/volumes/segfile.py",
             'return f"{i.min()} {i.max()} {j.min()}', 'return f"{i.min()} {i.max() + 1} {j.min()}', (SEGFILE,)),
    Mutation("dura-mater-guessed", "segfile", "reader maps an ambiguous Dura mater hemorrhage to EDH",
             "SSSSegmentLib/volumes/segfile.py",
             "return labels[0] if len(labels) == 1 else None", "return labels[0] if labels else None", (SEGFILE,)),
)

TRAINING = (
    Mutation("never-freeze", "training", "the image encoder is never frozen (even from SAM-2 weights)",
             "SSSSegmentLib/training/model_setup.py", "if not encoder_frozen:", "if True:", (WEIGHTS,)),
    Mutation("best-inverted", "training", "best.safetensors kept on a lower validation score",
             "SSSSegmentLib/training/loop.py",
             "if scores.score > run.best_score:", "if scores.score < run.best_score:", (WEIGHTS,)),
    Mutation("frozen-default", "training", "no encoder freezing by default from SAM-2 weights",
             "SSSSegmentLib/training/config.py", "return self.sam2_checkpoint is not None", "return False",
             (WEIGHTS, "Testing/test_training.py::test_encoder_frozen_default_follows_the_starting_weights")),
    Mutation("cutmix-self", "training", "CutMix partner is the slice itself",
             "SSSSegmentLib/training/augment.py",
             "partner = torch.roll(torch.arange(n), 1)", "partner = torch.arange(n)", (CUTMIX,)),
    Mutation("cutmix-batch-of-one", "training", "batch_unlabeled 1 accepted again",
             "SSSSegmentLib/training/config.py",
             'else MIN_CUTMIX_BATCH),', "else 1),", (CUTMIX,)),
)

_TUNE = "Testing/test_decoder_tune.py::"
DECODER_TUNE = (
    Mutation("tune-no-mem-embed", "decoder fine-tune", "the decoder fine-tune also trains SAM-2's no_mem_embed "
             "(outside the decoder: the automatic result would change)",
             "SSSSegmentLib/training/decoder_tune.py",
             "params = [*sam.sam_prompt_encoder.parameters(), *sam.sam_mask_decoder.parameters()]",
             "params = [*sam.sam_prompt_encoder.parameters(), *sam.sam_mask_decoder.parameters(), sam.no_mem_embed]",
             (_TUNE + "test_run_changes_only_the_decoder",
              _TUNE + "test_decoder_parameters_are_prompt_encoder_and_mask_decoder")),
    Mutation("tune-no-corrective-clicks", "decoder fine-tune", "no corrective click is ever added between rounds",
             "SSSSegmentLib/training/decoder_tune.py", "        if n < rounds:\n", "        if False:\n",
             (_TUNE + "test_click_loss_falls_on_a_fixed_batch",)),
    Mutation("tune-click-sign", "decoder fine-tune",
             "corrective clicks: negative on a miss, positive on a false region",
             "SSSSegmentLib/training/click_prompts.py", "labels[n, 0] = int(positive)",
             "labels[n, 0] = int(not positive)",
             (_TUNE + "test_corrective_click_is_positive_on_a_miss_and_negative_on_a_false_region",)),
    Mutation("tune-click-anywhere", "decoder fine-tune", "corrective clicks may fall outside the box's window",
             "SSSSegmentLib/training/click_prompts.py", "inside[r0:r1, c0:c1] = True", "inside[:] = True",
             (_TUNE + "test_corrective_click_is_positive_on_a_miss_and_negative_on_a_false_region",)),
    Mutation("negative-no-redecode", "interactive refinement",
             "a negative click on a segment removes it whole again (the decoder is not asked what to keep)",
             "SSSSegmentLib/interactive/session.py",
             "if self._config.negative_redecode and separate_region(", "if False and separate_region(",
             ("Testing/test_interactive.py::test_a_negative_click_on_a_false_rim_keeps_the_lesion",)),
)

SLICER = (
    Mutation("insert-always-append", "slicer bridge", "a rerun appends our segments instead of keeping their place",
             "SSSSegmentLib/slicer_bridge/segmentations.py",
             "    ids = list(segmentation.GetSegmentIDs())\n    ours =", '    return ""\n    ids = []\n    ours =',
             (f"{BRIDGE}::test_rerun_keeps_our_segments_where_they_were_in_the_list",)),
    Mutation("node-color-auto", "slicer bridge", "segment colours marked auto-generated in the node",
             "SSSSegmentLib/slicer_bridge/segmentations.py",
             "segment.SetColorAutoGenerated(False)", "segment.SetColorAutoGenerated(True)",
             (f"{BRIDGE}::test_new_segmentation_has_five_coded_segments_and_survives_seg_nrrd",)),
    Mutation("options-default-preset", "slicer bridge", "engine options default to a preset with no bundled model",
             "SSSSegmentLib/slicer_bridge/engine.py",
             "    preset: str | None = None", '    preset: str | None = "fast"',
             (f"{BRIDGE}::test_default_options_let_the_engine_pick_the_bundled_model",)),
    Mutation("logic-default-preset", "slicer bridge", "the Logic's default preset is one nobody has weights for",
             "SSSSegment/SSSSegment.py",
             "def segmentVolume(self, volumeNode, segmentationNode=None, preset=None,",
             'def segmentVolume(self, volumeNode, segmentationNode=None, preset="paper",',
             (f"{BRIDGE}::test_logic_defaults_to_the_installed_bundled_model",)),
)

MODEL = (
    Mutation("multimask-worst", "model", "multimask decode returns the lowest-IoU proposal",
             "SSSSegmentLib/model/sss_model.py", "best = iou.argmax(dim=1)", "best = iou.argmin(dim=1)",
             ("Testing/test_model.py::test_decode_multimask_picks_best",)),
    Mutation("box-margin-lost", "model", "decoder masks cut at the prompt box, margin ignored away from edges",
             "SSSSegmentLib/inference/refine.py",
             "rows = slice(max(0, int(np.floor(y0)) - margin_px), min(shape_yx[0], int(np.ceil(y1)) + margin_px))",
             "rows = slice(max(0, int(np.floor(y0))), min(shape_yx[0], int(np.ceil(y1)) + margin_px))",
             ("Testing/test_inference_units.py",)),
    Mutation("dice-formula", "model", "Dice computed as |P∩T| / (|P|+|T|)",
             "SSSSegmentLib/evaluation/metrics.py",
             "return 2.0 * n_both / (n_pred + n_true)", "return 1.0 * n_both / (n_pred + n_true)",
             ("Testing/test_cli_tools.py::test_evaluate_scores_a_known_imperfect_prediction",)),
    Mutation("brain-window-shifted", "model", "the brain window of the model input shifted by 40 HU",
             "SSSSegmentLib/model/preprocess.py",
             "DEFAULT_WINDOWS: tuple[tuple[float, float], ...] = ((40.0, 80.0),",
             "DEFAULT_WINDOWS: tuple[tuple[float, float], ...] = ((80.0, 80.0),",
             ("Testing/test_model_accuracy.py",)),
)

NO_BLEED_HEAD = "Testing/test_model_accuracy.py::test_bundled_model_finds_at_most_a_trace_on_a_head_without_bleeds"
FALSE_ALARMS = (
    Mutation("partial-volume-rule-skipped", "prompts", "the partial-volume (inner-table band) rule never applied",
             "SSSSegmentLib/prompts/generator.py",
             "config.partial_volume.enabled and _applies(view, pv_classes)", "False and _applies(view, pv_classes)",
             (NO_BLEED_HEAD,)),
    Mutation("slice-profile-reach-ignored", "prompts", "thickness: the slice-profile reach across slices is ignored",
             "SSSSegmentLib/prompts/partial_volume.py",
             "max(0.0, n * s_k - cfg.through_plane_reach_mm)", "n * s_k",
             ("Testing/test_prompts.py::test_thickness_is_measured_in_3d_with_the_slice_profile_reach",)),
    Mutation("sah-neighbours-ignored", "prompts", "SAH depth: the neighbouring slices' skull no longer counts",
             "SSSSegmentLib/prompts/partial_volume.py",
             "near = _skull_over_neighbours(skull_zyx, cfg.unopened_through_plane_slices)",
             "near = _skull_over_neighbours(skull_zyx, 0)",
             ("Testing/test_prompts.py::test_sulcal_blood_must_be_deep_from_the_neighbouring_slices_skull",)),
    Mutation("fov-cut-always", "prompts", "cavity: every open ring is closed by its convex hull (not only FOV cuts)",
             "SSSSegmentLib/prompts/anatomy.py",
             "return np.count_nonzero(contact_ji) * min(spacing_ji) >= min_contact_mm", "return True",
             ("Testing/test_prompts.py::test_cavity_of_a_ring_cut_by_the_field_of_view_is_its_convex_hull",)),
    Mutation("fov-cut-never", "prompts", "cavity: a ring cut by the field of view is never closed by its hull",
             "SSSSegmentLib/prompts/anatomy.py",
             "contact = _fov_contact(hu_ji)", "contact = np.zeros_like(closed_ji)",
             ("Testing/test_prompts.py::test_cavity_of_a_ring_cut_by_the_field_of_view_is_its_convex_hull",)),
    Mutation("skull-base-borrow-dropped", "prompts", "cavity: open skull-base slices borrow nothing",
             "SSSSegmentLib/prompts/anatomy.py",
             "inside_zyx[k] |= overlap & ~closed_zyx[k]", "pass",
             ("Testing/test_prompts.py::test_open_slices_between_closed_ones_borrow_the_overlap_of_their_cavities",)),
)

_CLICKS = "Testing/test_interactive.py::"
INTERACTIVE = (
    Mutation("click-draws-nothing", "interactive", "a positive click keeps none of the decoded mask",
             "SSSSegmentLib/interactive/edits.py",
             "        mask = kept\n", "        mask = kept & False\n",
             (_CLICKS + "test_a_click_inside_a_lesion_grows_a_mask_that_overlaps_it",)),
    Mutation("negative-removes-nothing", "interactive", "a negative click on a false region removes nothing",
             "SSSSegmentLib/interactive/edits.py", "    labels_zyx[k][region] = 0\n", "    return True\n",
             (_CLICKS + "test_a_negative_click_removes_a_false_region",)),
    Mutation("propagation-never-ends", "interactive", "propagation: the lesion never ends",
             "SSSSegmentLib/interactive/propagate.py", "    area = int(np.count_nonzero(mask))\n",
             "    return False\n", (_CLICKS + "test_propagation_stops_at_the_end_of_the_lesion",)),
    Mutation("undo-restores-nothing", "interactive", "undo forgets to restore the changed slices",
             "SSSSegmentLib/interactive/session.py", "            self._labels[k] = old\n", "            pass\n",
             (_CLICKS + "test_undo_restores_the_previous_mask",)),
    Mutation("prompt-bounds-unchecked", "interactive", "points outside the slice are not refused",
             "SSSSegmentLib/interactive/prompt.py", "    if not (0 <= i < shape_zyx[2] and 0 <= j < shape_zyx[1]):",
             "    if False:", (_CLICKS + "test_a_prompt_outside_the_volume_is_refused",)),
    Mutation("other-classes-overwritten", "interactive", "a new mask overwrites other classes' voxels",
             "SSSSegmentLib/interactive/edits.py",
             "    labels_ji[mask_ji & ((labels_ji == 0) | (labels_ji == label))] = label",
             "    labels_ji[mask_ji] = label", (_CLICKS + "test_other_classes_segments_are_unchanged",)),
    Mutation("stability-swap-on", "interactive", "the decoder may swap in untrained mask tokens 1-3 (eval mode)",
             "SSSSegmentLib/model/sss_model.py", "dynamic_multimask_via_stability = False",
             "dynamic_multimask_via_stability = True",
             (_CLICKS + "test_the_decoder_answers_with_mask_token_0_in_eval_mode",)),
    Mutation("refine-ignores-outside-edits", "interactive", "Slicer refine: edits made elsewhere are not picked up",
             "SSSSegmentLib/slicer_bridge/refine_session.py", "        if self._node_state() != self._seen:",
             "        if False:",
             ("Testing/test_refine_bridge.py::test_edits_made_elsewhere_are_picked_up_before_the_next_prompt",)),
)

_FAST = "Testing/test_fast_paths.py::"
SPEED = (
    Mutation("prompt-slices-remapped-wrong", "speed", "streaming: prompts decoded on the wrong re-encoded slice",
             "SSSSegmentLib/inference/pipeline.py", "row = {k: n for n, k in enumerate(ks)}",
             "row = {k: len(ks) - 1 - n for n, k in enumerate(ks)}",
             (_FAST + "test_streaming_gives_the_reference_labels",)),
    Mutation("planes-lower-only", "speed", "acquired planes: each output slice takes the plane below, unblended",
             "SSSSegmentLib/inference/coarse.py", "self._planes.to_grid(self._label_planes(label), ks)",
             "np.stack([self._label_planes(label)[s] for s in self._planes.lower[ks]])",
             (_FAST + "test_tilted_stack_on_its_acquired_planes_matches_resampled_first",)),
    Mutation("argmax-ties-up", "speed", "candidate map: ties go to the higher label",
             "SSSSegmentLib/prompts/components.py", "labels[prob > best] = label", "labels[prob >= best] = label",
             (_FAST + "test_candidate_label_map_is_the_thresholded_argmax",)),
    Mutation("edt-slab-offset", "speed", "slab distance transform forgets the slab's first slice index",
             "SSSSegmentLib/prompts/anatomy.py", "        grid[0] += k0\n", "        pass\n",
             (_FAST + "test_slab_distance_transform_is_scipys",)),
)

_SAFE = "Testing/test_input_safety.py"
INPUT_SAFETY = (
    Mutation("output-hardlink-allowed", "input safety", "an output that is a hard link to the input is written",
             "SSSSegmentLib/fsutil.py", "if output.exists() and os.path.samefile(output, source):",
             "if output.exists() and output.absolute() == source.absolute():", (_SAFE,)),
    Mutation("output-in-dicom-folder-allowed", "input safety", "an output inside the input DICOM folder is written",
             "SSSSegmentLib/fsutil.py", "in real_output.parents:", "in real_output.parents[:0]:", (_SAFE,)),
    Mutation("slice-gap-never-refused", "input safety", "a DICOM series with a 20 mm gap is segmented",
             "SSSSegmentLib/volumes/slice_gaps.py", "if worst is not None and worst.size_mm > REFUSE_GAP_MM:",
             "if False:", ("Testing/test_slice_gaps.py",)),
    Mutation("truncated-nifti-read", "input safety", "a truncated NIfTI is read, its missing voxels filled",
             "SSSSegmentLib/volumes/io.py", "    if len(raw) < expected:", "    if False:", (_SAFE,)),
)

_BATCH = "Testing/test_batch.py::"
BATCH = (
    Mutation("batch-cut-row-read", "batch", "results.csv: a row cut by a crash (no newline) is read as a row",
             "SSSSegmentLib/batch/results.py", 'complete = text[: text.rfind("\\n") + 1]', "complete = text",
             (_BATCH + "test_rows_are_appended_whole_and_a_cut_last_line_is_ignored",)),
    Mutation("batch-failed-always-redone", "batch", "a rerun retries failed cases without --redo-failed",
             "SSSSegmentLib/batch/plan.py", "return None if redo_failed else row", "return None",
             (_BATCH + "test_rerun_keeps_done_cases_and_redoes_only_what_it_must",)),
    Mutation("batch-done-redone", "batch", "a rerun redoes the cases already done",
             "SSSSegmentLib/batch/plan.py",
             "return row if same_model and all((out_dir / n).is_file() for n in names) else None", "return None",
             (_BATCH + "test_a_killed_batch_resumes_without_losing_or_repeating_a_case",)),
    Mutation("batch-staging-dropped", "batch", "files of a case whose row was written are dropped, not moved in",
             "SSSSegmentLib/batch/plan.py", "            move_into_place(folder, out_dir, names)\n",
             "            pass\n", (_BATCH + "test_staged_outputs_of_a_written_row_are_moved_in_and_others_removed",)),
    Mutation("batch-no-lock", "batch", "two batches may write the same output folder",
             "SSSSegmentLib/batch/results.py", "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", "pass",
             (_BATCH + "test_a_second_batch_cannot_write_to_the_same_folder",)),
    Mutation("batch-out-dir-searched", "batch", "the output folder inside an input is searched for cases",
             "SSSSegmentLib/batch/cases.py", " and (here / d).resolve() != skip", "",
             (_BATCH + "test_discovery_finds_volume_files_and_one_case_per_dicom_series",)),
)

_GATE = "Testing/test_registry.py::"
GATE = (
    Mutation("gate-reference-by-mean", "fine-tune gate (issue 23)", "reference set judged by mean, not interval",
             "SSSSegmentLib/registry/gate.py", "ok = math.isfinite(iv.low) and iv.low >= -self.reference_margin",
             "ok = math.isfinite(iv.mean) and iv.mean >= -self.reference_margin",
             (_GATE + "test_gate_judges_the_reference_set_by_its_interval_not_its_mean",)),
    Mutation("gate-judges-one-case", "fine-tune gate (issue 23)", "held-out cases judged however few they are",
             "SSSSegmentLib/registry/gate.py", "if n < self.min_heldout:", "if n < 1:",
             (_GATE + "test_gate_with_too_few_held_out_cases_cannot_judge_improvement",)),
    Mutation("gate-normals-ignored", "fine-tune gate (issue 23)", "more mL on confirmed-normal cases passes",
             "SSSSegmentLib/registry/gate.py",
             "ok = math.isfinite(new_ml) and new_ml <= old_ml + self.max_normal_ml_increase", "ok = True",
             (_GATE + "test_gate_refuses_more_bleed_on_normal_cases_and_held_out_evidence_of_worse",)),
    Mutation("gate-held-out-only", "fine-tune gate (issue 23)", "the decision follows the held-out part alone",
             "SSSSegmentLib/registry/gate.py", "return GateDecision(all(p.status != FAIL for p in parts), parts)",
             "return GateDecision(parts[2].status != FAIL, parts)",
             (_GATE + "test_gate_refuses_a_version_worse_on_the_reference_set_even_when_held_out_dice_rose",)),
)

_GEOMETRY = "Testing/test_real_geometry.py::"
SESSION_3 = (
    Mutation("thin-slice-join-off", "real geometry (issue 21)", "parts of a class 5 mm apart along k are scored apart",
             "SSSSegmentLib/prompts/continuity.py", "    return max(1, math.floor(join_mm / slice_mm + 1e-9))",
             "    return 1",
             (_GEOMETRY + "test_a_thin_slice_lesion_cut_in_two_by_one_missed_slice_is_kept_as_one_piece",)),
    Mutation("model-batch-overridden", "lite inference (issue 22)", "--batch-size's None replaces the model's own",
             "SSSSegmentLib/inference/config.py",
             "    if batch_size is not None:\n        config = replace(config, batch_size=batch_size)",
             "    config = replace(config, batch_size=batch_size)",
             ("Testing/test_inference_units.py::test_a_models_recommended_batch_size_holds_unless_the_user_gives_one",)),
)

MUTATIONS: tuple[Mutation, ...] = (PROMPTS + VOLUMES + SEGFILES + TRAINING + SLICER + MODEL + FALSE_ALARMS
                                   + INTERACTIVE + SPEED + DECODER_TUNE + INPUT_SAFETY + BATCH + GATE + SESSION_3)
