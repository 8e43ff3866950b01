"""Latency accounting over a stream: key frames, interval and delay (paper Sec. 4).

The paper's definitions, and how this module reads them:

* A model's *job* is the computation it starts on a frame: a full-frame pass of the
  single-frame model, or one window step of Patchwork (its cost `T`, in FLOPs for the
  theoretical latency or milliseconds for the empirical one).
* **interval K**: jobs run on key frames `t = 0, K, 2K, ...` of a clip; the other frames copy
  the prediction of the closest past key frame, which costs nothing. "The average latency is
  proportional to the reciprocal interval" (`T / K`), "the interval alone has no impact on
  the maximum latency" (`T`).
* **delay D**: the prediction for frame `t` may be delivered at frame `t + D`. A key frame's
  job is then not needed before `D` more frames have arrived, so a scheduler can spread it
  evenly over `min(D + 1, K)` frame periods: `D + 1` because that is when its result is due,
  and at most `K` because the next key frame's job starts `K` frames later and the device
  should never run two at once. Per frame that is a load of `T / min(D + 1, K)` in the first
  `min(D + 1, K)` frames of each interval and 0 in the rest. So the delay "has no impact on
  the average latency" (still `T / K`) "but can reduce the maximum latency when combined with
  a well-chosen interval": the maximum becomes `T / min(D + 1, K)`, i.e. `T / (D + 1)` when
  `D < K`, and the best choice is `D = K - 1`, which makes the maximum equal the average.
  With `K = 1` (Patchwork, or the single-frame model on every frame) the delay changes
  nothing.
* The delay does not change *what* is predicted: the prediction for frame `t` is still the
  one propagated from its closest past key frame (its result is ready at `k + D <= t + D`),
  and accuracy is scored against frame `t`'s ground truth. Its price is `D` frames of lag,
  which the paper's per-frame latency does not count.

The per-frame load series of a clip has `T_clip + s - 1` entries (`s = min(D + 1, K)`): the
last job may finish after the clip's last frame, in the frames of whatever the stream shows
next. The average is the total work over the clip's `T_clip` frames; the maximum, median and
percentiles are over the per-frame loads of the clip's own frames plus that spill.

**Frame types** (`FRAME_TYPES`; `frame_types` labels a clip's load series): a *key frame*
runs a full-frame pass (the single-frame model's job, or the pass that starts a Patchwork
stream with a key frame); a *window step* runs one Patchwork window step; an *interval
frame* runs no job of its own (`t % K != 0`, or the spill past the clip's end) and carries
only its share of a delayed key frame's job. Measured times are noisy, so the **maximum
latency** in the paper's sense is read robustly: the per-type 95th percentile
(`PERCENTILE`) of the per-frame loads, and the maximum latency is that of the worst type
(`LatencyStats.maximum_p95`). Percentiles are numpy's default (linear interpolation between
order statistics) over every frame of that type in every evaluated clip; the sample maximum
stays in `LatencyStats.maximum`. For the theoretical latency (FLOPs, one value per job) the
two agree.
"""
import dataclasses

import numpy as np


def check_schedule(interval, delay):
    """Raises ValueError for an interval < 1 or a delay < 0 (both integers, in frames)."""
    if int(interval) != interval or interval < 1:
        raise ValueError(f"interval must be an integer >= 1 (frames between key frames), got "
                         f"{interval!r}.")
    if int(delay) != delay or delay < 0:
        raise ValueError(f"delay must be an integer >= 0 (frames of prediction delay), got "
                         f"{delay!r}.")


def is_key_frame(index, interval):
    """Whether frame `index` (0-based within its clip) is a key frame of the interval."""
    return index % interval == 0


FRAME_TYPES = ("key_frame", "window_step", "interval_frame")
PERCENTILE = 95


def frame_types(length, interval, delay, job_type):
    """The frame type of each entry of `frame_loads` for a clip of `length` frames.

    Args:
      length: T_clip, the clip's frames.
      interval: K >= 1.
      delay: D >= 0.
      job_type: the type of the frames that start a job: 'key_frame' (a full-frame pass) or
        'window_step' (a Patchwork step).

    Returns:
      A list of `length + s - 1` names of `FRAME_TYPES` (`s = min(D + 1, K)`): `job_type` at
      `t = 0, K, 2K, ...`, 'interval_frame' elsewhere and in the spill past the clip's end.
    """
    if job_type not in FRAME_TYPES[:2]:
        raise ValueError(f"job_type must be 'key_frame' or 'window_step', got {job_type!r}.")
    spread = spread_frames(interval, delay)
    return [job_type if t < length and is_key_frame(t, interval) else "interval_frame"
            for t in range(int(length) + spread - 1)]


