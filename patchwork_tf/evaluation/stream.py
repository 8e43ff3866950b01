"""Runs a model over clips frame by frame and scores accuracy and latency (paper Sec. 4).

Two kinds of runner process one *key frame* (see `latency`) per call:

* `SingleFrameRunner`: the stock model on the whole frame, every key frame at full cost.
* `PatchworkRunner`: the Patchwork twin (`patchwork_tf.patchwork_model`) with an attention
  policy, one window step on every key frame, the first included. Each step also updates the
  action history (Eq. 1) and asks the policy for the next frame's window, and that is part of
  the step's cost.

How a stream starts (`STREAM_STARTS`), for each video:

* "zeros": every memory starts at zero and the policy picks the first window from that
  observation; no frame costs more than a window step. This is the reading of the paper's
  comparison (Tab. 1, Fig. 5 to 8 give one maximum latency per method, a window step's for
  Patchwork) and the default on the real data sets, whose videos are long.
* "key_frame": one full-frame pass on the first frame fills every memory first (as
  `VideoStreamEnvironment` does in training); the default on the synthetic benchmark's
  16-frame clips. The start-up pass is reported apart (`startup_mflops`); the per-frame
  statistics are over the window steps, and `maximum_with_start` is the maximum latency
  when the first frame also pays the start-up pass.

Both take the variants of Sec. 4 that change how a frame is processed: `flip` (the frame and
its mirror image as a batch of two streams; for Patchwork the mirror stream looks at the
mirrored window) and, through `evaluate_stream`, `interval` and `delay`. Depth multiplier,
resolution and Patchwork Cells on or off are different models or twins, built by the caller.

A runner takes the frame as `input_dtype` says: float32 in [-1, 1]
(`clips.preprocess_frames`, what the Keras model takes) for these two, the clip's uint8 frame
for an exported SavedModel that scales it inside (`evaluation.exported.SavedModelRunner`).

Each call of a runner is one compiled `tf.function` (the twin's step, the task's decoding and
NMS, the policy) and is timed from the call to the predictions on the host: the empirical
latency of the job. Every frame of every video is accounted for: the timed calls, the
interval frames that copy a prediction (no job; their load is their share of a delayed key
frame's, `latency.frame_loads`), each classified by `latency.frame_types` and summarised per
type (p50, p95); the maximum latency is the worst type's p95. The untimed warm-up calls and
the stream starts are left out (a "key_frame" start is counted apart, `maximum_with_start`).
Threads are the caller's business (`tf.config.threading`, set by the entry point before
TensorFlow runs anything; the paper's empirical latency is single-threaded,
`patchwork_tf.evaluate.pin_threads`).

`evaluate_stream` reads videos one frame at a time (`data.videos.Video`), so memory stays flat
however long a video is, shows a progress bar with an ETA, and with `progress_dir` keeps each
finished video's metric state and latencies on disk: a stopped evaluation run again continues
with the next video and gives the numbers of one that never stopped. The progress belongs to
the evaluation its fingerprint (`evaluation.json`) describes: every setting, and the weights as
`checkpoint_id` names them (inside the run, by content), so a run moved or copied elsewhere
resumes and another setting or retrained weights are refused. Fingerprints carry a version;
an older one is read with the defaults of the settings it left out (`VERSION_1_DEFAULTS`).
"""
import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras

from patchwork_tf.core import flops as flops_lib
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import pipeline
from patchwork_tf.data import videos as videos_lib
from patchwork_tf.evaluation import bootstrap
from patchwork_tf.evaluation import flops as decision_flops
from patchwork_tf.evaluation import latency
from patchwork_tf.evaluation import profiling
from patchwork_tf.policy import choosers
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.policy import stream as stream_lib

STREAM_STARTS = ("zeros", "key_frame")


def check_stream_start(start):
    """Raises ValueError unless `start` is one of `STREAM_STARTS`."""
    if start not in STREAM_STARTS:
        raise ValueError(f"stream start must be one of {STREAM_STARTS}, got {start!r}.")


