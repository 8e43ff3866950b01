"""Every flag file in experiments/ runs end to end: the file itself, with only its sizes shrunk.

This module runs the synthetic benchmark's flag files (stages 1 to 3, evaluation, export) and
the report's over the synthetic run; experiments_vid_test.py and experiments_davis_test.py run
the paper's, on fixture copies of the official layouts.
"""
import glob
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.training import toy_runs

SYNTHETIC_FLAG_FILES = ("synthetic_det.flags", "synthetic_seg.flags")
REAL_FLAG_FILES = ("vid.flags", "vid_change.flags", "davis.flags", "davis_change.flags")
REPORT_FLAG_FILES = ("report_synthetic.flags",)
# The report's runs, which report_synthetic.flags includes.
INCLUDED_FLAG_FILES = ("report_runs.flags",)
EVALUATED = ["single_frame", "dqn_m4n2", "scanning_m4n2", "random_m4n2"]


def test_every_flag_file_is_run_by_a_test():
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(toy_runs.EXPERIMENTS,
                                                                       "*.flags")))
    assert names == sorted(SYNTHETIC_FLAG_FILES + REAL_FLAG_FILES + REPORT_FLAG_FILES
                           + INCLUDED_FLAG_FILES)


def check_run(model_dir, real):
    """The run went through every stage, evaluated the four methods and exported."""
    for stage in ("stage1", "stage2", "stage3"):
        assert tf.train.latest_checkpoint(os.path.join(model_dir, stage, "checkpoints"))
    with open(os.path.join(model_dir, "eval", "summary.json")) as f:
        records = json.load(f)
    assert [r["name"] for r in records] == EVALUATED
    for record in records:
        assert record["num_clips"] == 1
        assert record["stream_start"] == ("zeros" if real else "key_frame")
        assert record["settings"]["complete"] is (not real)   # --eval_max_videos=1
        # Every frame of the evaluated video (real: 6 frames at their original size).
        assert record["num_frames"] == (6 if real else 4)
    assert tf.saved_model.contains_saved_model(os.path.join(model_dir, "export"))


@pytest.fixture(scope="module")
def synthetic_runs(tmp_path_factory):
    return {name: toy_runs.train_flag_file(
        name, str(tmp_path_factory.mktemp(name.split(".")[0]) / "run"))
        for name in SYNTHETIC_FLAG_FILES}


@pytest.mark.slow
@pytest.mark.parametrize("name", SYNTHETIC_FLAG_FILES)
def test_synthetic_flag_file_runs_every_stage_evaluates_and_exports(synthetic_runs, name):
    check_run(synthetic_runs[name], real=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", REPORT_FLAG_FILES)
def test_report_flag_file_sweeps_its_runs(synthetic_runs, tmp_path, name):
    out = tmp_path / "report"
    subprocess.run(
        [sys.executable, "-m", "patchwork_tf.report", f"--flagfile=experiments/{name}",
         f"--model_dir={synthetic_runs['synthetic_det.flags']}", f"--output_dir={out}",
         "--frame_size=128", "--num_clips=1", "--clip_length=3"],
        check=True, capture_output=True, cwd=toy_runs.REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    with open(os.path.join(toy_runs.EXPERIMENTS, INCLUDED_FLAG_FILES[0])) as f:
        runs = [line.strip()[len("--run=name="):].split(",")[0] for line in f
                if line.startswith("--run=")]
    records = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in records] == runs
    text = (out / "report.md").read_text()
    assert "## Protocol" in text and "Tab. 1" in text and "Tab. 2" in text
