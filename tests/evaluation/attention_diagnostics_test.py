"""Counterfactual window rewards: the numbers of `summarize` by hand, and every window's f
checked against the twin's stateful API replayed from the clip's start."""
import numpy as np
import pytest
import tensorflow as tf

import patchwork_tf as pw
from patchwork_tf.core import grid as grid_lib
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import synthetic
from patchwork_tf.evaluation import api
from patchwork_tf.evaluation import attention_diagnostics as diagnostics
from patchwork_tf.models import ssdlite
from patchwork_tf.policy import observation as observation_lib


def test_summarize_by_hand():
    # Two frames, three windows. Frame 1: f = (0.5, 0.7, 0.6), kept prediction 0.6, so the
    # rewards are (0, 0.1, 0); frame 2: f = (0.2, 0.2, 0.1) below the kept 0.3: all 0.
    records = diagnostics.FrameRecords(
        quality=np.array([[0.5, 0.7, 0.6], [0.2, 0.2, 0.1]]),
        previous=np.array([0.6, 0.3]),
        chosen=np.array([2, 1]),
        q_values=np.array([[0.0, 2.0, 1.0], [5.0, 1.0, 0.0]]),
        change=np.array([[0.1, 0.3, 0.2], [0.0, 0.0, 0.4]]))
    summary = diagnostics.summarize(records)
    assert summary["frames"] == 2
    assert summary["reward"]["followed"] == pytest.approx(0.0)
    assert summary["reward"]["dqn"] == pytest.approx(0.05)      # window 1, then window 0
    assert summary["reward"]["oracle"] == pytest.approx(0.05)
    assert summary["reward"]["uniform"] == pytest.approx(0.1 / 6)
    assert summary["regret"]["followed"] == pytest.approx((0.1 + 0.0) / 2)
    assert summary["regret"]["change"] == pytest.approx((0.0 + 0.1) / 2)
    assert summary["regret"]["uniform"] == pytest.approx((0.3 / 3 + 0.1 / 3) / 2)
    assert summary["zero_signal_share"] == pytest.approx(0.5)
    assert summary["stakes"] == pytest.approx((0.2 + 0.1) / 2)
    assert summary["quality_followed"] == pytest.approx((0.6 + 0.2) / 2)  # Windows 2, then 1.
    # The oracle set of frame 2 is {0, 1}: the DQN's window 0 is in it.
    assert summary["agreement"]["dqn=oracle"] == pytest.approx(1.0)
    assert summary["agreement"]["followed=oracle"] == pytest.approx(0.5)
    assert summary["agreement"]["dqn=change"] == pytest.approx(0.5)
    # Frame 1: Q and change rank the windows (0, 2, 1) like f; frame 2: Q ranks (2, 1, 0),
    # f ranks windows 0 and 1 tied (average rank 1.5) above 2 (rank 0): Spearman 0.866.
    assert summary["rank_correlation"]["q~f"] == pytest.approx((1.0 + 0.8660254) / 2)


def test_rank_correlation_skips_constant_rows_and_handles_ties():
    a = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    assert diagnostics.rank_correlation(a, a) == pytest.approx(1.0)
    assert diagnostics.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(diagnostics.rank_correlation(a[1:], a[1:]))


@pytest.fixture(scope="module")
def stream():
    loaded = api.untrained_model("detection", alpha=0.35, frame_size=(64, 64))
    grid = grid_lib.WindowGrid((64, 64), 2, 1)
    twin = pw.patchwork_model(loaded.model, grid, write="bands",
                              full_memory_cells=[ssdlite.OBSERVED_CELL])
    observer = observation_lib.AttentionObservation(grid, 0.5, True)
    clips = list(synthetic.synthetic_clips("validation", "detection", 2, (64, 64), 3))

    def metric(gt, outputs):
        del gt
        return -tf.reduce_mean(tf.abs(outputs["box_encodings"]), axis=[1, 2])

    return twin, observer, clips, metric


@pytest.mark.slow
def test_every_window_is_scored_as_the_stateful_twin_scores_it(stream):
    twin, observer, clips, metric = stream
    records = diagnostics.counterfactual_records(
        twin, observer, ssdlite.OBSERVED_CELL, metric, clips, follow="change",
        q_fn=lambda obs: obs[observation_lib.CHANGE], batch_size=2)
    num_frames = len(clips[0]["frames"]) - 1
    assert records.quality.shape == (2 * num_frames, twin.grid.num_actions)
    np.testing.assert_array_equal(records.chosen, np.argmax(records.change, axis=-1))
    frames = clips_lib.preprocess_frames(tf.constant(np.stack([c["frames"] for c in clips])))
    chosen = records.chosen.reshape(2, num_frames)
    for t in range(1, num_frames + 1):
        for action in range(twin.grid.num_actions):
            twin.reset_states(2)
            kept = twin.warm_start(frames[:, 0])
            for s in range(1, t):
                kept = twin.step(frames[:, s], tf.constant(chosen[:, s - 1]))
            outputs = twin.step(frames[:, t], tf.fill([2], action))
            rows = np.arange(2) * num_frames + (t - 1)
            np.testing.assert_allclose(records.quality[rows, action], metric(None, outputs),
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(records.previous[rows], metric(None, kept),
                                       rtol=1e-5, atol=1e-6)
    summary = diagnostics.summarize(records)
    assert summary["agreement"]["followed=dqn"] == 1.0


@pytest.mark.slow
def test_the_oracle_has_no_regret(stream):
    twin, observer, clips, metric = stream
    records = diagnostics.counterfactual_records(
        twin, observer, ssdlite.OBSERVED_CELL, metric, clips, follow="oracle", batch_size=2)
    summary = diagnostics.summarize(records)
    assert summary["regret"]["followed"] == pytest.approx(0.0)
    assert summary["regret"]["uniform"] > 0.0
    assert summary["reward"]["followed"] >= summary["reward"]["uniform"]
    with pytest.raises(ValueError, match="needs q_fn"):
        diagnostics.counterfactual_records(twin, observer, ssdlite.OBSERVED_CELL, metric,
                                           clips, follow="dqn")
