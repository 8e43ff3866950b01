"""The official protocol on fixture copies of ImageNet VID and DAVIS 2016: every frame of every
validation video, each streamed once from its first frame, scored in the original pixels."""
import numpy as np
import pytest

from patchwork_tf import tasks
from patchwork_tf.data import davis
from patchwork_tf.data import imagenet_vid
from patchwork_tf.evaluation import api
from patchwork_tf.metrics import vid_map
from tests.data import fixtures

VAL_VIDEOS, VAL_FRAMES, HEIGHT, WIDTH = 3, 5, 48, 64


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    sizes = dict(num_frames=(4, VAL_FRAMES), size=(HEIGHT, WIDTH))
    return {"imagenet_vid": fixtures.write_vid(str(root / "ILSVRC2015"),
                                               num_videos=(1, VAL_VIDEOS), **sizes),
            "davis": fixtures.write_davis(str(root / "DAVIS"), num_sequences=(1, VAL_VIDEOS),
                                          **sizes)}


def _frames_on_disk(data, root):
    if data == "imagenet_vid":
        return {video: len(imagenet_vid.frame_names(root, "val", video))
                for video in imagenet_vid.list_videos(root, "val")}
    return {sequence: len(davis.frame_names(root, sequence))
            for sequence in davis.list_sequences(root, "val")}


@pytest.mark.slow
@pytest.mark.parametrize("data,task", [("imagenet_vid", "detection"),
                                       ("davis", "segmentation")])
def test_every_frame_of_every_val_video_is_scored_once(copies, monkeypatch, data, task):
    loaded = api.untrained_model(task, 0.35, (64, 64), num_classes=30)
    on_disk = _frames_on_disk(data, copies[data])
    assert len(on_disk) == VAL_VIDEOS
    scored, sizes = [], set()
    runner_task = tasks.get(task)
    add_frame = runner_task.add_frame

    def spy(self, metric, video_id, index, truth, prediction):
        scored.append((video_id, index))
        sizes.add(truth["frame"].shape[:2])
        return add_frame(self, metric, video_id, index, truth, prediction)

    monkeypatch.setattr(runner_task, "add_frame", spy)
    result, _ = api.evaluate(loaded, "single_frame", data=data, data_dir=copies[data],
                                  clip_frame_size=(64, 64))
    expected = [(video, t) for video, count in on_disk.items() for t in range(count)]
    assert scored == expected and result.num_frames == len(expected)
    assert result.num_clips == VAL_VIDEOS and result.settings["complete"] is True
    assert result.stream_start == "zeros"
    # Scored at the frames' own size, not the model's 64 x 64.
    assert sizes == {(HEIGHT, WIDTH)}


@pytest.mark.slow
def test_detections_are_scored_in_the_original_frame_pixels(copies, monkeypatch):
    # VidMap's small-object threshold depends on pixel sizes: the frame size it is given must
    # be the annotation's, with the normalized boxes of the stretched frame mapped back to it.
    loaded = api.untrained_model("detection", 0.35, (64, 64), num_classes=30)
    seen = []
    add_frame = vid_map.VidMap.add_frame

    def spy(self, frame_size, *args):
        seen.append(tuple(frame_size))
        return add_frame(self, frame_size, *args)

    monkeypatch.setattr(vid_map.VidMap, "add_frame", spy)
    result, _ = api.evaluate(loaded, "single_frame", data="imagenet_vid",
                                  data_dir=copies["imagenet_vid"], clip_frame_size=(64, 64),
                                  max_videos=1)
    assert set(seen) == {(HEIGHT, WIDTH)} and len(seen) == VAL_FRAMES
    assert result.settings["complete"] is False and result.num_clips == 1
    assert np.isfinite(result.accuracy["mAP"])
