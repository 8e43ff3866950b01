"""Runs a model over clips frame by frame and scores accuracy and latency (paper Sec. 4).

Two kinds of runner process one *key frame* (see `latency`) per call:

* `SingleFrameRunner`: the stock model on the whole frame, every key frame at full cost.
* `PatchworkRunner`: the Patchwork twin (`patchwork_tf.patchwork_model`) with an attention
  policy. At a clip's first frame the twin makes one full-frame pass (a key frame that fills
  every memory, as `VideoStreamEnvironment` does in training) and the policy picks the first
  window from that observation; this start-up pass is paid once per stream and reported
  apart (`startup_mflops`), the per-frame statistics are over the window steps, which run on
  every key frame, the first included. Each step also updates the action history (Eq. 1) and
  asks the policy for the next frame's window, and that is part of the step's cost.

Both take the variants of Sec. 4 that change how a frame is processed: `flip` (the frame and
its mirror image as a batch of two streams; for Patchwork the mirror stream looks at the
mirrored window) and, through `evaluate_stream`, `interval` and `delay`. Depth multiplier,
resolution and Patchwork Cells on or off are different models or twins, built by the caller.

A runner takes the frame as `input_dtype` says: float32 in [-1, 1]
(`clips.preprocess_frames`, what the Keras model takes) for these two, the clip's uint8 frame
for an exported SavedModel that scales it inside (`evaluation.exported.SavedModelRunner`).

Each call of a runner is one compiled `tf.function` (the twin's step, the task's decoding and
NMS, the policy) and is timed from the call to the predictions on the host: the empirical
latency of the job. Threads are the caller's business (`tf.config.threading`, set by the
entry point before TensorFlow runs anything).
"""
import contextlib
import dataclasses
import time

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from patchwork_tf.core import flops as flops_lib
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.evaluation import latency
from patchwork_tf.evaluation import policies
from patchwork_tf.evaluation import profiling
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.policy import q_network


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

    def start_clip(self, frame):
        del frame

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
          policy: one of `policies.POLICIES`.
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
        action_spec = q_network.window_action_spec(grid.num_actions)
        self.policy = policies.make_policy(policy, ts.time_step_spec(self._observation_spec),
                                           action_spec, q_fn=q_fn)
        self._q_fn = q_fn
        self._streams = 2 if self.flip else 1
        self._step = tf.function(self._step_fn)
        self._first_action = tf.function(self._first_action_fn)

    def _time_step(self, step_type, observer_state):
        memory = self.twin.memory(self.observed_cell)[:1]
        return ts.TimeStep(step_type=tf.fill([1], tf.cast(step_type, tf.int32)),
                           reward=tf.zeros([1]), discount=tf.ones([1]),
                           observation=self._observer.observation(memory, observer_state))

    def _first_action_fn(self, frame, policy_state):
        observer_state = self._observer.start(frame)
        step = self.policy.action(self._time_step(ts.StepType.FIRST, observer_state), policy_state)
        return step.action, observer_state, step.state

    def _step_fn(self, frame, action, observer_state, policy_state):
        frames = _with_mirror(frame) if self.flip else frame
        actions = tf.concat([action, tf.gather(self._mirror, action)], 0) if self.flip else action
        predictions = self.task.predictions(self.twin.step(frames, actions), flip=self.flip)
        observer_state = self._observer.advance(observer_state, frame, action)
        step = self.policy.action(self._time_step(ts.StepType.MID, observer_state), policy_state)
        return predictions, step.action, observer_state, step.state

    def job_flops(self):
        """FLOPs of one key frame: the window step (twice with flip) and the policy."""
        step = flops_lib.step_flops(self.twin).flops * (2 if self.flip else 1)
        return step + self.policy_flops()

    def policy_flops(self):
        """FLOPs of one policy decision: the change cue when observed, plus the Q-network for
        'dqn'; 0 for scanning and random."""
        return policies.decision_flops(self._observer, self._observation_spec["memory"].shape,
                                       self._q_fn)

    def startup_flops(self):
        """FLOPs of the full-frame pass at a stream's first frame (twice with flip)."""
        return flops_lib.model_flops(self.twin.keras_model).flops * (2 if self.flip else 1)

    def start_clip(self, frame):
        """Full-frame pass on the clip's first frame, fresh action history and policy state."""
        self.twin.reset_states(self._streams)
        self.twin.warm_start(_with_mirror(frame) if self.flip else frame)
        self._action, self._observer_state, self._policy_state = self._first_action(
            frame, self.policy.get_initial_state(1))

    def __call__(self, frame):
        """Predictions for one frame float32 [1, H, W, 3] (host numpy); advances the policy."""
        self.last_action = int(self._action.numpy()[0])
        predictions, self._action, self._observer_state, self._policy_state = self._step(
            frame, self._action, self._observer_state, self._policy_state)
        return _host(predictions)


@dataclasses.dataclass
class StreamResult:
    """Accuracy and latency of one evaluated configuration."""

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
    actions: list = dataclasses.field(default_factory=list)

    def to_json(self):
        record = dataclasses.asdict(self)
        record["theoretical"] = self.theoretical.to_json()
        record["empirical"] = self.empirical.to_json()
        return record


