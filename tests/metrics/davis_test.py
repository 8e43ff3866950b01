"""Tests for patchwork_tf.metrics.davis: hand-worked masks and a brute-force distance match."""
import json
import math

import numpy as np
import pytest

from patchwork_tf.metrics import davis


def _brute_force_f(prediction, ground_truth, radius):
    """Boundary F from the definition: a boundary pixel is matched when a boundary pixel of the
    other mask lies within Euclidean distance `radius` (pairwise distances, no dilation)."""
    pb = np.argwhere(davis.boundary_map(prediction))
    gb = np.argwhere(davis.boundary_map(ground_truth))
    if len(pb) == 0 or len(gb) == 0:
        precision, recall = float(len(pb) == 0), float(len(gb) == 0)
    else:
        close = ((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1) <= radius ** 2
        precision, recall = close.any(1).mean(), close.any(0).mean()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _blob(rng, shape):
    """A random union of rectangles."""
    mask = np.zeros(shape, bool)
    for _ in range(rng.integers(1, 4)):
        y, x = rng.integers(0, shape[0] - 2), rng.integers(0, shape[1] - 2)
        mask[y:y + rng.integers(2, shape[0] // 2), x:x + rng.integers(2, shape[1] // 2)] = True
    return mask


def test_boundary_map_hand_worked():
    mask = np.zeros((6, 6), bool)
    mask[1:4, 1:4] = True
    # seg2bmap marks the outside on the top / left and the inside on the bottom / right.
    expected = np.zeros((6, 6), bool)
    expected[0, :4] = expected[3, :4] = expected[:4, 0] = expected[:4, 3] = True
    np.testing.assert_array_equal(davis.boundary_map(mask), expected)


def test_region_similarity_hand_worked():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True       # 8 pixels
    b[1:3] = True      # 8 pixels, 4 shared
    assert davis.region_similarity(a, b) == pytest.approx(4 / 12)
    assert davis.region_similarity(b * 0, a * 0) == 1.0
    assert davis.region_similarity(a, b * 0) == 0.0
    np.testing.assert_allclose(davis.region_similarity(np.stack([a, a]), np.stack([b, a])),
                               [1 / 3, 1.0])


def test_boundary_f_hand_worked():
    # Top 5 rows vs top 7 rows of a 10 x 10 frame: boundaries are rows 4 and 6, 2 px apart.
    # The default tolerance is ceil(0.008 * 14.1) = 1 px: nothing matches. At 2 px all do.
    gt = np.zeros((10, 10), bool)
    gt[:5] = True
    pred = np.zeros((10, 10), bool)
    pred[:7] = True
    assert davis.boundary_radius(gt.shape) == 1
    assert davis.boundary_f_measure(pred, gt) == 0.0
    assert davis.boundary_f_measure(pred, gt, bound_th=2) == 1.0
    assert davis.boundary_f_measure(gt, gt) == 1.0
    empty = np.zeros_like(gt)
    assert davis.boundary_f_measure(empty, empty) == 1.0
    assert davis.boundary_f_measure(empty, gt) == 0.0   # P = 1, R = 0
    assert davis.boundary_f_measure(gt, empty) == 0.0   # P = 0, R = 1


def test_davis_radius_at_480p():
    assert davis.boundary_radius((480, 854)) == math.ceil(0.008 * math.hypot(480, 854)) == 8


@pytest.mark.parametrize("radius,shape", [(0, (17, 23)), (1, (17, 23)), (2, (17, 23)),
                                          (3, (17, 23)), (5, (17, 23)), (5, (3, 4))])
def test_disk_dilation_against_distance(radius, shape):
    rng = np.random.default_rng(radius)
    mask = rng.uniform(size=shape) < 0.1
    mask[0, 0] = True
    points = np.argwhere(mask)
    grid = np.stack(np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij"), -1)
    expected = (((grid[:, :, None, :] - points) ** 2).sum(-1) <= radius ** 2).any(-1)
    np.testing.assert_array_equal(davis.dilate_disk(mask, radius), expected)


@pytest.mark.parametrize("seed", range(6))
def test_boundary_f_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = (24, 40)
    pred = _blob(rng, shape)
    # A displaced copy, plus on odd seeds an unrelated blob, keeps the boundaries close.
    gt = np.roll(pred, tuple(rng.integers(-3, 4, 2)), (0, 1)) | (_blob(rng, shape) & bool(seed % 2))
    for bound_th in (davis.BOUNDARY_THRESHOLD, 2, 4):
        radius = davis.boundary_radius(shape, bound_th)
        assert davis.boundary_f_measure(pred, gt, bound_th) == pytest.approx(
            _brute_force_f(pred, gt, radius))


def test_accumulator_means_frames_then_sequences():
    full = np.ones((1, 4, 4), bool)
    half = np.zeros((1, 4, 4), bool)
    half[0, :2] = True
    metric = davis.DavisJF(frame_selection=davis.ALL_FRAMES)
    metric.add("a", full, full)              # J 1
    metric.add("a", half, full)              # J 0.5 -> sequence a: 0.75
    metric.add("b", np.concatenate([half, half]), np.concatenate([half, half]))  # J 1
    out = metric.result()
    assert out["per_sequence"]["a"]["J"] == pytest.approx(0.75)
    assert out["J"] == pytest.approx((0.75 + 1.0) / 2)
    f_a = (1.0 + davis.boundary_f_measure(half[0], full[0])) / 2
    assert out["F"] == pytest.approx((f_a + 1.0) / 2)
    assert out["J&F"] == pytest.approx((out["J"] + out["F"]) / 2)
    metric.reset()
    assert np.isnan(metric.result()["J"])


def _shifted_square(t):
    """Frame t of a toy sequence: a 6 x 6 square at column t of a 12 x 16 frame."""
    mask = np.zeros((12, 16), bool)
    mask[3:9, t:t + 6] = True
    return mask


def test_default_excludes_first_and_last_frame_of_each_sequence():
    # The DAVIS 2016 benchmark scores frames 1 .. T-2 (eval_sequence.m, annotations[1:-1]).
    truth = _shifted_square(2)
    predictions = [np.zeros_like(truth), truth, _shifted_square(5), np.zeros_like(truth)]
    metric = davis.DavisJF()
    assert metric.frame_selection == davis.EXCLUDE_FIRST_LAST
    for t, prediction in reversed(list(enumerate(predictions))):    # any order
        metric.add_frame("seq", t, prediction, truth)
    metric.add_frame("short", 0, truth, truth)                      # nothing left to score
    metric.add_frame("short", 1, truth, truth)
    out = metric.result()
    # Frame 1: J 1; frame 2: a 3-column shift, 6 * 3 / (6 * 9) = 1/3.
    assert out["per_sequence"] == {"seq": pytest.approx(
        {"J": (1 + 1 / 3) / 2, "F": (1 + davis.boundary_f_measure(predictions[2], truth)) / 2})}
    assert out["J"] == pytest.approx((1 + 1 / 3) / 2)
    every = davis.DavisJF(frame_selection=davis.ALL_FRAMES)
    every.add("seq", np.stack(predictions), np.stack([truth] * 4))
    assert every.result()["J"] == pytest.approx((0 + 1 + 1 / 3 + 0) / 4)


def test_void_pixels_are_left_out_as_in_davis2017_evaluation():
    truth = np.zeros((8, 8), bool)
    truth[:, :4] = True
    prediction = np.zeros_like(truth)
    prediction[:, :6] = True
    void = np.zeros_like(truth)
    void[:, 4:6] = True            # the false positives lie in the void band
    assert davis.region_similarity(prediction, truth) == pytest.approx(32 / 48)
    assert davis.region_similarity(prediction, truth, void) == 1.0
    assert davis.boundary_f_measure(prediction, truth, 1, void) == 1.0
    with pytest.raises(ValueError, match="void must have"):
        davis.region_similarity(prediction, truth, void[:4])


def test_state_saved_per_sequence_and_merged_matches_one_metric():
    rng = np.random.default_rng(7)
    sequences = {name: [(_blob(rng, (24, 32)), _blob(rng, (24, 32))) for _ in range(length)]
                 for name, length in (("a", 5), ("b", 3), ("c", 4))}
    whole = davis.DavisJF()
    for name, frames in sequences.items():
        for t, (prediction, truth) in enumerate(frames):
            whole.add_frame(name, t, prediction, truth)
    saved = []
    for name, frames in sequences.items():
        # Sequence "a" is itself split over two runs, its frames out of order.
        parts = [[4, 0], [2, 1, 3]] if name == "a" else [range(len(frames))]
        for part in parts:
            piece = davis.DavisJF()
            for t in part:
                piece.add_frame(name, t, *frames[t])
            saved.append(json.dumps(piece.state()))
    merged = davis.DavisJF()
    for text in saved:
        merged.merge_state(json.loads(text))
    assert merged.result() == whole.result()
    assert set(merged.result()["per_sequence"]) == {"a", "b", "c"}
    only_c = davis.DavisJF()
    only_c.merge_state(json.loads(saved[-1]))
    with pytest.raises(ValueError, match="in both metrics"):
        only_c.merge_state(whole.state())          # a and b merge cleanly, c overlaps
    assert set(only_c.result()["per_sequence"]) == {"c"}    # nothing was merged
    with pytest.raises(ValueError, match="merge like metrics"):
        davis.DavisJF(frame_selection=davis.ALL_FRAMES).merge_state(whole.state())
    with pytest.raises(ValueError, match="not a DavisJF state"):
        merged.merge_state({"sequences": {}})
    with pytest.raises(ValueError, match="already added"):
        whole.add_frame("a", 2, *sequences["a"][2])


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="Resize the prediction"):
        davis.region_similarity(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\[T, H, W\]"):
        davis.DavisJF().add("x", np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        davis.DavisJF().add_frame("x", 0, np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="frame_selection"):
        davis.DavisJF(frame_selection="first")
