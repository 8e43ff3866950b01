"""95 % bootstrap confidence intervals of accuracy over videos, and paired differences.

The unit of resampling is the video (a synthetic clip, a VID snippet, a DAVIS sequence):
frames of one video are correlated, so resampling frames would make intervals too narrow.
A resample draws V videos with replacement from the V evaluated ones; its accuracy is the
metric recomputed on the pooled frames of the drawn videos, a video drawn k times counting
k times. So mAP is recomputed on the pooled detections of the resample (not averaged over
videos), and DAVIS J / F are the mean over the drawn sequences of their per-sequence means,
as `DavisJF` computes them. The interval is the percentile interval of the resampled
accuracies (`NUM_RESAMPLES` resamples, fixed seed, so an evaluation's interval is
reproducible). A paired difference of two methods evaluated on the same videos uses the same
resamples for both, so what the videos have in common cancels out.

Each video's metric state (`VidMap.state()`, `DavisJF.state()`, kept by
`stream.evaluate_stream`) is read once into numpy arrays; a resample is then a vector of
counts [V] (how often each video is drawn) and the pooled metric is computed with each
video's frames weighted by its count, which is what merging the drawn videos' states into
one metric gives (tested against `merge_state`). For mAP, a detection of a video drawn k
times counts as k adjacent copies in the ranking; merging k copies of the state ranks them
so too, except among detections of equal score, whose order the devkit leaves to the order
of evaluation.
"""
import numpy as np

NUM_RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0


def settings(num_resamples=NUM_RESAMPLES, confidence=CONFIDENCE, seed=SEED):
    """The record of how an interval was computed (kept beside it in results)."""
    return {"unit": "video", "resamples": int(num_resamples), "confidence": float(confidence),
            "seed": int(seed), "method": "percentile"}


def resample_indices(num_videos, num_resamples=NUM_RESAMPLES, seed=SEED):
    """Videos drawn with replacement: int [num_resamples, num_videos] indices."""
    if num_videos < 1:
        raise ValueError(f"bootstrap needs at least one video, got {num_videos}.")
    return np.random.default_rng(seed).integers(0, num_videos, (num_resamples, num_videos))


def counts_of(indices, num_videos):
    """How often each video is drawn: int [R, V] from indices [R, V]."""
    indices = np.asarray(indices)
    rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
    counts = np.zeros((indices.shape[0], num_videos), np.int64)
    np.add.at(counts, (rows, indices.ravel()), 1)
    return counts


def percentile_interval(values, confidence=CONFIDENCE):
    """The central `confidence` percentile interval [lo, hi] of resampled values [R] (NaN
    resamples, e.g. without any ground truth, are left out)."""
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.nanpercentile(np.asarray(values, np.float64), [tail, 100.0 - tail])
    return [float(lo), float(hi)]


class _PooledMap:
    """VID mAP of weighted videos, from their `VidMap` states.

    Per class, the detections of all videos are ranked once (a stable sort in evaluation
    order, as `VidMap.result`). AP is the sum over true positives j of their recall step times
    the precision envelope at j, and the envelope at a true positive is the largest precision
    at it or at a later true positive (a false positive's precision is below that of the
    detection before it). So only the weighted counts of true and false positives at each true
    positive matter: with `tp_upto[v, j]` (`fp_before[v, j]`) the true (false) positives of
    video v ranked up to j, they are `counts @ tp_upto` and `counts @ fp_before` ([V, T]
    tables), one matrix product for all resamples.
    """

    names = ("mAP",)

    def __init__(self, states):
        self._classes = []
        num_videos = len(states)
        for c in range(int(states[0]["num_classes"])):
            scores = [np.asarray(s["scores"][c], np.float64) for s in states]
            video = np.repeat(np.arange(num_videos), [len(x) for x in scores])
            true_positive = np.concatenate(
                [np.asarray(s["true_positive"][c], bool) for s in states])
            order = np.argsort(-np.concatenate(scores), kind="stable")
            video, true_positive = video[order], true_positive[order]
            ranks = np.arange(len(video))
            hits = ranks[true_positive]
            tp_upto = np.zeros((num_videos, len(hits)))
            fp_before = np.zeros((num_videos, len(hits)))
            # Ranks grouped by video (ascending within a video), one slice per video.
            grouped = np.lexsort((ranks, video))
            bounds = np.searchsorted(video[grouped], np.arange(num_videos + 1))
            for v in range(num_videos):
                mine = grouped[bounds[v]:bounds[v + 1]]
                hit = true_positive[mine]
                tp_upto[v] = np.searchsorted(mine[hit], hits, side="right")
                fp_before[v] = np.searchsorted(mine[~hit], hits)
            num_gt = np.array([s["num_gt"][c] for s in states], np.float64)
            self._classes.append((video[hits], tp_upto, fp_before, num_gt))

    def __call__(self, counts):
        """counts [R, V] -> {"mAP": [R]}."""
        counts = np.asarray(counts, np.float64)
        ap = np.full((counts.shape[0], len(self._classes)), np.nan)
        for c, (hit_video, tp_upto, fp_before, num_gt) in enumerate(self._classes):
            gt = counts @ num_gt
            has_gt = gt > 0
            if not has_gt.any():
                continue
            tp, fp = counts @ tp_upto, counts @ fp_before      # [R, T]
            precision = tp / np.maximum(tp + fp, 1e-12)
            envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
            found = np.sum(counts[:, hit_video] * envelope, axis=1)
            ap[has_gt, c] = found[has_gt] / gt[has_gt]
        valid = ~np.isnan(ap)
        mean = np.where(valid.any(axis=1),
                        np.sum(np.where(valid, ap, 0.0), axis=1) / np.maximum(valid.sum(1), 1),
                        np.nan)
        return {"mAP": mean}


