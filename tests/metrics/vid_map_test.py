"""Tests for patchwork_tf.metrics.vid_map: hand-worked cases, a re-implementation of the ILSVRC
devkit's `eval_vid_detection.m` on inclusive pixel boxes, and a cross-check with pycocotools."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from patchwork_tf.data import imagenet_vid
from patchwork_tf.metrics import vid_map
from tests.data import fixtures

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


def test_detection_takes_the_gt_of_largest_iou_not_the_first():
    # gt A spans x 0..100 px, gt B x 20..120 (both y 0..100). The first detection, x 15..115,
    # has IoU 85 / 115 = 0.74 with A and 95 / 105 = 0.90 with B: it takes B. The second,
    # x 0..60, then takes A (IoU 0.6; with B it has 40 / 120 = 0.33): AP 1. Taking the first
    # gt that clears the threshold would leave the second detection a false positive.
    gt = [_px(0, 0, 100, 100), _px(0, 20, 100, 120)]
    det = [_px(0, 15, 100, 115), _px(0, 0, 100, 60)]
    assert _metric_one_frame(gt, [0, 0], det, [0.9, 0.8], [0, 0])["mAP"] == 1.0


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


def _inclusive_iou(a, b):
    """The devkit's IoU of inclusive pixel boxes (xmin, ymin, xmax, ymax): +1 on every side."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - iw * ih
    return iw * ih / union


def _devkit_threshold(box):
    w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
    return min(0.5, w * h / ((w + 10) * (h + 10)))


def test_reader_boxes_meet_the_devkit_threshold_of_a_10_pixel_object(tmp_path):
    """A 10 x 10 px object, xmin = ymin = 100, xmax = ymax = 109 (inclusive) in a 720 x 1280
    frame. Devkit: w = h = 109 - 100 + 1 = 10, threshold min(0.5, 100 / (20 * 20)) = 0.25.
    The detection spans pixel edges x 95..114, y 95..115, i.e. inclusive x 95..113, y 95..114,
    19 x 20 px around the object: intersection 10 * 10 = 100, union 380 + 100 - 100 = 380,
    IoU = 100 / 380 = 0.263 >= 0.25, a hit.
    The old reading took the corners as edges, a 9 x 9 box (100..109): threshold
    81 / (19 * 19) = 81 / 361 = 0.224, IoU 81 / (380 + 81 - 81) = 81 / 380 = 0.213, a miss."""
    height, width = 720, 1280
    root, video = str(tmp_path), "ILSVRC2015_val_00000000"
    fixtures.write_image(f"{root}/Data/VID/val/{video}/000000.JPEG",
                         fixtures.flat(height, width, 90))
    fixtures.write(f"{root}/Annotations/VID/val/{video}/000000.xml", fixtures.vid_xml(
        height, width, [(0, imagenet_vid.CLASS_WNIDS[0], (100, 100, 109, 109))]))
    frame = imagenet_vid.read_frame(root, "val", video, "000000")
    np.testing.assert_allclose(frame["boxes"], [[100 / 720, 100 / 1280, 110 / 720, 110 / 1280]])
    gt, det = (100, 100, 109, 109), (95, 95, 113, 114)
    assert _inclusive_iou(det, gt) == pytest.approx(100 / 380)
    assert _devkit_threshold(gt) == 0.25 < _inclusive_iou(det, gt)
    old_gt = (100, 100, 108, 108)                   # edges 100..109 as inclusive indices
    assert _inclusive_iou(det, old_gt) == pytest.approx(81 / 380)
    assert _inclusive_iou(det, old_gt) < _devkit_threshold(old_gt) == pytest.approx(81 / 361)

    det_edges = [[95 / height, 95 / width, 115 / height, 114 / width]]
    metric = vid_map.VidMap(30)
    metric.add_frame(frame["frame"].shape[:2], frame["boxes"], frame["classes"], det_edges,
                     [0.9], [0])
    assert metric.result()["ap"][0] == 1.0
    old = vid_map.VidMap(30)
    old.add_frame((height, width), [[100 / height, 100 / width, 109 / height, 109 / width]], [0],
                  det_edges, [0.9], [0])
    assert old.result()["ap"][0] == 0.0


def test_iou_equal_to_the_threshold_is_a_hit():
    # A 40 x 40 px object (threshold 0.5) inside a 40 x 80 px detection: IoU 1600 / 3200 = 0.5
    # exactly, a hit for the devkit (>=). As float32 normalized boxes on a 360 x 480 frame the
    # edges come back as 99.99999762 px etc.; the metric's rounding restores them.
    frame = (360, 480)
    gt = np.array([[50 / 360, 100 / 480, 90 / 360, 140 / 480]], np.float32)
    det = np.array([[50 / 360, 100 / 480, 90 / 360, 180 / 480]], np.float32)
    assert _inclusive_iou((100, 50, 179, 89), (100, 50, 139, 89)) == 0.5
    metric = vid_map.VidMap(1)
    metric.add_frame(frame, gt, [0], det, [0.5], [0])
    assert metric.result()["mAP"] == 1.0


