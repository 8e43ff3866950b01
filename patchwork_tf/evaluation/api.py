"""The evaluation library: a model loaded for evaluation, its stream runner per policy, and
the evaluation of one configuration or of a whole train run on a data source's videos
(paper Sec. 4).

`python -m patchwork_tf.evaluate`, `report`, `train` and the tools call it; it reads no flags.
"""
import concurrent.futures
import dataclasses
import multiprocessing
import os
from typing import Optional

import tensorflow as tf

import patchwork_tf as pw
from patchwork_tf import runs
from patchwork_tf import tasks
from patchwork_tf.core import folding
from patchwork_tf.evaluation import exported
from patchwork_tf.evaluation import profiling
from patchwork_tf.evaluation import results
from patchwork_tf.evaluation import stream
from patchwork_tf.training import configs
from patchwork_tf.training import sources
from patchwork_tf.training import stage1

METHODS = ("single_frame", "dqn", "scanning", "random", "change")


@dataclasses.dataclass
class LoadedModel:
    """A single-frame model and what evaluating it needs."""

    model: object
    task: str
    num_classes: int = 0
    q_fn: object = None                 # the attention network, observation -> Q-values
    agent_checkpoint: Optional[str] = None  # ... or the stage-2/3 checkpoint it is restored from
    # The Patchwork setting the run trained (grid, observed cell, observation, Q-network).
    patchwork: Optional[configs.AttentionConfig] = None
    config: object = None               # the model's `stage1.Stage1Config` (architecture)
    # Which weights these are (`stream.checkpoint_id`: names in the run and digests), so that
    # saved evaluation progress of other weights is never taken for this model's.
    checkpoints: str = None


def pin_threads(threads=1):
    """Sets TensorFlow's intra- and inter-op threads of this process (the paper's empirical
    latency is single-threaded). Must run before TensorFlow runs anything; TensorFlow raises
    RuntimeError otherwise, and `run_single_threaded` is the way out."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def thread_config():
    """(intra-op, inter-op) threads of this process's TensorFlow (0: TF's default, every
    core)."""
    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())


def run_single_threaded(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` in a fresh process whose TensorFlow runs on one thread
    (`pin_threads(1)`); returns its result, re-raises its exception.

    For a process that has run TensorFlow already (the train job evaluating after training),
    whose thread pools are fixed; `fn`, its arguments and its result must pickle (a module
    level function, plain values).
    """
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=pin_threads, initargs=(1,)) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def untrained_model(task, alpha, frame_size, num_classes=5, seed=0):
    """A freshly initialised stage-1 architecture of `task`, `alpha` and `frame_size` (H, W)
    (`runs.build_model`), for latency: its accuracy means nothing."""
    height, width = frame_size
    if height != width:
        raise ValueError(f"untrained models are square; got frame_size {frame_size}.")
    model, _ = runs.build_model(task, height, alpha, num_classes=num_classes, seed=seed)
    return LoadedModel(model, task, num_classes, config=runs.model_config(task, height, alpha))


def load_trained(model_dir, resolution=1.0, with_q_network=True):
    """The trained model of a train job (or stage-1) directory, rebuilt at `resolution`
    (`runs.TrainedRun`): the stage-3 fine-tuned weights when there are any, else stage 1's,
    and (when asked for and trained) the Q-network of stage 3, else stage 2."""
    run = runs.TrainedRun.find(model_dir)
    agent = run.agent_checkpoint if with_q_network and run.attention else None
    return LoadedModel(run.build_model(resolution), run.stage1_config.task,
                       run.stage1_config.num_classes, agent_checkpoint=agent,
                       patchwork=run.attention, config=run.stage1_config,
                       checkpoints=stream.checkpoint_id(run.model_dir, run.model_checkpoint,
                                                        agent))


def default_grid(loaded):
    """(M, N) of the run `loaded` trained (an `evaluation.exported.ExportedModel`: its
    export's), else (4, 2)."""
    patchwork = loaded.patchwork or configs.AttentionConfig()
    return patchwork.m, patchwork.n


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
                 observed_cell=None, fold_batch_norm=True, jit_compile=True):
    """The stream runner of one configuration (see `evaluation.stream`).

    `loaded` is a `LoadedModel`, or an `evaluation.exported.ExportedModel` whose own policy
    and grid the configuration must name (`check_exported_config`); an exported model runs
    batch norm as it was exported. The Patchwork step is the inference preset
    (`patchwork_model(..., inference=True)`). With `fold_batch_norm` (inference only) the
    single-frame model and the Patchwork step run each batch norm folded into the conv before
    it (`core.folding`), so both are counted and timed the same way; without it the step
    keeps the preset's other options. `jit_compile=False` runs the step as a plain graph
    instead of XLA: the same outputs within float rounding, no XLA compile per runner (toy
    runs and tests), slower frames.
    """

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
        observed_cell = observed_cell or (loaded.patchwork and loaded.patchwork.observed_cell)
    grid = pw.WindowGrid(tuple(model.inputs[0].shape[1:3]), m, n)
    # The inference preset (XLA, band writes, folded batch norm), less what is turned off.
    options = dict(pw.INFERENCE_OPTIONS, fold_batch_norm=fold_batch_norm,
                   jit_compile=jit_compile)
    twin = pw.patchwork_model(model, grid,
                              full_memory_cells=[observed_cell] if observed_cell else [],
                              context="memory" if cells else "zeros", **options)
    q_fn = None
    patchwork = loaded.patchwork or configs.AttentionConfig(change_cue=False)
    if policy == "dqn":
        q_fn = loaded.q_fn
        if q_fn is None and loaded.agent_checkpoint:
            q_fn = _q_values(runs.restore_q_network(
                twin, dataclasses.replace(patchwork, observed_cell=observed_cell),
                loaded.agent_checkpoint))
        if q_fn is None:
            raise ValueError("policy 'dqn' needs a trained attention network: pass a train job's "
                             "--model_dir with a stage2/ or stage3/ checkpoint.")
    return stream.PatchworkRunner(twin, task, policy=policy, q_fn=q_fn,
                                  observed_cell=observed_cell, alpha=patchwork.history_alpha,
                                  flip=flip, change_cue=policy == "dqn" and patchwork.change_cue)


