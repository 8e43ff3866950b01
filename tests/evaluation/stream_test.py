"""Stream evaluation on fake models whose predictions are known frame by frame.

Segmentation: a 1x1 conv whose foreground logit is the red channel, so a frame predicts
foreground where red >= 128. Detection: one anchor per pixel, box codes 0 and a class logit
of 8 x red, so a bright pixel is a detection of its own pixel box scored sigmoid(8 x red).
Accuracy, FLOPs and the key-frame schedule are then worked out by hand.
"""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf import tasks
from patchwork_tf.data import videos as videos_lib
from patchwork_tf.evaluation import bootstrap
from patchwork_tf.evaluation import results
from patchwork_tf.evaluation import stream
from patchwork_tf.metrics import davis
from patchwork_tf.ops import box_coder
from patchwork_tf.ops import box_ops

SIZE = 8
CONV_FLOPS = 2 * SIZE * SIZE * 3 + SIZE * SIZE   # 1x1 conv 3 -> 1 with bias: 448
WINDOW_FLOPS = 2 * 16 * 3 + 16                    # the same on a 4x4 window: 112


def _segmenter():
    inputs = tf_keras.Input((SIZE, SIZE, 3))
    conv = tf_keras.layers.Conv2D(1, 1, name="logits")
    outputs = conv(inputs)
    conv.set_weights([np.array([1.0, 0.0, 0.0]).reshape(1, 1, 3, 1), np.zeros(1)])
    return tf_keras.Model(inputs, {"mask_logits": outputs})


def _gt_mask():
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:, :SIZE // 2] = 1
    return mask


def _segmentation_clip():
    """Red channels: gt, empty, gt, full; the gt mask is the left half in every frame."""
    gt = _gt_mask()
    reds = [gt * 255, np.zeros_like(gt), gt * 255, np.full_like(gt, 255)]
    frames = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    for t, red in enumerate(reds):
        frames[t, ..., 0] = red
    return {"frames": frames, "mask": np.stack([gt] * 4), "clip_id": "clip0"}


def _expected_f(predicted):
    gt = _gt_mask()
    return np.mean([davis.boundary_f_measure(p, gt) for p in predicted])


def _left():
    return _gt_mask().astype(bool)


def _every_frame():
    """The segmentation task scoring every frame, as the hand-worked numbers below do."""
    return tasks.SegmentationTask(frame_selection=davis.ALL_FRAMES)


def _run(runner, clip, **kwargs):
    return stream.evaluate_stream(runner, [clip], warmup_calls=1, **kwargs)