def _prepare_frames(frames, frame_size, resize_frames, dtype=tf.float32):
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise ValueError(f"clip frames must be uint8 [T, H, W, 3], got {frames.dtype} "
                         f"{frames.shape}.")
    if dtype == tf.uint8:
        if tuple(frames.shape[1:3]) != frame_size:
            raise ValueError(
                f"Clip frames are {frames.shape[1]}x{frames.shape[2]} but the runner takes uint8 "
                f"frames of {frame_size[0]}x{frame_size[1]} as they are (an exported model resizes "
                "nothing); evaluate it on clips of its frame size.")
        return tf.constant(frames)
    x = clips_lib.preprocess_frames(frames)
    if tuple(frames.shape[1:3]) != frame_size:
        if not resize_frames:
            raise ValueError(
                f"Clip frames are {frames.shape[1]}x{frames.shape[2]} but the model takes "
                f"{frame_size[0]}x{frame_size[1]}; pass resize_frames=True to evaluate the "
                "model at its own resolution (the resolution variant), or build it for the "
                "clips' size.")
        x = tf.image.resize(x, frame_size, method="bilinear", antialias=True)
    return x


def evaluate_stream(runner, clips, interval=1, delay=0, resize_frames=False, name=None,
                    settings=None, warmup_calls=2, profile_dir=None):
    """Streams clips through a runner; accuracy, theoretical and empirical latency.

    Frame `t` of a clip is a key frame when `t % interval == 0`; the runner processes it (a
    timed call), every other frame repeats the prediction of the last key frame. The
    per-frame latency follows `latency.frame_loads` with the given delay, in MFLOPs (the
    runner's analytic FLOPs per key frame) and in milliseconds (each key frame's measured
    call). Clips are processed one after the other as one stream of batch 1.

    Args:
      runner: a `SingleFrameRunner`, `PatchworkRunner` or `exported.SavedModelRunner`.
      clips: an iterable of clip dicts (`patchwork_tf.data.clips` format; numpy arrays or
        eager tensors) with `frames` and the task's ground truth.
      interval: K, frames between key frames.
      delay: D, frames of allowed prediction delay.
      resize_frames: resize frames of another size to the model's input (bilinear,
        antialiased) instead of refusing them; the resolution variant.
      name: the configuration's name in tables.
      settings: dict of the configuration's settings, recorded as they are.
      warmup_calls: untimed calls on the first clip's first frame before measuring (tracing
        and memory allocation are not latency); the runner restarts the clip afterwards.
      profile_dir: if set, a TF profiler trace of the stream after the warm-up calls (the
        timed calls, one profiler step each, and the clips' untimed start-up passes) is
        written there (`profiling.trace_session`).

    Returns:
      A `StreamResult`.
    """
    latency.check_schedule(interval, delay)
    task = runner.task
    metric = task.new_metric()
    job_mflops = runner.job_flops() / 1e6
    flops_loads, ms_loads, lengths, call_ms, actions = [], [], [], [], []
    warmed = False
    with contextlib.ExitStack() as profiler:
        for clip in clips:
            clip = {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in clip.items()}
            frames = _prepare_frames(clip[clips_lib.FRAMES], runner.frame_size, resize_frames,
                                     runner.input_dtype)
            length = int(frames.shape[0])
            if not warmed:
                for _ in range(warmup_calls):
                    runner.start_clip(frames[:1])
                    runner(frames[:1])
                warmed = True
                if profile_dir:
                    profiler.enter_context(profiling.trace_session(profile_dir))
            runner.start_clip(frames[:1])
            predictions, job_flops, job_ms = [], np.zeros(length), np.zeros(length)
            for t in range(length):
                if latency.is_key_frame(t, interval):
                    step = (profiling.step_trace(len(call_ms)) if profile_dir
                            else contextlib.nullcontext())
                    with step:
                        start = time.perf_counter()
                        prediction = runner(frames[t:t + 1])
                        elapsed = time.perf_counter() - start
                    if hasattr(runner, "last_action"):
                        actions.append(runner.last_action)
                    job_flops[t], job_ms[t] = job_mflops, 1e3 * elapsed
                    call_ms.append(1e3 * elapsed)
                predictions.append(prediction)
            task.add_clip(metric, clip, predictions)
            flops_loads.append(latency.frame_loads(job_flops, interval, delay))
            ms_loads.append(latency.frame_loads(job_ms, interval, delay))
            lengths.append(length)
    if not lengths:
        raise ValueError("clips is empty; give at least one clip.")
    settings = dict(settings or {})
    settings.update(interval=int(interval), delay=int(delay), flip=runner.flip)
    if hasattr(runner, "policy_name"):
        settings.setdefault("policy", runner.policy_name)
    return StreamResult(
        name=name or runner.method,
        method=runner.method,
        task=task.name,
        settings=settings,
        accuracy=task.result(metric),
        theoretical=latency.summarize(flops_loads, lengths, "MFLOPs"),
        empirical=latency.summarize(ms_loads, lengths, "ms"),
        call_ms={"median": float(np.median(call_ms)), "p90": float(np.percentile(call_ms, 90)),
                 "max": float(np.max(call_ms)), "calls": len(call_ms)},
        job_mflops=job_mflops,
        startup_mflops=runner.startup_flops() / 1e6,
        num_clips=len(lengths),
        actions=actions,
    )
