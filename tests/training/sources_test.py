"""Data sources on fixture copies: stage-1 frames, stage-2/3 clips, evaluation clips, errors."""
import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image

from patchwork_tf.data import coco as coco_lib
from patchwork_tf.data import imagenet_det
from patchwork_tf.data import imagenet_vid
from patchwork_tf.data import layout
from patchwork_tf.data import pascal_voc
from patchwork_tf.data import synthetic
from patchwork_tf.training import run_config
from patchwork_tf.training import sources
from patchwork_tf.training import stage1
from patchwork_tf.training import stage1_data
from tests.data import fixtures

AIRPLANE = imagenet_vid.CLASS_NAMES.index("airplane")
CATTLE = imagenet_vid.CLASS_NAMES.index("cattle")
ZEBRA = imagenet_vid.CLASS_NAMES.index("zebra")
# The fixture DET train split: an airplane positive and a cattle + apple positive (the
# zebra image is a partial positive, the extra one a negative; neither is read).
DET_AIRPLANE = "imagenet_det/train/ILSVRC2013_train/n02691156/n02691156_1001"
DET_CATTLE = "imagenet_det/train/ILSVRC2014_train_0000/ILSVRC2014_train_00000001"


def _fake_clips(source, task, count):
    return list(source._fake_clips(task, 4, (32, 32), seed=0).take(count).as_numpy_iterator())


def test_vid_has_30_classes_and_the_synthetic_source_its_5():
    assert sources.DataSource().num_classes == len(synthetic.CLASS_NAMES) == 5
    source = sources.DataSource("imagenet_vid", "/anywhere")
    assert source.num_classes == 30 and source.class_names[CATTLE] == "cattle"


def test_vid_frames_mix_with_coco_fake_videos_in_vid_classes(data):
    source = sources.DataSource("imagenet_vid", data["vid"], "coco", data["coco"], 0.5)
    source.check("detection")
    batches = list(source.stage1_dataset("detection", (64, 64), 8, seed=0,
                                         max_objects=100).take(4))
    classes = set()
    for images, labels in batches:
        assert images.shape == (8, 64, 64, 3) and labels["boxes"].shape == (8, 100, 4)
        assert "mask" not in labels
        valid = labels["valid"].numpy()
        classes.update(labels["classes"].numpy()[valid].tolist())
        boxes = labels["boxes"].numpy()[valid]
        assert np.all(boxes[:, 2:] > boxes[:, :2])
    # Video v's object is class v, the zebra VID's; COCO's cow became cattle, its person is
    # dropped (no VID class).
    assert {0, 1, ZEBRA, CATTLE} == classes


def test_davis_frames_with_voc_fake_videos_carry_masks(data):
    source = sources.DataSource("davis", data["davis"], "voc", data["voc"], 0.5)
    source.check("segmentation")
    (images, labels), = list(source.stage1_dataset("segmentation", (64, 64), 16, seed=1,
                                                   max_objects=1).take(1))
    mask = labels["mask"].numpy()
    assert mask.shape == (16, 64, 64) and set(np.unique(mask)) <= {0, 1}
    assert np.all(mask.sum(axis=(1, 2)) > 0)       # every frame shows its object
    assert np.all(labels["classes"].numpy() == 0)


def test_real_source_is_a_function_of_seed_and_restart_step(data):
    source = sources.DataSource("imagenet_vid", data["vid"], "coco", data["coco"])

    def first(seed, start_step):
        dataset = source.stage1_dataset("detection", (64, 64), 4, seed, start_step,
                                        max_objects=100)
        return next(iter(dataset))[0].numpy()

    np.testing.assert_array_equal(first(0, 0), first(0, 0))
    assert not np.array_equal(first(0, 0), first(0, 5))


def test_training_clips_are_batched_like_the_synthetic_ones(data):
    source = sources.DataSource("imagenet_vid", data["vid"])
    clip = next(iter(source.training_clips("detection", (64, 64), 3, 2, seed=0,
                                           max_objects=100)))
    assert set(clip) == {"frames", "boxes", "classes", "valid"}
    assert clip["frames"].shape == (2, 3, 64, 64, 3) and clip["valid"].shape == (2, 3, 100)
    synthetic_clip = next(iter(sources.DataSource().training_clips(
        "detection", (64, 64), 3, 2, seed=0, num_clips=2)))
    for key in clip:
        assert clip[key].dtype == synthetic_clip[key].dtype
        assert clip[key].shape.rank == synthetic_clip[key].shape.rank
    with pytest.raises(layout.DataLayoutError, match="clip_length=50"):
        source.training_clips("detection", (64, 64), 50, 2, seed=0)


