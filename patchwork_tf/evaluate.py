r"""Evaluates a trained model on video streams: accuracy and latency (paper Sec. 4).

  python -m patchwork_tf.evaluate --model_dir=/tmp/pw_det --policy=dqn --num_clips=16 \
      --output_dir=/tmp/pw_det/eval
  python -m patchwork_tf.evaluate --model_dir=/tmp/pw_det/stage1 --policy=single_frame \
      --interval=4 --delay=3 --output_dir=/tmp/eval_sf
  python -m patchwork_tf.evaluate --saved_model=/tmp/det_export --output_dir=/tmp/eval_sm

`--model_dir` is the train job's output (`stage1/`, `patchwork_config.json`, `stage2/`,
`stage3/`; the stage-3 fine-tuned model and Q-network are used when present, else stage 2's
Q-network on the stage-1 model) or a stage-1 directory alone (enough for `single_frame`,
`scanning` and `random`). `--untrained` builds a freshly initialised model instead
(`--task`, `--depth_multiplier`, `--frame_size`): accuracy is then meaningless, latency is not.
`--saved_model` evaluates a SavedModel of `python -m patchwork_tf.export` through its
`stream_warm_start` / `stream_step` signatures (`evaluation.exported`): the policy is the
exported one (the greedy Q-network, or scanning when the run had no stage 2), the FLOPs are
those recorded at export, and the clips are fed as uint8 frames at the export's frame size
(the default of `--frame_size` then). `--interval` and `--delay` apply; `--flip`,
`--resolution` and `--nocells` change the model and need `--model_dir`.

Variants (Sec. 4): `--resolution` (the model rebuilt at that fraction of its frame size with
the same weights), `--flip`, `--interval`, `--delay`, `--nocells` (windows as plain
zero-padded crops, Tab. 2). The depth multiplier is a different trained model.

Real data (`--data=imagenet_vid|davis --data_dir=...`) is evaluated by the official protocol:
every frame of every validation video (`--max_videos` for a quick look), streams starting
from zero memories (`--stream_start`), scored in the original pixels. A progress bar shows
the ETA; every finished video is kept in `<output_dir>/<name>_progress/`, so a stopped
evaluation run again continues where it stopped (delete that folder to start over).

Writes `<output_dir>/<name>.json` and `.md`: accuracy with its 95 % bootstrap interval over
videos (`accuracy_interval`, `evaluation.bootstrap`), latency, the evaluated `video_ids`; with `--profile_dir`, a TF profiler trace of the
measured frames (TensorBoard: `tensorboard --logdir <profile_dir>`, Profile tab) and
`<output_dir>/<name>_ops.md`, the ops ranked by self-time. Runs TensorFlow on one thread
(intra- and inter-op), as the paper's empirical latency.
"""
import json
import os

from absl import app
from absl import flags

from patchwork_tf import cli
from patchwork_tf import runs
from patchwork_tf.evaluation import api


def _define_flags():
    # --task and --depth_multiplier shape --untrained models; --frame_size also the clips;
    # --m and --n default to the train job's grid (else 4 and 2) unless given.
    cli.define_data_flags()
    cli.define_model_flags()
    cli.define_grid_flags()
    flags.DEFINE_string("model_dir", None, "Train job output or stage-1 directory.")
    flags.DEFINE_bool("untrained", False, "Evaluate a freshly initialised model (latency only).")
    flags.DEFINE_string("saved_model", None, "A SavedModel of python -m patchwork_tf.export; "
                        "its exported policy is evaluated.")
    flags.DEFINE_enum("split", "validation", ["train", "validation", "test"], "Synthetic split.")
    flags.DEFINE_enum("policy", "single_frame", list(api.METHODS), "single_frame: the stock "
                      "model on every key frame; dqn / scanning / random / change: Patchwork "
                      "with that policy (change: the window that changed most, ours).")
    flags.DEFINE_string("observed_cell", None, "Cell the attention policy observes; default: the "
                        "train job's, else the last cell with a memory.")
    flags.DEFINE_bool("flip", False, "Also process the mirrored frame and merge (Sec. 4).")
    flags.DEFINE_integer("interval", 1, "Frames between key frames (Sec. 4).")
    flags.DEFINE_integer("delay", 0, "Frames of allowed prediction delay (Sec. 4).")
    flags.DEFINE_bool("cells", True, "Patchwork Cells; --nocells is the Tab. 2 ablation.")
    flags.DEFINE_bool("fold_batch_norm", True, "Run (and count) each batch norm folded into the "
                      "conv before it, in the single-frame model and the Patchwork step alike; "
                      "a --saved_model runs as it was exported.")
    flags.DEFINE_float("resolution", 1.0, "Model resolution as a fraction of its frame size.")
    flags.DEFINE_integer("num_clips", 8, "Synthetic clips evaluated.")
    flags.DEFINE_integer("max_videos", None, "Real data: evaluate only the first videos of the "
                         "validation split (a quick look; the tables say the number is not "
                         "over the whole split). Default: every video, every frame.")
    flags.DEFINE_enum("stream_start", None, ["zeros", "key_frame"], "How each video's stream "
                      "starts: zero memories, or a full-frame key frame. Default: zeros on real "
                      "data, key_frame on the synthetic benchmark.")
    flags.DEFINE_integer("clip_length", 16, "Frames per clip.")
    flags.DEFINE_string("name", None, "Name of the configuration (file names, tables).")
    flags.DEFINE_string("output_dir", None, "Where the JSON and Markdown go.")
    flags.DEFINE_string("profile_dir", None, "Write a TF profiler trace of the measured frames.")
    flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op threads.")


