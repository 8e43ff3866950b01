"""`train.train_and_evaluate`, the train job as a function, called directly at toy scale."""
import os

from absl import flags
import pytest
import tensorflow as tf

from patchwork_tf import runs
from patchwork_tf import train
from patchwork_tf.training import configs
from patchwork_tf.training import stage1

STAGE1 = stage1.Stage1Config("detection", frame_size=(64, 64), num_steps=2, batch_size=2,
                             num_train_clips=2)
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


def _train_main(*args):
    """`python -m patchwork_tf.train ARGS`, in this process."""
    try:
        flags.FLAGS(["train", *args])
        train.main([])
    finally:
        flags.FLAGS.unparse_flags()


@pytest.mark.slow
def test_stage_one_alone_then_train_and_evaluate_trains_on_and_skips_what_is_done(tmp_path):
    # Stage 3, the evaluation and the export run through train_and_evaluate from every flag
    # file (tests/training/experiments*_test.py); here stages 1 and 2, kept short.
    model_dir = str(tmp_path / "run")
    # README's "stage 1 alone" command, at toy scale.
    _train_main(f"--model_dir={model_dir}", "--stages=1", "--noevaluate", "--noexport",
                "--task=detection", "--stage1_steps=2", "--stage1_batch_size=2",
                "--stage1_train_clips=2", "--frame_size=64")
    stage1_checkpoint = tf.train.latest_checkpoint(
        runs.checkpoint_dir(model_dir, runs.STAGE1_DIR))
    assert stage1_checkpoint.endswith("ckpt-2")
    assert stage1.load_config(os.path.join(model_dir, runs.STAGE1_DIR)) == STAGE1
    assert not os.path.exists(os.path.join(model_dir, runs.PATCHWORK_CONFIG_FILE))

    outcome = train.train_and_evaluate(model_dir, STAGE1, ATTENTION, FINETUNE, stages=(1, 2),
                                       evaluate=False, export=False)
    assert outcome["stage1"]["step"] == 2 and outcome["stage2"]["train_step"] == 3
    assert outcome["stage3"] is outcome["eval"] is outcome["export_dir"] is None
    run = runs.TrainedRun.find(model_dir)
    stage2_checkpoint = tf.train.latest_checkpoint(runs.checkpoint_dir(model_dir, "stage2"))
    assert (run.model_checkpoint, run.agent_checkpoint) == (stage1_checkpoint,
                                                            stage2_checkpoint)
    assert (run.stage1_config, run.finetune) == (STAGE1, FINETUNE)
    assert run.attention == configs.with_observed_cell(ATTENTION, STAGE1)

    # Run again: stage 1 is at its step count, and stage 2 is skipped.
    again = train.train_and_evaluate(model_dir, STAGE1, ATTENTION, FINETUNE, stages=(1, 2),
                                     evaluate=False, export=False)
    assert again["stage1"]["step"] == 2 and again["stage2"] is None
    assert tf.train.latest_checkpoint(runs.checkpoint_dir(model_dir, "stage2")) == \
        stage2_checkpoint
