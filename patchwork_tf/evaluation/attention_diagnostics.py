"""What each window would have earned: counterfactual rewards for judging an attention policy.

The stream follows one policy over held-out clips (the DQN's greedy choice, the change rule or
the oracle). At every frame t >= 1 each window a is also tried from the same memories (the
twin's pure `step_fn`, all windows of all streams in one batched call,
`policy.counterfactual.try_every_window`), which gives the task
metric `f(gt_t, p_t(a))` of every choice (Eq. 2's f: Eq. 3 for detection, frame J for
segmentation) and `f(gt_t, p_{t-1})`, the prediction kept from the frame before. From these
`summarize` measures what a policy could have learned and what it did:

* `reward`: the mean Eq. 2 reward `max(0, f(p_t(a)) - f(p_{t-1}))` of each chooser's window
  (the followed policy, the DQN, the change rule, the oracle and a uniform choice);
* `regret`: the mean `max_a f(p_t(a)) - f(p_t(choice))`, the metric a chooser leaves behind;
* `zero_signal_share`: frames on which every window's reward is 0 (Eq. 2's clipping leaves no
  difference between windows to learn from);
* `stakes`: the mean best-minus-worst f over windows, what the choice can matter;
* `quality_followed`: the mean f of the followed stream's own predictions, what following the
  policy keeps (Eq. 2 rewards are relative to the kept prediction, so a policy that lets the
  memories go stale can earn larger rewards while keeping a lower f);
* `agreement`: how often two choosers pick the same window (the oracle's set holds every
  window that ties for the best f);
* `rank_correlation`: mean Spearman correlation over frames between the Q-values, the change
  cue and f (frames where one of the two is constant are left out).
"""
import dataclasses
from typing import Callable, Dict, Iterable, Optional

import numpy as np
import tensorflow as tf

from patchwork_tf.policy import counterfactual
from patchwork_tf.policy import observation as observation_lib

FOLLOW = ("dqn", "change", "oracle")
CHOOSERS = ("followed", "dqn", "change", "oracle", "uniform")


@dataclasses.dataclass
class FrameRecords:
    """Per-frame arrays over all streams and frames t >= 1 (N rows, A windows).

    Attributes:
      quality: float [N, A], `f(gt_t, p_t(a))` for every window a.
      previous: float [N], `f(gt_t, p_{t-1})`.
      chosen: int [N], the followed policy's window.
      q_values: float [N, A] or None without a Q-function.
      change: float [N, A] or None without the change cue.
    """

    quality: np.ndarray
    previous: np.ndarray
    chosen: np.ndarray
    q_values: Optional[np.ndarray] = None
    change: Optional[np.ndarray] = None


def _stack_clips(clips):
    return {name: np.stack([np.asarray(clip[name]) for clip in clips])
            for name in ["frames"] + counterfactual.ground_truth_fields(clips[0])}


def counterfactual_records(twin, observer, observed_cell, metric_fn, clips: Iterable[dict],
                           follow="dqn", q_fn: Optional[Callable] = None, batch_size=8,
                           preprocess_fn=None) -> FrameRecords:
    """Streams `clips` through `twin`, following `follow`, and scores every window per frame
    (`policy.counterfactual.EveryWindowStream`).

    Args:
      twin: a `PatchworkModel` whose `observed_cell` writes whole windows (`full_memory_cells`).
      observer: the `policy.observation.AttentionObservation` of the Q-network's input.
      observed_cell: the cell whose memory the observation reads.
      metric_fn: `f(gt, outputs) -> float32 [B]` (`tasks.Task.reward_metric`), `gt` the dict
        of one frame's ground-truth fields, each [B, ...].
      clips: numpy clip dicts, `frames` uint8 [T, H, W, 3] and per-frame ground truth [T, ...]
        (non-numeric fields such as ids are ignored); every clip of the same T.
      follow: the window the stream takes: "dqn" (argmax of `q_fn`), "change" (argmax of the
        change cue) or "oracle" (argmax of f).
      q_fn: observation -> Q-values [B, A]; needed by "dqn", recorded whenever given.
      batch_size: clips streamed together.
      preprocess_fn: uint8 frames -> the twin's input (default `clips.preprocess_frames`).

    Returns:
      `FrameRecords` over every stream and frame t >= 1 (by batch, then frame, then stream).
    """
    from patchwork_tf.data import clips as clips_lib
    if follow not in FOLLOW:
        raise ValueError(f"follow must be one of {FOLLOW}, got {follow!r}.")
    if follow == "dqn" and q_fn is None:
        raise ValueError("follow='dqn' needs q_fn, the Q-network's observation -> Q-values.")
    if follow == "change" and not observer.change_cue:
        raise ValueError("follow='change' needs an observer with change_cue=True.")

    def choose(observation, quality):
        record = {}
        if q_fn is not None:
            record["q_values"] = q_fn(observation)
        if observer.change_cue:
            record["change"] = observation[observation_lib.CHANGE]
        chooser = {"dqn": record.get("q_values"), "change": record.get("change"),
                   "oracle": quality}[follow]
        return tf.argmax(chooser, axis=-1, output_type=tf.int32), record

    every_window = counterfactual.EveryWindowStream(
        twin, observer, observed_cell, metric_fn, choose,
        preprocess_fn or clips_lib.preprocess_frames)
    clips = list(clips)
    batches = [every_window.records(_stack_clips(clips[begin:begin + batch_size]))
               for begin in range(0, len(clips), batch_size)]
    return FrameRecords(**{field.name: (np.concatenate([b[field.name] for b in batches])
                                        if field.name in batches[0] else None)
                           for field in dataclasses.fields(FrameRecords)})