def _host(nest):
    return tf.nest.map_structure(lambda t: t.numpy(), nest)


def _with_mirror(frames):
    return tf.concat([frames, tf.reverse(frames, axis=[2])], axis=0)


class SingleFrameRunner:
    """The stock model on every key frame (the single-frame baseline)."""

    method = "single_frame"
    input_dtype = tf.float32

    def __init__(self, model, task, flip=False):
        """
        Args:
          model: a tf_keras model, float32 frames [B, H, W, 3] in [-1, 1] -> raw outputs.
          task: a `tasks.DetectionTask` or `tasks.SegmentationTask`.
          flip: also run the mirror image and merge (the flip variant).
        """
        self.model = model
        self.task = task
        self.flip = bool(flip)
        self.frame_size = tuple(int(v) for v in model.inputs[0].shape[1:3])
        self._predict = tf.function(self._predict_fn)

    def _predict_fn(self, frame):
        frames = _with_mirror(frame) if self.flip else frame
        return self.task.predictions(self.model(frames, training=False), flip=self.flip)

    def job_flops(self):
        """FLOPs of one key frame: the full-frame pass, twice with flip."""
        return flops_lib.model_flops(self.model).flops * (2 if self.flip else 1)

    def startup_flops(self):
        return 0

    def start_stream(self, frame, start):
        """Nothing to start: every key frame is a full-frame pass."""
        del frame, start

    def __call__(self, frame):
        """Predictions for one frame float32 [1, H, W, 3] (host numpy)."""
        return _host(self._predict(frame))


class PatchworkRunner:
    """The Patchwork twin with an attention policy, one window step per key frame."""

    method = "patchwork"
    input_dtype = tf.float32

    def __init__(self, twin, task, policy="scanning", q_fn=None, observed_cell=None,
                 alpha=0.5, flip=False, change_cue=False):
        """
        Args:
          twin: a `PatchworkModel` (`patchwork_tf.patchwork_model`); its cells may write
            'window' or 'bands', and the observed cell must keep its whole memory.
          task: a `tasks.DetectionTask` or `tasks.SegmentationTask`.
          policy: one of `choosers.NAMES`.
          q_fn: for 'dqn', observation dict(memory, history) -> Q-values [B, A].
          observed_cell: the cell whose memory the policy observes (layer L of the Q-network);
            needed by 'dqn', and by the others only to build the same observation.
            None takes the last cell of `twin.cell_names` that keeps a memory.
          alpha: decay of the action history, Eq. 1.
          flip: also run the mirror image as a second stream and merge (the flip variant).
          change_cue: the observation holds the change cue (`policy.observation`), as the
            Q-network was trained with; always on for the 'change' policy.
        """
        self.twin = twin
        self.task = task
        self.flip = bool(flip)
        self.policy_name = policy
        self.frame_size = tuple(twin.frame_size)
        grid = twin.grid
        cells = [c for c in twin.cell_names if c in twin.state_spec()]
        if observed_cell is None:
            observed_cell = cells[-1]
        if observed_cell not in cells:
            raise ValueError(f"observed_cell {observed_cell!r} is not a cell with a memory of the "
                             f"twin; choose one of {cells}.")
        self.observed_cell = observed_cell
        self._observer = observation_lib.AttentionObservation(
            grid, float(alpha), bool(change_cue) or policy == "change")
        rows = grid.positions_per_side
        self._mirror = tf.constant([grid.rowcol_to_action(r, rows - 1 - c) for r, c in
                                    (grid.action_to_rowcol(a) for a in range(grid.num_actions))],
                                   tf.int32)
        memory = twin.memory_view(twin.initial_state(1), observed_cell)
        self._observation_spec = self._observer.spec(memory.shape[1:])
        self.chooser = choosers.by_name(policy, grid.num_actions, q_fn=q_fn)
        self._q_fn = q_fn
        self._streams = 2 if self.flip else 1
        self._step = tf.function(self._step_fn)
        self._start = tf.function(self._start_fn)

    def _start_fn(self, frame, key_frame):
        start = stream_lib.stream_start(
            self.twin, self._observer, frame, key_frame=key_frame, chooser=self.chooser,
            observed_cell=self.observed_cell, mirror=self._mirror if self.flip else None)
        return start.next_actions, start.observer_state

    def _step_fn(self, frame, action, observer_state):
        step = stream_lib.stream_step(
            self.twin, self._observer, frame, action, None, observer_state, chooser=self.chooser,
            observed_cell=self.observed_cell, mirror=self._mirror if self.flip else None)
        predictions = self.task.predictions(step.outputs, flip=self.flip)
        return predictions, step.next_actions, step.observer_state

    def job_flops(self):
        """FLOPs of one key frame: the window step (twice with flip) and the policy."""
        step = flops_lib.step_flops(self.twin).flops * (2 if self.flip else 1)
        return step + self.policy_flops()

    def policy_flops(self):
        """FLOPs of one policy decision: the change cue when observed, plus the Q-network for
        'dqn'; 0 for scanning and random."""
        return decision_flops.decision_flops(
            self._observer, self._observation_spec["memory"].shape, self._q_fn)

    def startup_flops(self):
        """FLOPs of the full-frame pass at a stream's first frame (twice with flip)."""
        return flops_lib.model_flops(self.twin.keras_model).flops * (2 if self.flip else 1)

    def start_stream(self, frame, start):
        """A new video: zero memories, filled by a full-frame pass on `frame` (float32
        [1, H, W, 3]) when `start` is "key_frame"; fresh action history and policy state, and
        the policy's first window."""
        check_stream_start(start)
        self.twin.reset_states(self._streams)
        self._action, self._observer_state = self._start(frame, start == "key_frame")

    def __call__(self, frame):
        """Predictions for one frame float32 [1, H, W, 3] (host numpy); advances the policy."""
        self.last_action = int(self._action.numpy()[0])
        predictions, self._action, self._observer_state = self._step(
            frame, self._action, self._observer_state)
        return _host(predictions)


