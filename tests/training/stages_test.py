"""Stages 2 and 3 on a tiny setting: they train, resume, and stage 3 keeps BN frozen."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from patchwork_tf import evaluate
from patchwork_tf import export
from patchwork_tf import visualize
from patchwork_tf.training import run_config
from patchwork_tf.training import stage1
from patchwork_tf.training import stage2
from patchwork_tf.training import stage3

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tiny_config(**overrides):
    values = dict(m=2, n=1, num_streams=2, clip_length=3, num_train_clips=2,
                  replay_capacity=20, sample_batch_size=4, initial_collect_steps=2,
                  target_update_period=2, epsilon_decay_steps=4, stage2_steps=3,
                  stage3_steps=5, stage3_finetune_every=1, stage3_clip_length=3,
                  stage3_batch_size=2)
    values.update(overrides)
    return stage2.PatchworkConfig(**values)


@pytest.fixture(scope="module")
def stage1_dir(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("patchwork"))
    stage1.train_stage1(os.path.join(model_dir, stage2.STAGE1_DIR), "detection", verbose=0,
                        frame_size=(64, 64), num_steps=2, batch_size=2, num_train_clips=2,
                        frames_per_clip=2)
    return model_dir


def _latest(model_dir, stage):
    return tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(model_dir, stage, "checkpoints")))


CONV1 = "model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
BN1 = "model/layer_with_weights-1/{}/.ATTRIBUTES/VARIABLE_VALUE"
STEP = "agent/_train_step_counter/.ATTRIBUTES/VARIABLE_VALUE"


def _folded_conv1(checkpoint):
    """Conv1's kernel with bn_Conv1 folded in (epsilon 1e-3), from a checkpoint's values."""
    scale = checkpoint.get_tensor(BN1.format("gamma")) / np.sqrt(
        checkpoint.get_tensor(BN1.format("moving_variance")) + 1e-3)
    return checkpoint.get_tensor(CONV1) * scale


@pytest.mark.slow
def test_stage2_resumes_and_stage3_finetunes_all_but_batch_norm(stage1_dir, tmp_path):
    result = stage2.train_stage2(stage1_dir, _tiny_config(stage2_steps=2, stage3_steps=5),
                                 verbose=0)
    assert result["train_step"] == 2 and np.isfinite(result["loss"])
    with pytest.raises(ValueError, match="other settings"):
        stage2.train_stage2(stage1_dir, _tiny_config(gamma=0.5), verbose=0)
    q_weights = {k: _latest(stage1_dir, "stage2").get_tensor(k)
                 for k in _latest(stage1_dir, "stage2").get_variable_to_shape_map()
                 if k.startswith("agent/_q_network/") and "kernel" in k}
    resumed = stage2.train_stage2(stage1_dir, _tiny_config(), verbose=0)
    assert resumed["train_step"] == 3  # one more step from the checkpoint, not three
    after = _latest(stage1_dir, "stage2")
    assert after.get_tensor(STEP) == 3
    assert any(not np.array_equal(v, after.get_tensor(k)) for k, v in q_weights.items())

    result = stage3.train_stage3(stage1_dir, _tiny_config(), verbose=0)
    assert result["train_step"] == 5 and np.isfinite(result["finetune_loss"])
    before, tuned = _latest(stage1_dir, "stage1"), _latest(stage1_dir, "stage3")
    assert not np.array_equal(before.get_tensor(CONV1), tuned.get_tensor(CONV1))
    for name in ("moving_mean", "moving_variance", "gamma", "beta"):
        np.testing.assert_array_equal(before.get_tensor(BN1.format(name)),
                                      tuned.get_tensor(BN1.format(name)))

    # The evaluation restores the fine-tuned weights and points at stage 3's Q-network.
    loaded = evaluate.load_trained(stage1_dir)
    np.testing.assert_array_equal(loaded.model.get_layer("Conv1").kernel.numpy(),
                                  tuned.get_tensor(CONV1))
    assert loaded.agent_checkpoint == tf.train.latest_checkpoint(
        os.path.join(stage1_dir, "stage3", "checkpoints"))

    # The export folds batch norm into the fine-tuned weights, not stage 1's.
    module = export.export_trained_run(stage1_dir, str(tmp_path / "export"))
    exported_kernel = module.twin._folded["Conv1"][0].numpy()  # pylint: disable=protected-access
    np.testing.assert_allclose(exported_kernel, _folded_conv1(tuned), rtol=1e-5, atol=1e-7)
    assert not np.allclose(exported_kernel, _folded_conv1(before), rtol=1e-5, atol=1e-7)

    # The renderings of the run use its attention network and the cell it reads.
    paths = visualize.visualize_run(str(tmp_path / "visualize"), stage1_dir, clip_length=4)
    with Image.open(paths["gif"]) as gif:
        assert gif.n_frames == 4
    assert all(os.path.getsize(paths[key]) > 0 for key in ("fig2", "fig4"))


def _save_checkpoints(directory, count):
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=tf.Variable(0)), directory,
                                         max_to_keep=count)
    return [manager.save() for _ in range(count)][-1]


def test_trained_checkpoints_take_the_newest_stage_of_each_part(tmp_path):
    model_dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a train job directory"):
        stage2.trained_checkpoints(model_dir)
    stage1_dir = os.path.join(model_dir, stage2.STAGE1_DIR)
    run_config.store(stage1_dir, stage1.CONFIG_FILE, stage1.Stage1Config("detection"))
    with pytest.raises(FileNotFoundError, match="No checkpoint in"):
        stage2.trained_checkpoints(model_dir)

    first = _save_checkpoints(os.path.join(stage1_dir, stage1.CHECKPOINT_DIR), 2)
    for directory in (model_dir, stage1_dir):
        assert stage2.trained_checkpoints(directory) == stage2.TrainedCheckpoints(
            stage1_dir, first, None)
    second = _save_checkpoints(os.path.join(model_dir, "stage2", "checkpoints"), 2)
    assert stage2.trained_checkpoints(model_dir) == stage2.TrainedCheckpoints(
        stage1_dir, first, second)
    third = _save_checkpoints(os.path.join(model_dir, "stage3", "checkpoints"), 1)
    assert stage2.trained_checkpoints(model_dir) == stage2.TrainedCheckpoints(
        stage1_dir, third, third)


def test_unrolled_clip_loss_is_differentiable(stage1_dir):
    config = _tiny_config()
    setting = stage2.build_setting(stage1_dir, config, 1e-3)
    clip = next(iter(stage2.training_clips("detection", config, (64, 64), 2, 3, 2, 0)))
    with tf.GradientTape() as tape:
        loss = stage3.unrolled_clip_loss(setting, clip)
    grads = tape.gradient(loss, setting.model.trainable_variables)
    assert np.isfinite(float(loss))
    assert sum(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads) > 10


def test_vid_flags_without_data_name_the_layout(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "patchwork_tf.train", "--flagfile=experiments/vid.flags",
         f"--data_dir={tmp_path}/missing", f"--model_dir={tmp_path}/run"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "ImageSets/VID not found" in result.stderr
    assert "Annotations/VID/{train,val}" in result.stderr  # the expected layout
