"""Runs a train flag file of experiments/ at toy scale, in this process: only sizes are
overridden (steps, frame size, depth multiplier, clip and buffer sizes, video counts), and
where the data and the outputs live."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS = os.path.join(REPO, "experiments")
TOY_SIZES = [
    "--frame_size=128", "--alpha=0.35", "--stage1_steps=2", "--stage1_batch_size=2",
    "--stage1_train_clips=4", "--num_streams=2", "--clip_length=4", "--num_train_clips=4",
    "--replay_capacity=8", "--sample_batch_size=4", "--initial_collect_steps=2",
    "--target_update_period=2", "--epsilon_decay_steps=2", "--stage2_steps=2",
    "--stage3_steps=4", "--stage3_finetune_every=2", "--stage3_clip_length=2",
    "--stage3_batch_size=1", "--eval_clips=1", "--eval_max_videos=1"]


def train_flag_file(name, model_dir, *overrides):
    """`python -m patchwork_tf.train --flagfile=experiments/<name>` at toy scale, run from the
    repository root (flag files include others by paths relative to it)."""
    from absl import flags
    from patchwork_tf import train
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        flags.FLAGS(["train", f"--flagfile={os.path.join('experiments', name)}",
                     f"--model_dir={model_dir}", *TOY_SIZES, *overrides])
        train.main([])
    finally:
        flags.FLAGS.unparse_flags()
        os.chdir(cwd)
    return model_dir
