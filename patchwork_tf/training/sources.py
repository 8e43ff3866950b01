"""Data sources: what each training stage and the evaluation read, by the source's name.

A run names its data with a `DataSource`: the embedded synthetic benchmark, or a local copy of
ImageNet VID 2015 (detection, paper Sec. 4.1) or DAVIS 2016 (unsupervised segmentation,
Sec. 4.2), optionally augmented with fake videos made from the still images of one or more
still sources (Sec. 3.4): COCO 2017, Pascal VOC, and for detection ImageNet DET 2015 (the
paper's VID baseline is trained on "data sampled from ImageNet VID, ImageNet DET and COCO",
Sec. 4.1). For each stage it gives:

* `stage1_dataset`: batches `(images, labels)` of shuffled single frames (stage 1);
* `training_clips`: batched clips `[B, T, ...]` for the environment of stages 2 and 3;
* `evaluation_videos`: the videos of a held-out split, read a frame at a time, for
  `patchwork_tf.evaluate` (real sources: every frame of every video at its original size);
* `evaluation_clips`: numpy clips of a held-out split at the model's size, for the quick
  stage-1 validation score.

Real frames are brought to the model's frame size by stretching each side on its own (the
`"stretch"` method of `pipeline.resize_and_pad_clip`, like the SSD fixed-shape resizer), so no
pixel is padding; boxes and masks follow the frames. Stage 1 reads every training video cut
into 16-frame segments and keeps `frames_per_clip` evenly spaced frames of each segment, as it
does with the synthetic clips; stages 2 and 3 read consecutive, non-overlapping clips of every
training video. Videos are read in a shuffled order, several at a time.

Still images augment the training data of all three stages at `still_fraction` of the frames
or clips. `still_data` names the still sources as a comma-separated string ("coco",
"imagenet_det,coco"; "none" for none) and `still_data_dir` their roots in the same order. The
fake videos draw from the sources in turn (round robin), each source read pass after pass on
its own: every source gives an equal share of the fake videos whatever its size, so a small
source (VOC) repeats more often than a large one (COCO, DET). Their labels are mapped onto the
source's classes: for ImageNet VID, COCO's and VOC's by name (COCO's and VOC's "cow" is VID's
"cattle", "cat" is "domestic_cat", "boat" is "watercraft", VOC's "aeroplane" and "motorbike"
are "airplane" and "motorcycle"), ImageNet DET's by WordNet id (`imagenet_det.to_vid_classes`:
VID's 30 classes are 30 of DET's 200); objects of other classes are dropped (ImageNet VID
leaves them unlabelled too). For DAVIS every object of a still image is foreground: the record
becomes one object, the union of its instance masks; ImageNet DET has no masks, so it is
refused for segmentation. Still images left without an object are skipped, so no fake video
is all background. They are skipped on their annotations alone: the readers yield each image
as a `fake_video.Still` (labels first), and only the images kept are decoded.

Determinism: the synthetic source is a pure function of the seed and the step, so stage 1
resumes exactly (see `stage1_data`). The real sources are a pure function of the seed and the
step a run (re)started at: a resumed run draws a fresh order from `(seed, start_step)` instead
of re-reading every batch it skips.
"""
import dataclasses
import os
from typing import Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from patchwork_tf import tasks
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import coco
from patchwork_tf.data import davis
from patchwork_tf.data import imagenet_det
from patchwork_tf.data import imagenet_vid
from patchwork_tf.data import layout as layout_lib
from patchwork_tf.data import pascal_voc
from patchwork_tf.data import pipeline
from patchwork_tf.data import synthetic
from patchwork_tf.data import videos as videos_lib
from patchwork_tf.training import stage1_data

SYNTHETIC = "synthetic"
IMAGENET_VID = "imagenet_vid"
DAVIS = "davis"
SOURCES = (SYNTHETIC, IMAGENET_VID, DAVIS)
NO_STILLS = "none"
COCO = "coco"
VOC = "voc"
IMAGENET_DET = "imagenet_det"
# The entries of `still_data` ("none" alone, or a comma-separated list of the others).
STILL_SOURCES = (NO_STILLS, COCO, VOC, IMAGENET_DET)
_DETECTION, _SEGMENTATION = tasks.DetectionTask.name, tasks.SegmentationTask.name
_STILL_TASKS = {COCO: (_DETECTION, _SEGMENTATION), VOC: (_DETECTION, _SEGMENTATION),
                IMAGENET_DET: (_DETECTION,)}