def test_evaluation_clips_follow_the_annotations(data):
    source = sources.DataSource("imagenet_vid", data["vid"])
    clips = list(source.evaluation_clips("test", "detection", 5, (64, 64), 4))
    assert len(clips) == 2                          # the val split has 2 videos
    clip = clips[1]
    assert clip["frames"].shape == (4, 64, 64, 3)
    assert clip["clip_id"] == "imagenet_vid/val/ILSVRC2015_val_00000001/0"
    # The fixture's object of frame t spans x 2 + 2t .. 22 + 2t, y 8 .. 26 of a 48 x 64 frame;
    # stretching keeps normalized boxes.
    for t in range(4):
        x0 = 2 + 2 * t
        np.testing.assert_allclose(clip["boxes"][t, 0], [8 / 48, x0 / 64, 26 / 48, (x0 + 20) / 64],
                                   atol=1e-6)
    np.testing.assert_array_equal(clip["classes"][:, 0], 1)
    np.testing.assert_array_equal(clip["valid"][:, 1], [True, False, True, False])


def test_synthetic_evaluation_clips_are_the_benchmark_clips():
    got = next(sources.DataSource().evaluation_clips("test", "detection", 1, (64, 64), 3))
    want = next(synthetic.synthetic_clips("test", "detection", 1, (64, 64), 3))
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_synthetic_stage1_dataset_is_the_stage1_data_pipeline():
    got = next(iter(sources.DataSource().stage1_dataset(
        "segmentation", (64, 64), 2, seed=3, start_step=2, frames_per_clip=2,
        num_train_clips=2)))
    frames = stage1_data.synthetic_frames("train", "segmentation", 2, (64, 64), 2)
    want = next(iter(stage1_data.training_dataset(frames, 2, seed=3, start_step=2)))
    np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
    np.testing.assert_array_equal(got[1]["mask"].numpy(), want[1]["mask"].numpy())


def test_missing_or_malformed_copies_name_the_layout(data, tmp_path):
    with pytest.raises(layout.DataLayoutError, match="(?s)set data_dir.*Annotations/VID"):
        sources.DataSource("imagenet_vid")
    with pytest.raises(layout.DataLayoutError, match="(?s)ImageSets/2016.*JPEGImages/480p"):
        sources.DataSource("davis", str(tmp_path / "missing")).check("segmentation")
    broken = fixtures.write_vid(str(tmp_path / "vid"), num_videos=(1, 1))
    fixtures.write(f"{broken}/ImageSets/VID/train_1.txt", "ILSVRC2015_VID_train_0000/gone 1\n")
    with pytest.raises(layout.DataLayoutError, match="(?s)frames of .*gone.*Data/VID"):
        sources.DataSource("imagenet_vid", broken).check("detection")
    with pytest.raises(layout.DataLayoutError, match="(?s)instances_train2017.json.*annotations/"):
        sources.DataSource("imagenet_vid", data["vid"], "coco",
                           str(tmp_path / "nococo")).check("detection")
    with pytest.raises(ValueError, match="has labels for"):
        sources.DataSource("imagenet_vid", data["vid"]).check("segmentation")
    with pytest.raises(ValueError, match="generated, not read"):
        sources.DataSource("synthetic", still_data="coco", still_data_dir="x")
    with pytest.raises(layout.DataLayoutError,
                       match="(?s)still data 'imagenet_det' .*nodet.*Data/DET/train.*ILSVRC2015"):
        sources.DataSource("imagenet_vid", data["vid"], "coco,imagenet_det",
                           f"{data['coco']},{tmp_path / 'nodet'}").check("detection")
    no_lists = fixtures.write_det(str(tmp_path / "det"))
    for name in os.listdir(f"{no_lists}/ImageSets/DET"):
        os.remove(f"{no_lists}/ImageSets/DET/{name}")
    with pytest.raises(layout.DataLayoutError, match="(?s)no ImageSets/DET/train_<c>.txt.*<root>"):
        sources.DataSource("imagenet_vid", data["vid"], "imagenet_det", no_lists).check(
            "detection")


