"""`train.train_and_evaluate`, the train job as a function, called directly at toy scale."""
import os

import pytest
import tensorflow as tf

from patchwork_tf import runs
from patchwork_tf import train
from patchwork_tf.training import configs
from patchwork_tf.training import stage1

STAGE1 = stage1.Stage1Config("detection", frame_size=(64, 64), num_steps=2, batch_size=2,
                             num_train_clips=2, frames_per_clip=2)
ATTENTION = configs.AttentionConfig(
    m=2, n=1, num_streams=2, clip_length=3, num_train_clips=2, replay_capacity=20,
    sample_batch_size=4, initial_collect_steps=2, target_update_period=2,
    epsilon_decay_steps=4, stage2_steps=3)
FINETUNE = configs.FinetuneConfig(steps=5, finetune_every=2, clip_length=3, batch_size=2)


def test_train_and_evaluate_refuses_bad_stages_and_steps_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"stages are of 1, 2, 3; got \[4\]"):
        train.train_and_evaluate(str(tmp_path), STAGE1, ATTENTION, FINETUNE, stages=(1, 4))
    with pytest.raises(ValueError, match="must not be smaller"):
        train.train_and_evaluate(str(tmp_path), STAGE1, ATTENTION,
                                 configs.FinetuneConfig(steps=2))
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_train_and_evaluate_trains_the_stages_and_skips_them_when_done(tmp_path):
    # Stage 3, the evaluation and the export run through it from every flag file
    # (tests/training/experiments*_test.py); here stages 1 and 2, kept short.
    model_dir = str(tmp_path / "run")
    outcome = train.train_and_evaluate(model_dir, STAGE1, ATTENTION, FINETUNE, stages=(1, 2),
                                       evaluate=False, export=False)
    assert outcome["stage1"]["step"] == 2 and outcome["stage2"]["train_step"] == 3
    assert outcome["stage3"] is outcome["eval"] is outcome["export_dir"] is None
    run = runs.TrainedRun.find(model_dir)
    stage2_checkpoint = tf.train.latest_checkpoint(runs.checkpoint_dir(model_dir, "stage2"))
    assert run.agent_checkpoint == stage2_checkpoint
    assert run.model_checkpoint == tf.train.latest_checkpoint(
        runs.checkpoint_dir(model_dir, runs.STAGE1_DIR))
    assert (run.stage1_config, run.finetune) == (STAGE1, FINETUNE)
    assert run.attention == configs.with_observed_cell(ATTENTION, STAGE1)

    # Run again: stage 1 is at its step count, and stage 2 is skipped.
    again = train.train_and_evaluate(model_dir, STAGE1, ATTENTION, FINETUNE, stages=(1, 2),
                                     evaluate=False, export=False)
    assert again["stage1"]["step"] == 2 and again["stage2"] is None
    assert tf.train.latest_checkpoint(runs.checkpoint_dir(model_dir, "stage2")) == \
        stage2_checkpoint