RESIZE_METHOD = "stretch"
# Stage 1 cuts real videos into segments of the synthetic clips' length.
SEGMENT_LENGTH = 16
# Ground truth the environment keeps per frame; instance masks are not needed by any reward.
_CLIP_FIELDS = ("frames", "boxes", "classes", "valid", "mask")
_TASKS = {SYNTHETIC: synthetic.TASKS, IMAGENET_VID: (_DETECTION,), DAVIS: (_SEGMENTATION,)}
_CLASS_NAMES = {SYNTHETIC: synthetic.CLASS_NAMES, IMAGENET_VID: imagenet_vid.CLASS_NAMES,
                DAVIS: davis.CLASS_NAMES}
# Object slots per frame. ImageNet VID frames and still images (mapped to the VID classes) hold
# far fewer; a clip with more stops the pipeline with an error that says so.
_MAX_OBJECTS = {SYNTHETIC: 4, IMAGENET_VID: 100, DAVIS: 1}
_LAYOUTS = {IMAGENET_VID: imagenet_vid.LAYOUT, DAVIS: davis.LAYOUT, COCO: coco.LAYOUT,
            VOC: pascal_voc.LAYOUT, IMAGENET_DET: imagenet_det.LAYOUT}
# COCO 2017's training images; VOC's trainval list (the usual VOC augmentation set); DET's
# train split (its positives, `imagenet_det.list_images`).
STILL_SPLITS = {COCO: "train", VOC: "trainval", IMAGENET_DET: "train"}
_STILL_TO_VID = {
    "airplane": "airplane", "aeroplane": "airplane", "bear": "bear", "bicycle": "bicycle",
    "bird": "bird", "bus": "bus", "car": "car", "cow": "cattle", "dog": "dog",
    "cat": "domestic_cat", "elephant": "elephant", "horse": "horse",
    "motorcycle": "motorcycle", "motorbike": "motorcycle", "sheep": "sheep", "train": "train",
    "boat": "watercraft", "zebra": "zebra"}
# Frames (stage 1) and clips (stages 2, 3) in the shuffle buffers of the real sources, and
# videos read in parallel.
SHUFFLE_FRAMES = 1024
SHUFFLE_CLIPS = 64
_PARALLEL_VIDEOS = 4


def restart_seed(seed: int, start_step: int) -> int:
    """The data seed of a real-source run (re)started at `start_step`."""
    return int(np.random.SeedSequence([seed, start_step]).generate_state(1)[0] >> 1)


def _entries(text, field, example):
    """The comma-separated entries of `text`, stripped; refuses an empty entry."""
    if not isinstance(text, str):
        raise ValueError(f"{field} must be a comma-separated string such as {example!r}, got "
                         f"{text!r}.")
    entries = tuple(entry.strip() for entry in text.split(","))
    if not all(entries):
        raise ValueError(f"{field} {text!r} has an empty entry; separate the entries by single "
                         f"commas, e.g. {example!r}.")
    return entries


def _still_task_error(still, task):
    return ValueError(
        f"still data {still!r} has no labels for {task!r} (it has {_STILL_TASKS[still]}); "
        "segmentation needs instance masks: use coco and/or voc.")


