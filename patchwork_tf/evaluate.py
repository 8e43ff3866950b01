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
(`--task`, `--alpha`, `--frame_size`): accuracy is then meaningless, latency is not.
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
import dataclasses
import json
import os

from absl import app
from absl import flags

METHODS = ("single_frame", "dqn", "scanning", "random", "change")


def _define_flags():
    flags.DEFINE_string("model_dir", None, "Train job output or stage-1 directory.")
    flags.DEFINE_bool("untrained", False, "Evaluate a freshly initialised model (latency only).")
    flags.DEFINE_string("saved_model", None, "A SavedModel of python -m patchwork_tf.export; "
                        "its exported policy is evaluated.")
    flags.DEFINE_enum("task", "detection", ["detection", "segmentation"],
                      "Task of --untrained models.")
    flags.DEFINE_float("alpha", 0.35, "Depth multiplier of --untrained models.")
    flags.DEFINE_integer("frame_size", 128, "Frame size of --untrained models and of the clips.")
    flags.DEFINE_enum("split", "validation", ["train", "validation", "test"], "Synthetic split.")
    flags.DEFINE_enum("data", "synthetic", ["synthetic", "imagenet_vid", "davis"],
                      "Source of the clips (real sources evaluate their val split).")
    flags.DEFINE_string("data_dir", None, "Root of the real source's local copy.")
    flags.DEFINE_enum("policy", "single_frame", list(METHODS), "single_frame: the stock model on "
                      "every key frame; dqn / scanning / random / change: Patchwork with that "
                      "policy (change: the window that changed most, ours).")
    flags.DEFINE_integer("m", None, "Grid slices per side; default: the train job's, else 4.")
    flags.DEFINE_integer("n", None, "Slices per window side; default: the train job's, else 2.")
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


@dataclasses.dataclass
class LoadedModel:
    """A single-frame model and what evaluating it needs."""

    model: object
    task: str
    num_classes: int = 0
    q_fn: object = None                 # the attention network, observation -> Q-values
    agent_checkpoint: str = None        # ... or the stage-2/3 checkpoint it is restored from
    # m, n, observed_cell, alpha, change_cue, q_network
    patchwork: dict = dataclasses.field(default_factory=dict)
    config: object = None               # the model's `stage1.Stage1Config` (architecture)
    # Which weights these are (checkpoint paths and times), so that saved evaluation progress
    # of other weights is never taken for this model's.
    checkpoints: str = None


def _checkpoint_id(*paths):
    return "; ".join(f"{path}@{os.path.getmtime(path + '.index'):.0f}" for path in paths
                     if path and os.path.exists(path + ".index"))


def pin_threads(threads=1):
    """Sets TensorFlow's intra- and inter-op threads of this process (the paper's empirical
    latency is single-threaded). Must run before TensorFlow runs anything; TensorFlow raises
    RuntimeError otherwise, and `run_single_threaded` is the way out."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def thread_config():
    """(intra-op, inter-op) threads of this process's TensorFlow (0: TF's default, every
    core)."""
    import tensorflow as tf
    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())


def run_single_threaded(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` in a fresh process whose TensorFlow runs on one thread
    (`pin_threads(1)`); returns its result, re-raises its exception.

    For a process that has run TensorFlow already (the train job evaluating after training),
    whose thread pools are fixed; `fn`, its arguments and its result must pickle (a module
    level function, plain values).
    """
    import concurrent.futures
    import multiprocessing
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=pin_threads, initargs=(1,)) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def scaled_size(frame_size, resolution):
    """`frame_size` scaled by `resolution`, rounded; refuses frames below 32 pixels."""
    size = tuple(int(round(s * resolution)) for s in frame_size)
    if resolution <= 0 or any(s < 32 for s in size):
        raise ValueError(f"resolution {resolution} of a {frame_size} model gives {size} frames; "
                         "MobileNetV2 needs at least 32x32.")
    return size


def untrained_model(task, alpha, frame_size, num_classes=5, seed=0):
    """A freshly initialised stage-1 architecture (SSDLite or DeepLabv3-lite on MobileNetV2),
    as `stage1.build_model` builds it for a run of `task`, `alpha` and `frame_size`."""
    import tf_keras
    from patchwork_tf.training import stage1
    config = stage1.Stage1Config(task, frame_size=frame_size, alpha=alpha)
    tf_keras.utils.set_random_seed(seed)
    model = stage1.build_model(config, num_classes=num_classes)
    return LoadedModel(model, task, num_classes, config=config)


