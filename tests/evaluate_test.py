"""The evaluate entry point and its library function on tiny untrained models."""
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from patchwork_tf import runs
from patchwork_tf.core import flops
from patchwork_tf.core import folding
from patchwork_tf.evaluation import api
from patchwork_tf.evaluation import stream
from patchwork_tf.training import configs
from patchwork_tf.training import stage1


@pytest.fixture(scope="module")
def detector():
    return api.untrained_model("detection", alpha=0.35, frame_size=(64, 64))


def _evaluate(loaded, **kwargs):
    kwargs.setdefault("num_clips", 1)
    kwargs.setdefault("clip_length", 4)
    kwargs.setdefault("clip_frame_size", (64, 64))
    result, ops = api.evaluate(loaded, **kwargs)
    assert ops is None
    return result


def test_single_frame_costs_the_stock_model_with_batch_norm_folded(detector):
    folded = folding.fold_batch_norm_model(detector.model)
    result = _evaluate(detector, policy="single_frame")
    assert result.job_mflops == pytest.approx(flops.model_flops(folded).mflops)
    assert result.job_mflops < flops.model_flops(detector.model).mflops
    assert result.theoretical.maximum == pytest.approx(result.job_mflops)
    assert result.settings["fold_batch_norm"] is True
    as_is = _evaluate(detector, policy="single_frame", fold_batch_norm=False)
    assert as_is.job_mflops == pytest.approx(flops.model_flops(detector.model).mflops)
    assert 0.0 <= result.accuracy["mAP"] <= 1.0
    json.dumps(result.to_json())


@pytest.mark.slow
def test_patchwork_scanning_is_cheaper_per_frame_and_starts_with_a_full_pass(detector):
    single = _evaluate(detector, policy="single_frame")
    result = _evaluate(detector, policy="scanning", m=2, n=1)
    assert result.actions == [0, 1, 2, 3]
    assert result.theoretical.maximum < single.theoretical.maximum
    # The warm start runs the stock layers, batch norm unfolded.
    assert result.startup_mflops == pytest.approx(flops.model_flops(detector.model).mflops)
    assert result.settings["grid"] == "2,1" and result.settings["cells"] is True
    assert result.settings["jit_compile"] is True   # recorded at its default too


def test_patchwork_runner_steps_with_the_inference_preset(detector, monkeypatch):
    import patchwork_tf as pw
    twins = []
    original = pw.patchwork_model
    monkeypatch.setattr(pw, "patchwork_model",
                        lambda *a, **k: twins.append(original(*a, **k)) or twins[-1])
    api.build_runner(detector, "scanning", m=2, n=1)
    api.build_runner(detector, "scanning", m=2, n=1, fold_batch_norm=False)
    api.build_runner(detector, "scanning", m=2, n=1, jit_compile=False)
    assert twins[0].options["inference"] is True
    assert twins[1].options == dict(pw.INFERENCE_OPTIONS, fold_batch_norm=False,
                                    context="memory", full_memory_cells=[], inference=False)
    assert twins[2].options == dict(pw.INFERENCE_OPTIONS, jit_compile=False,
                                    context="memory", full_memory_cells=[], inference=False)


@pytest.mark.slow
def test_run_single_threaded_pins_one_thread_in_a_fresh_process():
    """The train job evaluates this way after training, whose thread pools cannot change."""
    assert api.run_single_threaded(api.thread_config) == (1, 1)


@pytest.mark.slow
def test_nocells_builds_the_zero_context_twin(detector, monkeypatch):
    import patchwork_tf as pw
    contexts = []
    original = pw.patchwork_model

    def spy(*args, **kwargs):
        contexts.append(kwargs.get("context"))
        return original(*args, **kwargs)

    monkeypatch.setattr(pw, "patchwork_model", spy)
    result = _evaluate(detector, policy="random", m=2, n=1, cells=False)
    assert contexts == ["zeros"]
    assert result.settings["cells"] is False


def test_resolution_variant_resizes_clips_to_the_smaller_model():
    small = api.untrained_model("segmentation", alpha=0.35, frame_size=(32, 32))
    full = api.untrained_model("segmentation", alpha=0.35, frame_size=(64, 64))
    result = _evaluate(small, policy="single_frame")
    assert result.settings["frame_size"] == [32, 32]
    assert set(result.accuracy) == {"J", "F", "J&F"}
    assert result.job_mflops < 0.5 * flops.model_flops(full.model).mflops


def test_dqn_without_an_attention_network_is_refused(detector):
    with pytest.raises(ValueError, match="attention network"):
        _evaluate(detector, policy="dqn", m=2, n=1)