def _vid_classes_by_name(names):
    """Maps class ids of a still source with class names `names` onto ImageNet VID's class
    ids by name (`_STILL_TO_VID`), -1 where VID has no such class."""
    vid_index = {name: i for i, name in enumerate(imagenet_vid.CLASS_NAMES)}
    lookup = np.array([vid_index.get(_STILL_TO_VID.get(name), -1) for name in names], np.int32)
    return lambda classes: lookup[np.asarray(classes, np.int64)]


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A data source and its local copies.

    Attributes:
      name: "synthetic", "imagenet_vid" or "davis".
      data_dir: root of the local copy of a real source (see its reader's `LAYOUT`).
      still_data: still images for fake videos (real sources only): "none", or a
        comma-separated list of distinct still sources among "coco", "voc" and
        "imagenet_det" (detection only), e.g. "imagenet_det,coco". A string, so that stored
        configs stay JSON and compare as before (a stored "coco" is one source).
      still_data_dir: the still sources' roots, comma-separated in the order of `still_data`
        (`coco.LAYOUT`, `pascal_voc.LAYOUT`, `imagenet_det.LAYOUT`); a root cannot hold a
        comma. Ignored for "none".
      still_fraction: share of fake-video frames (stage 1) and clips (stages 2, 3), in [0, 1),
        all still sources together.
    """

    name: str = SYNTHETIC
    data_dir: Optional[str] = None
    still_data: str = NO_STILLS
    still_data_dir: Optional[str] = None
    still_fraction: float = 0.5

    def __post_init__(self):
        if self.name not in SOURCES:
            raise ValueError(f"data source must be one of {SOURCES}, got {self.name!r}.")
        stills = _entries(self.still_data, "still_data", "imagenet_det,coco")
        unknown = [still for still in stills if still not in STILL_SOURCES]
        if unknown:
            raise ValueError(f"still data must be 'none' or a comma-separated list of "
                             f"{STILL_SOURCES[1:]}; {self.still_data!r} has unknown "
                             f"{', '.join(map(repr, unknown))}.")
        if len(set(stills)) != len(stills):
            raise ValueError(f"still data {self.still_data!r} names a source twice; name each "
                             "once.")
        if NO_STILLS in stills and len(stills) > 1:
            raise ValueError(f"still data {self.still_data!r} mixes 'none' (no still images) "
                             "with still sources; give either 'none' or the sources.")
        if self.name == SYNTHETIC and (self.data_dir or self.still_sources):
            raise ValueError(
                "the synthetic source is generated, not read: give no data_dir and still_data "
                f"'none' (got data_dir={self.data_dir!r}, still_data={self.still_data!r}).")
        if self.name != SYNTHETIC and not self.data_dir:
            raise layout_lib.DataLayoutError(
                f"data source {self.name!r} reads a local copy: set data_dir to its root, laid "
                f"out as\n{_LAYOUTS[self.name]}")
        for still in self.still_sources:
            if not set(_TASKS[self.name]) & set(_STILL_TASKS[still]):
                raise _still_task_error(still, _TASKS[self.name][0])
        if self.still_sources and not self.still_data_dir:
            layouts = "\n".join(f"{still}: {_LAYOUTS[still]}" for still in self.still_sources)
            raise layout_lib.DataLayoutError(
                f"still data {self.still_data!r} reads local copies: set still_data_dir to "
                f"their roots, comma-separated in the same order, laid out as\n{layouts}")
        if self.still_sources:
            roots = _entries(self.still_data_dir, "still_data_dir", "data/ILSVRC2015,data/coco")
            if len(roots) != len(self.still_sources):
                raise ValueError(
                    f"still_data {self.still_data!r} names {len(self.still_sources)} source(s) "
                    f"but still_data_dir {self.still_data_dir!r} {len(roots)} root(s); give "
                    "one root per still source, in the same order, separated by commas.")
        if not 0.0 <= self.still_fraction < 1.0:
            raise ValueError(f"still_fraction must be in [0, 1), got {self.still_fraction}.")

    @property
    def still_sources(self) -> Tuple[str, ...]:
        """The still sources of `still_data` in their order; () for "none"."""
        stills = tuple(entry.strip() for entry in self.still_data.split(","))
        return () if stills == (NO_STILLS,) else stills

    @property
    def stills(self) -> Tuple[Tuple[str, str], ...]:
        """`(still source, root)` pairs, in the order of `still_data`; () for "none"."""
        if not self.still_sources:
            return ()
        roots = tuple(root.strip() for root in self.still_data_dir.split(","))
        return tuple(zip(self.still_sources, roots))

    @property
    def class_names(self) -> Tuple[str, ...]:
        """The source's object classes; class id i is `class_names[i]`."""
        return _CLASS_NAMES[self.name]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def default_max_objects(self) -> int:
        """Object slots per frame that the source's clips fit in."""
        return _MAX_OBJECTS[self.name]

    @property
    def _fake_fraction(self) -> float:
        return self.still_fraction if self.still_sources else 0.0

    def check(self, task: str) -> None:
        """Refuses a task the source (or a still source) has no labels for, and a missing or
        malformed copy.

        Raises:
          ValueError: the source or a still source has no labels for `task`.
          layout.DataLayoutError: naming the missing file, the still source it belongs to and
            the expected layout.
        """
        self.check_task(task)
        if self.name != SYNTHETIC:
            videos = self._videos("train")
            if not videos:
                raise layout_lib.DataLayoutError(
                    f"the train split of {self.data_dir!r} lists no videos. Expected this "
                    f"layout:\n{_LAYOUTS[self.name]}")
            self._frame_count("train", videos[0])
        for still, root in self.stills:
            try:
                self._check_still(still, root, task)
            except layout_lib.DataLayoutError as error:
                raise layout_lib.DataLayoutError(
                    f"still data {still!r} (still_data_dir entry {root!r}): {error}") from error

    @staticmethod
    def _check_still(still, root, task):
        """Refuses a missing still copy (layout.DataLayoutError with its LAYOUT)."""
        if still == COCO:
            split = STILL_SPLITS[COCO]
            layout_lib.require(os.path.join(root, "annotations", f"instances_{split}2017.json"),
                               "COCO annotation file", coco.LAYOUT)
            layout_lib.require(os.path.join(root, f"{split}2017"), "COCO image folder",
                               coco.LAYOUT)
        elif still == VOC:
            lists = "Segmentation" if tasks.get(task).uses_mask else "Main"
            layout_lib.require(
                os.path.join(root, "ImageSets", lists, f"{STILL_SPLITS[VOC]}.txt"),
                f"ImageSets/{lists}/{STILL_SPLITS[VOC]}.txt", pascal_voc.LAYOUT)
        else:
            split = STILL_SPLITS[IMAGENET_DET]
            for folder in ("Data", "Annotations"):
                layout_lib.require(os.path.join(root, folder, "DET", split),
                                   f"{folder}/DET/{split}", imagenet_det.LAYOUT)
            sets_dir = layout_lib.require(os.path.join(root, "ImageSets", "DET"),
                                          "ImageSets/DET", imagenet_det.LAYOUT)
            if not any(name.startswith("train_") and name.endswith(".txt")
                       for name in os.listdir(sets_dir)):
                raise layout_lib.DataLayoutError(
                    f"no ImageSets/DET/train_<c>.txt in {sets_dir!r}. Expected this layout:\n"
                    f"{imagenet_det.LAYOUT}")

    def check_task(self, task: str) -> None:
        """Refuses a task the source or one of its still sources has no labels for
        (ValueError)."""
        if task not in _TASKS[self.name]:
            raise ValueError(f"data source {self.name!r} has labels for {_TASKS[self.name]}, "
                             f"not {task!r}.")
        for still in self.still_sources:
            if task not in _STILL_TASKS[still]:
                raise _still_task_error(still, task)

    def reader_split(self, split: str) -> str:
        """The source's name of a split: the real sources evaluate "validation" and "test" on
        their annotated held-out split, "val" (the split both papers report)."""
        if self.name == SYNTHETIC:
            return split
        if split not in ("train", "val", "validation", "test"):
            raise ValueError(f"split must be train, validation or test, got {split!r}.")
        return "train" if split == "train" else "val"

    # Real videos: ImageNet VID videos or DAVIS sequences.

    def _videos(self, split):
        if self.name == IMAGENET_VID:
            return imagenet_vid.list_videos(self.data_dir, split)
        return davis.list_sequences(self.data_dir, split)

    def _frame_dir(self, split, video):
        if self.name == IMAGENET_VID:
            return os.path.join(self.data_dir, "Data", "VID", split, video), ".JPEG"
        return os.path.join(self.data_dir, "JPEGImages", "480p", video), ".jpg"

    def _frame_count(self, split, video):
        frame_dir, suffix = self._frame_dir(split, video)
        layout_lib.require(frame_dir, f"frames of {video!r}", _LAYOUTS[self.name])
        return sum(name.endswith(suffix) for name in os.listdir(frame_dir))

    def _read(self, split, video, start, length):
        if self.name == IMAGENET_VID:
            return imagenet_vid.read_video(self.data_dir, split, video, start, length)
        return davis.read_sequence(self.data_dir, video, start, length)

    def _signature(self):
        with_masks = self.name == DAVIS
        return clips_lib.clip_signature(with_instance_masks=with_masks, with_mask=with_masks)

    def _video_clips(self, split, spans_fn, seed):
        """Endless clips of the videos of `split` in a shuffled order (reshuffled each pass),
        `_PARALLEL_VIDEOS` videos read at a time; `spans_fn(frame_count)` lists the
        `(start, length)` of the clips read from a video."""
        videos = self._videos(split)
        signature = self._signature()

        def generate(video):
            video = video.decode()
            for start, length in spans_fn(self._frame_count(split, video)):
                clip = self._read(split, video, start, length)
                yield {key: clip[key] for key in signature}

        def read_video(video):
            return tf.data.Dataset.from_generator(generate, args=(video,),
                                                  output_signature=signature)

        dataset = tf.data.Dataset.from_tensor_slices(videos).shuffle(
            len(videos), seed=seed, reshuffle_each_iteration=True).repeat()
        return dataset.interleave(read_video, cycle_length=_PARALLEL_VIDEOS,
                                  num_parallel_calls=_PARALLEL_VIDEOS, deterministic=True)

    # Still images.

    def _still_records(self, task, still, root):
        """The still records of one still source with labels in the source's classes
        (`_map_still_labels`); images without an object are skipped before their pixels are
        decoded (see the module docstring)."""
        with_masks = tasks.get(task).uses_mask
        if still == COCO:
            stills = coco.CocoStills.from_root(root, STILL_SPLITS[COCO])
            images, to_vid = stills.stills(with_masks), _vid_classes_by_name(stills.class_names)
        elif still == VOC:
            images = pascal_voc.voc_stills(root, STILL_SPLITS[VOC], with_masks)
            to_vid = _vid_classes_by_name(pascal_voc.CLASS_NAMES)
        else:
            images = imagenet_det.det_stills(root, STILL_SPLITS[IMAGENET_DET])
            to_vid = imagenet_det.to_vid_classes
        for image in images:
            labels = self._map_still_labels(image.labels, to_vid, task)
            if labels is not None:
                yield {"image": image.read_image(), **labels}

    @staticmethod
    def _map_still_labels(labels, to_vid, task):
        """A still image's labels in the source's classes, or None without an object.

        Args:
          labels: the labels of a still record, without its image (`fake_video.Still`):
            `boxes` [K, 4], `classes` [K], `image_id`, and for segmentation `instance_masks`
            [K, H, W].
          to_vid: maps the labels' class ids (int32 [K]) onto ImageNet VID's, -1 for none
            (detection).
          task: "detection" (ImageNet VID) or "segmentation" (DAVIS: one foreground object).
        """
        if tasks.get(task).uses_mask:
            union = labels["instance_masks"].max(axis=0, initial=0)
            rows, cols = np.nonzero(union)
            if not len(rows):
                return None
            height, width = union.shape
            box = [rows.min() / height, cols.min() / width, (rows.max() + 1) / height,
                   (cols.max() + 1) / width]
            return {"boxes": np.array([box], np.float32), "classes": np.zeros([1], np.int32),
                    "instance_masks": union[None], "image_id": labels["image_id"]}
        classes = np.asarray(to_vid(labels["classes"]), np.int32).reshape(-1)
        keep = classes >= 0
        if not keep.any():
            return None
        return {"boxes": labels["boxes"][keep], "classes": classes[keep],
                "image_id": labels["image_id"]}

    def _fake_clips(self, task, num_frames, frame_size, seed):
        """Endless fake videos (`pipeline.fake_video_dataset`) of the still images, every
        clip's views drawn anew: the still sources take turns (round robin), each read pass
        after pass on its own (see the module docstring)."""
        def endless_records(still, root):
            while True:
                count = 0
                for record in self._still_records(task, still, root):
                    count += 1
                    yield record
                if not count:
                    raise layout_lib.DataLayoutError(
                        f"no still image of {still!r} under {root!r} has an object of the "
                        f"classes of {self.name!r} ({', '.join(self.class_names)}).")

        def round_robin():
            streams = [endless_records(still, root) for still, root in self.stills]
            while True:
                for stream in streams:
                    yield next(stream)

        return pipeline.fake_video_dataset(
            round_robin, seed, num_frames, frame_size,
            with_instance_masks=tasks.get(task).uses_mask)

    # What the stages read.

    def stage1_dataset(self, task: str, frame_size: Tuple[int, int], batch_size: int,
                       seed: int, start_step: int = 0, frames_per_clip: int = 4,
                       max_objects: int = 4, num_train_clips: int = 512) -> tf.data.Dataset:
        """Endless batches of shuffled single training frames for stage 1.

        Args:
          task: "detection" or "segmentation".
          frame_size: (H, W) of the model.
          batch_size: B.
          seed: shuffle order, flips, fake-video views.
          start_step: the step the run (re)starts at (see the module docstring).
          frames_per_clip: evenly spaced frames kept per clip (synthetic) or per 16-frame
            segment of a video (real sources).
          max_objects: K, object slots per frame.
          num_train_clips: synthetic clips the frames come from (synthetic only).

        Returns:
          A dataset of `(images, labels)` (see `stage1_data.training_dataset`): images float32
          [B, H, W, 3] in [-1, 1]; labels `boxes` float32 [B, K, 4], `classes` int32 [B, K],
          `valid` bool [B, K], and `mask` uint8 [B, H, W] for synthetic and segmentation.
        """
        if self.name == SYNTHETIC:
            frames = stage1_data.synthetic_frames(
                "train", task, num_train_clips, frame_size, frames_per_clip,
                max_objects=max_objects)
            return stage1_data.training_dataset(frames, batch_size, seed=seed,
                                                start_step=start_step)
        if not 1 <= frames_per_clip <= SEGMENT_LENGTH:
            raise ValueError(f"frames_per_clip must be in [1, {SEGMENT_LENGTH}], got "
                             f"{frames_per_clip}.")
        seed = restart_seed(seed, start_step)

        def spans(count):
            for start in range(0, count, SEGMENT_LENGTH):
                length = min(SEGMENT_LENGTH, count - start)
                keep = np.unique(np.linspace(0, length - 1, frames_per_clip).round())
                for offset in keep.astype(int):
                    yield start + offset, 1

        real = self._video_clips("train", spans, seed)
        if self._fake_fraction:
            keep = np.linspace(0, SEGMENT_LENGTH - 1, frames_per_clip).round().astype(int)
            fake = self._fake_clips(task, SEGMENT_LENGTH, frame_size, seed).map(
                lambda clip: {key: value if key == clips_lib.CLIP_ID else tf.gather(value, keep)
                              for key, value in clip.items()})
        else:
            fake = real.take(0)
        keys = pipeline.FRAME_KEYS + ((clips_lib.MASK,) if tasks.get(task).uses_mask else ())
        frames = pipeline.stage1_frames(real, fake, self._fake_fraction, frame_size,
                                        max_objects, seed, keys, RESIZE_METHOD)
        frames = frames.map(lambda frame: {clips_lib.FRAMES if key == "image" else key: value
                                           for key, value in frame.items()})
        frames = frames.shuffle(SHUFFLE_FRAMES, seed=seed)
        return stage1_data.batch_frames(frames, batch_size, seed).prefetch(tf.data.AUTOTUNE)

    def training_clips(self, task: str, frame_size: Tuple[int, int], clip_length: int,
                       batch_size: int, seed: int, num_clips: int = 256,
                       max_objects: int = 4) -> tf.data.Dataset:
        """Endless batches of training clips for the environment of stages 2 and 3.

        Args:
          task: "detection" or "segmentation".
          frame_size: (H, W) of the model.
          clip_length: T.
          batch_size: B, clips per batch.
          seed: clip order and fake-video views.
          num_clips: synthetic clips, cycled (synthetic only; real sources read all videos).
          max_objects: K, object slots per frame (real sources; the synthetic clips have 4).

        Returns:
          A dataset of dicts `frames` uint8 [B, T, H, W, 3], `boxes` float32 [B, T, K, 4],
          `classes` int32 [B, T, K], `valid` bool [B, T, K], and `mask` uint8 [B, T, H, W] for
          synthetic and segmentation.
        """
        if self.name == SYNTHETIC:
            dataset = synthetic.synthetic_dataset(
                "train", task, num_clips=num_clips, frame_size=frame_size,
                clip_length=clip_length, start=seed * num_clips)
            dataset = dataset.map(lambda clip: {k: clip[k] for k in _CLIP_FIELDS}).cache()
            return dataset.shuffle(num_clips, seed=seed).repeat().batch(
                batch_size, drop_remainder=True).prefetch(2)
        fields = _CLIP_FIELDS if tasks.get(task).uses_mask else _CLIP_FIELDS[:-1]
        videos = self._videos("train")
        if not any(self._frame_count("train", v) >= clip_length for v in videos):
            raise layout_lib.DataLayoutError(
                f"no training video of {self.data_dir!r} has clip_length={clip_length} "
                "frames; lower clip_length.")

        def resized(dataset):
            return dataset.map(lambda clip: {key: value for key, value in (
                pipeline.resize_and_pad_clip(clip, frame_size, max_objects, clip_length,
                                             RESIZE_METHOD)).items() if key in fields})

        dataset = resized(self._video_clips(
            "train", lambda count: [(start, clip_length) for start in
                                    range(0, count - clip_length + 1, clip_length)], seed))
        if self._fake_fraction:
            fake = resized(self._fake_clips(task, clip_length, frame_size, seed))
            dataset = tf.data.Dataset.sample_from_datasets(
                [dataset, fake], [1.0 - self._fake_fraction, self._fake_fraction], seed=seed)
        return dataset.shuffle(SHUFFLE_CLIPS, seed=seed).batch(
            batch_size, drop_remainder=True).prefetch(2)

    def evaluation_videos(self, split: str, task: str, num_clips: int = 16,
                          frame_size: Tuple[int, int] = (128, 128), clip_length: int = 16,
                          max_objects: int = 4, max_videos: Optional[int] = None
                          ) -> List[videos_lib.Video]:
        """The videos an evaluation streams (`data.videos.Video`, read a frame at a time).

        Real sources: every video of their annotated "val" split, all frames from the first,
        at the original resolution with the ground truth in its pixels (the official
        protocols of ImageNet VID and DAVIS 2016), or the first `max_videos`. Synthetic:
        clips 0 .. num_clips - 1 of `split` at `frame_size`, `clip_length` frames each.

        Args:
          split: "validation" or "test" (or "train").
          task: "detection" or "segmentation".
          num_clips, frame_size, clip_length, max_objects: of the synthetic clips.
          max_videos: at most this many real videos (a quick look, not the official number).
        """
        if self.name == SYNTHETIC:
            return [videos_lib.from_clip(clip) for clip in synthetic.synthetic_clips(
                split, task, num_clips, frame_size, clip_length, max_objects)]
        self.check_task(task)
        split = self.reader_split(split)
        names = self._videos(split)[:max_videos]
        if not names:
            raise layout_lib.DataLayoutError(
                f"the {split} split of {self.data_dir!r} lists no videos. Expected this "
                f"layout:\n{_LAYOUTS[self.name]}")
        return [self._evaluation_video(split, name) for name in names]

    def _evaluation_video(self, split, video):
        if self.name == IMAGENET_VID:
            frame_names = imagenet_vid.frame_names(self.data_dir, split, video)

            def read_frame(t):
                frame = imagenet_vid.read_frame(self.data_dir, split, video, frame_names[t])
                return {key: frame[key] for key in (videos_lib.FRAME, clips_lib.BOXES,
                                                    clips_lib.CLASSES)}
        else:
            frame_names = davis.frame_names(self.data_dir, video)

            def read_frame(t):
                frame = davis.read_frame(self.data_dir, video, frame_names[t])
                return {key: frame[key] for key in (videos_lib.FRAME, clips_lib.MASK)}

        return videos_lib.Video(video, len(frame_names), read_frame)

    def evaluation_clips(self, split: str, task: str, num_clips: int,
                         frame_size: Tuple[int, int], clip_length: int,
                         max_objects: int = 4) -> Iterator[dict]:
        """Yields numpy clips of a held-out split at the model's frame size.

        Synthetic: clips 0 .. num_clips - 1 of `split`. Real sources: the first `clip_length`
        frames of each of the first `num_clips` videos of their "val" split that are that long,
        resized as in training, with as many object slots as the clip has objects.

        Args:
          split: "validation" or "test" (or "train").
          task: "detection" or "segmentation".
          num_clips: clips yielded (fewer when a real split has fewer videos).
          frame_size: (H, W).
          clip_length: T.
          max_objects: K of the synthetic clips.
        """
        if self.name == SYNTHETIC:
            yield from synthetic.synthetic_clips(split, task, num_clips, frame_size,
                                                 clip_length, max_objects)
            return
        self.check_task(task)
        split = self.reader_split(split)
        yielded = 0
        for video in self._videos(split):
            if yielded == num_clips:
                return
            if self._frame_count(split, video) < clip_length:
                continue
            clip = self._read(split, video, 0, clip_length)
            out = pipeline.resize_and_pad_clip(
                {key: tf.constant(value) for key, value in clip.items()}, frame_size,
                clip[clips_lib.CLASSES].shape[1], clip_length, RESIZE_METHOD)
            out = {key: value.numpy() for key, value in out.items()}
            out[clips_lib.CLIP_ID] = clip[clips_lib.CLIP_ID]
            yielded += 1
            yield out
