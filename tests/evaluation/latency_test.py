"""Key-frame, interval and delay accounting (Sec. 4) on hand-worked schedules."""
import numpy as np
import pytest

from patchwork_tf.evaluation import latency


def _key_costs(length, interval, cost):
    return [cost if t % interval == 0 else 0.0 for t in range(length)]


def _summarize(loads, length, interval, delay, unit="MFLOPs", job_type="key_frame"):
    return latency.summarize([loads], [length], unit,
                             [latency.frame_types(length, interval, delay, job_type)])


def test_every_frame_has_full_cost():
    loads = latency.frame_loads([6.0] * 4, interval=1, delay=0)
    np.testing.assert_allclose(loads, [6.0] * 4)


@pytest.mark.parametrize("delay", [0, 1, 5])
def test_delay_alone_changes_nothing(delay):
    loads = latency.frame_loads([6.0] * 4, interval=1, delay=delay)
    stats = _summarize(loads, 4, 1, delay)
    assert stats.maximum == 6.0 and stats.average == 6.0


def test_interval_divides_average_but_not_maximum():
    # K = 4: the paper's "average T/K, maximum T".
    loads = latency.frame_loads(_key_costs(8, 4, 8.0), interval=4, delay=0)
    np.testing.assert_allclose(loads, [8, 0, 0, 0, 8, 0, 0, 0])
    stats = _summarize(loads, 8, 4, 0)
    assert stats.maximum == 8.0
    assert stats.average == 2.0
    assert stats.median == 0.0


@pytest.mark.parametrize("delay,maximum", [(0, 8.0), (1, 4.0), (3, 2.0), (7, 2.0)])
def test_delay_spreads_key_frames_over_min_delay_plus_one_and_interval(delay, maximum):
    loads = latency.frame_loads(_key_costs(8, 4, 8.0), interval=4, delay=delay)
    stats = _summarize(loads, 8, 4, delay)
    assert stats.maximum == pytest.approx(maximum)   # T / min(D + 1, K)
    assert stats.average == pytest.approx(2.0)       # T / K whatever the delay


def test_delay_one_interval_four_loads_by_hand():
    loads = latency.frame_loads(_key_costs(8, 4, 8.0), interval=4, delay=1)
    np.testing.assert_allclose(loads, [4, 4, 0, 0, 4, 4, 0, 0, 0])


def test_spill_past_the_clip_end_counts():
    # K = 3 on 4 frames: key frames 0 and 3; with D = 2 frame 3's job runs into frames 4, 5.
    loads = latency.frame_loads([3.0, 0, 0, 6.0], interval=3, delay=2)
    np.testing.assert_allclose(loads, [1, 1, 1, 2, 2, 2])
    stats = _summarize(loads, 4, 3, 2, "ms")
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
        latency.summarize([], [], "ms", [])
    with pytest.raises(ValueError, match="job_type"):
        latency.frame_types(4, 1, 0, "interval_frame")
    with pytest.raises(ValueError, match="name the type of each load"):
        latency.summarize([[1.0, 2.0]], [2], "ms", [["key_frame"]])


def test_frame_types_of_a_hand_worked_schedule():
    # K = 3, D = 2 on 4 frames: jobs at frames 0 and 3; frame 3's job spills into two more
    # frame periods, which run no job of their own.
    assert latency.frame_types(4, 3, 2, "window_step") == [
        "window_step", "interval_frame", "interval_frame", "window_step", "interval_frame",
        "interval_frame"]
    assert latency.frame_types(3, 1, 5, "key_frame") == ["key_frame"] * 3
    assert latency.frame_types(5, 2, 0, "key_frame") == [
        "key_frame", "interval_frame", "key_frame", "interval_frame", "key_frame"]


def test_percentiles_of_hand_made_timings():
    # 1..20 ms: p95 by linear interpolation at rank 0.95 * 19 = 18.05 -> 19 + 0.05 * 1.
    times = np.arange(1.0, 21.0)
    assert latency.percentile(times) == pytest.approx(19.05)
    assert latency.percentile(times, 50) == pytest.approx(10.5)
    assert latency.percentile([7.0]) == 7.0
    with pytest.raises(ValueError, match="No values"):
        latency.percentile([])


def test_per_type_p95_and_the_worst_type_by_hand():
    # Two clips, K = 2, D = 1 (s = 2): each key frame's job is split over its own frame and
    # the next. Jobs: clip 1 at frames 0, 2 cost 4, 8 ms; clip 2 at frames 0, 2, 4 cost 2,
    # 6, 40 ms (an outlier). Loads: clip 1 [2, 2, 4, 4, 0], clip 2 [1, 1, 3, 3, 20, 20]
    # (the last entry of each is the spill past the clip's end, an interval frame).
    loads = [latency.frame_loads([4.0, 0, 8.0, 0], 2, 1),
             latency.frame_loads([2.0, 0, 6.0, 0, 40.0], 2, 1)]
    np.testing.assert_allclose(loads[0], [2, 2, 4, 4, 0])
    np.testing.assert_allclose(loads[1], [1, 1, 3, 3, 20, 20])
    types = [latency.frame_types(4, 2, 1, "key_frame"), latency.frame_types(5, 2, 1, "key_frame")]
    stats = latency.summarize(loads, [4, 5], "ms", types)
    # Key frames: 2, 4 and 1, 3, 20 -> sorted 1, 2, 3, 4, 20; p95 at rank 0.95 * 4 = 3.8:
    # 4 + 0.8 * 16 = 16.8; p50 the middle one, 3.
    assert stats.by_type["key_frame"] == {"p50": 3.0, "p95": pytest.approx(16.8), "frames": 5}
    # Interval frames: 2, 4, 0 and 1, 3, 20 -> sorted 0, 1, 2, 3, 4, 20; p95 at rank 4.75:
    # 4 + 0.75 * 16 = 16; p50 at rank 2.5: 2.5.
    assert stats.by_type["interval_frame"] == {"p50": 2.5, "p95": pytest.approx(16.0),
                                               "frames": 6}
    assert "window_step" not in stats.by_type
    assert stats.maximum_p95 == pytest.approx(16.8)   # the worst type's
    assert stats.maximum == 20.0
    assert stats.p95 == pytest.approx(np.percentile(np.concatenate(loads), 95))
    assert stats.average == pytest.approx(60.0 / 9)   # every job's ms over the 9 frames


def test_an_outlier_decides_the_maximum_but_not_its_p95():
    # 40 window steps of 3 ms and one of 9 ms: the sample maximum is the outlier; the p95,
    # the maximum latency the tables show, is the typical step.
    times = [3.0] * 40 + [9.0]
    stats = latency.summarize([latency.frame_loads(times, 1, 0)], [41], "ms",
                              [latency.frame_types(41, 1, 0, "window_step")])
    assert stats.maximum == 9.0
    assert stats.maximum_p95 == 3.0
    assert stats.by_type == {"window_step": {"p50": 3.0, "p95": 3.0, "frames": 41}}