def load_trained(model_dir, resolution=1.0, with_q_network=True):
    """The trained model of a train job (or stage-1) directory, rebuilt at `resolution`.

    The architecture comes from the stage-1 config with the frame size scaled; the weights and
    the attention network (when asked for and trained) from `stage2.trained_checkpoints`: the
    stage-3 fine-tuned model when there is one, else stage 1, and the Q-network of stage 3,
    else stage 2.
    """
    from patchwork_tf.training import stage1
    from patchwork_tf.training import stage2

    checkpoints = stage2.trained_checkpoints(model_dir)
    config = stage1.load_config(checkpoints.stage1_dir)
    model = _build_at_resolution(stage1, config, resolution, checkpoints.stage1_dir)
    checkpoints.restore_model(model)
    loaded = LoadedModel(model, config.task, config.num_classes, config=config,
                         checkpoints=_checkpoint_id(checkpoints.model, with_q_network and
                                                    checkpoints.agent))
    if os.path.exists(os.path.join(model_dir, stage2.CONFIG_FILE)):
        patchwork = stage2.load_config(model_dir)
        loaded.patchwork = {"m": patchwork.m, "n": patchwork.n,
                            "observed_cell": patchwork.observed_cell,
                            "alpha": patchwork.history_alpha,
                            "change_cue": patchwork.change_cue,
                            "q_network": patchwork.q_network}
        if with_q_network:
            loaded.agent_checkpoint = checkpoints.agent
    return loaded


def _build_at_resolution(stage1, config, resolution, stage1_dir):
    """The stage-1 architecture at `resolution`, with the trained model's layers unchanged.

    Checkpoints restore layer by layer, so the rebuilt model must have the same layers: for
    SSDLite the number of extra layers is fixed to the trained model's, and a frame too small
    to hold them is refused (that resolution needs its own trained model).
    """
    from patchwork_tf import tasks

    config = tasks.get(config.task).fixed_layers(config)
    trained_size = tuple(config.frame_size)
    config = dataclasses.replace(config, frame_size=scaled_size(trained_size, resolution))
    try:
        return stage1.build_model(config)
    except ValueError as e:
        raise ValueError(
            f"The model of {stage1_dir} (trained at {trained_size}) cannot run at resolution "
            f"{resolution} ({config.frame_size}) with the same layers: {e} Train a model at that "
            "frame size and evaluate it with its own --model_dir.") from e


def _restore_q_fn(twin, observed_cell, agent_checkpoint, change_cue, variant):
    """The stage-2/3 `AttentionQNetwork` for this twin's grid and memory, restored (a
    resolution variant reads the same checkpoint, `q_network.for_twin`)."""
    from patchwork_tf.policy import q_network as q_network_lib
    from patchwork_tf.training import stage2

    q_net = q_network_lib.for_twin(twin, observed_cell, change_cue, variant)
    stage2.restore_q_network(q_net, agent_checkpoint).assert_existing_objects_matched()
    return lambda observation: q_net(observation)[0]


def check_exported_config(exported, policy, m=None, n=None, cells=True, flip=False,
                          observed_cell=None):
    """Refuses a configuration an exported SavedModel cannot run (`evaluation.exported`).

    The SavedModel holds one twin and one policy; None for `m`, `n` and `observed_cell`
    means "the exported one".

    Raises:
      ValueError: naming the setting, the exported value and the fix.
    """
    record = exported.metadata
    checkpoint = f"evaluate the train run's --model_dir instead of the SavedModel {exported.path}"
    if policy != record["policy"]:
        raise ValueError(
            f"The SavedModel {exported.path} runs the {record['policy']!r} policy inside its "
            f"step; policy {policy!r} needs the model itself: {checkpoint}.")
    for what, value, exported_value in (("m", m, record["m"]), ("n", n, record["n"]),
                                        ("observed_cell", observed_cell, record["policy_cell"])):
        if value is not None and value != exported_value:
            raise ValueError(f"The SavedModel {exported.path} was exported with {what}="
                             f"{exported_value!r}, not {value!r}; drop the setting or export "
                             "another model.")
    for what, refused in (("flip", flip), ("no Patchwork Cells", not cells)):
        if refused:
            raise ValueError(f"The {what} variant changes the model the SavedModel holds: "
                             f"{checkpoint}.")


