"""Every flag file in experiments/ runs end to end: the file itself, with only its sizes shrunk.

Each train flag file runs stages 1 to 3, the evaluation and the export, on fixture copies of
the official layouts for the paper's data sets; the report flag file then sweeps its runs over
the synthetic run. Overridden are only sizes (steps, frame size, depth multiplier, clip and
buffer sizes, video counts) and where the data and outputs live.
"""
import glob
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.data import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_FLAG_FILES = ("synthetic_det.flags", "synthetic_seg.flags", "vid.flags", "davis.flags")
REPORT_FLAG_FILES = ("report_synthetic.flags",)
TOY_SIZES = [
    "--frame_size=128", "--alpha=0.35", "--stage1_steps=2", "--stage1_batch_size=2",
    "--stage1_train_clips=4", "--num_streams=2", "--clip_length=4", "--num_train_clips=4",
    "--replay_capacity=8", "--sample_batch_size=4", "--initial_collect_steps=2",
    "--epsilon_decay_steps=2", "--stage2_steps=2", "--stage3_steps=4",
    "--stage3_finetune_every=2", "--stage3_clip_length=2", "--stage3_batch_size=1",
    "--eval_clips=1", "--eval_max_videos=1"]


def test_every_flag_file_is_run_here():
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "experiments",
                                                                       "*.flags")))
    assert names == sorted(TRAIN_FLAG_FILES + REPORT_FLAG_FILES)


def _train_in_process(argv):
    """`python -m patchwork_tf.train` in this process (the small shuffle buffers apply)."""
    from absl import flags
    from patchwork_tf import train
    flags.FLAGS(["train"] + argv)
    try:
        train.main([])
    finally:
        flags.FLAGS.unparse_flags()


@pytest.fixture(scope="module")
def official_copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    return {"imagenet_vid": fixtures.write_vid(str(root / "ILSVRC2015")),
            "imagenet_det": fixtures.write_det(str(root / "ILSVRC2015")),
            "davis": fixtures.write_davis(str(root / "DAVIS")),
            "coco": fixtures.write_coco(str(root / "coco")),
            "voc": fixtures.write_voc(str(root / "VOC2012"))}


def _flag_values(path, name):
    with open(path) as f:
        return [line.split("=", 1)[1].strip() for line in f if line.startswith(f"--{name}=")]


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, official_copies):
    """Each train flag file run at toy scale: flag file name -> model_dir."""
    runs = {}
    for name in TRAIN_FLAG_FILES:
        model_dir = str(tmp_path_factory.mktemp(name.split(".")[0]) / "run")
        path = os.path.join(REPO, "experiments", name)
        argv = [f"--flagfile={path}", f"--model_dir={model_dir}"] + TOY_SIZES
        data = _flag_values(path, "data")
        if data != ["synthetic"]:
            stills = _flag_values(path, "still_data")[0].split(",")
            argv += [f"--data_dir={official_copies[data[0]]}", "--still_data_dir=" + ",".join(
                official_copies[still] for still in stills)]
        _train_in_process(argv)
        runs[name] = model_dir
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAIN_FLAG_FILES)
def test_train_flag_file_runs_every_stage_evaluates_and_exports(trained_runs, name):
    model_dir = trained_runs[name]
    for stage in ("stage1", "stage2", "stage3"):
        assert tf.train.latest_checkpoint(os.path.join(model_dir, stage, "checkpoints"))
    with open(os.path.join(model_dir, "eval", "summary.json")) as f:
        records = json.load(f)
    assert [r["name"] for r in records] == ["single_frame", "dqn_m4n2", "scanning_m4n2",
                                            "random_m4n2"]
    real = name in ("vid.flags", "davis.flags")
    for record in records:
        assert record["num_clips"] == 1
        assert record["stream_start"] == ("zeros" if real else "key_frame")
        assert record["settings"]["complete"] is (not real)   # --eval_max_videos=1
        # Every frame of the evaluated video, read at its original size.
        assert record["num_frames"] == (6 if real else 4)
    assert tf.saved_model.contains_saved_model(os.path.join(model_dir, "export"))


@pytest.mark.slow
@pytest.mark.parametrize("name", REPORT_FLAG_FILES)
def test_report_flag_file_sweeps_its_runs(trained_runs, tmp_path, name):
    out = tmp_path / "report"
    subprocess.run(
        [sys.executable, "-m", "patchwork_tf.report",
         f"--flagfile={os.path.join(REPO, 'experiments', name)}",
         f"--model_dir={trained_runs['synthetic_det.flags']}", f"--output_dir={out}",
         "--frame_size=64", "--num_clips=1", "--clip_length=3"],
        check=True, capture_output=True, cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    with open(os.path.join(REPO, "experiments", name)) as f:
        runs = [line for line in f if line.startswith("--run=")]
    records = json.loads((out / "results.json").read_text())
    assert len(records) == len(runs)
    text = (out / "report.md").read_text()
    assert "## Protocol" in text and "Tab. 1" in text and "Tab. 2" in text
