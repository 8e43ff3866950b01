"""Tests for patchwork_tf.evaluation.bootstrap: the pooled metric of weighted videos against
merging the drawn videos' states into one metric, hand-worked mAP, and intervals of a plain
mean against numpy on the same resamples."""
import json

import numpy as np
import pytest

from patchwork_tf.evaluation import bootstrap
from patchwork_tf.metrics import davis
from patchwork_tf.metrics import vid_map

FRAME = (100, 100)


def _video_state(rng, num_frames=4, num_classes=3):
    """A VidMap state of one video: frames of up to 3 boxes, most detected with jitter, plus
    false positives; continuous scores (no ties)."""
    metric = vid_map.VidMap(num_classes)
    for _ in range(num_frames):
        k = rng.integers(0, 4)
        lo = rng.uniform(0, 0.6, (k, 2))
        gt = np.concatenate([lo, lo + rng.uniform(0.2, 0.4, (k, 2))], -1)
        gt_cls = rng.integers(0, num_classes, k)
        hit = rng.uniform(size=k) < 0.7
        det = np.concatenate([gt[hit] + rng.normal(0, 0.05, (hit.sum(), 4)),
                              rng.uniform(0, 1, (2, 4)) * [1, 1, 0, 0] + [0, 0, 0.5, 0.5]])
        det_cls = np.concatenate([gt_cls[hit], rng.integers(0, num_classes, 2)])
        metric.add_frame(FRAME, gt, gt_cls, det, rng.uniform(0, 1, len(det)), det_cls)
    return json.loads(json.dumps(metric.state()))


def _merged_map(states, indices):
    """mAP of one VidMap into which the drawn videos' states are merged, repeats included."""
    metric = vid_map.VidMap(states[0]["num_classes"])
    for i in indices:
        metric.merge_state(states[i])
    return metric.result()["mAP"]


def test_pooled_map_equals_merging_the_drawn_videos():
    rng = np.random.default_rng(3)
    states = [_video_state(rng) for _ in range(7)]
    pooled = bootstrap.pooled_metric(states)
    indices = bootstrap.resample_indices(len(states), num_resamples=40, seed=5)
    counts = bootstrap.counts_of(indices, len(states))
    np.testing.assert_array_equal(counts.sum(1), 7)
    got = pooled(counts)["mAP"]
    want = [_merged_map(states, sorted(row)) for row in indices]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.std(want) > 0.01   # the resamples differ
    # All videos once: the metric of the evaluation itself.
    everything = pooled(np.ones((1, 7)))["mAP"][0]
    assert everything == pytest.approx(_merged_map(states, range(7)), abs=1e-12)


def test_pooled_map_of_all_videos_keeps_the_order_of_tied_scores():
    # Interval K repeats a key frame's detections on the next frames: equal scores, some true
    # positives and some not; weights of one keep the evaluation order among the ties.
    metric = vid_map.VidMap(1)
    box, miss = [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]
    for shift in (0.0, 0.3):
        gt = [[0.1 + shift, 0.1, 0.5 + shift, 0.5]]
        metric.add_frame(FRAME, gt, [0], [box, miss], [0.7, 0.7], [0, 0])
    state = metric.state()
    assert bootstrap.pooled_metric([state])(np.ones((1, 1)))["mAP"][0] == pytest.approx(
        metric.result()["mAP"], abs=1e-12)


def test_hand_worked_map_of_weighted_videos():
    # Video 0: one object found at score 0.9; video 1: one object missed, a false positive at
    # 0.8.
    found, missed = vid_map.VidMap(1), vid_map.VidMap(1)
    box = [0.2, 0.2, 0.6, 0.6]
    found.add_frame(FRAME, [box], [0], [box], [0.9], [0])
    missed.add_frame(FRAME, [box], [0], [[0.7, 0.7, 0.9, 0.9]], [0.8], [0])
    pooled = bootstrap.pooled_metric([found.state(), missed.state()])
    got = pooled(np.array([[1, 1], [2, 0], [0, 2], [2, 1], [1, 2]]))["mAP"]
    # (1, 1): TP then FP over 2 objects: recall 1/2 at precision 1 -> 0.5.
    # (2, 0): 1. (0, 2): 0. (2, 1): recall 2/3 at precision 1 -> 2/3.
    # (1, 2): TP, then two FPs, over 3 objects -> 1/3.
    np.testing.assert_allclose(got, [0.5, 1.0, 0.0, 2 / 3, 1 / 3], atol=1e-12)


