"""The synthetic video benchmark as a TensorFlow Datasets builder (docs/design.md section 10).

`SyntheticVideo` (registered as `patchwork_synthetic_video`) writes the clips of
`patchwork_tf.data.synthetic` to TFRecords and reads them back the TFDS way. Nothing is
downloaded: every clip is generated from its seed, and clip `i` of split `s` is byte for byte
`synthetic.synthetic_clips(s, ...)` clip `i` (same seed range per split, `synthetic.split_seed`;
same `clip_id`, "synthetic/<split>/<task>/<index>"; same order, shuffling is disabled).

Usage:

```python
import tensorflow_datasets as tfds
from patchwork_tf.data import tfds_synthetic  # registers the builder

builder = tfds_synthetic.SyntheticVideo(config="segmentation", data_dir="/tmp/tfds")
builder.download_and_prepare()
ds = builder.as_dataset(split="test")
# or tfds.load("patchwork_synthetic_video/detection", data_dir="/tmp/tfds")

small = tfds_synthetic.SyntheticVideoConfig(
    name="detection_64px", task="detection", frame_size=(64, 64), clip_length=8,
    num_train_clips=100, num_validation_clips=10, num_test_clips=10)
builder = tfds_synthetic.SyntheticVideo(config=small, data_dir="/tmp/tfds")
```

A custom config needs a name of its own (TFDS refuses a custom config named like a default one);
the prepared data lives under `<data_dir>/patchwork_synthetic_video/<config name>/1.0.0`.
A default config (256 / 64 / 64 clips of 16 frames, 128 px) takes about 20 s and 140 MB
to prepare on a 2-core CPU.

Features follow the clip format of `patchwork_tf.data.clips`, all stored exactly (plain
tensors; the large ones zlib-compressed, never lossy video or image codecs):
`frames` uint8 [T, H, W, 3], `boxes` float32 [T, K, 4], `classes` int32 [T, K],
`track_ids` int32 [T, K], `valid` bool [T, K], `instance_masks` uint8 [T, K, H, W],
`mask` uint8 [T, H, W], `clip_id` string [].
"""
import dataclasses

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import synthetic

_ZLIB = tfds.features.Encoding.ZLIB

_CITATION = """\
@inproceedings{chai2019patchwork,
  title={Patchwork: A Patch-wise Attention Network for Efficient Object Detection and
         Segmentation in Video Streams},
  author={Chai, Yuning},
  booktitle={ICCV},
  year={2019}
}"""


@dataclasses.dataclass(eq=False)
class SyntheticVideoConfig(tfds.core.BuilderConfig):
    """A `BuilderConfig` of the synthetic benchmark: task flavour, clip geometry, split sizes.

    Attributes:
        task: "detection" or "segmentation" (see `patchwork_tf.data.synthetic`).
        frame_size: (H, W) pixels, or one int for square frames; at least 32.
        clip_length: T, frames per clip.
        max_objects: K, object slots per clip.
        num_train_clips: clips in the train split (indices 0 .. n - 1 of its seed range).
        num_validation_clips: clips in the validation split.
        num_test_clips: clips in the test split.
    """

    task: str = "detection"
    frame_size: tuple = (128, 128)
    clip_length: int = 16
    max_objects: int = 4
    num_train_clips: int = 256
    num_validation_clips: int = 64
    num_test_clips: int = 64

    def __post_init__(self):
        if self.task not in synthetic.TASKS:
            raise ValueError(f"SyntheticVideoConfig {self.name!r}: task {self.task!r} is unknown; "
                             f"use one of {synthetic.TASKS}.")
        size = self.frame_size
        if isinstance(size, (int, np.integer)):
            size = (size, size)
        if (len(size) != 2 or not all(isinstance(s, (int, np.integer)) for s in size)
                or min(size) <= 0):
            raise ValueError(f"SyntheticVideoConfig {self.name!r}: frame_size {self.frame_size!r} "
                             "must be a positive int or a pair (H, W) of positive ints, e.g. "
                             "(128, 128).")
        self.frame_size = (int(size[0]), int(size[1]))
        for field in ("clip_length", "max_objects", "num_train_clips", "num_validation_clips",
                      "num_test_clips"):
            value = getattr(self, field)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"SyntheticVideoConfig {self.name!r}: {field} {value!r} must be "
                                 "an int >= 1 (TFDS needs every split non-empty).")
        try:
            synthetic.make_config(self.frame_size, self.clip_length, self.max_objects)
        except ValueError as error:
            raise ValueError(f"SyntheticVideoConfig {self.name!r}: {error}") from error

    @property
    def num_clips(self):
        """dict split name -> number of clips."""
        return {"train": self.num_train_clips, "validation": self.num_validation_clips,
                "test": self.num_test_clips}