def _check_flags(FLAGS):
    if sum([bool(FLAGS.model_dir), FLAGS.untrained, bool(FLAGS.saved_model)]) != 1:
        raise app.UsageError("Give exactly one of --model_dir, --untrained and --saved_model.")
    if FLAGS.saved_model and (FLAGS.flip or FLAGS.resolution != 1.0 or not FLAGS.cells):
        raise app.UsageError(
            "--flip, --resolution and --nocells change the model, which a SavedModel holds "
            "fixed: evaluate the train run with --model_dir for those variants.")
    if FLAGS.interval < 1 or FLAGS.delay < 0:
        raise app.UsageError(f"--interval must be >= 1 and --delay >= 0, got {FLAGS.interval} and "
                             f"{FLAGS.delay}.")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required.")


def _given(FLAGS, name):
    """The flag's value when given on the command line, else None (the run's own)."""
    return FLAGS[name].value if FLAGS[name].present else None


def _load_saved_model(FLAGS):
    """The exported model, its policy and the clips' frame size, checked against the flags."""
    from patchwork_tf.evaluation import exported

    try:
        loaded = exported.load(FLAGS.saved_model)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(f"--saved_model: {e}") from e
    record = loaded.metadata
    policy = FLAGS.policy if FLAGS["policy"].present else record["policy"]
    try:
        api.check_exported_config(loaded, policy, _given(FLAGS, "m"), _given(FLAGS, "n"),
                                  FLAGS.cells, FLAGS.flip, FLAGS.observed_cell)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    height, width = record["frame_size"]
    frame_size = FLAGS.frame_size if FLAGS["frame_size"].present else height
    if (frame_size, frame_size) != (height, width):
        raise app.UsageError(
            f"--frame_size={frame_size}, but the SavedModel takes {height}x{width} uint8 frames "
            "and resizes nothing; drop --frame_size to evaluate it on clips of its size.")
    return loaded, policy, frame_size


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    _check_flags(FLAGS)
    api.pin_threads(FLAGS.threads)
    from patchwork_tf.evaluation import profiling
    from patchwork_tf.evaluation import results
    from patchwork_tf.evaluation import stream

    policy, frame_size, settings = FLAGS.policy, FLAGS.frame_size, {}
    if FLAGS.saved_model:
        loaded, policy, frame_size = _load_saved_model(FLAGS)
        settings["saved_model"] = stream.saved_model_id(FLAGS.saved_model)
    elif FLAGS.untrained:
        loaded = api.untrained_model(FLAGS.task, FLAGS.depth_multiplier, runs.scaled_size(
            (FLAGS.frame_size,) * 2, FLAGS.resolution))
    else:
        loaded = api.load_trained(FLAGS.model_dir, FLAGS.resolution,
                                  with_q_network=FLAGS.policy == "dqn")
    default_m, default_n = api.default_grid(loaded)
    m = _given(FLAGS, "m") or default_m
    n = _given(FLAGS, "n") or default_n
    name = FLAGS.name or "_".join(
        [policy] + ([f"m{m}n{n}"] if policy != "single_frame" else [])
        + ([f"res{FLAGS.resolution:g}"] if FLAGS.resolution != 1.0 else [])
        + (["flip"] if FLAGS.flip else []) + ([f"k{FLAGS.interval}"] if FLAGS.interval > 1 else [])
        + ([f"d{FLAGS.delay}"] if FLAGS.delay else []) + ([] if FLAGS.cells else ["nocells"])
        + (["savedmodel"] if FLAGS.saved_model else []))
    settings.update(resolution=FLAGS.resolution)
    result, ops = api.evaluate(
        loaded, policy, m, n, FLAGS.cells, FLAGS.flip, FLAGS.interval, FLAGS.delay,
        FLAGS.observed_cell, FLAGS.split, FLAGS.num_clips, FLAGS.clip_length,
        (frame_size, frame_size), name=name, settings=settings, profile_dir=FLAGS.profile_dir,
        data=FLAGS.data, data_dir=FLAGS.data_dir, fold_batch_norm=FLAGS.fold_batch_norm,
        stream_start=FLAGS.stream_start, max_videos=FLAGS.max_videos,
        progress_dir=os.path.join(FLAGS.output_dir, f"{name}_progress"), show_progress=True)
    record = result.to_json()
    results.write_results([record], FLAGS.output_dir, name)
    if ops is not None:
        with open(os.path.join(FLAGS.output_dir, f"{name}_ops.md"), "w") as f:
            f.write(profiling.op_summary_markdown(ops))
    print(results.markdown_table([record]))
    print(json.dumps({k: record[k] for k in ("accuracy", "theoretical", "empirical")}, indent=1))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