def spread_frames(interval, delay):
    """`min(delay + 1, interval)`: the frame periods over which a key frame's job is spread."""
    check_schedule(interval, delay)
    return min(int(delay) + 1, int(interval))


def frame_loads(job_costs, interval, delay):
    """Per-frame computation load of one clip under the key-frame schedule.

    Args:
      job_costs: float [T_clip], the cost of the job started at each frame (FLOPs or ms);
        must be 0 at the frames that are not key frames of `interval`.
      interval: K >= 1.
      delay: D >= 0.

    Returns:
      float64 [T_clip + s - 1], `s = min(D + 1, K)`: the load of each frame period, each job's
      cost split evenly over the `s` periods from its own frame on.

    Raises:
      ValueError: a bad schedule, negative costs, or a cost at a frame that is no key frame.
    """
    costs = np.asarray(job_costs, np.float64)
    spread = spread_frames(interval, delay)
    if costs.ndim != 1:
        raise ValueError(f"job_costs must be one cost per frame [T], got shape {costs.shape}.")
    if np.any(costs < 0):
        raise ValueError(f"job_costs must be >= 0, got {costs.tolist()}.")
    off_key = [t for t in range(len(costs)) if costs[t] and not is_key_frame(t, interval)]
    if off_key:
        raise ValueError(f"job_costs has work at frames {off_key}, which are not key frames of "
                         f"interval {interval}; only frames 0, {interval}, ... run the model.")
    loads = np.zeros(len(costs) + spread - 1)
    for offset in range(spread):
        loads[offset:offset + len(costs)] += costs / spread
    return loads


@dataclasses.dataclass
class LatencyStats:
    """Per-frame latency of a stream; `unit` is 'MFLOPs' or 'ms'.

    `maximum_p95` is the maximum latency of the paper read robustly: the largest per-type
    p95 of `by_type` (type -> {'p50', 'p95', 'frames'}). `maximum` is the sample maximum,
    `p95` the 95th percentile over all frames, `frames` the frames the average divides by.
    Records written before the per-type statistics existed lack the last three (NaN, {}).
    """

    unit: str
    maximum: float
    average: float
    median: float
    p90: float
    frames: int
    p95: float = float("nan")
    maximum_p95: float = float("nan")
    by_type: dict = dataclasses.field(default_factory=dict)

    def to_json(self):
        return dataclasses.asdict(self)


def percentile(values, q=PERCENTILE):
    """The q-th percentile of `values` (numpy's linear interpolation); raises on none."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        raise ValueError("No values to take a percentile of.")
    return float(np.percentile(values, q))


def summarize(loads_per_clip, frames_per_clip, unit, types_per_clip):
    """Maximum, average, percentiles and per-frame-type statistics over many clips' loads.

    Args:
      loads_per_clip: list of `frame_loads` results, one per clip.
      frames_per_clip: list of the clips' frame counts (the average divides by their sum).
      unit: the unit of the loads, for the record.
      types_per_clip: list of `frame_types` results, one name per load.

    Returns:
      A `LatencyStats`.
    """
    if not loads_per_clip:
        raise ValueError("No clips were evaluated; give at least one clip.")
    loads = np.concatenate([np.asarray(l, np.float64) for l in loads_per_clip])
    types = np.concatenate([np.asarray(t, str) for t in types_per_clip])
    if types.shape != loads.shape:
        raise ValueError(f"types_per_clip must name the type of each load: {types.shape[0]} "
                         f"names for {loads.shape[0]} loads.")
    by_type = {name: {"p50": percentile(loads[types == name], 50),
                      "p95": percentile(loads[types == name]),
                      "frames": int(np.sum(types == name))}
               for name in FRAME_TYPES if np.any(types == name)}
    frames = int(sum(frames_per_clip))
    return LatencyStats(unit=unit, maximum=float(loads.max()), average=float(loads.sum() / frames),
                        median=float(np.median(loads)), p90=percentile(loads, 90), frames=frames,
                        p95=percentile(loads),
                        maximum_p95=max(stats["p95"] for stats in by_type.values()),
                        by_type=by_type)
