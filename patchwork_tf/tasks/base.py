"""The task interface: what one vision task means to every other module (Sec. 3.3, 4).

A `Task` owns everything that differs between detection and segmentation, so no other module
compares a task name:

* building: `build_model(config)` (the stage-1 architecture of a `Stage1Config`),
  `observed_cell` (the Q-network's layer L, Fig. 3), `fixed_layers(config)` (the config with
  every layer count fixed, for a rebuild at another resolution), and `for_model(model,
  config)`, the task object of a built model;
* the labels it reads: `uses_mask` (the clip format's foreground `mask`);
* `loss(outputs, labels)`: the stage-1 and stage-3 training loss;
* `predictions(outputs, image_size=None, flip=False)`: the model's raw outputs (those of
  `keras_model(frames)`, which every Patchwork step reproduces for the full frame) turned
  into the task's predictions, with **one key set** (`prediction_keys`) that training
  rewards, evaluation and serving all read; the names are the TF Object Detection API's
  exported detectors' (`object_detection/exporter_lib_v2.py` in tensorflow/models), and a
  task object called as `task(outputs, image_size)` is the serving post-processing;
* `reward_metric(ground_truth, outputs)`: the per-frame `f` of the Q-learning reward (Eq. 2):
  Eq. 3 for detection, frame J for segmentation;
* `new_metric()`, `add_frame(...)`, `result(metric)`: the paper's evaluation metric,
  accumulated a frame at a time in the frame's original pixels (Sec. 4.1, 4.2);
* `export_metadata()`: what scoring the served predictions needs beyond the SavedModel.

`patchwork_tf.tasks.get(name)` is the registry.
"""
import abc


class Task(abc.ABC):
    """One task; subclasses are `DetectionTask` and `SegmentationTask`.

    Class attributes: `name`, `metric_names` (the keys of `result`), `prediction_keys`,
    `observed_cell`, `uses_mask`, and `settings`: the constructor's keyword arguments a
    caller may choose (NMS for detection, the scored frames for segmentation).
    """

    name = None
    metric_names = ()
    prediction_keys = ()
    observed_cell = None
    uses_mask = False
    settings = ()

    @classmethod
    @abc.abstractmethod
    def build_model(cls, config, num_classes=None, pretrained=None):
        """The single-frame tf_keras model of a `Stage1Config`, freshly initialised.

        Args:
          config: a `training.stage1.Stage1Config` (its architecture fields).
          num_classes: the detector's classes; None takes `config.num_classes`.
          pretrained: a stock MobileNetV2 whose weights the backbone layers take, by layer
            name (`models.backbone_weights.copy_weights`); None leaves every layer fresh.
        """

    @classmethod
    def fixed_layers(cls, config):
        """`config` with every layer count that depends on the frame size fixed, so a rebuild
        at another frame size has the same layers (and restores the same checkpoint)."""
        return config

    @classmethod
    @abc.abstractmethod
    def for_model(cls, model, config, **kwargs):
        """The task object of `model`, built by `build_model(config)`; `kwargs` are among
        `settings`."""

    @classmethod
    def from_metadata(cls, record):
        """The task that scores an exported model's served predictions, from its metadata
        record (`export_metadata` and `serving.metadata`); it has no model to decode."""
        del record
        return cls()

    @abc.abstractmethod
    def predictions(self, outputs, image_size=None, flip=False):
        """The predictions (`prediction_keys`) of the model's raw `outputs`.

        Args:
          outputs: the model's outputs, batch B (or, with `flip`, batch 2: the frame and its
            mirror image, merged into one prediction of batch 1).
          image_size: `(H, W)` of the frame as given, when it differs from the model's input
            (what serving gets); None answers at the model's size.
          flip: merge the mirror image's prediction (Sec. 4's flip variant).
        """

    def __call__(self, outputs, image_size=None):
        """The serving post-processing: `predictions` for the frame as it entered the
        SavedModel (`serving.exportable.ExportableModule(postprocess=task)`)."""
        return self.predictions(outputs, image_size)

    @abc.abstractmethod
    def loss(self, outputs, labels):
        """The training loss: dict of float32 scalars with the optimised `total`.

        `labels` hold one frame's ground truth per batch row, in the clip format."""

    @abc.abstractmethod
    def reward_metric(self, ground_truth, outputs):
        """`f(gt_t, p_t)` of Eq. 2 for each stream, float32 `[B]`, from the raw `outputs`."""

    @abc.abstractmethod
    def new_metric(self):
        """An empty accumulator of the evaluation metric (`state()`, `merge_state()`,
        `result()`)."""

    @abc.abstractmethod
    def add_frame(self, metric, video_id, index, truth, prediction):
        """Scores frame `index` of video `video_id` in the frame's original pixels.

        Args:
          metric: from `new_metric`.
          video_id, index: the frame's video and position in it.
          truth: a frame dict of `data.videos` (`frame` and the task's labels).
          prediction: the `predictions` of that frame (batch 1, tensors or numpy).
        """

    @abc.abstractmethod
    def result(self, metric):
        """The metric's numbers, a dict over `metric_names`."""

    def scoring_every_frame(self):
        """This task with a metric that scores every frame it is given (a video benchmark's
        protocol may leave some out)."""
        return self

    def export_metadata(self):
        """Settings an exported model's metadata records for scoring its predictions."""
        return {}