def _davis_states(values_j, values_f):
    """DavisJF states of one sequence each with one scored frame (all frames selected): the
    pooled J and F are then plain means over the drawn videos."""
    states = []
    for i, (j, f) in enumerate(zip(values_j, values_f)):
        state = davis.DavisJF(frame_selection=davis.ALL_FRAMES).state()
        state["sequences"] = {f"video{i}": {"frames": [0], "J": [float(j)], "F": [float(f)]}}
        states.append(state)
    return states


def test_interval_of_a_plain_mean_matches_numpy_on_the_same_resamples():
    rng = np.random.default_rng(0)
    j, f = rng.uniform(0.3, 0.9, 25), rng.uniform(0.2, 0.8, 25)
    got = bootstrap.interval(_davis_states(j, f))
    indices = bootstrap.resample_indices(25)
    assert indices.shape == (bootstrap.NUM_RESAMPLES, 25)
    for name, values in (("J", j), ("F", f), ("J&F", (j + f) / 2)):
        want = np.percentile(values[indices].mean(axis=1), [2.5, 97.5])
        np.testing.assert_allclose(got[name], want, rtol=0, atol=1e-12)
        assert got[name][0] < values.mean() < got[name][1]
    # The width of a mean's interval is about 2 x 1.96 standard errors.
    width = got["J"][1] - got["J"][0]
    assert width == pytest.approx(2 * 1.96 * j.std() / np.sqrt(25), rel=0.15)


def test_paired_difference_of_a_plain_mean_matches_numpy_and_is_narrower():
    rng = np.random.default_rng(1)
    video = rng.uniform(0.2, 0.9, 30)            # how hard each video is, shared
    a, b = video + 0.05 + rng.normal(0, 0.01, 30), video + rng.normal(0, 0.01, 30)
    paired = bootstrap.paired_difference(_davis_states(a, a), _davis_states(b, b))
    indices = bootstrap.resample_indices(30)
    want = np.percentile((a - b)[indices].mean(axis=1), [2.5, 97.5])
    np.testing.assert_allclose(paired["J"]["interval"], want, rtol=0, atol=1e-12)
    assert paired["J"]["difference"] == pytest.approx(np.mean(a - b), abs=1e-12)
    assert set(paired) == {"J", "F", "J&F"}
    # What the videos share cancels: the difference's interval is far narrower than a's.
    alone = bootstrap.interval(_davis_states(a, a))["J"]
    assert np.diff(paired["J"]["interval"])[0] < 0.3 * (alone[1] - alone[0])
    assert paired["J"]["interval"][0] > 0


def test_identical_videos_give_a_zero_width_interval():
    state = _video_state(np.random.default_rng(2))
    point = _merged_map([state], [0])
    for name, (lo, hi) in bootstrap.interval([state] * 9).items():
        assert lo == pytest.approx(point, abs=1e-12) and hi == pytest.approx(point, abs=1e-12)
    same = bootstrap.paired_difference([state] * 9, [state] * 9)["mAP"]
    assert same == {"difference": 0.0, "interval": [0.0, 0.0]}


def test_bad_input_is_refused():
    state = _video_state(np.random.default_rng(4))
    with pytest.raises(ValueError, match="same videos"):
        bootstrap.paired_difference([state] * 3, [state] * 2)
    with pytest.raises(ValueError, match="VidMap.state"):
        bootstrap.interval([{"accuracy": 1.0}])
    with pytest.raises(ValueError, match="at least one"):
        bootstrap.interval([])