def _q_values(network):
    """observation -> Q-values `[B, num_actions]` of an `AttentionQNetwork`."""
    return lambda observation: network(observation)[0]


def default_stream_start(data):
    """How evaluation streams start by default (`stream.STREAM_STARTS`): from zero memories
    on the real data sets (their videos are long; the paper's one maximum latency per method),
    with a full-frame key frame on the synthetic benchmark's 16-frame clips."""
    return "key_frame" if data == "synthetic" else "zeros"


def evaluate(loaded, policy="single_frame", m=4, n=2, cells=True, flip=False, interval=1,
             delay=0, observed_cell=None, split="validation", num_clips=8, clip_length=16,
             clip_frame_size=(128, 128), max_objects=4, name=None, settings=None,
             profile_dir=None, data="synthetic", data_dir=None, fold_batch_norm=True,
             stream_start=None, max_videos=None, progress_dir=None, show_progress=False,
             jit_compile=True):
    """Evaluates one configuration on the videos of a data source (`training.sources`).

    Real sources follow their official protocol: every frame of every video of the
    validation split (or the first `max_videos`), each streamed once from its first frame,
    resized for the model as training resizes, scored in the original pixels. `stream_start`
    None takes `default_stream_start(data)`; `progress_dir` makes the evaluation resumable
    per video (`stream.evaluate_stream`). `fold_batch_norm` and `jit_compile`: of
    `build_runner`.

    Returns:
      (`StreamResult`, op summary list or None without `profile_dir`).
    """

    if policy not in METHODS:
        raise ValueError(f"policy must be one of {METHODS}, got {policy!r}.")
    runner = build_runner(loaded, policy, m, n, cells, flip, observed_cell, fold_batch_norm,
                          jit_compile)
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
        settings.update(grid=f"{m},{n}", cells=bool(cells), observed_cell=runner.observed_cell,
                        jit_compile=bool(jit_compile))
    if policy == "dqn" and loaded.patchwork is not None:
        settings["change_cue"] = bool(loaded.patchwork.change_cue)
        settings["imitation_steps"] = int(loaded.patchwork.imitation_steps)
        settings["stage2_steps"] = int(loaded.patchwork.stage2_steps)
        settings["demonstration_weight"] = float(loaded.patchwork.demonstration_weight)
        settings["counterfactual_steps"] = int(loaded.patchwork.counterfactual_steps)
        settings["n_step"] = int(loaded.patchwork.n_step)
    resize = data != "synthetic" or tuple(runner.frame_size) != tuple(clip_frame_size)
    result = stream.evaluate_stream(
        runner, videos, interval=interval, delay=delay, resize_frames=resize, name=name,
        settings=settings, profile_dir=profile_dir,
        start=stream_start or default_stream_start(data), progress_dir=progress_dir,
        show_progress=show_progress, complete=data == "synthetic" or max_videos is None)
    return result, profiling.op_summary(profile_dir) if profile_dir else None


TRAIN_RUN_POLICIES = ("single_frame", "dqn", "scanning", "random")


def evaluate_train_run(model_dir, m, n, split, num_clips, clip_length, frame_size,
                       stream_start=None, max_videos=None, jit_compile=True):
    """The train job's evaluation: every policy of `TRAIN_RUN_POLICIES` on the run's own data
    source (real data: the official protocol), resumable per video under
    `<model_dir>/eval/<name>_progress`; `jit_compile` of `build_runner`.

    Returns:
      the `StreamResult.to_json()` records, in the order of `TRAIN_RUN_POLICIES`, with the
      paired differences (`results.add_paired`) of DQN against the single-frame model and the
      rules, and of the rules against the single-frame model.
    """

    trained = stage1.load_config(os.path.join(model_dir, runs.STAGE1_DIR))
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
            show_progress=True, jit_compile=jit_compile)
        records.append(result.to_json())
        evaluated[name] = result
    single, dqn, scanning, random = (r["name"] for r in records)
    results.add_paired(records, evaluated, [(dqn, single), (dqn, scanning), (dqn, random),
                                            (scanning, single), (random, single)])
    return records
