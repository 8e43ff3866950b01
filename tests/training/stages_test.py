"""Stages 2 and 3 on a tiny setting: stored settings, checkpoints, the unrolled clip loss."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf import runs
from patchwork_tf.training import configs
from patchwork_tf.training import run_config
from patchwork_tf.training import stage1
from patchwork_tf.training import stage2
from patchwork_tf.training import stage3

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tiny_config(**overrides):
    values = dict(m=2, n=1, num_streams=2, clip_length=3, num_train_clips=2,
                  replay_capacity=20, sample_batch_size=4, initial_collect_steps=2,
                  target_update_period=2, epsilon_decay_steps=4, stage2_steps=3)
    values.update(overrides)
    return configs.AttentionConfig(**values)


def _tiny_finetune(**overrides):
    return configs.FinetuneConfig(**dict(dict(steps=5, finetune_every=1, clip_length=3,
                                              batch_size=2), **overrides))


@pytest.fixture(scope="module")
def stage1_dir(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("patchwork"))
    stage1.train_stage1(os.path.join(model_dir, runs.STAGE1_DIR), stage1.Stage1Config(
        "detection", frame_size=(64, 64), num_steps=2, batch_size=2, num_train_clips=2,
        frames_per_clip=2), verbose=0)
    return model_dir


def test_a_resumed_stage_refuses_other_settings(stage1_dir):
    # Stage 3's fine-tuning of all but batch norm, the evaluation and export of the fine-tuned
    # weights run on the synthetic_det.flags run in experiments_test.py; DDQN's resume in
    # tests/policy/trainer_test.py.
    stored, finetune = stage2.store_config(stage1_dir, _tiny_config(), _tiny_finetune())
    assert stored.observed_cell == "block_13_depthwise"   # named by the SSDLite builder
    assert finetune == _tiny_finetune()
    # Step counts may grow; finetune None keeps the stored one.
    assert stage2.store_config(stage1_dir, _tiny_config(stage2_steps=9),
                               _tiny_finetune(steps=9))[1].steps == 9
    assert stage2.store_config(stage1_dir, _tiny_config(stage2_steps=9))[1] == _tiny_finetune(
        steps=9)
    with pytest.raises(ValueError, match="other settings"):
        stage2.store_config(stage1_dir, _tiny_config(gamma=0.5))
    with pytest.raises(ValueError, match="other settings"):
        stage2.store_config(stage1_dir, _tiny_config(), _tiny_finetune(batch_size=3))
    with pytest.raises(ValueError, match="must not be smaller"):
        stage2.store_config(stage1_dir, _tiny_config(stage2_steps=10), _tiny_finetune(steps=9))


# patchwork_config.json as runs stored it before the settings were split in two.
_STORED_BEFORE_THE_SPLIT = {
    "change_cue": True, "clip_length": 16, "data": "synthetic", "data_dir": None,
    "epsilon_decay_steps": 500, "epsilon_end": 0.05, "epsilon_start": 1.0, "gamma": 0.9,
    "history_alpha": 0.5, "initial_collect_steps": 32, "learning_rate": 0.001, "m": 4, "n": 2,
    "num_streams": 8, "num_train_clips": 256, "observed_cell": "block_13_depthwise",
    "q_network": "ours", "replay_capacity": 1000, "reward": "clipped", "sample_batch_size": 64,
    "seed": 0, "stage2_steps": 600, "stage3_batch_size": 4, "stage3_clip_length": 6,
    "stage3_finetune_every": 4, "stage3_learning_rate": 0.0001, "stage3_q_learning_rate": 0.0002,
    "stage3_steps": 900, "still_data": "none", "still_data_dir": None, "still_fraction": 0.5,
    "target_update_period": 100}


def test_stored_settings_of_runs_before_the_split_still_load(tmp_path):
    attention, finetune = configs.from_json(_STORED_BEFORE_THE_SPLIT)
    assert attention == configs.AttentionConfig(observed_cell="block_13_depthwise")
    assert finetune == configs.FinetuneConfig()
    # Settings added since (imitation_steps, demonstration_weight, counterfactual_steps,
    # n_step) take their defaults.
    assert configs.to_json(attention, finetune) == dict(
        _STORED_BEFORE_THE_SPLIT, imitation_steps=0, demonstration_weight=0.0,
        counterfactual_steps=0, n_step=1)
    with pytest.raises(ValueError, match=r"unknown settings \['stage4_steps'\]"):
        configs.from_json(dict(_STORED_BEFORE_THE_SPLIT, stage4_steps=1))
    with open(tmp_path / runs.PATCHWORK_CONFIG_FILE, "w") as f:
        json.dump(dict(_STORED_BEFORE_THE_SPLIT, imitation=1), f)
    with pytest.raises(ValueError, match="patchwork_config.json: unknown settings"):
        runs.load_patchwork_configs(str(tmp_path))


def _save_checkpoints(directory, count):
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=tf.Variable(0)), directory,
                                         max_to_keep=count)
    return [manager.save() for _ in range(count)][-1]


def _found(directory):
    run = runs.TrainedRun.find(directory)
    return run.stage1_dir, run.model_checkpoint, run.agent_checkpoint


def test_a_trained_run_takes_the_newest_stage_of_each_part(tmp_path):
    model_dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a train job directory"):
        runs.TrainedRun.find(model_dir)
    stage1_dir = os.path.join(model_dir, runs.STAGE1_DIR)
    run_config.store(stage1_dir, stage1.CONFIG_FILE, stage1.Stage1Config("detection"))
    with pytest.raises(FileNotFoundError, match="No checkpoint in"):
        runs.TrainedRun.find(model_dir)

    first = _save_checkpoints(os.path.join(stage1_dir, stage1.CHECKPOINT_DIR), 2)
    for directory in (model_dir, stage1_dir):
        assert _found(directory) == (stage1_dir, first, None)
    assert runs.TrainedRun.find(model_dir).attention is None
    second = _save_checkpoints(os.path.join(model_dir, "stage2", "checkpoints"), 2)
    assert _found(model_dir) == (stage1_dir, first, second)
    third = _save_checkpoints(os.path.join(model_dir, "stage3", "checkpoints"), 1)
    assert _found(model_dir) == (stage1_dir, third, third)
    stage2.store_config(model_dir, _tiny_config(), _tiny_finetune())
    run = runs.TrainedRun.find(model_dir)
    assert run.attention == configs.with_observed_cell(_tiny_config(),
                                                       stage1.Stage1Config("detection"))
    assert run.finetune == _tiny_finetune()


def test_unrolled_clip_loss_is_differentiable(stage1_dir):
    config = _tiny_config()
    setting = stage2.build_setting(stage1_dir, config, 1e-3)
    clip = next(iter(stage2.training_clips("detection", config, (64, 64), 2, 3, 2, 0)))
    with tf.GradientTape() as tape:
        loss = stage3.unrolled_clip_loss(setting, clip)
    grads = tape.gradient(loss, setting.patchwork.model.trainable_variables)
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


def test_finished_step_reads_the_newest_checkpoint_number(tmp_path):
    assert runs.finished_step(str(tmp_path), "stage2") is None
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(step=tf.Variable(1)), str(tmp_path / "stage2" / "checkpoints"),
        max_to_keep=2)
    manager.save(checkpoint_number=3)
    manager.save(checkpoint_number=12)
    assert runs.finished_step(str(tmp_path), "stage2") == 12


# A tiny stage 2 with imitation, the demonstration loss and the full-information fit: 37-50 s
# here under load 4-10.
@pytest.mark.slow
def test_stage2_learns_from_the_rule_first(stage1_dir, tmp_path, monkeypatch):
    from patchwork_tf.policy import counterfactual
    from patchwork_tf.policy import imitation
    model_dir = str(tmp_path)
    os.symlink(os.path.join(stage1_dir, runs.STAGE1_DIR),
               os.path.join(model_dir, runs.STAGE1_DIR))
    calls, collected, fitted = [], [], []
    real_warm_start, real_demonstrations = imitation.warm_start, imitation.rule_demonstrations
    real_fit = counterfactual.warm_start

    def warm_start(env, agent, num_steps, **kwargs):
        calls.append((num_steps, kwargs["demonstrations"]))
        return real_warm_start(env, agent, num_steps, **kwargs)

    def rule_demonstrations(env):
        collected.append(real_demonstrations(env, steps_per_stream=4))
        return collected[-1]

    def fit(patchwork, agent, clips, num_steps, num_rounds, **kwargs):
        fitted.append((calls[:], num_steps, num_rounds,
                       real_fit(patchwork, agent, clips, num_steps, num_rounds, **kwargs)))
        return fitted[-1][-1]
    monkeypatch.setattr(imitation, "warm_start", warm_start)
    monkeypatch.setattr(imitation, "rule_demonstrations", rule_demonstrations)
    monkeypatch.setattr(counterfactual, "warm_start", fit)
    settings = {"imitation_steps": 2, "demonstration_weight": 0.5, "counterfactual_steps": 2,
                "n_step": 2}
    config = _tiny_config(**settings)
    assert stage2.train_stage2(model_dir, config, verbose=0)["train_step"] == 3
    stored = runs.load_patchwork_configs(model_dir)[0]
    assert (stored.imitation_steps, stored.demonstration_weight,
            stored.counterfactual_steps, stored.n_step) == (2, 0.5, 2, 2)
    # One set of the rule's demonstrations serves the warm start and the DDQN steps' margin
    # loss.
    assert len(collected) == 1 and calls == [(2, collected[0])]
    # The full-information fit follows the imitation: one pass of the 2 training clips,
    # 2 streams x 2 frames after the key frame.
    assert [entry[:3] for entry in fitted] == [(calls, 2, 1)]
    assert fitted[0][3]["rows"] == 4
    # A resume must keep the settings.
    for changed in settings:
        off = 1 if changed == "n_step" else 0
        with pytest.raises(ValueError, match=changed):
            stage2.store_config(model_dir, _tiny_config(**dict(settings, **{changed: off})))