def build_runner(loaded, policy="single_frame", m=4, n=2, cells=True, flip=False,
                 observed_cell=None, fold_batch_norm=True):
    """The stream runner of one configuration (see `evaluation.stream`).

    `loaded` is a `LoadedModel`, or an `evaluation.exported.ExportedModel` whose own policy
    and grid the configuration must name (`check_exported_config`); an exported model runs
    batch norm as it was exported. The Patchwork step is the inference preset
    (`patchwork_model(..., inference=True)`). With `fold_batch_norm` (inference only) the
    single-frame model and the Patchwork step run each batch norm folded into the conv before
    it (`core.folding`), so both are counted and timed the same way; without it the step
    keeps the preset's other options.
    """
    import patchwork_tf as pw
    from patchwork_tf.core import folding
    from patchwork_tf.evaluation import exported
    from patchwork_tf.evaluation import stream
    from patchwork_tf import tasks

    if isinstance(loaded, exported.ExportedModel):
        check_exported_config(loaded, policy, m, n, cells, flip, observed_cell)
        return exported.SavedModelRunner(loaded)
    model = loaded.model
    task = tasks.get(loaded.task).for_model(model, loaded.config)
    if policy == "single_frame":
        return stream.SingleFrameRunner(
            folding.fold_batch_norm_model(model) if fold_batch_norm else model, task, flip=flip)
    if policy == "dqn":
        # The trained attention network reads the cell it was trained on; the hand-designed
        # policies ignore the observation, so any grid works for them.
        observed_cell = observed_cell or loaded.patchwork.get("observed_cell")
    grid = pw.WindowGrid(tuple(model.inputs[0].shape[1:3]), m, n)
    # The inference preset (XLA, band writes, folded batch norm); without folding, the
    # preset's other options.
    options = (dict(inference=True) if fold_batch_norm else
               dict(pw.INFERENCE_OPTIONS, fold_batch_norm=False))
    twin = pw.patchwork_model(model, grid,
                              full_memory_cells=[observed_cell] if observed_cell else [],
                              context="memory" if cells else "zeros", **options)
    q_fn = None
    if policy == "dqn":
        q_fn = loaded.q_fn
        if q_fn is None and loaded.agent_checkpoint:
            q_fn = _restore_q_fn(twin, observed_cell, loaded.agent_checkpoint,
                                 loaded.patchwork.get("change_cue", False),
                                 loaded.patchwork.get("q_network", "ours"))
        if q_fn is None:
            raise ValueError("policy 'dqn' needs a trained attention network: pass a train job's "
                             "--model_dir with a stage2/ or stage3/ checkpoint.")
    return stream.PatchworkRunner(twin, task, policy=policy, q_fn=q_fn,
                                  observed_cell=observed_cell,
                                  alpha=loaded.patchwork.get("alpha", 0.5), flip=flip,
                                  change_cue=policy == "dqn" and loaded.patchwork.get(
                                      "change_cue", False))


def default_stream_start(data):
    """How evaluation streams start by default (`stream.STREAM_STARTS`): from zero memories
    on the real data sets (their videos are long; the paper's one maximum latency per method),
    with a full-frame key frame on the synthetic benchmark's 16-frame clips."""
    return "key_frame" if data == "synthetic" else "zeros"


def evaluate(loaded, policy="single_frame", m=4, n=2, cells=True, flip=False, interval=1,
             delay=0, observed_cell=None, split="validation", num_clips=8, clip_length=16,
             clip_frame_size=(128, 128), max_objects=4, name=None, settings=None,
             profile_dir=None, data="synthetic", data_dir=None, fold_batch_norm=True,
             stream_start=None, max_videos=None, progress_dir=None, show_progress=False):
    """Evaluates one configuration on the videos of a data source (`training.sources`).

    Real sources follow their official protocol: every frame of every video of the
    validation split (or the first `max_videos`), each streamed once from its first frame,
    resized for the model as training resizes, scored in the original pixels. `stream_start`
    None takes `default_stream_start(data)`; `progress_dir` makes the evaluation resumable
    per video (`stream.evaluate_stream`).

    Returns:
      (`StreamResult`, op summary list or None without `profile_dir`).
    """
    from patchwork_tf.evaluation import exported
    from patchwork_tf.evaluation import profiling
    from patchwork_tf.evaluation import stream
    from patchwork_tf.training import sources

    if policy not in METHODS:
        raise ValueError(f"policy must be one of {METHODS}, got {policy!r}.")
    runner = build_runner(loaded, policy, m, n, cells, flip, observed_cell, fold_batch_norm)
    videos = sources.DataSource(data, data_dir).evaluation_videos(
        split, loaded.task, num_clips, clip_frame_size, clip_length, max_objects, max_videos)
    settings = dict(settings or {})
    intra, inter = thread_config()
    settings.update(threads=intra if intra == inter else [intra, inter])
    settings.update(frame_size=list(runner.frame_size), data=data, fold_batch_norm=(
        loaded.metadata["fold_batch_norm"] if isinstance(loaded, exported.ExportedModel)
        else fold_batch_norm))
    if data != "synthetic":
        settings["max_videos"] = max_videos
    if getattr(loaded, "checkpoints", None):
        settings["checkpoints"] = loaded.checkpoints
    if policy != "single_frame":
        settings.update(grid=f"{m},{n}", cells=bool(cells), observed_cell=runner.observed_cell)
    if policy == "dqn" and "change_cue" in getattr(loaded, "patchwork", {}):
        settings["change_cue"] = bool(loaded.patchwork["change_cue"])
    resize = data != "synthetic" or tuple(runner.frame_size) != tuple(clip_frame_size)
    result = stream.evaluate_stream(
        runner, videos, interval=interval, delay=delay, resize_frames=resize, name=name,
        settings=settings, profile_dir=profile_dir,
        start=stream_start or default_stream_start(data), progress_dir=progress_dir,
        show_progress=show_progress, complete=data == "synthetic" or max_videos is None)
    return result, profiling.op_summary(profile_dir) if profile_dir else None