class _PooledDavis:
    """DAVIS J, F and J&F of weighted videos, from their `DavisJF` states."""

    names = ("J", "F", "J&F")

    def __init__(self, states):
        from patchwork_tf.metrics import davis
        sums, sequences = [], []
        for state in states:
            metric = davis.DavisJF(state["bound_th"], state["frame_selection"])
            metric.merge_state(state)
            per_sequence = metric.result()["per_sequence"].values()
            sums.append([sum(s["J"] for s in per_sequence), sum(s["F"] for s in per_sequence)])
            sequences.append(len(per_sequence))
        self._sums = np.asarray(sums, np.float64).reshape(-1, 2)
        self._sequences = np.asarray(sequences, np.float64)

    def __call__(self, counts):
        counts = np.asarray(counts, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            j, f = ((counts @ self._sums[:, k]) / (counts @ self._sequences) for k in (0, 1))
        return {"J": j, "F": f, "J&F": (j + f) / 2}


def pooled_metric(states):
    """The accuracy of weighted videos from their metric states (one per video, all of one
    kind): a callable counts [R, V] -> {metric name: [R]}, where row r weights video v by
    `counts[r, v]` (all ones: the metric on every video once)."""
    states = list(states)
    if not states:
        raise ValueError("bootstrap needs the metric state of at least one video.")
    if all(isinstance(s, dict) and "num_gt" in s for s in states):
        return _PooledMap(states)
    if all(isinstance(s, dict) and "sequences" in s for s in states):
        return _PooledDavis(states)
    raise ValueError("bootstrap takes per-video states of one metric kind, VidMap.state() or "
                     "DavisJF.state(); got states with keys "
                     f"{sorted({k for s in states for k in (s if isinstance(s, dict) else {})})}.")


def resampled(states, num_resamples=NUM_RESAMPLES, seed=SEED):
    """The metric on each resample of the videos: {metric name: float [num_resamples]}.

    Resamples depend only on the number of videos, `num_resamples` and `seed`, so two methods
    evaluated on the same videos get the same ones: their arrays' difference is the paired
    difference's resampled distribution."""
    pooled = pooled_metric(states)
    counts = counts_of(resample_indices(len(states), num_resamples, seed), len(states))
    return pooled(counts)


def interval(states, num_resamples=NUM_RESAMPLES, confidence=CONFIDENCE, seed=SEED):
    """Percentile intervals over videos: {metric name: [lo, hi]} (as fractions, like the
    metric) from per-video metric states."""
    return {name: percentile_interval(values, confidence)
            for name, values in resampled(states, num_resamples, seed).items()}


def paired_difference(states_a, states_b, num_resamples=NUM_RESAMPLES, confidence=CONFIDENCE,
                      seed=SEED):
    """Accuracy of method a minus method b on the same videos, with the percentile interval
    of the difference over shared resamples.

    Args:
      states_a, states_b: per-video metric states, the same videos in the same order.

    Returns:
      {metric name: {"difference": a - b on all videos, "interval": [lo, hi]}}.
    """
    states_a, states_b = list(states_a), list(states_b)
    if len(states_a) != len(states_b):
        raise ValueError(f"a paired difference needs the same videos; got {len(states_a)} and "
                         f"{len(states_b)} videos.")
    a, b = pooled_metric(states_a), pooled_metric(states_b)
    counts = counts_of(resample_indices(len(states_a), num_resamples, seed), len(states_a))
    everything = np.ones((1, len(states_a)))
    point_a, point_b = a(everything), b(everything)
    resampled_a, resampled_b = a(counts), b(counts)
    return {name: {"difference": float(point_a[name][0] - point_b[name][0]),
                   "interval": percentile_interval(resampled_a[name] - resampled_b[name],
                                                   confidence)}
            for name in a.names if name in b.names}