class SyntheticVideo(tfds.core.GeneratorBasedBuilder):
    """Builder of the synthetic video benchmark; see the module docstring."""

    name = "patchwork_synthetic_video"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: detection and segmentation flavours of "
                 "patchwork_tf.data.synthetic, exact (lossless) features.",
    }
    BUILDER_CONFIGS = [
        SyntheticVideoConfig(
            name="detection", task="detection",
            description="1 to 4 shapes of 5 classes per clip, one or two moving; 128 px, "
                        "16 frames; mask is the union of the visible objects."),
        SyntheticVideoConfig(
            name="segmentation", task="segmentation",
            description="DAVIS 2016 style: one large moving primary object (slot 0) and up to "
                        "3 distractors; 128 px, 16 frames; mask is the primary object."),
    ]

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        """This module's file, where TFDS looks for a `checksums.tsv` (there is none)."""
        # TFDS 4.9 derives this through `importlib_resources`, which it declares only for
        # Python < 3.9, so the inherited property fails on 3.11 (tensorflow/datasets#11212).
        return epath.Path(__file__)

    def _info(self):
        config = self.builder_config
        t, k = config.clip_length, config.max_objects
        h, w = config.frame_size
        features = tfds.features.FeaturesDict({
            clips_lib.FRAMES: tfds.features.Tensor(
                shape=(t, h, w, 3), dtype=np.uint8, encoding=_ZLIB, doc="RGB frames"),
            clips_lib.BOXES: tfds.features.Tensor(
                shape=(t, k, 4), dtype=np.float32,
                doc="(ymin, xmin, ymax, xmax) normalized, pixel-edge convention; 0 if not valid"),
            clips_lib.CLASSES: tfds.features.Tensor(
                shape=(t, k), dtype=np.int32,
                doc=f"0-based class id into {synthetic.CLASS_NAMES}; -1 for padding"),
            clips_lib.TRACK_IDS: tfds.features.Tensor(
                shape=(t, k), dtype=np.int32, doc="track id within the clip; -1 for padding"),
            clips_lib.VALID: tfds.features.Tensor(
                shape=(t, k), dtype=np.bool_, doc="object present and visible in frame t"),
            clips_lib.INSTANCE_MASKS: tfds.features.Tensor(
                shape=(t, k, h, w), dtype=np.uint8, encoding=_ZLIB,
                doc="0/1 visible pixels of each object slot"),
            clips_lib.MASK: tfds.features.Tensor(
                shape=(t, h, w), dtype=np.uint8, encoding=_ZLIB,
                doc="0/1 foreground (detection) or primary-object (segmentation) mask"),
            clips_lib.CLIP_ID: tfds.features.Text(doc="synthetic/<split>/<task>/<index>"),
        })
        return self.dataset_info_from_configs(
            description=__doc__.split("\n\n")[0],
            features=features,
            homepage="https://openaccess.thecvf.com/content_ICCV_2019/html/Chai_Patchwork_A_"
                     "Patch-Wise_Attention_Network_for_Efficient_Object_Detection_and_ICCV_2019_"
                     "paper.html",
            citation=_CITATION,
            # Clip i of a split must stay clip i of `synthetic.synthetic_clips`.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Everything is generated from seeds.
        return {split: self._generate_examples(split, count)
                for split, count in self.builder_config.num_clips.items()}

    def _generate_examples(self, split, num_clips):
        config = self.builder_config
        for clip in synthetic.synthetic_clips(split, config.task, num_clips, config.frame_size,
                                              config.clip_length, config.max_objects):
            yield clip[clips_lib.CLIP_ID], clip
