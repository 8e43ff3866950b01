"""Tests for stage-1 training: the loss falls, checkpoints resume exactly, summaries, config."""
import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf import tasks
from patchwork_tf.training import distribute
from patchwork_tf.training import run_config
from patchwork_tf.training import stage1
from patchwork_tf.training import stage1_data
from tests.models import backbone_files

TINY = dict(frame_size=(64, 64), alpha=0.35, batch_size=4, num_train_clips=4,
            frames_per_clip=2, learning_rate=2e-3)


def _fixed_batch(task):
    frames = stage1_data.synthetic_frames("train", task, 2, (64, 64), frames_per_clip=2)
    return next(iter(stage1_data.evaluation_dataset(frames, 4)))


def _loss(model, config, images, labels):
    outputs = model(images, training=True)
    task = tasks.get(config.task).for_model(model, config)
    return float(task.loss(outputs, labels)["total"])


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_short_training_lowers_the_loss_and_writes_summaries(tmp_path, task):
    images, labels = _fixed_batch(task)
    model_dir = str(tmp_path / task)
    config = stage1.Stage1Config(task, num_steps=40, **TINY)
    first = stage1.train_stage1(model_dir, config, stop_at_step=1, verbose=0)
    before = _loss(first["model"], first["config"], images, labels)
    last = stage1.train_stage1(model_dir, config, summary_every=10, verbose=0)
    assert last["step"] == 40
    after = _loss(last["model"], last["config"], images, labels)
    assert after < 0.7 * before, (before, after)

    tags, learning_rates = set(), {}
    for path in glob.glob(os.path.join(model_dir, stage1.SUMMARY_DIR, "events.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(value.tag for value in event.summary.value)
            learning_rates.update({event.step: float(tf.make_ndarray(value.tensor))
                                   for value in event.summary.value
                                   if value.tag == "learning_rate"})
    assert {"loss/total", "learning_rate"} <= tags
    # The train step reads the rate in the graph; it is the schedule's at the step's update.
    schedule = stage1.learning_rate_schedule(last["config"])
    assert sorted(learning_rates) == [1, 10, 20, 30, 40]
    for step, value in learning_rates.items():
        assert value == pytest.approx(float(schedule(step - 1)), rel=1e-6), step


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_run(tmp_path):
    config = stage1.Stage1Config("detection", num_steps=6, **TINY)
    settings = dict(checkpoint_every=100, verbose=0)
    split_dir, whole_dir = str(tmp_path / "split"), str(tmp_path / "whole")
    stage1.train_stage1(split_dir, config, stop_at_step=3, **settings)
    assert tf.train.latest_checkpoint(os.path.join(split_dir, "checkpoints")).endswith("ckpt-3")
    resumed = stage1.train_stage1(split_dir, config, **settings)
    whole = stage1.train_stage1(whole_dir, config, **settings)
    assert resumed["step"] == whole["step"] == 6
    got, want = resumed["model"].variables, whole["model"].variables
    assert [v.name for v in got] == [v.name for v in want]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)
    # The run really moved: the weights differ from a fresh initialisation.
    fresh = stage1.build_model(resumed["config"])
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(got, fresh.variables))

    restored, config, step = stage1.restore_model(split_dir)
    assert step == 6 and config == resumed["config"]
    for a, b in zip(restored.variables, got):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_a_time_limit_stops_and_saves_and_a_rerun_finishes(tmp_path):
    model_dir = str(tmp_path / "timed")
    config = stage1.Stage1Config("detection", num_steps=3, **TINY)
    settings = dict(checkpoint_every=100, verbose=0)
    stopped = stage1.train_stage1(model_dir, config, max_seconds=0, **settings)
    assert stopped["step"] == 1 and stopped["out_of_time"]
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-1")
    finished = stage1.train_stage1(model_dir, config, **settings)
    assert finished["step"] == 3 and not finished["out_of_time"]
    last_step_in_time = stage1.train_stage1(
        str(tmp_path / "one"), dataclasses.replace(config, num_steps=1), max_seconds=0,
        **settings)
    assert last_step_in_time["step"] == 1 and not last_step_in_time["out_of_time"]


def test_a_model_dir_with_other_settings_is_refused(tmp_path):
    model_dir = str(tmp_path)
    run_config.store(model_dir, stage1.CONFIG_FILE,
                     stage1.Stage1Config(task="detection", num_steps=10))
    with pytest.raises(ValueError, match=r"other settings.*'num_steps': \(10, 20\)"):
        stage1.train_stage1(model_dir, stage1.Stage1Config("detection", num_steps=20), verbose=0)
    with pytest.raises(TypeError, match="config must be a Stage1Config"):
        stage1.train_stage1(model_dir, "detection")
    with pytest.raises(FileNotFoundError, match="not a stage-1 model directory"):
        stage1.load_config(str(tmp_path / "missing"))


