r"""Renders Fig. 2, Fig. 4 and a GIF of a synthetic clip run through a Patchwork twin.

  python -m patchwork_tf.visualize --output_dir=/tmp/patchwork_figures \
      --task=detection --frame_size=128 --depth_multiplier=0.35 --m=4 --n=2 \
      --policy=scanning --cell=block_6_depthwise

writes `fig2_memory.png` (the observed cell's memory forming a patchwork over five steps,
beside the frames and windows), `fig4_predictions.png` (predictions and the window over ten
consecutive frames) and `clip.gif` (the whole clip). The twin starts from zero memories, so
the patchwork is seen forming. Without `--checkpoint` the model has random weights: the
memory patchwork is meaningful, the predictions are not.
"""
import os

from absl import app
from absl import flags
from absl import logging

import patchwork_tf as pw
from patchwork_tf import cli
from patchwork_tf import runs
from patchwork_tf import tasks
from patchwork_tf.data import synthetic
from patchwork_tf.visualization import animation
from patchwork_tf.visualization import figures
from patchwork_tf.visualization import rollout as rollout_lib


def visualize(output_dir, task="detection", frame_size=128, depth_multiplier=0.35, m=4, n=2,
              policy="scanning", cell="block_6_depthwise", split="validation", clip_index=0,
              clip_length=16, checkpoint=None, score_threshold=0.5, method="pca", seed=0):
    """Runs a twin over one synthetic clip and writes the three renderings.

    Args:
      output_dir: directory for the files (created if missing).
      task: 'backbone', 'detection' or 'segmentation' (`runs.MODEL_TASKS`).
      frame_size, depth_multiplier, m, n: the model and window grid.
      policy: 'scanning' or 'random'.
      cell: the cell whose memory Fig. 2 shows.
      split, clip_index, clip_length: which clip of the synthetic benchmark.
      checkpoint: optional stage-1 checkpoint of the model (see `runs.restore_checkpoint`).
      score_threshold: detections below it are not drawn.
      method: memory rendering, 'pca' or 'mean'.
      seed: the random policy's seed.

    Returns:
      dict of the written paths: `fig2`, `fig4`, `gif`.
    """
    model, postprocess = runs.build_model(task, frame_size, depth_multiplier)
    if checkpoint:
        runs.restore_checkpoint(model, checkpoint)
    twin = pw.patchwork_model(model, pw.WindowGrid((frame_size, frame_size), m, n))
    # The backbone alone runs on the detection flavour of the benchmark.
    clip_task = task if task in tasks.TASKS else tasks.DetectionTask.name
    return _render(output_dir, twin, postprocess, clip_task, policy, cell, split, clip_index,
                   clip_length, score_threshold, method, seed)


def visualize_run(output_dir, model_dir, policy="dqn", cell=None, split="test", clip_index=0,
                  clip_length=16, score_threshold=0.5, method="pca", seed=0):
    """As `visualize`, for a `python -m patchwork_tf.train` run: its trained weights, and with
    policy 'dqn' its attention network (which reads, and Fig. 2 then shows, its cell)."""
    run = runs.TrainedRun.find(model_dir)
    model = run.build_model()
    twin = run.build_twin(model, write="window")
    observation_kwargs = {}
    if policy == "dqn":
        cell = run.observed_cell
        policy = run.restore_q_network(twin)
        observation_kwargs = dict(alpha=run.attention.history_alpha,
                                  change_cue=run.attention.change_cue)
    return _render(output_dir, twin, run.postprocess(model), run.stage1_config.task, policy,
                   cell or "block_6_depthwise", split, clip_index, clip_length,
                   score_threshold, method, seed, observation_kwargs)


def _render(output_dir, twin, postprocess, clip_task, policy, cell, split, clip_index,
            clip_length, score_threshold, method, seed, observation_kwargs=None):
    os.makedirs(output_dir, exist_ok=True)
    frame_size = twin.frame_size[0]
    if cell not in twin.state_spec():
        raise ValueError(f"cell {cell!r} has no memory in this twin; choose one of "
                         f"{list(twin.state_spec())}.")
    clip = next(synthetic.synthetic_clips(split, clip_task, num_clips=1, frame_size=frame_size,
                                          clip_length=clip_length, start=clip_index))
    # Fig. 2 shows the patchwork forming from zero memories; Fig. 4 and the GIF show the
    # stream as it runs, from a key frame.
    from_zeros, from_key_frame = (
        rollout_lib.rollout(twin, clip["frames"], policy, cell_name=cell,
                            postprocess=postprocess, seed=seed, warm_start=warm,
                            **(observation_kwargs or {}))
        for warm in (False, True))
    names = synthetic.CLASS_NAMES
    return {
        "fig2": figures.figure2(from_zeros, os.path.join(output_dir, "fig2_memory.png"),
                                method=method),
        "fig4": figures.figure4(from_key_frame,
                                os.path.join(output_dir, "fig4_predictions.png"), names,
                                score_threshold=score_threshold),
        "gif": animation.clip_gif(from_key_frame, os.path.join(output_dir, "clip.gif"), names,
                                  score_threshold=score_threshold, method=method),
    }


def define_flags():
    flags.DEFINE_string("output_dir", None, "Where to write the images.", required=True)
    flags.DEFINE_string("model_dir", None, "A `patchwork_tf.train` run: its trained model "
                        "and (with --policy=dqn) attention network; the model flags below "
                        "are then read from the run.")
    cli.define_model_flags(backbone=True)
    cli.define_grid_flags()
    flags.DEFINE_enum("policy", "scanning", rollout_lib.POLICIES + ("dqn",),
                      "Attention policy; dqn needs --model_dir.")
    flags.DEFINE_string("cell", "block_6_depthwise", "The cell whose memory Fig. 2 shows.")
    flags.DEFINE_enum("split", "validation", synthetic.SPLITS, "Synthetic benchmark split.")
    flags.DEFINE_integer("clip_index", 0, "Index of the clip in the split.")
    flags.DEFINE_integer("clip_length", 16, "Frames of the clip.")
    flags.DEFINE_string("checkpoint", None,
                        "Stage-1 tf.train.Checkpoint(model=...): a prefix or a directory.")
    flags.DEFINE_float("score_threshold", 0.5, "Detections below it are not drawn.")
    flags.DEFINE_enum("method", "pca", ("pca", "mean"), "Memory rendering.")
    flags.DEFINE_integer("seed", 0, "Seed of the random policy.")


def main(argv):
    del argv
    f = flags.FLAGS
    if f.policy == "dqn" and not f.model_dir:
        raise app.UsageError("--policy=dqn needs --model_dir (a trained run).")
    if f.model_dir:
        paths = visualize_run(f.output_dir, f.model_dir, policy=f.policy,
                              cell=None if f.policy == "dqn" else f.cell, split=f.split,
                              clip_index=f.clip_index, clip_length=f.clip_length,
                              score_threshold=f.score_threshold, method=f.method, seed=f.seed)
        for name, path in paths.items():
            logging.info("Wrote %s: %s", name, path)
        return
    paths = visualize(f.output_dir, task=f.task, frame_size=f.frame_size,
                      depth_multiplier=f.depth_multiplier, m=f.m, n=f.n, policy=f.policy,
                      cell=f.cell, split=f.split, clip_index=f.clip_index,
                      clip_length=f.clip_length, checkpoint=f.checkpoint,
                      score_threshold=f.score_threshold, method=f.method, seed=f.seed)
    for name, path in paths.items():
        logging.info("Wrote %s: %s", name, path)


if __name__ == "__main__":
    define_flags()
    app.run(main)
