"""tools/paired_difference.py: A - B of two progress folders against merged metrics."""
import importlib.util
import json
import os

import numpy as np
import pytest

from patchwork_tf.metrics import vid_map

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    "paired_difference", os.path.join(REPO, "tools", "paired_difference.py"))
paired_difference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paired_difference)


def _state(rng, hit_rate):
    """A VidMap state of one video of 3 frames; each box is detected with `hit_rate`."""
    metric = vid_map.VidMap(2)
    for _ in range(3):
        lo = rng.uniform(0, 0.5, (2, 2))
        gt = np.concatenate([lo, lo + 0.3], -1)
        hit = rng.uniform(size=2) < hit_rate
        det = np.concatenate([gt[hit], [[0.0, 0.0, 0.1, 0.1]]])
        metric.add_frame((100, 100), gt, [0, 1], det, rng.uniform(0, 1, len(det)),
                         np.concatenate([np.array([0, 1])[hit], [0]]))
    return json.loads(json.dumps(metric.state()))


def _write(folder, states, ids):
    folder.mkdir()
    for index, (video_id, state) in enumerate(zip(ids, states)):
        (folder / f"video_{index:05d}_x.json").write_text(
            json.dumps({"video_id": video_id, "metric": state}))
    return str(folder)


def _merged(states):
    metric = vid_map.VidMap(2)
    for state in states:
        metric.merge_state(state)
    return metric.result()["mAP"]


def test_difference_of_two_folders(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"v{i}" for i in range(12)]
    good = [_state(rng, 0.9) for _ in ids]
    poor = [_state(rng, 0.4) for _ in ids]
    a, b = _write(tmp_path / "a", good, ids), _write(tmp_path / "b", poor, ids)
    row = paired_difference.compare(a, b)["mAP"]
    assert row["a"] == pytest.approx(_merged(good), abs=1e-12)
    assert row["b"] == pytest.approx(_merged(poor), abs=1e-12)
    assert row["difference"] == pytest.approx(row["a"] - row["b"], abs=1e-12)
    lo, hi = row["interval"]
    assert lo < row["difference"] < hi and hi - lo > 0.01
    # The same evaluation twice: no difference in any resample.
    same = paired_difference.compare(a, a)["mAP"]
    assert same["difference"] == 0 and same["interval"] == [0.0, 0.0]


def test_refuses_folders_of_other_videos(tmp_path):
    rng = np.random.default_rng(1)
    a = _write(tmp_path / "a", [_state(rng, 0.9) for _ in range(3)], ["v0", "v1", "v2"])
    b = _write(tmp_path / "b", [_state(rng, 0.9) for _ in range(3)], ["v0", "v1", "v3"])
    with pytest.raises(ValueError, match="different videos"):
        paired_difference.compare(a, b)
    with pytest.raises(FileNotFoundError, match="_progress"):
        paired_difference.load_states(str(tmp_path))