def _devkit_ap(frames, num_classes):
    """`eval_vid_detection.m` on inclusive pixel boxes: per-class (AP, true positives in the
    order of the frames and, within a frame, of descending score)."""
    tp_all, labels_all, confs_all = [], [], []
    num_pos = [0] * num_classes
    for gt_boxes, gt_labels, boxes, confs, labels in frames:
        for label in gt_labels:
            num_pos[label] += 1
        detected = [False] * len(gt_boxes)
        for j in sorted(range(len(confs)), key=lambda j: -confs[j]):   # stable, as MATLAB's
            best, kmax = -np.inf, -1
            for k, (gt, gt_label) in enumerate(zip(gt_boxes, gt_labels)):
                if gt_label != labels[j] or detected[k]:
                    continue
                ov = _inclusive_iou(boxes[j], gt)
                if ov > 0 and ov >= _devkit_threshold(gt) and ov > best:
                    best, kmax = ov, k
            if kmax >= 0:
                detected[kmax] = True
            tp_all.append(int(kmax >= 0))
            labels_all.append(labels[j])
            confs_all.append(confs[j])
    order = sorted(range(len(confs_all)), key=lambda i: -confs_all[i])
    aps, tps = [], []
    for c in range(num_classes):
        tps.append([tp_all[i] for i in range(len(tp_all)) if labels_all[i] == c])
        ranked = [tp_all[i] for i in order if labels_all[i] == c]
        if not num_pos[c]:
            aps.append(np.nan)
            continue
        tp = np.cumsum(ranked)
        fp = np.cumsum([1 - t for t in ranked])
        rec = [0.0] + list(tp / num_pos[c]) + [1.0]
        prec = [0.0] + list(tp / (fp + tp)) + [0.0]
        for i in range(len(prec) - 2, -1, -1):
            prec[i] = max(prec[i], prec[i + 1])
        aps.append(sum((rec[i] - rec[i - 1]) * prec[i] for i in range(1, len(rec))
                       if rec[i] != rec[i - 1]))
    return np.array(aps), tps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_devkit_on_inclusive_pixel_boxes(seed):
    """Random small and large integer boxes (thresholds from ~0.1 to 0.5), detections jittered
    by a few pixels, scores with ties: the devkit on inclusive corners and VidMap on the
    reader's float32 pixel edges (inclusive + 1) make the same matches and the same APs."""
    rng = np.random.default_rng(seed)
    height, width, num_classes = 360, 480, 3
    frames, edge_frames = [], []
    for _ in range(15):
        k = rng.integers(0, 5)
        size = rng.integers(3, 70, (k, 2))
        x0, y0 = rng.integers(0, width - 70, k), rng.integers(0, height - 70, k)
        gt = np.stack([x0, y0, x0 + size[:, 0] - 1, y0 + size[:, 1] - 1], -1)
        gt_labels = rng.integers(0, num_classes, k)
        # A near copy of the first object, so detections choose between overlapping objects.
        gt = np.concatenate([gt, gt[:1] + rng.integers(1, 6)])
        gt_labels, k = np.concatenate([gt_labels, gt_labels[:1]]), len(gt)
        hit = rng.uniform(size=k) < 0.8
        det = np.concatenate([gt[hit] + rng.integers(-3, 4, (hit.sum(), 4)), gt[hit][:1] + 2])
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2])
        labels = np.concatenate([gt_labels[hit], gt_labels[hit][:1]])
        confs = np.round(rng.uniform(size=len(det)), 1)
        frames.append(([tuple(b) for b in gt], gt_labels.tolist(), [tuple(b) for b in det],
                       confs.tolist(), labels.tolist()))

        def edges(boxes):
            boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
            return (np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3] + 1, boxes[:, 2] + 1], -1)
                    / [height, width, height, width]).astype(np.float32)

        edge_frames.append((edges(gt), gt_labels, edges(det), confs, labels))
    want_ap, want_tp = _devkit_ap(frames, num_classes)
    metric = vid_map.VidMap(num_classes)
    for frame in edge_frames:
        metric.add_frame((height, width), *frame)
    assert metric.state()["true_positive"] == want_tp
    assert 0 < sum(map(sum, want_tp)) < sum(map(len, want_tp))       # hits and misses
    np.testing.assert_allclose(metric.result()["ap"], want_ap, rtol=0, atol=1e-12)


def test_merged_states_equal_one_metric_over_all_frames():
    frames = _random_frames(np.random.default_rng(7), 12, 3)
    whole, first, second = vid_map.VidMap(3), vid_map.VidMap(3), vid_map.VidMap(3)
    for i, frame in enumerate(frames):
        whole.add_frame(FRAME, *frame)
        (first if i < 5 else second).add_frame(FRAME, *frame)
    merged = vid_map.VidMap(3)
    merged.merge_state(json.loads(json.dumps(first.state())))
    merged.merge_state(json.loads(json.dumps(second.state())))
    assert merged.state() == whole.state()
    np.testing.assert_array_equal(merged.result()["ap"], whole.result()["ap"])
    assert merged.result()["mAP"] == whole.result()["mAP"]
    assert sum(merged.state()["num_gt"]) == sum(len(frame[1]) for frame in frames)
    # Resuming: a metric that saw the first frames merges the rest.
    first.merge_state(second.state())
    np.testing.assert_array_equal(first.result()["ap"], whole.result()["ap"])


def test_merge_refuses_other_settings_and_malformed_states():
    state = vid_map.VidMap(3).state()
    with pytest.raises(ValueError, match="num_classes, iou_threshold, pixel_tolerance"):
        vid_map.VidMap(2).merge_state(state)
    with pytest.raises(ValueError, match="num_classes, iou_threshold, pixel_tolerance"):
        vid_map.VidMap(3, pixel_tolerance=0.0).merge_state(state)
    with pytest.raises(ValueError, match=r"lacks \['scores'\]"):
        vid_map.VidMap(3).merge_state({k: v for k, v in state.items() if k != "scores"})
    with pytest.raises(ValueError, match="different lengths"):
        vid_map.VidMap(3).merge_state(dict(state, scores=[[0.5], [], []]))