@pytest.mark.slow
def test_command_line_writes_json_markdown_and_profile(tmp_path):
    out, prof = tmp_path / "out", tmp_path / "prof"
    command = [sys.executable, "-m", "patchwork_tf.evaluate", "--untrained",
               "--task=segmentation", "--frame_size=64", "--policy=scanning", "--m=2", "--n=1",
               "--interval=2", "--delay=1", "--num_clips=1", "--clip_length=4",
               f"--output_dir={out}", f"--profile_dir={prof}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(command, check=True, env=env, capture_output=True)
    name = "scanning_m2n1_k2_d1"
    record, = json.loads((out / f"{name}.json").read_text())
    assert record["settings"]["interval"] == 2 and record["settings"]["delay"] == 1
    assert record["settings"]["threads"] == 1
    # J, F and J&F with their interval over the one video (zero width).
    assert {k: v[0] == v[1] for k, v in record["accuracy_interval"].items()} == {
        "J": True, "F": True, "J&F": True}
    # K = 2, D = 1: each step is spread over two frames, so maximum = average = step / 2.
    assert record["theoretical"]["maximum"] == pytest.approx(record["job_mflops"] / 2)
    assert record["theoretical"]["average"] == pytest.approx(record["job_mflops"] / 2)
    assert "| scanning_m2n1_k2_d1 |" in (out / f"{name}.md").read_text()
    ops = (out / f"{name}_ops.md").read_text().splitlines()
    assert len(ops) > 3 and ops[0].startswith("| op type")
    assert list(prof.glob("plugins/profile/*/*.xplane.pb"))


def test_command_line_refuses_two_model_sources(tmp_path):
    command = [sys.executable, "-m", "patchwork_tf.evaluate", f"--saved_model={tmp_path}",
               f"--model_dir={tmp_path}", f"--output_dir={tmp_path}"]
    run = subprocess.run(command, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "exactly one of --model_dir, --untrained and --saved_model" in run.stderr


def test_resolution_rebuild_keeps_the_trained_layers_or_refuses():
    segmenter = runs.build_at_resolution(
        stage1.Stage1Config("segmentation", frame_size=(64, 64)), 0.5, "seg")
    assert tuple(segmenter.inputs[0].shape[1:3]) == (32, 32)
    # 128 px SSDLite has 2 extra layers; 96 px still holds them, 64 px does not.
    detector = runs.build_at_resolution(stage1.Stage1Config("detection"), 0.75, "det")
    assert len([l for l in detector.layers if l.name.endswith("_project_relu")
                and l.name.startswith("ssd_extra")]) == 2
    with pytest.raises(ValueError, match="Train a model at that frame size"):
        runs.build_at_resolution(stage1.Stage1Config("detection"), 0.5, "det")


# ---------------------------------------------------------------- --saved_model
CELL = "box_predictor_0_box_depthwise"


@pytest.fixture(scope="module")
def exported_detector(detector, tmp_path_factory):
    """The detector's Patchwork twin with a seeded attention Q-network, exported as
    `export_trained_run` exports a train run, and the same model and network in process."""
    import patchwork_tf as pw
    import tf_keras
    from patchwork_tf import tasks
    from patchwork_tf.policy import q_network
    from patchwork_tf.serving import exportable

    grid = pw.WindowGrid((64, 64), 2, 1)
    twin = pw.patchwork_model(detector.model, grid, write="bands", full_memory_cells=[CELL],
                              fold_batch_norm=True)
    tf_keras.utils.set_random_seed(1)
    network = q_network.for_twin(twin, CELL)
    postprocess = tasks.DetectionTask.for_model(detector.model, detector.config)
    module = exportable.ExportableModule(twin, postprocess=postprocess, policy=network,
                                         policy_cell=CELL, alpha=0.5)
    path = str(tmp_path_factory.mktemp("export") / "saved_model")
    exportable.export_saved_model(
        module, path, task="detection",
        metadata=postprocess.export_metadata())
    in_process = dataclasses.replace(
        detector, q_fn=lambda observation: network(observation)[0],
        patchwork=configs.AttentionConfig(m=2, n=1, observed_cell=CELL, history_alpha=0.5,
                                          change_cue=False))
    return path, in_process


def _clips_labelled_by(runner, num_clips=2, length=4):
    """Synthetic frames whose ground truth is the stock model's two best detections, so that
    a Patchwork model of the same weights scores a mAP above zero."""
    from patchwork_tf.data import clips as clips_lib
    from patchwork_tf.data import synthetic
    clips = []
    for clip in synthetic.synthetic_clips("validation", "detection", num_clips, (64, 64), length):
        frames = clips_lib.preprocess_frames(np.asarray(clip["frames"]))
        detections = [runner(frames[t:t + 1]) for t in range(length)]
        clips.append({
            "frames": np.asarray(clip["frames"]), "clip_id": clip["clip_id"],
            "boxes": np.stack([d["detection_boxes"][0, :2] for d in detections]),
            "classes": np.stack([d["detection_classes"][0, :2] for d in detections]).astype(
                np.int32) - 1,
            "valid": np.ones((length, 2), bool)})
    return clips


@pytest.mark.slow
def test_saved_model_runner_matches_the_model_in_process(exported_detector, monkeypatch):
    from patchwork_tf.evaluation import exported
    from patchwork_tf.evaluation import stream
    path, in_process = exported_detector
    clips = _clips_labelled_by(api.build_runner(in_process, "single_frame"))
    runners = {"saved_model": api.build_runner(exported.load(path), "dqn", m=2, n=1),
               "in_process": api.build_runner(in_process, "dqn", m=2, n=1)}
    results, predictions = {}, {}
    for key, runner in runners.items():
        seen = predictions[key] = []
        add_frame = runner.task.add_frame
        monkeypatch.setattr(runner.task, "add_frame",
                            lambda metric, video, t, truth, p, add_frame=add_frame, seen=seen:
                            (seen.append(p), add_frame(metric, video, t, truth, p)))
        results[key] = stream.evaluate_stream(runner, clips, warmup_calls=1)
    got, expected = results["saved_model"], results["in_process"]
    assert got.actions == expected.actions and len(set(got.actions)) > 1
    assert len(predictions["saved_model"]) == len(predictions["in_process"]) == 8
    for served, reference in zip(predictions["saved_model"], predictions["in_process"]):
        np.testing.assert_array_equal(served["num_detections"], reference["num_detections"])
        np.testing.assert_array_equal(served["detection_classes"],
                                      reference["detection_classes"])
        np.testing.assert_allclose(served["detection_scores"], reference["detection_scores"],
                                   atol=1e-5)
        np.testing.assert_allclose(served["detection_boxes"], reference["detection_boxes"],
                                   atol=1e-5)
    assert expected.accuracy["mAP"] > 0.0
    assert got.accuracy["mAP"] == pytest.approx(expected.accuracy["mAP"], abs=1e-9)
    assert got.job_mflops == pytest.approx(expected.job_mflops, rel=1e-9)
    assert got.startup_mflops == pytest.approx(expected.startup_mflops, rel=1e-9)
    assert got.theoretical.to_json() == expected.theoretical.to_json()


@pytest.mark.slow
def test_command_line_evaluates_a_saved_model(exported_detector, tmp_path):
    import json as json_lib
    import tensorflow as tf
    path, _ = exported_detector
    out = tmp_path / "out"
    command = [sys.executable, "-m", "patchwork_tf.evaluate", f"--saved_model={path}",
               "--interval=2", "--num_clips=1", "--clip_length=4", f"--output_dir={out}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    name = "dqn_m2n1_k2_savedmodel"
    record, = json.loads((out / f"{name}.json").read_text())
    flops_record = json_lib.loads(tf.saved_model.load(path).metadata().numpy())["flops"]
    assert record["job_mflops"] * 1e6 == pytest.approx(
        flops_record["step"] + flops_record["policy"])
    assert record["startup_mflops"] * 1e6 == pytest.approx(flops_record["full_frame"])
    assert record["theoretical"]["average"] == pytest.approx(record["job_mflops"] / 2)
    # The export is named by its contents, not its path (a moved export resumes).
    assert record["settings"]["saved_model"] == stream.saved_model_id(path)
    assert record["settings"]["saved_model"].startswith("saved_model.pb@sha1:")
    assert record["settings"]["policy"] == "dqn" and record["settings"]["frame_size"] == [64, 64]
    assert len(record["actions"]) == 2 and 0 <= record["accuracy"]["mAP"] <= 1
    assert f"| {name} | patchwork | dqn | 2,1 |" in (out / f"{name}.md").read_text()


def _exported_record(**changes):
    from patchwork_tf.evaluation import exported
    record = {"policy": "dqn", "m": 2, "n": 1, "policy_cell": CELL}
    record.update(changes)
    return exported.ExportedModel(None, record, "/exports/det")


@pytest.mark.parametrize("kwargs, message", [
    (dict(policy="scanning"), "runs the 'dqn' policy inside its step; policy 'scanning'"),
    (dict(policy="single_frame"), "evaluate the train run's --model_dir"),
    (dict(policy="dqn", m=4), "exported with m=2, not 4"),
    (dict(policy="dqn", observed_cell="block_3_depthwise"), "exported with observed_cell="),
    (dict(policy="dqn", flip=True), "The flip variant changes the model"),
    (dict(policy="dqn", cells=False), "no Patchwork Cells variant"),
])
def test_saved_model_refuses_what_it_cannot_run(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        api.check_exported_config(_exported_record(), **kwargs)
    api.check_exported_config(_exported_record(), "dqn", m=2, n=1, observed_cell=CELL)