def test_single_frame_every_frame_scores_and_costs_by_hand():
    runner = stream.SingleFrameRunner(_segmenter(), _every_frame())
    result = _run(runner, _segmentation_clip())
    # J per frame: 1, 0 (empty prediction), 1, 32 / 64.
    assert result.accuracy["J"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    full = np.ones((SIZE, SIZE), bool)
    empty = ~full
    assert result.accuracy["F"] == pytest.approx(_expected_f([_left(), empty, _left(), full]))
    assert result.job_mflops * 1e6 == pytest.approx(CONV_FLOPS)
    assert result.theoretical.maximum * 1e6 == pytest.approx(CONV_FLOPS)
    assert result.theoretical.average * 1e6 == pytest.approx(CONV_FLOPS)
    assert result.call_ms["calls"] == 4
    assert result.empirical.maximum == pytest.approx(result.call_ms["max"])


def test_interval_propagates_key_frames_and_delay_spreads_them():
    runner = stream.SingleFrameRunner(_segmenter(), _every_frame())
    result = _run(runner, _segmentation_clip(), interval=2)
    # Frames 1 and 3 copy frames 0 and 2, which predict the ground truth.
    assert result.accuracy["J"] == pytest.approx(1.0)
    assert result.call_ms["calls"] == 2
    assert result.theoretical.maximum * 1e6 == pytest.approx(CONV_FLOPS)
    assert result.theoretical.average * 1e6 == pytest.approx(CONV_FLOPS / 2)
    delayed = _run(runner, _segmentation_clip(), interval=2, delay=1)
    assert delayed.accuracy["J"] == pytest.approx(1.0)
    assert delayed.theoretical.maximum * 1e6 == pytest.approx(CONV_FLOPS / 2)
    assert delayed.theoretical.average * 1e6 == pytest.approx(CONV_FLOPS / 2)
    assert delayed.empirical.maximum < max(delayed.call_ms["max"], 1e-9)


def test_flip_merges_back_to_the_same_mask_at_twice_the_cost():
    task = _every_frame()
    plain = _run(stream.SingleFrameRunner(_segmenter(), task), _segmentation_clip())
    flipped = _run(stream.SingleFrameRunner(_segmenter(), task, flip=True),
                   _segmentation_clip())
    # A pointwise model's mirrored logits, flipped back, equal the plain ones.
    assert flipped.accuracy == plain.accuracy
    assert flipped.job_mflops == pytest.approx(2 * plain.job_mflops)


def _twin():
    return pw.patchwork_model(_segmenter(), pw.WindowGrid((SIZE, SIZE), 2, 1))


@pytest.mark.parametrize("flip", [False, True])
def test_patchwork_scanning_patches_windows_by_hand(flip):
    runner = stream.PatchworkRunner(_twin(), _every_frame(),
                                    policy="scanning", flip=flip)
    result = _run(runner, _segmentation_clip())
    # Scan 0, 1, 2, 3 (top-left, top-right, bottom-left, bottom-right) after a warm start on
    # frame 0: frames 0 to 2 keep the ground truth (frame 1's empty top-right window is
    # background anyway); frame 3 adds its full bottom-right window: J = 32 / 48.
    assert result.actions == [0, 1, 2, 3]
    assert result.accuracy["J"] == pytest.approx((3 + 2 / 3) / 4)
    patched = _left() | np.pad(np.ones((4, 4), bool), ((4, 0), (4, 0)))
    assert result.accuracy["F"] == pytest.approx(
        _expected_f([_left(), _left(), _left(), patched]))
    copies = 2 if flip else 1
    assert result.job_mflops * 1e6 == pytest.approx(copies * WINDOW_FLOPS)
    assert result.theoretical.maximum * 1e6 == pytest.approx(copies * WINDOW_FLOPS)
    assert result.startup_mflops * 1e6 == pytest.approx(copies * CONV_FLOPS)


def test_patchwork_dqn_is_greedy_and_its_network_is_counted():
    dense = tf_keras.layers.Dense(4, kernel_initializer="zeros",
                                  bias_initializer=tf_keras.initializers.Constant([0, 0, 0, 1]))

    def q_fn(observation):
        return dense(observation["history"])

    runner = stream.PatchworkRunner(_twin(), _every_frame(),
                                    policy="dqn", q_fn=q_fn)
    result = _run(runner, _segmentation_clip())
    assert result.actions == [3, 3, 3, 3]
    # Only the bottom-right window is ever fresh: frame 3 patches it full.
    assert result.accuracy["J"] == pytest.approx((3 + 2 / 3) / 4)
    dense_flops = 2 * 4 * 4 + 4
    assert result.job_mflops * 1e6 == pytest.approx(WINDOW_FLOPS + dense_flops)


def test_change_policy_follows_the_change_cue_by_hand():
    runner = stream.PatchworkRunner(_twin(), _every_frame(),
                                    policy="change")
    result = _run(runner, _segmentation_clip())
    # Nothing changed at the start (window 0 by the tie rule) nor on frame 0; frame 1 empties
    # the left half, window 0 sees it, so window 2 (bottom-left) changed most; frame 2 refills
    # the left half, window 2 sees it, so window 0 changed most.
    assert result.actions == [0, 0, 2, 0]
    # Frames 1 and 2 predict one of the two left quadrants (J = 1/2); frames 0 and 3 both.
    assert result.accuracy["J"] == pytest.approx(0.75)
    # The cue: 8*8*3 pooling, 3*2*2*3 difference, 2*4*2*2 window means.
    assert result.job_mflops * 1e6 == pytest.approx(WINDOW_FLOPS + 260)


def test_random_policy_runs_and_picks_valid_windows():
    runner = stream.PatchworkRunner(_twin(), _every_frame(),
                                    policy="random")
    result = _run(runner, _segmentation_clip())
    assert len(result.actions) == 4 and set(result.actions) <= {0, 1, 2, 3}


def _detector():
    inputs = tf_keras.Input((SIZE, SIZE, 3))
    box = tf_keras.layers.Conv2D(4, 1, kernel_initializer="zeros", name="box")(inputs)
    cls_conv = tf_keras.layers.Conv2D(2, 1, name="cls")
    logits = cls_conv(inputs)
    kernel = np.zeros((1, 1, 3, 2))
    kernel[0, 0, 0, 1] = 8.0
    cls_conv.set_weights([kernel, np.zeros(2)])
    outputs = {
        "box_encodings": tf_keras.layers.Reshape((SIZE * SIZE, 4), name="box_encodings")(box),
        "class_logits": tf_keras.layers.Reshape((SIZE * SIZE, 2), name="class_logits")(logits),
    }
    return tf_keras.Model(inputs, outputs)


def _pixel_anchors():
    return np.array([[i / SIZE, j / SIZE, (i + 1) / SIZE, (j + 1) / SIZE]
                     for i in range(SIZE) for j in range(SIZE)], np.float32)


def _detection_clip():
    """One object moving along the diagonal; brightness (and so score) falls frame by frame."""
    frames = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    boxes = np.zeros((4, 1, 4), np.float32)
    for t, red in enumerate([255, 239, 223, 207]):
        frames[t, t, t, 0] = red
        boxes[t, 0] = _pixel_anchors()[t * SIZE + t]
    return {"frames": frames, "boxes": boxes, "classes": np.zeros((4, 1), np.int32),
            "valid": np.ones((4, 1), bool), "clip_id": "det0"}


def test_detection_map_by_hand_every_frame_and_with_interval():
    task = tasks.DetectionTask(_pixel_anchors(), num_classes=1, score_threshold=0.5)
    runner = stream.SingleFrameRunner(_detector(), task)
    assert _run(runner, _detection_clip()).accuracy["mAP"] == pytest.approx(1.0)
    # Interval 2: frames 1 and 3 repeat the detections of frames 0 and 2 (false positives,
    # ground truth missed). Ranked: TP, FP (tie, added later), TP, FP: recall .25, .25, .5, .5
    # at precision 1, 1/2, 2/3, 1/2, so AP = .25 * 1 + .25 * 2/3.
    result = _run(runner, _detection_clip(), interval=2)
    assert result.accuracy["mAP"] == pytest.approx(0.25 + 0.25 * 2 / 3)


def test_detection_flip_merges_mirrored_boxes_back():
    anchors = np.array([[0.0, 0.0, 0.5, 0.25], [0.5, 0.5, 1.0, 1.0]], np.float32)
    task = tasks.DetectionTask(anchors, num_classes=1, score_threshold=0.5)
    codes = np.zeros((2, 2, 4), np.float32)
    codes[1, 1] = [1.0, 2.0, 0.5, -0.5]
    logits = np.full((2, 2, 2), -9.0, np.float32)
    logits[0, 0, 1] = 3.0   # the frame: anchor 0
    logits[1, 1, 1] = 2.0   # the mirror image: anchor 1 with a shifted code
    got = task.predictions({"box_encodings": tf.constant(codes),
                            "class_logits": tf.constant(logits)}, flip=True)
    mirrored = box_coder.decode(tf.constant(codes[1, 1:]), tf.constant(anchors[1:]))
    expected = box_ops.flip_left_right(tf.clip_by_value(mirrored, 0.0, 1.0)).numpy()
    expected_boxes = np.concatenate([anchors[:1], expected])
    assert int(got["num_detections"][0]) == 2
    np.testing.assert_allclose(got["detection_boxes"][0, :2], expected_boxes, atol=1e-6)
    np.testing.assert_allclose(got["detection_scores"][0, :2], 1 / (1 + np.exp([-3.0, -2.0])), rtol=1e-6)


def test_frames_of_another_size_need_resize_frames():
    runner = stream.SingleFrameRunner(_segmenter(), _every_frame())
    clip = _segmentation_clip()
    clip = {"frames": np.repeat(np.repeat(clip["frames"], 2, 1), 2, 2),
            "mask": np.repeat(np.repeat(clip["mask"], 2, 1), 2, 2), "clip_id": "big"}
    with pytest.raises(ValueError, match="resize_frames=True"):
        _run(runner, clip)
    result = _run(runner, clip, resize_frames=True)
    assert result.accuracy["J"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)


def test_davis_protocol_leaves_out_each_sequences_first_and_last_frame():
    # J per frame is 1, 0, 1, 0.5; the DAVIS 2016 benchmark scores frames 1 and 2 only.
    runner = stream.SingleFrameRunner(_segmenter(), tasks.SegmentationTask())
    result = _run(runner, _segmentation_clip())
    assert result.accuracy["J"] == pytest.approx((0 + 1) / 2)
    assert result.num_frames == 4


def _videos(interrupt_at=None):
    """Three 4-frame segmentation videos; reading frame `interrupt_at` = (video, t) fails once,
    as a stopped evaluation would."""
    base = _segmentation_clip()
    failed = []

    def video(v):
        frames = np.roll(base["frames"], v, axis=0)

        def read_frame(t):
            if (v, t) == interrupt_at and not failed:
                failed.append(True)
                raise KeyboardInterrupt("stopped")
            return {"frame": frames[t], "mask": base["mask"][t]}

        return videos_lib.Video(f"video{v}", 4, read_frame)

    return [video(v) for v in range(3)]


def test_a_stopped_evaluation_resumes_per_video_to_the_same_numbers(tmp_path):
    def run(videos, progress_dir):
        runner = stream.PatchworkRunner(_twin(), tasks.SegmentationTask(), policy="scanning")
        return stream.evaluate_stream(runner, videos, warmup_calls=1, start="zeros",
                                      progress_dir=progress_dir)

    uninterrupted = run(_videos(), None)
    videos = _videos(interrupt_at=(1, 2))
    with pytest.raises(KeyboardInterrupt):
        run(videos, str(tmp_path))
    assert len(list(tmp_path.glob("video_*.json"))) == 1
    resumed = run(videos, str(tmp_path))
    assert resumed.num_frames == uninterrupted.num_frames == 12
    assert resumed.accuracy == uninterrupted.accuracy
    assert resumed.actions == uninterrupted.actions
    assert resumed.theoretical.to_json() == uninterrupted.theoretical.to_json()
    # Progress of another configuration is refused, not mixed in.
    runner = stream.SingleFrameRunner(_segmenter(), tasks.SegmentationTask())
    with pytest.raises(ValueError, match="progress of another evaluation"):
        stream.evaluate_stream(runner, videos, progress_dir=str(tmp_path))


def test_key_frame_start_counts_the_full_pass_in_the_maximum_with_start():
    twin = _twin()
    runner = stream.PatchworkRunner(twin, _every_frame(), policy="scanning")
    clip = _segmentation_clip()
    started = _run(runner, clip, start="key_frame")
    zeros = _run(runner, clip, start="zeros")
    step, full = WINDOW_FLOPS / 1e6, CONV_FLOPS / 1e6
    assert started.theoretical.maximum == zeros.theoretical.maximum == pytest.approx(step)
    assert started.maximum_with_start["MFLOPs"] == pytest.approx(step + full)
    assert zeros.maximum_with_start["MFLOPs"] == pytest.approx(step)
    assert (started.stream_start, zeros.stream_start) == ("key_frame", "zeros")
    # From zero memories the first windows see no context; the warm start fills it.
    assert started.accuracy["J"] >= zeros.accuracy["J"]


def _video_records(progress_dir):
    import glob
    import json
    records = []
    for path in sorted(glob.glob(f"{progress_dir}/video_*.json")):
        with open(path) as f:
            records.append(json.load(f))
    return records


def test_per_frame_type_latency_from_the_timed_frames(tmp_path):
    # Single frame, K = 2, D = 1 on 4 frames: jobs at frames 0 and 2, each split over its own
    # frame and the next.
    runner = stream.SingleFrameRunner(_segmenter(), _every_frame())
    result = _run(runner, _segmentation_clip(), interval=2, delay=1,
                  progress_dir=str(tmp_path / "sf"))
    (record,) = _video_records(tmp_path / "sf")
    c0, c2 = record["job_ms"][0], record["job_ms"][2]
    # Loads of frames 0..3 and the spill: c0/2, c0/2, c2/2, c2/2, 0; key frames 0 and 2.
    key, interval_frames = [c0 / 2, c2 / 2], [c0 / 2, c2 / 2, 0.0]
    by_type = result.empirical.by_type
    assert set(by_type) == {"key_frame", "interval_frame"}
    assert by_type["key_frame"]["frames"] == 2 and by_type["interval_frame"]["frames"] == 3
    assert by_type["key_frame"]["p95"] == pytest.approx(np.percentile(key, 95))
    assert by_type["interval_frame"]["p95"] == pytest.approx(np.percentile(interval_frames, 95))
    assert by_type["key_frame"]["p50"] == pytest.approx(np.median(key))
    assert result.empirical.maximum_p95 == pytest.approx(np.percentile(key, 95))
    assert result.call_ms["p95"] == pytest.approx(np.percentile([c0, c2], 95))
    assert result.theoretical.by_type["key_frame"]["p95"] * 1e6 == pytest.approx(CONV_FLOPS / 2)
    # Patchwork from a key frame: window steps on every frame; the start-up pass makes each
    # video's first frame a key frame of `maximum_with_start`.
    runner = stream.PatchworkRunner(_twin(), _every_frame(), policy="scanning")
    started = _run(runner, _segmentation_clip(), start="key_frame",
                   progress_dir=str(tmp_path / "pw"))
    (record,) = _video_records(tmp_path / "pw")
    steps = record["job_ms"]
    assert set(started.empirical.by_type) == {"window_step"}
    assert started.empirical.by_type["window_step"]["p95"] == pytest.approx(
        np.percentile(steps, 95))
    assert started.maximum_with_start["ms"] == pytest.approx(
        max(steps[0] + record["startup_ms"], np.percentile(steps[1:], 95)))


def test_results_carry_the_interval_over_videos_and_pair_on_the_same_videos():
    base = _segmentation_clip()

    def video(name, frames):
        return videos_lib.Video(name, len(frames), lambda t: {
            "frame": base["frames"][frames[t]], "mask": base["mask"][frames[t]]})

    # J per frame of the clip: 1, 0, 1, 0.5; per video (all frames scored): 1, 0, 0.5, 0.5.
    videos = [video("a", [0]), video("b", [1]), video("c", [3]), video("d", [0, 1])]
    single = stream.evaluate_stream(stream.SingleFrameRunner(_segmenter(), _every_frame()),
                                    videos, warmup_calls=1)
    per_video = np.array([1.0, 0.0, 0.5, 0.5])
    assert single.accuracy["J"] == pytest.approx(per_video.mean())
    indices = bootstrap.resample_indices(4)
    want = np.percentile(per_video[indices].mean(axis=1), [2.5, 97.5])
    np.testing.assert_allclose(single.accuracy_interval["J"], want, atol=1e-12)
    assert single.video_ids == ["a", "b", "c", "d"]
    record = json.loads(json.dumps(single.to_json()))
    assert "video_states" not in record and record["accuracy_interval"]["J"] == list(want)
    assert record["bootstrap"]["resamples"] == bootstrap.NUM_RESAMPLES

    # Another method on the same videos: foreground where red is dark.
    inverted = _segmenter()
    inverted.get_layer("logits").set_weights([np.array([-1.0, 0.0, 0.0]).reshape(1, 1, 3, 1),
                                              np.zeros(1)])
    other = stream.evaluate_stream(stream.SingleFrameRunner(inverted, _every_frame()), videos,
                                   warmup_calls=1)
    assert other.accuracy["J"] != single.accuracy["J"]
    difference = results.paired(single, other)["J"]
    assert difference["difference"] == pytest.approx(
        single.accuracy["J"] - other.accuracy["J"])
    assert difference["interval"][0] <= difference["difference"] <= difference["interval"][1]
    # The results' own resamples give what resampling their states again gives.
    again = bootstrap.paired_difference(single.video_states, other.video_states)["J"]
    assert difference["difference"] == pytest.approx(again["difference"], abs=1e-12)
    np.testing.assert_allclose(difference["interval"], again["interval"], atol=1e-12)
    assert results.paired(single, single)["J"] == {"difference": 0.0, "interval": [0.0, 0.0]}
    fewer = stream.evaluate_stream(stream.SingleFrameRunner(_segmenter(), _every_frame()),
                                   videos[:3], warmup_calls=1)
    with pytest.raises(ValueError, match="same videos"):
        results.paired(single, fewer)
