"""Key-frame, interval and delay accounting (Sec. 4) on hand-worked schedules."""
import numpy as np
import pytest

from patchwork_tf.evaluation import latency


def _key_costs(length, interval, cost):
    return [cost if t % interval == 0 else 0.0 for t in range(length)]


def test_every_frame_has_full_cost():
    loads = latency.frame_loads([6.0] * 4, interval=1, delay=0)
    np.testing.assert_allclose(loads, [6.0] * 4)


@pytest.mark.parametrize("delay", [0, 1, 5])
def test_delay_alone_changes_nothing(delay):
    loads = latency.frame_loads([6.0] * 4, interval=1, delay=delay)
    stats = latency.summarize([loads], [4], "MFLOPs")
    assert stats.maximum == 6.0 and stats.average == 6.0


def test_interval_divides_average_but_not_maximum():
    # K = 4: the paper's "average T/K, maximum T".
    loads = latency.frame_loads(_key_costs(8, 4, 8.0), interval=4, delay=0)
    np.testing.assert_allclose(loads, [8, 0, 0, 0, 8, 0, 0, 0])
    stats = latency.summarize([loads], [8], "MFLOPs")
    assert stats.maximum == 8.0
    assert stats.average == 2.0
    assert stats.median == 0.0


@pytest.mark.parametrize("delay,maximum", [(0, 8.0), (1, 4.0), (3, 2.0), (7, 2.0)])
def test_delay_spreads_key_frames_over_min_delay_plus_one_and_interval(delay, maximum):
    loads = latency.frame_loads(_key_costs(8, 4, 8.0), interval=4, delay=delay)
    stats = latency.summarize([loads], [8], "MFLOPs")
    assert stats.maximum == pytest.approx(maximum)   # T / min(D + 1, K)
    assert stats.average == pytest.approx(2.0)       # T / K whatever the delay


def test_delay_one_interval_four_loads_by_hand():
    loads = latency.frame_loads(_key_costs(8, 4, 8.0), interval=4, delay=1)
    np.testing.assert_allclose(loads, [4, 4, 0, 0, 4, 4, 0, 0, 0])


def test_spill_past_the_clip_end_counts():
    # K = 3 on 4 frames: key frames 0 and 3; with D = 2 frame 3's job runs into frames 4, 5.
    loads = latency.frame_loads([3.0, 0, 0, 6.0], interval=3, delay=2)
    np.testing.assert_allclose(loads, [1, 1, 1, 2, 2, 2])
    stats = latency.summarize([loads], [4], "ms")
    assert stats.average == pytest.approx(9.0 / 4)
    assert stats.maximum == 2.0


def test_bad_schedules_and_costs_are_refused():
    with pytest.raises(ValueError, match="interval"):
        latency.frame_loads([1.0], interval=0, delay=0)
    with pytest.raises(ValueError, match="delay"):
        latency.frame_loads([1.0], interval=1, delay=-1)
    with pytest.raises(ValueError, match="not key frames"):
        latency.frame_loads([1.0, 1.0], interval=2, delay=0)
    with pytest.raises(ValueError, match="No clips"):
        latency.summarize([], [], "ms")
