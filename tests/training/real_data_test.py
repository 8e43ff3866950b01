"""Training on the real readers' data: stage 1 on fixture copies, and the train job end to end."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.training import run_config
from patchwork_tf.training import sources
from patchwork_tf.training import stage1
from tests.data import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(frame_size=(64, 64), alpha=0.35, batch_size=4, num_steps=3, checkpoint_every=100,
            verbose=0)



@pytest.mark.slow
@pytest.mark.parametrize("task,data_name,still", [("detection", "imagenet_vid", "coco"),
                                                   ("segmentation", "davis", "voc")])
def test_stage1_trains_and_resumes_on_real_data(tmp_path, data, task, data_name, still):
    model_dir = str(tmp_path)
    kwargs = dict(data=data_name, data_dir=data[data_name.split("_")[-1]], still_data=still,
                  still_data_dir=data[still], **TINY)
    first = stage1.train_stage1(model_dir, task, stop_at_step=2, **kwargs)
    assert first["step"] == 2 and np.isfinite(first["losses"]["total"])
    resumed = stage1.train_stage1(model_dir, task, **kwargs)
    assert resumed["step"] == 3 and np.isfinite(resumed["losses"]["total"])
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-3")
    config = stage1.load_config(model_dir)
    assert (config.data, config.still_data) == (data_name, still)
    if task == "detection":
        assert config.num_classes == 30 and config.max_objects == 100
        # SSDLite's class logits: the 30 VID classes and background.
        assert resumed["model"].output["class_logits"].shape[-1] == 31
    # A moved copy resumes; other data settings are another run.
    run_config.store(model_dir, stage1.CONFIG_FILE,
                     dataclasses.replace(config, data_dir="/moved", still_data_dir="/moved2"),
                     extensible=stage1.DATA_PATHS)
    assert stage1.load_config(model_dir).data_dir == "/moved"
    with pytest.raises(ValueError, match="other settings"):
        stage1.train_stage1(model_dir, task, **dict(kwargs, data_dir="/moved",
                                                    still_data_dir="/moved2",
                                                    still_fraction=0.25))


def test_num_classes_must_be_the_sources():
    with pytest.raises(ValueError, match="num_classes=5 but data source 'imagenet_vid' has 30"):
        stage1.Stage1Config(task="detection", data="imagenet_vid", data_dir="x", num_classes=5)


def _train_in_process(argv):
    """`python -m patchwork_tf.train` in this process, so the small shuffle buffers apply."""
    from absl import flags
    from patchwork_tf import train
    flags.FLAGS(["train"] + argv)
    try:
        train.main([])
    finally:
        flags.FLAGS.unparse_flags()


@pytest.mark.slow
def test_train_job_runs_stages_1_and_2_on_vid_and_evaluates(tmp_path, data):
    # Stage 3 reads the same `DataSource.training_clips` as stage 2; it runs end to end on the
    # synthetic source in tests/training/stages_test.py.
    model_dir = str(tmp_path / "run")
    _train_in_process(
        [f"--model_dir={model_dir}",
         "--task=detection", "--data=imagenet_vid", f"--data_dir={data['vid']}",
         "--still_data=coco", f"--still_data_dir={data['coco']}", "--frame_size=64",
         "--stages=1,2", "--stage1_steps=2", "--stage1_batch_size=2", "--m=2", "--n=1",
         "--num_streams=2", "--clip_length=3", "--replay_capacity=20",
         "--sample_batch_size=4", "--initial_collect_steps=2", "--stage2_steps=2",
         "--stage3_steps=2", "--eval_clips=1", "--noexport"])
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "stage2", "checkpoints"))
    with open(os.path.join(model_dir, "patchwork_config.json")) as f:
        assert json.load(f)["data"] == "imagenet_vid"
    with open(os.path.join(model_dir, "eval", "summary.json")) as f:
        records = json.load(f)
    assert [record["name"] for record in records] == [
        "single_frame", "dqn_m2n1", "scanning_m2n1", "random_m2n1"]
    assert all(record["num_clips"] == 1 and record["task"] == "detection" for record in records)


def test_train_job_names_the_layout_of_a_malformed_copy(tmp_path, data):
    broken = fixtures.write_vid(str(tmp_path / "vid"), num_videos=(1, 1))
    os.remove(f"{broken}/ImageSets/VID/train_1.txt")
    result = subprocess.run(
        [sys.executable, "-m", "patchwork_tf.train", f"--model_dir={tmp_path}/run",
         "--data=imagenet_vid", f"--data_dir={broken}", "--stages=1"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "no ImageSets/VID/train_<c>.txt" in result.stderr
    assert "Annotations/VID/{train,val}" in result.stderr
