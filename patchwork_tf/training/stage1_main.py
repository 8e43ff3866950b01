r"""Stage-1 training and evaluation entry point (Sec. 3.4 stage 1).

Maps flags onto `stage1.train_stage1` and `evaluation.evaluate_stage1`:

  python -m patchwork_tf.training.stage1_main --model_dir=/tmp/stage1_det \
      --task=detection --num_steps=4000 --batch_size=16
  python -m patchwork_tf.training.stage1_main --model_dir=/tmp/stage1_vid \
      --data=imagenet_vid --data_dir=/data/ILSVRC2015 --still_data=imagenet_det,coco \
      --still_data_dir=/data/ILSVRC2015,/data/coco --frame_size=384,384 --alpha=1.0

Running it again on the same `--model_dir` resumes from the latest checkpoint; `--eval_only`
only evaluates the latest checkpoint.
"""
from absl import app
from absl import flags
from absl import logging

from patchwork_tf.training import evaluation
from patchwork_tf.training import stage1

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Directory for config, checkpoints and summaries.")
flags.DEFINE_enum("task", "detection", ["detection", "segmentation"], "Which model to train.")
flags.DEFINE_enum("data", "synthetic", ["synthetic", "imagenet_vid", "davis"], "Data source.")
flags.DEFINE_string("data_dir", None, "Root of the real source's local copy.")
flags.DEFINE_string("still_data", "none",
                    "Still images made into fake videos mixed into the frames (Sec. 3.4): none, "
                    "or a comma-separated list of coco, voc and imagenet_det (detection only), "
                    "e.g. imagenet_det,coco.")
flags.DEFINE_string("still_data_dir", None, "Roots of the still sources' local copies, "
                    "comma-separated in the order of --still_data.")
flags.DEFINE_float("still_fraction", 0.5, "Share of fake-video frames.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy.")
flags.DEFINE_integer("num_steps", 1000, "Training steps of the whole run.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_float("learning_rate", 2e-3, "Peak Adam learning rate.")
flags.DEFINE_float("alpha", 0.35, "MobileNetV2 depth multiplier.")
flags.DEFINE_list("frame_size", ["128", "128"], "Frame height,width in pixels.")
flags.DEFINE_integer("output_stride", 16, "DeepLab output stride (8 or 16).")
flags.DEFINE_integer("num_train_clips", 512, "Synthetic training clips.")
flags.DEFINE_integer("frames_per_clip", 4, "Frames kept per training clip.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation, shuffling and flips.")
flags.DEFINE_string("backbone_weights", "none", "MobileNetV2 weights a new run starts its "
                    "backbone from: imagenet (the Keras ImageNet weights; offline, pass "
                    "their file), none (from scratch) or the path of a weights file of "
                    "the stock MobileNetV2 without its top (h5).")
flags.DEFINE_enum("detection_loss", "focal", ["focal", "ssd"], "Detection loss: ssd, the "
                  "paper's detector's (the OD API's ssdlite_mobilenet_v2_coco.config: sigmoid "
                  "and smooth-L1 with 3:1 hard example mining), or focal.")
flags.DEFINE_float("max_seconds", None, "Stop training after this many seconds.")
flags.DEFINE_integer("checkpoint_every", 200, "Steps between checkpoints.")
flags.DEFINE_integer("eval_clips", 32, "Validation clips evaluated after training.")
flags.DEFINE_bool("eval_only", False, "Only evaluate the latest checkpoint.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    if not FLAGS.eval_only:
        result = stage1.train_stage1(
            FLAGS.model_dir, FLAGS.task, strategy=FLAGS.strategy,
            checkpoint_every=FLAGS.checkpoint_every, max_seconds=FLAGS.max_seconds,
            num_steps=FLAGS.num_steps, batch_size=FLAGS.batch_size,
            learning_rate=FLAGS.learning_rate, alpha=FLAGS.alpha,
            frame_size=tuple(int(v) for v in FLAGS.frame_size),
            output_stride=FLAGS.output_stride, num_train_clips=FLAGS.num_train_clips,
            frames_per_clip=FLAGS.frames_per_clip, seed=FLAGS.seed, data=FLAGS.data,
            data_dir=FLAGS.data_dir, still_data=FLAGS.still_data,
            still_data_dir=FLAGS.still_data_dir, still_fraction=FLAGS.still_fraction,
            backbone_weights=FLAGS.backbone_weights, detection_loss=FLAGS.detection_loss)
        logging.info("trained to step %d in %.0f s (%.2f steps/s), last losses %s",
                     result["step"], result["seconds"], result["steps_per_second"],
                     result["losses"])
    metrics = evaluation.evaluate_stage1(FLAGS.model_dir, split="validation",
                                         num_clips=FLAGS.eval_clips)
    metrics.pop("ap", None)
    print(f"stage-1 evaluation on {FLAGS.eval_clips} validation clips of {FLAGS.data}: "
          f"{metrics}")


if __name__ == "__main__":
    app.run(main)