def _ranks(values):
    """Average ranks along the last axis (ties share their mean rank)."""
    order = np.argsort(values, axis=-1, kind="stable")
    ranks = np.empty_like(values, dtype=float)
    for row, (value_row, order_row) in enumerate(zip(values, order)):
        sorted_values = value_row[order_row]
        row_ranks = np.arange(len(value_row), dtype=float)
        start = 0
        while start < len(sorted_values):
            end = start
            while end + 1 < len(sorted_values) and sorted_values[end + 1] == sorted_values[start]:
                end += 1
            row_ranks[start:end + 1] = (start + end) / 2.0
            start = end + 1
        ranks[row, order_row] = row_ranks
    return ranks


def rank_correlation(a, b):
    """Mean Spearman correlation of rows of `a` and `b` [N, A], over rows where neither is
    constant; NaN when there is no such row."""
    keep = (np.ptp(a, axis=-1) > 0) & (np.ptp(b, axis=-1) > 0)
    if not keep.any():
        return float("nan")
    ra, rb = _ranks(a[keep]), _ranks(b[keep])
    ra -= ra.mean(axis=-1, keepdims=True)
    rb -= rb.mean(axis=-1, keepdims=True)
    return float(np.mean((ra * rb).sum(-1) / np.sqrt((ra ** 2).sum(-1) * (rb ** 2).sum(-1))))


def summarize(records: FrameRecords) -> Dict[str, object]:
    """The diagnostics of the module docstring, as a JSON-ready dict."""
    quality, previous = records.quality, records.previous
    rows = np.arange(len(quality))
    rewards = np.maximum(0.0, quality - previous[:, None])
    best = quality.max(axis=-1)
    choices = {"followed": records.chosen, "oracle": np.argmax(quality, axis=-1)}
    if records.q_values is not None:
        choices["dqn"] = np.argmax(records.q_values, axis=-1)
    if records.change is not None:
        choices["change"] = np.argmax(records.change, axis=-1)
    reward = {name: float(rewards[rows, c].mean()) for name, c in choices.items()}
    reward["uniform"] = float(rewards.mean())
    regret = {name: float((best - quality[rows, c]).mean()) for name, c in choices.items()}
    regret["uniform"] = float((best[:, None] - quality).mean())
    is_best = quality == best[:, None]
    agreement = {}
    names = [name for name in CHOOSERS if name in choices and name != "oracle"]
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            agreement[f"{first}={second}"] = float(np.mean(choices[first] == choices[second]))
        agreement[f"{first}=oracle"] = float(np.mean(is_best[rows, choices[first]]))
    correlation = {}
    if records.q_values is not None:
        correlation["q~f"] = rank_correlation(records.q_values, quality)
    if records.change is not None:
        correlation["change~f"] = rank_correlation(records.change, quality)
    if records.q_values is not None and records.change is not None:
        correlation["q~change"] = rank_correlation(records.q_values, records.change)
    return {
        "frames": int(len(quality)),
        "reward": reward,
        "reward_std_followed": float(rewards[rows, records.chosen].std()),
        "regret": regret,
        "zero_signal_share": float(np.mean(rewards.max(axis=-1) == 0.0)),
        "stakes": float((best - quality.min(axis=-1)).mean()),
        "quality_followed": float(quality[rows, records.chosen].mean()),
        "agreement": agreement,
        "rank_correlation": correlation,
    }