@dataclasses.dataclass
class StreamResult:
    """Accuracy and latency of one evaluated configuration.

    `theoretical` and `empirical` are per-frame statistics (`latency.LatencyStats`) over
    every frame of every video, the window steps (or full-frame passes) and the interval
    frames, with each type's p50 and p95; their `maximum_p95` (the worst type's p95) is the
    maximum latency the tables and figures show. `maximum_with_start` is that maximum when
    each video's first frame also pays the start-up pass of a "key_frame" start (a key frame;
    equal to `maximum_p95` for "zeros"), keyed by unit. `call_ms` summarises the timed
    runner calls (one per key frame of the interval, the untimed warm-up calls on the first
    frame excluded): median, p90, p95, max and their count.

    `accuracy_interval` holds the 95 % bootstrap interval over videos of each accuracy,
    `{metric: [lo, hi]}` (`evaluation.bootstrap`, its settings in `bootstrap`); `video_ids`
    the evaluated videos in order. Kept in memory for paired differences with another method
    on the same videos, not written by `to_json`: `video_states`, the videos' metric states,
    and `resampled`, each accuracy on every bootstrap resample `{metric: float [R]}`.
    """

    name: str
    method: str
    task: str
    settings: dict
    accuracy: dict
    theoretical: latency.LatencyStats
    empirical: latency.LatencyStats
    call_ms: dict
    job_mflops: float
    startup_mflops: float
    num_clips: int
    stream_start: str = "key_frame"
    num_frames: int = 0
    maximum_with_start: dict = dataclasses.field(default_factory=dict)
    actions: list = dataclasses.field(default_factory=list)
    accuracy_interval: dict = dataclasses.field(default_factory=dict)
    bootstrap: dict = dataclasses.field(default_factory=dict)
    video_ids: list = dataclasses.field(default_factory=list)
    video_states: list = dataclasses.field(default_factory=list, repr=False)
    resampled: dict = dataclasses.field(default_factory=dict, repr=False)

    def to_json(self):
        record = dataclasses.asdict(self)
        del record["video_states"], record["resampled"]
        record["theoretical"] = self.theoretical.to_json()
        record["empirical"] = self.empirical.to_json()
        return record