@pytest.mark.slow
def test_a_new_run_starts_from_the_backbone_weights_and_a_resume_from_its_checkpoint(tmp_path):
    path = tmp_path / "backbone.h5"
    file_weights = backbone_files.write_weights_file(path, alpha=0.35)
    model_dir = str(tmp_path / "run")
    # A learning rate too small to move the weights: after a step they are still the file's.
    config = stage1.Stage1Config("detection", **dict(TINY, num_steps=2, learning_rate=1e-9,
                                                     backbone_weights=str(path)))
    first = stage1.train_stage1(model_dir, config, stop_at_step=1, verbose=0)
    backbone = [layer for layer in first["model"].layers if layer.name in file_weights]
    assert len(backbone) == 104
    for layer in backbone:
        for variable, want in zip(layer.weights, file_weights[layer.name], strict=True):
            if variable.trainable:  # batch-norm statistics move with the step
                np.testing.assert_allclose(variable.numpy(), want, atol=1e-6,
                                           err_msg=variable.name)
    assert stage1.load_config(model_dir).backbone_weights == str(path)

    # The resume restores the checkpoint and needs the file no more.
    os.remove(path)
    resumed = stage1.train_stage1(model_dir, config, verbose=0)
    assert resumed["step"] == 2


@pytest.mark.parametrize("field,default", [("backbone_weights", "none"),
                                           ("detection_loss", "focal")])
def test_a_stored_config_from_before_a_field_loads_with_its_default(tmp_path, field, default):
    run_config.store(str(tmp_path), stage1.CONFIG_FILE, stage1.Stage1Config(task="detection"))
    path = os.path.join(tmp_path, stage1.CONFIG_FILE)
    with open(path) as f:
        stored = json.load(f)
    del stored[field]  # a run directory from before the field
    with open(path, "w") as f:
        json.dump(stored, f)
    assert getattr(stage1.load_config(str(tmp_path)), field) == default


def test_bad_task_and_strategy_names_are_refused():
    with pytest.raises(ValueError, match="task must be one of"):
        stage1.Stage1Config(task="tracking")
    with pytest.raises(ValueError, match="strategy must be one of"):
        distribute.get_strategy("tpu")


@pytest.mark.slow
def test_training_runs_under_the_mirrored_strategy(tmp_path):
    result = stage1.train_stage1(str(tmp_path), stage1.Stage1Config(
        "segmentation", num_steps=2, **TINY), strategy="mirrored", verbose=0)
    assert result["step"] == 2
    assert np.isfinite(result["losses"]["total"])


def test_flip_mirrors_frames_boxes_and_masks():
    frames = stage1_data.synthetic_frames("train", "detection", 2, (64, 64), frames_per_clip=4)
    plain = list(stage1_data.training_dataset(frames, 1, seed=3, flip=False).take(16))
    flipped = list(stage1_data.training_dataset(frames, 1, seed=3, flip=True).take(16))
    num_flipped = 0
    for (image, label), (image_f, label_f) in zip(plain, flipped):
        if np.array_equal(image.numpy(), image_f.numpy()):
            np.testing.assert_array_equal(label["boxes"].numpy(), label_f["boxes"].numpy())
            continue
        num_flipped += 1
        np.testing.assert_array_equal(image.numpy()[:, :, ::-1], image_f.numpy())
        np.testing.assert_array_equal(label["mask"].numpy()[:, :, ::-1], label_f["mask"].numpy())
        valid = label["valid"].numpy()
        boxes, boxes_f = label["boxes"].numpy()[valid], label_f["boxes"].numpy()[valid]
        np.testing.assert_allclose(boxes_f[:, [0, 2]], boxes[:, [0, 2]])
        np.testing.assert_allclose(boxes_f[:, 1], 1.0 - boxes[:, 3], atol=1e-6)
        np.testing.assert_allclose(boxes_f[:, 3], 1.0 - boxes[:, 1], atol=1e-6)
    assert 0 < num_flipped < 16


def test_resumed_dataset_continues_the_batch_sequence():
    frames = stage1_data.synthetic_frames("train", "segmentation", 2, (64, 64), frames_per_clip=3)
    whole = [x.numpy() for x, _ in stage1_data.training_dataset(frames, 2, seed=5).take(7)]
    tail = [x.numpy() for x, _ in stage1_data.training_dataset(frames, 2, seed=5,
                                                               start_step=4).take(3)]
    for a, b in zip(whole[4:], tail):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_the_ssd_loss_trains_with_a_finite_loss_and_is_stored(tmp_path):
    model_dir = str(tmp_path / "ssd")
    result = stage1.train_stage1(model_dir, stage1.Stage1Config(
        "detection", num_steps=3, detection_loss="ssd", **TINY), verbose=0)
    assert result["step"] == 3
    assert np.isfinite(result["losses"]["total"]) and result["losses"]["total"] > 0
    # The synthetic frames hold objects, so 3:1 mining keeps negatives.
    assert result["losses"]["num_negatives"] >= 3
    assert stage1.load_config(model_dir).detection_loss == "ssd"


def test_class_logits_start_at_the_focal_prior_or_at_zero_for_the_ssd_loss():
    def class_biases(detection_loss):
        model = stage1.build_model(stage1.Stage1Config(
            task="detection", frame_size=(64, 64), detection_loss=detection_loss))
        return np.concatenate([layer.bias.numpy() for layer in model.layers
                               if layer.name.endswith("_class")])

    # 5 synthetic classes + background per box spec; the focal prior is p = 0.01 per class.
    prior = np.log(99.0)
    np.testing.assert_allclose(class_biases("focal")[:6], [prior] + [-prior] * 5, rtol=1e-6)
    np.testing.assert_array_equal(class_biases("ssd"), 0.0)


def test_an_unknown_detection_loss_is_refused():
    with pytest.raises(ValueError, match="detection_loss must be one of"):
        stage1.Stage1Config(task="detection", detection_loss="softmax")