TRAIN_RUN_POLICIES = ("single_frame", "dqn", "scanning", "random")


def evaluate_train_run(model_dir, m, n, split, num_clips, clip_length, frame_size,
                       stream_start=None, max_videos=None):
    """The train job's evaluation: every policy of `TRAIN_RUN_POLICIES` on the run's own data
    source (real data: the official protocol), resumable per video under
    `<model_dir>/eval/<name>_progress`.

    Returns:
      the `StreamResult.to_json()` records, in the order of `TRAIN_RUN_POLICIES`, with the
      paired differences (`results.add_paired`) of DQN against the single-frame model and the
      rules, and of the rules against the single-frame model.
    """
    from patchwork_tf.evaluation import results
    from patchwork_tf.training import stage1
    from patchwork_tf.training import stage2

    trained = stage1.load_config(os.path.join(model_dir, stage2.STAGE1_DIR))
    what = (f"{num_clips} {split} clips" if trained.data == "synthetic" else
            f"{max_videos or 'all'} val videos of {trained.data}, every frame")
    intra, inter = thread_config()
    print(f"[evaluate] {', '.join(TRAIN_RUN_POLICIES)} on {what}, TensorFlow on {intra} "
          f"intra-op and {inter} inter-op thread(s)")
    loaded = load_trained(model_dir)
    records, evaluated = [], {}
    for policy in TRAIN_RUN_POLICIES:
        name = policy if policy == "single_frame" else f"{policy}_m{m}n{n}"
        print(f"[evaluate] {name}")
        result, _ = evaluate(
            loaded, policy, m, n, split=split, num_clips=num_clips, clip_length=clip_length,
            clip_frame_size=(frame_size, frame_size), name=name, data=trained.data,
            data_dir=trained.data_dir, stream_start=stream_start, max_videos=max_videos,
            progress_dir=os.path.join(model_dir, "eval", f"{name}_progress"),
            show_progress=True)
        records.append(result.to_json())
        evaluated[name] = result
    single, dqn, scanning, random = (r["name"] for r in records)
    results.add_paired(records, evaluated, [(dqn, single), (dqn, scanning), (dqn, random),
                                            (scanning, single), (random, single)])
    return records


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
        check_exported_config(loaded, policy, FLAGS.m, FLAGS.n, FLAGS.cells, FLAGS.flip,
                              FLAGS.observed_cell)
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
    pin_threads(FLAGS.threads)
    from patchwork_tf.evaluation import profiling
    from patchwork_tf.evaluation import results

    policy, frame_size, settings = FLAGS.policy, FLAGS.frame_size, {}
    if FLAGS.saved_model:
        loaded, policy, frame_size = _load_saved_model(FLAGS)
        settings["saved_model"] = FLAGS.saved_model
    elif FLAGS.untrained:
        loaded = untrained_model(FLAGS.task, FLAGS.alpha, scaled_size(
            (FLAGS.frame_size,) * 2, FLAGS.resolution))
    else:
        loaded = load_trained(FLAGS.model_dir, FLAGS.resolution,
                              with_q_network=FLAGS.policy == "dqn")
    m = FLAGS.m or loaded.patchwork.get("m", 4)
    n = FLAGS.n or loaded.patchwork.get("n", 2)
    name = FLAGS.name or "_".join(
        [policy] + ([f"m{m}n{n}"] if policy != "single_frame" else [])
        + ([f"res{FLAGS.resolution:g}"] if FLAGS.resolution != 1.0 else [])
        + (["flip"] if FLAGS.flip else []) + ([f"k{FLAGS.interval}"] if FLAGS.interval > 1 else [])
        + ([f"d{FLAGS.delay}"] if FLAGS.delay else []) + ([] if FLAGS.cells else ["nocells"])
        + (["savedmodel"] if FLAGS.saved_model else []))
    settings.update(resolution=FLAGS.resolution)
    result, ops = evaluate(
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