def test_vid_fake_videos_take_turns_between_coco_and_det_in_vid_classes(data):
    source = sources.DataSource("imagenet_vid", data["vid"], "coco,imagenet_det",
                                f"{data['coco']},{data['det']}", 0.5)
    source.check("detection")
    clips = _fake_clips(source, "detection", 8)
    # Round robin, each source pass after pass: COCO's images 2 and 3 (image 1 shows only a
    # person) alternate with DET's two positives.
    ids = [clip["clip_id"].decode() for clip in clips]
    assert ids == 2 * ["fake/coco/2", f"fake/{DET_AIRPLANE}", "fake/coco/3", f"fake/{DET_CATTLE}"]
    classes = {clip_id: set(clip["classes"][clip["valid"]].tolist())
               for clip_id, clip in zip(ids, clips)}
    # COCO's cow and DET's cattle are VID's cattle; DET's apple and COCO's person are dropped
    # (all of a clip's objects may leave the view, hence <=).
    assert classes["fake/coco/2"] <= {CATTLE} and classes[f"fake/{DET_CATTLE}"] <= {CATTLE}
    assert classes[f"fake/{DET_AIRPLANE}"] <= {AIRPLANE}
    assert {clip["classes"].shape[1] for clip in clips} == {1}   # one VID object per image
    assert set().union(*classes.values()) == {AIRPLANE, CATTLE}
    batches = source.stage1_dataset("detection", (64, 64), 8, seed=0, max_objects=100).take(4)
    for _, labels in batches:
        classes = labels["classes"].numpy()[labels["valid"].numpy()]
        assert np.all((classes >= 0) & (classes < 30))


def test_davis_fake_videos_draw_from_coco_and_voc(data):
    source = sources.DataSource("davis", data["davis"], "coco,voc",
                                f"{data['coco']},{data['voc']}", 0.5)
    source.check("segmentation")
    ids = [clip["clip_id"].decode() for clip in _fake_clips(source, "segmentation", 4)]
    assert ids == ["fake/coco/1", "fake/voc/2008_000000", "fake/coco/2", "fake/voc/2008_000001"]
    (images, labels), = list(source.stage1_dataset("segmentation", (64, 64), 16, seed=1,
                                                   max_objects=1).take(1))
    mask = labels["mask"].numpy()
    assert mask.shape == (16, 64, 64) and np.all(mask.sum(axis=(1, 2)) > 0)


def test_still_data_lists_are_validated(data):
    vid, coco, det = data["vid"], data["coco"], data["det"]
    with pytest.raises(ValueError, match="'imagenet_det' has no labels for 'segmentation'"):
        sources.DataSource("davis", data["davis"], "coco,imagenet_det", f"{coco},{det}")
    with pytest.raises(ValueError, match="names 2 source.*'/a' 1 root.*one root per still"):
        sources.DataSource("imagenet_vid", vid, "imagenet_det,coco", "/a")
    with pytest.raises(ValueError, match="names a source twice"):
        sources.DataSource("imagenet_vid", vid, "coco,coco", f"{coco},{coco}")
    with pytest.raises(ValueError, match="mixes 'none'"):
        sources.DataSource("imagenet_vid", vid, "none,coco", f"{coco},{coco}")
    with pytest.raises(ValueError, match="unknown 'det'"):
        sources.DataSource("imagenet_vid", vid, "coco,det", f"{coco},{det}")
    with pytest.raises(ValueError, match="has an empty entry"):
        sources.DataSource("imagenet_vid", vid, "coco,imagenet_det", f"{coco},")
    with pytest.raises(layout.DataLayoutError, match="(?s)set still_data_dir.*imagenet_det: "):
        sources.DataSource("imagenet_vid", vid, "coco,imagenet_det")
    source = sources.DataSource("imagenet_vid", vid, "imagenet_det, coco", f"{det}, {coco}")
    assert source.stills == (("imagenet_det", det), ("coco", coco))
    assert sources.DataSource("imagenet_vid", vid, "none", "/ignored").stills == ()


def test_stored_single_source_config_loads_and_list_dirs_may_move(data, tmp_path):
    model_dir = str(tmp_path)
    config = stage1.Stage1Config(task="detection", data="imagenet_vid", data_dir=data["vid"],
                                 still_data="coco", still_data_dir=data["coco"])
    run_config.store(model_dir, stage1.CONFIG_FILE, config)
    with open(os.path.join(model_dir, stage1.CONFIG_FILE)) as f:
        assert json.load(f)["still_data"] == "coco"
    assert stage1.load_config(model_dir).source.stills == (("coco", data["coco"]),)
    listed = dataclasses.replace(config, still_data="coco,imagenet_det",
                                 still_data_dir=f"{data['coco']},{data['det']}")
    with pytest.raises(ValueError, match="other settings.*still_data"):
        run_config.store(model_dir, stage1.CONFIG_FILE, listed, extensible=stage1.DATA_PATHS)
    listed_dir = str(tmp_path / "listed")
    run_config.store(listed_dir, stage1.CONFIG_FILE, listed)
    moved = dataclasses.replace(listed, still_data_dir="/moved/coco,/moved/ILSVRC2015")
    run_config.store(listed_dir, stage1.CONFIG_FILE, moved, extensible=stage1.DATA_PATHS)
    assert stage1.load_config(listed_dir).source.stills == (
        ("coco", "/moved/coco"), ("imagenet_det", "/moved/ILSVRC2015"))
    with pytest.raises(ValueError, match="names 2 source"):
        dataclasses.replace(listed, still_data_dir="/moved/coco")


