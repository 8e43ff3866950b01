"""Tests for patchwork_tf.metrics.vid_map: hand-worked cases and a cross-check with pycocotools."""
import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from patchwork_tf.metrics import vid_map

FRAME = (200, 400)  # height, width in pixels


def _px(ymin, xmin, ymax, xmax):
    """A pixel box on FRAME as a normalized box."""
    return [ymin / FRAME[0], xmin / FRAME[1], ymax / FRAME[0], xmax / FRAME[1]]


def _metric_one_frame(gt, gt_cls, det, scores, det_cls, num_classes=1, **kwargs):
    metric = vid_map.VidMap(num_classes, **kwargs)
    metric.add_frame(FRAME, gt, gt_cls, det, scores, det_cls)
    return metric.result()


def test_average_precision_hand_worked():
    # Precision 1 at recall 0.5, 2/3 at recall 1: 0.5 * 1 + 0.5 * 2/3.
    assert vid_map.average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == (
        pytest.approx(0.5 + 1 / 3))
    assert vid_map.average_precision(np.array([]), np.array([])) == 0.0


def test_duplicate_detection_is_a_false_positive():
    gt = [_px(0, 0, 100, 100), _px(100, 200, 200, 300)]
    det = [_px(0, 0, 100, 100), _px(2, 2, 100, 100), _px(100, 200, 200, 300)]
    out = _metric_one_frame(gt, [0, 0], det, [0.9, 0.8, 0.7], [0, 0, 0])
    assert out["mAP"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_detection_takes_the_best_gt_not_yet_found():
    # gt A spans x 0..100 px, gt B x 10..100. The first detection equals A; the second spans
    # x 5..100: IoU 0.95 with A, 0.947 with B. It must take B because A is already found (the
    # devkit skips found boxes; VOC's evaluation would count it a false positive).
    gt = [_px(0, 0, 100, 100), _px(0, 10, 100, 100)]
    det = [_px(0, 0, 100, 100), _px(0, 5, 100, 100)]
    out = _metric_one_frame(gt, [0, 0], det, [0.9, 0.8], [0, 0])
    assert out["mAP"] == 1.0


def test_small_object_threshold():
    # 10 x 10 px box: threshold min(0.5, 100 / 400) = 0.25. A detection shifted by 4 px in x and
    # y has IoU 36 / 164 = 0.22 (miss); shifted by 3 px, 49 / 151 = 0.32 (hit).
    gt = [_px(50, 50, 60, 60)]
    assert _metric_one_frame(gt, [0], [_px(53, 53, 63, 63)], [0.9], [0])["mAP"] == 1.0
    assert _metric_one_frame(gt, [0], [_px(54, 54, 64, 64)], [0.9], [0])["mAP"] == 0.0
    # Without the rule the 0.32 overlap is a miss, as for a large box.
    assert _metric_one_frame(gt, [0], [_px(53, 53, 63, 63)], [0.9], [0],
                             pixel_tolerance=0.0)["mAP"] == 0.0


def test_classes_frames_and_missing_classes():
    metric = vid_map.VidMap(3)
    # Class 0: found in frame 1 with score 0.4, a false positive in frame 2 with score 0.6
    # -> precision 0.5 at recall 1 -> AP 0.5. Class 1: found -> 1. Class 2: no ground truth.
    metric.add_frame(FRAME, [_px(0, 0, 100, 100), _px(0, 200, 100, 300)], [0, 1],
                     [_px(0, 0, 100, 100), _px(0, 200, 100, 300), _px(0, 0, 50, 50)],
                     [0.4, 0.9, 0.3], [0, 1, 2])
    metric.add_frame(FRAME, np.zeros((0, 4)), [], [_px(100, 0, 200, 100)], [0.6], [0])
    out = metric.result()
    np.testing.assert_allclose(out["ap"], [0.5, 1.0, np.nan])
    assert out["mAP"] == pytest.approx(0.75)
    metric.reset()
    assert np.isnan(metric.result()["mAP"])


def test_wrong_class_never_matches():
    out = _metric_one_frame([_px(0, 0, 100, 100)], [0], [_px(0, 0, 100, 100)], [0.9], [1], 2)
    assert out["ap"][0] == 0.0 and np.isnan(out["ap"][1])


def test_add_batch_uses_valid_and_num_detections():
    metric = vid_map.VidMap(2)
    gt = np.array([[_px(0, 0, 100, 100), _px(0, 0, 100, 100)]], np.float32)
    det = dict(boxes=np.array([[_px(0, 0, 100, 100), _px(100, 0, 200, 100)]], np.float32),
               scores=np.array([[0.9, 0.95]], np.float32), classes=np.array([[0, 0]], np.int32),
               num_detections=np.array([1], np.int32))
    metric.add_batch(FRAME, gt, [[0, -1]], [[True, False]], det)
    out = metric.result()
    assert out["ap"][0] == 1.0 and np.isnan(out["ap"][1])


def test_bad_input_is_refused():
    metric = vid_map.VidMap(2)
    with pytest.raises(ValueError, match=r"gt_classes must be 0-based ids in \[0, 2\)"):
        metric.add_frame(FRAME, [_px(0, 0, 10, 10)], [2], [], [], [])
    with pytest.raises(ValueError, match="det_boxes must be"):
        metric.add_frame(FRAME, [], [], [[0.0, 0.0, 1.0]], [0.5], [0])


def _coco_ap(frames, num_classes):
    """Per-class AP of pycocotools COCOeval at IoU 0.5, one area range, no detection cap."""
    images, annotations, results = [], [], []
    for i, (gt, gt_cls, det, scores, det_cls) in enumerate(frames):
        images.append({"id": i, "height": FRAME[0], "width": FRAME[1]})
        for box, c in zip(gt, gt_cls):
            y0, x0, y1, x1 = np.asarray(box) * [FRAME[0], FRAME[1], FRAME[0], FRAME[1]]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(c),
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                                "iscrowd": 0})
        for box, s, c in zip(det, scores, det_cls):
            y0, x0, y1, x1 = np.asarray(box) * [FRAME[0], FRAME[1], FRAME[0], FRAME[1]]
            results.append({"image_id": i, "category_id": int(c), "score": float(s),
                            "bbox": [x0, y0, x1 - x0, y1 - y0]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": annotations,
                        "categories": [{"id": c} for c in range(num_classes)]}
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.params.iouThrs = np.array([0.5])
        evaluator.params.maxDets = [10000]
        evaluator.params.areaRng = [[0, 1e10]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, 0]  # [101 recall points, classes]
    return np.array([np.mean(p) if np.all(p > -1) else np.nan for p in precision.T])


def _random_boxes(rng, n):
    lo = rng.uniform(0, 0.6, (n, 2))
    return np.concatenate([lo, lo + rng.uniform(0.2, 0.4, (n, 2))], -1)  # >= 40 x 80 px


def _random_frames(rng, num_frames, num_classes):
    """Frames of up to 3 boxes; 70 % of them detected with jitter, plus 2 random detections."""
    frames = []
    for _ in range(num_frames):
        k = rng.integers(0, 4)
        gt, gt_cls = _random_boxes(rng, k), rng.integers(0, num_classes, k)
        hit = rng.uniform(size=k) < 0.7
        det = np.concatenate([gt[hit] + rng.normal(0, 0.04, (hit.sum(), 4)), _random_boxes(rng, 2)])
        det_cls = np.concatenate([gt_cls[hit], rng.integers(0, num_classes, 2)])
        frames.append((gt, gt_cls, det, rng.uniform(0, 1, len(det)), det_cls))
    return frames


def _vid_ap(frames, num_classes):
    metric = vid_map.VidMap(num_classes)
    for frame in frames:
        metric.add_frame(FRAME, *frame)
    return metric.result()["ap"]


def test_matches_cocoeval_exactly_where_interpolations_agree():
    """AP 1, AP 0 and a flat precision envelope (1 box, FP then TP: 0.5 at every recall) have
    the same value under VID's all-point and COCO's 101-point interpolation; large boxes keep
    VID's small-object threshold at 0.5, so the two must agree to float precision."""
    big = _px(0, 0, 100, 100)
    frames = [
        ([big], [0], [big], [0.9], [0]),                                  # class 0: AP 1
        ([big], [1], [_px(100, 200, 200, 300)], [0.8], [1]),              # class 1: AP 0
        ([big], [2], [_px(100, 200, 200, 300), big], [0.8, 0.7], [2, 2]),  # class 2: AP 0.5
    ]
    vid, coco = _vid_ap(frames, 3), _coco_ap(frames, 3)
    np.testing.assert_allclose(vid, [1.0, 0.0, 0.5])
    np.testing.assert_allclose(coco, vid, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_cocoeval_within_interpolation_bound(seed):
    """Random frames with boxes of at least 40 x 80 px (VID threshold 0.5 throughout) and no
    score ties: both evaluators do the same greedy matching, so their precision envelopes are
    the same step function p(r). VID integrates it; COCO averages it at r = 0, 0.01, ..., 1.
    For non-increasing p in [0, 1], that 101-point mean S relates to the left and right
    Riemann sums L >= integral >= R by S = (100 L + p(1)) / 101 = (100 R + p(0)) / 101, so
    |S - integral| <= 1/101. The two may differ by at most that (plus float noise)."""
    rng = np.random.default_rng(seed)
    frames = _random_frames(rng, 12, 3)
    vid, coco = _vid_ap(frames, 3), _coco_ap(frames, 3)
    np.testing.assert_array_equal(np.isnan(vid), np.isnan(coco))
    assert np.nanmax(np.abs(vid - coco)) <= 1 / 101 + 1e-9
    # The cases are not trivial (all AP 0 or 1): the interpolations do differ.
    assert np.nanmax(np.abs(vid - coco)) > 0