def _prepare_frame(frame, frame_size, resize_frames, dtype=tf.float32):
    """One uint8 frame [H, W, 3] as the runner takes it: [1, h, w, 3] at `frame_size`."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}.")
    frames = frame[None]
    if tuple(frame.shape[:2]) != tuple(frame_size):
        if not resize_frames:
            raise ValueError(
                f"Frames are {frame.shape[0]}x{frame.shape[1]} but the model takes "
                f"{frame_size[0]}x{frame_size[1]}; pass resize_frames=True to resize them as "
                "training does (the real data sets, the resolution variant), or build the "
                "model for the frames' size.")
        frames = pipeline.resize_frames(frames, frame_size)
    if dtype == tf.uint8:
        return tf.constant(frames)
    return clips_lib.preprocess_frames(frames)


# The fingerprint's layout. Version 1 (no "fingerprint_version" key) recorded the settings of
# `ADDED_SETTINGS[2]` only when off their default, and named checkpoints by path and time.
# Version 2 recorded every setting there was; version 3 added `n_step` and names a
# SavedModel by `saved_model_id` instead of its path.
FINGERPRINT_VERSION = 3

# The one table of settings each version began to record, each at the value every
# evaluation of an earlier version ran with (an earlier fingerprint does not name it).
ADDED_SETTINGS = {
    2: {"demonstration_weight": 0.0, "counterfactual_steps": 0, "jit_compile": True},
    3: {"n_step": 1},
}


def _fingerprint(runner, job_flops, settings):
    """What must match for saved per-video progress to belong to this evaluation."""
    record = {"method": runner.method, "task": runner.task.name, "flip": runner.flip,
              "frame_size": list(runner.frame_size), "job_flops": float(job_flops),
              "policy": getattr(runner, "policy_name", None), **settings,
              "fingerprint_version": FINGERPRINT_VERSION}
    return json.loads(json.dumps(record, sort_keys=True, default=str))


def _sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def checkpoint_id(run_dir, *prefixes):
    """Which weights an evaluation runs, as its progress fingerprint records them.

    For each checkpoint prefix that has an `.index` file: its name relative to `run_dir` and
    the sha1 of the `.index` file (which holds every tensor's checksum), "<name>@sha1:<hex>",
    joined by "; ". A run moved or copied elsewhere keeps its id; one retrained (other
    bytes) does not.
    """
    return "; ".join(f"{os.path.relpath(prefix, run_dir)}@sha1:{_sha1(prefix + '.index')}"
                     for prefix in prefixes if prefix and os.path.exists(prefix + ".index"))


# The files of a SavedModel that hold its graph and weights.
SAVED_MODEL_FILES = ("saved_model.pb", os.path.join("variables", "variables.index"))


def saved_model_id(export_dir):
    """Which SavedModel an evaluation runs, as its progress fingerprint records it:
    "<file>@sha1:<hex>" of the graph and of the weights' index (`SAVED_MODEL_FILES`, those
    that exist), joined by "; ". An export moved or copied elsewhere keeps its id."""
    return "; ".join(f"{name}@sha1:{_sha1(os.path.join(export_dir, name))}"
                     for name in SAVED_MODEL_FILES
                     if os.path.exists(os.path.join(export_dir, name)))


def _version_1_checkpoints_match(saved, current):
    """Whether a version-1 checkpoint id, "<path>@<mtime>; ..." (each path as the evaluation
    was given it), names the checkpoints of `current` (a `checkpoint_id`): each path still
    holds a checkpoint of the recorded time (version 1's test), of the same name relative to
    the run and the same `.index` digest."""
    old, new = saved.split("; "), current.split("; ")
    if len(old) != len(new):
        return False
    for entry, current_entry in zip(old, new):
        path, _, stamp = entry.rpartition("@")
        name, _, digest = current_entry.rpartition("@sha1:")
        index, path = path + ".index", os.path.normpath(path)
        if not (os.path.exists(index) and f"{os.path.getmtime(index):.0f}" == stamp
                and (path == name or path.endswith(os.sep + os.path.normpath(name)))
                and _sha1(index) == digest):
            return False
    return True


def _saved_model_path_matches(path, current, saved_at):
    """Whether a SavedModel path recorded before version 3 names the export of `current` (a
    `saved_model_id`): the path holds that export, written before the record was
    (`saved_at`, the record's mtime: an export rewritten since is another model)."""
    files = [os.path.join(path, name) for name in SAVED_MODEL_FILES]
    return (all(os.path.exists(f) and os.path.getmtime(f) <= saved_at for f in files)
            and saved_model_id(path) == current)


def _as_current_version(saved, fingerprint, saved_at):
    """A saved fingerprint read as one of `FINGERPRINT_VERSION` for comparison with
    `fingerprint`: a record of an earlier version takes the `ADDED_SETTINGS` of every later
    version at their defaults (those `fingerprint` has), a version-1 record its checkpoint id
    `fingerprint`'s when it names the same checkpoints (`_version_1_checkpoints_match`), and
    a record before version 3, which named a SavedModel by its path, `fingerprint`'s
    `saved_model_id` when that path still holds the same export, written before the record
    (`saved_at`, its mtime)."""
    saved = dict(saved)
    version = saved.setdefault("fingerprint_version", 1)
    if version > FINGERPRINT_VERSION:
        raise ValueError(
            f"The saved evaluation progress has fingerprint version {version}; this "
            f"patchwork_tf reads up to {FINGERPRINT_VERSION}. Evaluate with the version that "
            "wrote it, or into another output directory.")
    saved["fingerprint_version"] = FINGERPRINT_VERSION
    for added_in, defaults in ADDED_SETTINGS.items():
        for key, default in defaults.items():
            if added_in > version and key in fingerprint:
                saved.setdefault(key, default)
    if (version == 1 and "checkpoints" in saved and "checkpoints" in fingerprint
            and _version_1_checkpoints_match(saved["checkpoints"], fingerprint["checkpoints"])):
        saved["checkpoints"] = fingerprint["checkpoints"]
    if (version < 3 and "saved_model" in saved and "saved_model" in fingerprint
            and _saved_model_path_matches(saved["saved_model"],
                                               fingerprint["saved_model"], saved_at)):
        saved["saved_model"] = fingerprint["saved_model"]
    return saved


def _progress_path(progress_dir, index, video_id):
    digest = hashlib.sha1(video_id.encode()).hexdigest()[:12]
    return os.path.join(progress_dir, f"video_{index:05d}_{digest}.json")


def _open_progress(progress_dir, fingerprint):
    """Creates `progress_dir` for this evaluation, or checks that its progress is this
    evaluation's (a saved fingerprint of an older version is read as `_as_current_version`
    says, then rewritten as `fingerprint`); returns the path of its fingerprint file.

    Raises:
      ValueError: the saved fingerprint differs, naming the settings that do.
    """
    os.makedirs(progress_dir, exist_ok=True)
    path = os.path.join(progress_dir, "evaluation.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved == fingerprint:
            return path
        upgraded = _as_current_version(saved, fingerprint, os.path.getmtime(path))
        if upgraded != fingerprint:
            changed = sorted(k for k in set(upgraded) | set(fingerprint)
                             if upgraded.get(k) != fingerprint.get(k))
            differences = "; ".join(f"{k} saved {upgraded.get(k)!r}, now {fingerprint.get(k)!r}"
                                    for k in changed)
            raise ValueError(
                f"{progress_dir} holds the progress of another evaluation (differs in "
                f"{changed}: {differences}); delete it to start over, or evaluate into another "
                "output directory.")
    _write_json_atomically(path, fingerprint, indent=1)
    return path


def _write_json_atomically(path, record, indent=None):
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        json.dump(record, f, indent=indent)
    os.replace(temporary, path)


def _stream_video(runner, job_mflops, video, interval, resize_frames, start, step_trace, bar):
    """Streams one video through the runner; returns its progress record."""
    task = runner.task
    metric = task.new_metric()
    length = video.num_frames
    if length == 0:
        raise ValueError(f"video {video.video_id!r} has no frames.")
    job_flops, job_ms = np.zeros(length), np.zeros(length)
    call_ms, actions, startup_ms = [], [], 0.0
    prediction = None
    for t, truth in enumerate(video.frames()):
        if latency.is_key_frame(t, interval):   # frame 0 is one
            frame = _prepare_frame(truth[videos_lib.FRAME], runner.frame_size, resize_frames,
                                   runner.input_dtype)
            if t == 0:
                begin = time.perf_counter()
                runner.start_stream(frame, start)
                startup_ms = 1e3 * (time.perf_counter() - begin)
            with step_trace():
                begin = time.perf_counter()
                prediction = runner(frame)
                elapsed = time.perf_counter() - begin
            if hasattr(runner, "last_action"):
                actions.append(runner.last_action)
            job_flops[t], job_ms[t] = job_mflops, 1e3 * elapsed
            call_ms.append(1e3 * elapsed)
        task.add_frame(metric, video.video_id, t, truth, prediction)
        if bar is not None:
            bar.add(1)
    return {"video_id": video.video_id, "frames": length, "metric": metric.state(),
            "job_flops": job_flops.tolist(), "job_ms": job_ms.tolist(), "call_ms": call_ms,
            "actions": actions, "startup_ms": startup_ms}


def evaluate_stream(runner, clips, interval=1, delay=0, resize_frames=False, name=None,
                    settings=None, warmup_calls=2, profile_dir=None, start="key_frame",
                    progress_dir=None, show_progress=False, complete=True):
    """Streams videos through a runner; accuracy, theoretical and empirical latency.

    Each video is one stream of batch 1, started as `start` says (see the module docstring)
    and read a frame at a time. Frame `t` is a key frame when `t % interval == 0`; the runner
    processes it (a timed call), every other frame repeats the prediction of the last key
    frame. The per-frame latency follows `latency.frame_loads` with the given delay, in MFLOPs
    (the runner's analytic FLOPs per key frame) and in milliseconds (each key frame's measured
    call). Every frame is scored against its own ground truth, in the frame's original pixels.

    Args:
      runner: a `SingleFrameRunner`, `PatchworkRunner` or `exported.SavedModelRunner`.
      clips: an iterable of `data.videos.Video`s, or of clip dicts (`patchwork_tf.data.clips`
        format; numpy arrays or eager tensors), each one video.
      interval: K, frames between key frames.
      delay: D, frames of allowed prediction delay.
      resize_frames: resize frames of another size to the model's input as training does
        (`pipeline.resize_frames`) instead of refusing them; the real data sets, the
        resolution variant.
      name: the configuration's name in tables.
      settings: dict of the configuration's settings, recorded as they are.
      warmup_calls: untimed calls on the first video's first frame before measuring (tracing
        and memory allocation are not latency).
      profile_dir: if set, a TF profiler trace of the stream after the warm-up calls (the
        timed calls, one profiler step each, and the untimed stream starts) is written there
        (`profiling.trace_session`).
      start: "zeros" or "key_frame", how each video's stream starts.
      progress_dir: if set, each finished video's record is kept there and videos already
        recorded (by an evaluation of the same configuration) are not run again.
      show_progress: print a progress bar with an ETA over all frames.
      complete: whether the videos are the whole split (recorded; tables flag partial runs).

    Returns:
      A `StreamResult`.
    """
    latency.check_schedule(interval, delay)
    check_stream_start(start)
    settings = dict(settings or {})
    settings.update(interval=int(interval), delay=int(delay), flip=runner.flip,
                    stream_start=start, complete=bool(complete))
    if hasattr(runner, "policy_name"):
        settings.setdefault("policy", runner.policy_name)
    videos = [videos_lib.as_video(item) for item in clips]
    if not videos:
        raise ValueError("clips is empty; give at least one video.")
    job_flops = runner.job_flops()   # counted once: it traces the step
    if progress_dir:
        _open_progress(progress_dir, _fingerprint(runner, job_flops, settings))
    bar = (tf_keras.utils.Progbar(sum(v.num_frames for v in videos), unit_name="frame")
           if show_progress else None)
    records, warmed, step_numbers = [], False, itertools.count()
    with contextlib.ExitStack() as profiler:
        for index, video in enumerate(videos):
            path = progress_dir and _progress_path(progress_dir, index, video.video_id)
            if path and os.path.exists(path):
                with open(path) as f:
                    records.append(json.load(f))
                if bar is not None:
                    bar.add(video.num_frames)
                continue
            if not warmed:
                first = _prepare_frame(video.read_frame(0)[videos_lib.FRAME],
                                       runner.frame_size, resize_frames, runner.input_dtype)
                for _ in range(warmup_calls):
                    runner.start_stream(first, start)
                    runner(first)
                warmed = True
                if profile_dir:
                    profiler.enter_context(profiling.trace_session(profile_dir))

            def step_trace():
                return (profiling.step_trace(next(step_numbers)) if profile_dir
                        else contextlib.nullcontext())

            record = _stream_video(runner, job_flops / 1e6, video, interval, resize_frames,
                                   start, step_trace, bar)
            if path:
                _write_json_atomically(path, record)
            records.append(record)
    return _result(runner, job_flops, records, interval, delay, start, name, settings)


def _result(runner, job_flops, records, interval, delay, start, name, settings):
    """The `StreamResult` of the per-video records of `evaluate_stream`."""
    task = runner.task
    metric = task.new_metric()
    states = [record["metric"] for record in records]
    for state in states:
        metric.merge_state(state)
    resampled = bootstrap.resampled(states)
    flops_loads = [latency.frame_loads(r["job_flops"], interval, delay) for r in records]
    ms_loads = [latency.frame_loads(r["job_ms"], interval, delay) for r in records]
    lengths = [r["frames"] for r in records]
    job_type = "key_frame" if runner.method == "single_frame" else "window_step"
    types = [latency.frame_types(length, interval, delay, job_type) for length in lengths]
    call_ms = np.concatenate([r["call_ms"] for r in records])
    theoretical = latency.summarize(flops_loads, lengths, "MFLOPs", types)
    empirical = latency.summarize(ms_loads, lengths, "ms", types)
    startup_mflops = runner.startup_flops() / 1e6
    with_start = {"MFLOPs": theoretical.maximum_p95, "ms": empirical.maximum_p95}
    if start == "key_frame" and startup_mflops:
        # Each video's first frame is then a key frame: its step and the start-up pass.
        start_types = [["key_frame"] + t[1:] for t in types]
        with_start = {
            "MFLOPs": latency.summarize(
                [np.concatenate([[l[0] + startup_mflops], l[1:]]) for l in flops_loads],
                lengths, "MFLOPs", start_types).maximum_p95,
            "ms": latency.summarize(
                [np.concatenate([[l[0] + r["startup_ms"]], l[1:]])
                 for l, r in zip(ms_loads, records)], lengths, "ms", start_types).maximum_p95}
    return StreamResult(
        name=name or runner.method,
        method=runner.method,
        task=task.name,
        settings=settings,
        accuracy=task.result(metric),
        theoretical=theoretical,
        empirical=empirical,
        call_ms={"median": float(np.median(call_ms)), "p90": latency.percentile(call_ms, 90),
                 "p95": latency.percentile(call_ms), "max": float(np.max(call_ms)),
                 "calls": int(len(call_ms))},
        job_mflops=job_flops / 1e6,
        startup_mflops=startup_mflops if start == "key_frame" else 0.0,
        num_clips=len(records),
        stream_start=start,
        num_frames=int(sum(lengths)),
        maximum_with_start=with_start,
        actions=[a for r in records for a in r["actions"]],
        accuracy_interval={name: bootstrap.percentile_interval(values)
                           for name, values in resampled.items()},
        bootstrap=bootstrap.settings(),
        video_ids=[r["video_id"] for r in records],
        video_states=states,
        resampled=resampled,
    )