# The fixtures' still classes that ImageNet VID has, by name (VID's own spelling).
_VID_NAMES = {"cow": "cattle", "motorbike": "motorcycle", "dog": "dog", "cat": "domestic_cat"}


def _decoded_slowly(still, root, task):
    """What a source yields of a still source, the obvious slow way: decode every image (with
    PIL, from its file), then keep the objects of a VID class (detection) or the union of the
    masks (segmentation), and skip images left without an object."""
    with_masks = task == "segmentation"
    if still == "coco":
        stills = coco_lib.CocoStills.from_root(root)
        records, names = stills.records(with_masks), stills.class_names
        files = {f"coco/{i}": f"{root}/train2017/{i - 1:012d}.jpg" for i in stills.image_ids}
    elif still == "voc":
        records = pascal_voc.voc_records(root, "trainval", with_masks)
        names = pascal_voc.CLASS_NAMES
        files = {f"voc/{name[:-4]}": f"{root}/JPEGImages/{name[:-4]}.jpg"
                 for name in os.listdir(f"{root}/Annotations")}
    else:
        records = imagenet_det.det_records(root, "train")
        files = {f"imagenet_det/train/{i}": f"{root}/Data/DET/train/{i}.JPEG"
                 for i in imagenet_det.list_images(root, "train")}
    kept = []
    for record in records:
        with Image.open(files[record["image_id"]]) as image:
            pixels = np.asarray(image.convert("RGB"))
        if with_masks:
            union = np.zeros(pixels.shape[:2], np.uint8)
            for mask in record["instance_masks"]:
                union |= mask
            rows, cols = np.nonzero(union)
            if rows.size:
                kept.append({"image": pixels, "image_id": record["image_id"],
                             "boxes": np.array([[rows.min() / union.shape[0],
                                                 cols.min() / union.shape[1],
                                                 (rows.max() + 1) / union.shape[0],
                                                 (cols.max() + 1) / union.shape[1]]], np.float32),
                             "classes": np.zeros(1, np.int32), "instance_masks": union[None]})
            continue
        if still == "imagenet_det":
            wnids = [imagenet_det.WNIDS[c] for c in record["classes"]]
            vid = [imagenet_vid.CLASS_WNIDS.index(w) if w in imagenet_vid.CLASS_WNIDS else -1
                   for w in wnids]
        else:
            vid = [imagenet_vid.CLASS_NAMES.index(_VID_NAMES[names[c]])
                   if names[c] in _VID_NAMES else -1 for c in record["classes"]]
        vid = np.array(vid, np.int32)
        if (vid >= 0).any():
            kept.append({"image": pixels, "image_id": record["image_id"],
                         "boxes": record["boxes"][vid >= 0], "classes": vid[vid >= 0]})
    return kept, files


@pytest.mark.parametrize("still,task,dropped", [
    ("coco", "detection", ["coco/1", "coco/4"]),            # a person alone; no annotation
    ("coco", "segmentation", ["coco/4"]),
    ("voc", "detection", ["voc/2008_000002", "voc/2008_000003"]),   # a chair; nothing left
    ("voc", "segmentation", ["voc/2008_000003"]),
    ("imagenet_det", "detection", ["imagenet_det/train/ILSVRC2014_train_0000/"
                                   "ILSVRC2014_train_00000002"]),  # an apple alone
])
def test_still_sources_decode_only_the_images_they_keep(data, tmp_path, monkeypatch, still,
                                                        task, dropped):
    root = (fixtures.write_voc(str(tmp_path / "voc"), others=True) if still == "voc"
            else data["det" if still == "imagenet_det" else still])
    source = (sources.DataSource("davis", data["davis"], still, root) if task == "segmentation"
              else sources.DataSource("imagenet_vid", data["vid"], still, root))
    opened = []
    read_image = layout.read_image
    monkeypatch.setattr(layout, "read_image",
                        lambda path, *args: opened.append(path) or read_image(path, *args))
    got = list(source._still_records(task, still, root))
    monkeypatch.undo()
    want, files = _decoded_slowly(still, root, task)
    assert [record["image_id"] for record in got] == [record["image_id"] for record in want]
    assert sorted(set(files) - {record["image_id"] for record in want}) == sorted(dropped)
    # Each kept image decoded once, no other image decoded (VOC's masks are PNG annotations).
    assert [path for path in opened if not path.endswith(".png")] == [
        files[record["image_id"]] for record in want]
    for got_record, want_record in zip(got, want):
        assert set(got_record) == set(want_record)
        for key, value in want_record.items():
            np.testing.assert_array_equal(got_record[key], value, err_msg=key)
            assert np.asarray(got_record[key]).dtype == np.asarray(value).dtype, key
