"""Training on the real readers' data: stage 1 on fixture copies; the paper's flag files run
end to end in experiments_vid_test.py and experiments_davis_test.py."""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.training import run_config
from patchwork_tf.training import stage1
from tests.data import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(frame_size=(64, 64), alpha=0.35, batch_size=4, num_steps=3)
QUIET = dict(checkpoint_every=100, verbose=0)



def test_a_vid_detector_has_the_30_vid_classes_and_their_object_slots(data):
    config = stage1.Stage1Config(task="detection", data="imagenet_vid", data_dir=data["vid"],
                                 frame_size=(64, 64), alpha=0.35)
    assert config.num_classes == 30 and config.max_objects == 100
    # SSDLite's class logits: the 30 VID classes and background.
    assert stage1.build_model(config).output["class_logits"].shape[-1] == 31


# VID's stage 1 trains in experiments_vid_test.py (vid.flags end to end); this one resumes.
@pytest.mark.slow
@pytest.mark.parametrize("task,data_name,still", [("segmentation", "davis", "voc")])
def test_stage1_trains_and_resumes_on_real_data(tmp_path, data, task, data_name, still):
    model_dir = str(tmp_path)
    kwargs = dict(data=data_name, data_dir=data[data_name.split("_")[-1]], still_data=still,
                  still_data_dir=data[still], **TINY)
    first = stage1.train_stage1(model_dir, stage1.Stage1Config(task, **kwargs), stop_at_step=2,
                                **QUIET)
    assert first["step"] == 2 and np.isfinite(first["losses"]["total"])
    resumed = stage1.train_stage1(model_dir, stage1.Stage1Config(task, **kwargs), **QUIET)
    assert resumed["step"] == 3 and np.isfinite(resumed["losses"]["total"])
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-3")
    config = stage1.load_config(model_dir)
    assert (config.data, config.still_data) == (data_name, still)
    # A moved copy resumes; other data settings are another run.
    run_config.store(model_dir, stage1.CONFIG_FILE,
                     dataclasses.replace(config, data_dir="/moved", still_data_dir="/moved2"),
                     extensible=stage1.DATA_PATHS)
    assert stage1.load_config(model_dir).data_dir == "/moved"
    with pytest.raises(ValueError, match="other settings"):
        stage1.train_stage1(model_dir, stage1.Stage1Config(
            task, **dict(kwargs, data_dir="/moved", still_data_dir="/moved2",
                         still_fraction=0.25)), **QUIET)


def test_num_classes_must_be_the_sources():
    with pytest.raises(ValueError, match="num_classes=5 but data source 'imagenet_vid' has 30"):
        stage1.Stage1Config(task="detection", data="imagenet_vid", data_dir="x", num_classes=5)


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
