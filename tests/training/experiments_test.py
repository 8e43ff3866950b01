"""Every flag file in experiments/ runs end to end: the file itself, with only its sizes shrunk.

This module runs the synthetic detection flag file (stages 1 to 3, evaluation, export), the
seeds file on its run (one more seed), and the report's over that run;
experiments_seg_test.py runs the synthetic segmentation file, experiments_vid_test.py and
experiments_davis_test.py the paper's, on fixture copies of the official layouts. Each module
builds its runs once and runs on one pytest-xdist worker (`--dist loadfile`).
"""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.training import toy_runs

SYNTHETIC_FLAG_FILES = ("synthetic_det.flags", "synthetic_seg.flags")   # seg: experiments_seg_test
# Stages 2 and 3 over seeds, run on synthetic_det.flags's run.
SEEDS_FLAG_FILES = ("synthetic_det_seeds.flags",)
REAL_FLAG_FILES = ("vid.flags", "vid_change.flags", "davis.flags", "davis_change.flags")
REPORT_FLAG_FILES = ("report_synthetic.flags",)
# The report's runs, which report_synthetic.flags includes.
INCLUDED_FLAG_FILES = ("report_runs.flags",)
EVALUATED = ["single_frame", "dqn_m4n2", "scanning_m4n2", "random_m4n2"]


def test_every_flag_file_is_run_by_a_test():
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(toy_runs.EXPERIMENTS,
                                                                       "*.flags")))
    assert names == sorted(SYNTHETIC_FLAG_FILES + SEEDS_FLAG_FILES + REAL_FLAG_FILES
                           + REPORT_FLAG_FILES + INCLUDED_FLAG_FILES)


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
        # Timed on one thread, in a process of its own (training's thread pools are fixed).
        assert record["settings"]["threads"] == 1
        assert set(record["accuracy_interval"]) == set(record["accuracy"])
        # toy_runs.TOY_EVALUATION: the Patchwork step without XLA.
        assert record["settings"].get("jit_compile", True) is (record["name"] == "single_frame")
    # DQN against the single-frame model and the rules, on the same videos.
    assert set(records[1]["paired"]) == {"single_frame", "scanning_m4n2", "random_m4n2"}
    assert tf.saved_model.contains_saved_model(os.path.join(model_dir, "export"))


def synthetic_fixture(name):
    """A module fixture: `name` (a synthetic flag file) trained at toy scale, {name: model_dir}."""

    @pytest.fixture(scope="module")
    def runs(tmp_path_factory):
        return {name: toy_runs.train_flag_file(
            name, str(tmp_path_factory.mktemp(name.split(".")[0]) / "run"))}

    return runs


synthetic_runs = synthetic_fixture("synthetic_det.flags")


@pytest.mark.slow
def test_synthetic_det_flag_file_runs_every_stage_evaluates_and_exports(synthetic_runs):
    check_run(synthetic_runs["synthetic_det.flags"], real=False)


@pytest.fixture(scope="module")
def seeds_run(synthetic_runs):
    """The seeds flag file on the detection run with one more seed than the run's own (the
    file's three would add minutes of toy training): seed 0 is the run, seed 1 trains."""
    model_dir = synthetic_runs["synthetic_det.flags"]
    toy_runs.train_flag_file(SEEDS_FLAG_FILES[0], model_dir, "--seeds=0,1")
    return model_dir


@pytest.mark.slow
def test_seeds_flag_file_trains_each_seed_on_the_same_stage1_and_summarises(seeds_run):
    seed1 = os.path.join(seeds_run, "seeds", "seed_1")
    assert os.path.realpath(os.path.join(seed1, "stage1")) == os.path.realpath(
        os.path.join(seeds_run, "stage1"))
    assert json.load(open(os.path.join(seed1, "patchwork_config.json")))["seed"] == 1
    for run in (seeds_run, seed1):
        assert tf.train.latest_checkpoint(os.path.join(run, "stage3", "checkpoints"))
    summary = json.loads(open(os.path.join(seeds_run, "seeds", "summary.json")).read())
    assert summary["seeds"] == [0, 1]
    own = {r["name"]: r for r in json.load(open(os.path.join(seeds_run, "eval",
                                                            "summary.json")))}
    dqn = summary["accuracy"]["dqn_m4n2"]["mAP"]
    assert dqn["per_seed"][0] == own["dqn_m4n2"]["accuracy"]["mAP"]
    assert dqn["mean"] == pytest.approx(np.mean(dqn["per_seed"]))
    assert "dqn_m4n2 - scanning_m4n2" in summary["paired"]
    assert "| dqn_m4n2 | mAP |" in open(os.path.join(seeds_run, "seeds", "summary.md")).read()


# Stage 1's Conv1 and bn_Conv1 in the checkpoints.
CONV1 = "model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"
BN1 = "model/layer_with_weights-1/{}/.ATTRIBUTES/VARIABLE_VALUE"


@pytest.mark.slow
def test_stage3_fine_tunes_all_but_batch_norm_and_the_run_uses_its_weights(synthetic_runs,
                                                                          tmp_path):
    from patchwork_tf import visualize
    from patchwork_tf.evaluation import api
    model_dir = synthetic_runs["synthetic_det.flags"]
    before, tuned = (tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(model_dir, stage, "checkpoints"))) for stage in ("stage1", "stage3"))
    assert not np.array_equal(before.get_tensor(CONV1), tuned.get_tensor(CONV1))
    for name in ("moving_mean", "moving_variance", "gamma", "beta"):
        np.testing.assert_array_equal(before.get_tensor(BN1.format(name)),
                                      tuned.get_tensor(BN1.format(name)))
    # The evaluation restores the fine-tuned weights and stage 3's Q-network.
    loaded = api.load_trained(model_dir)
    np.testing.assert_array_equal(loaded.model.get_layer("Conv1").kernel.numpy(),
                                  tuned.get_tensor(CONV1))
    assert loaded.agent_checkpoint == tf.train.latest_checkpoint(
        os.path.join(model_dir, "stage3", "checkpoints"))
    # The renderings of the run use its attention network and the cell it reads.
    paths = visualize.visualize_run(str(tmp_path / "visualize"), model_dir, clip_length=4)
    with Image.open(paths["gif"]) as gif:
        assert gif.n_frames == 4
    assert all(os.path.getsize(paths[key]) > 0 for key in ("fig2", "fig4"))


@pytest.mark.slow
def test_attention_diagnostics_tool_on_the_trained_run(synthetic_runs, tmp_path):
    output = tmp_path / "diagnostics.json"
    process = subprocess.run(
        [sys.executable, "tools/attention_diagnostics.py",
         f"--model_dir={synthetic_runs['synthetic_det.flags']}", "--num_clips=2",
         "--clip_length=3", "--batch_size=2", f"--output_json={output}"],
        cwd=toy_runs.REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=toy_runs.REPO))
    assert process.returncode == 0, process.stderr[-3000:]
    summary = json.loads(output.read_text())
    assert summary["frames"] == 2 * 2 and summary["regret"]["oracle"] == 0.0
    assert summary["agreement"]["followed=dqn"] == 1.0
    assert "frames where every window earns 0" in process.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", REPORT_FLAG_FILES)
def test_report_flag_file_sweeps_its_runs(synthetic_runs, seeds_run, tmp_path, name):
    out = tmp_path / "report"
    subprocess.run(
        [sys.executable, "-m", "patchwork_tf.report", f"--flagfile=experiments/{name}",
         f"--model_dir={synthetic_runs['synthetic_det.flags']}", f"--output_dir={out}",
         "--frame_size=128", "--num_clips=1", "--clip_length=3", "--nojit_compile"],
        check=True, capture_output=True, cwd=toy_runs.REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    with open(os.path.join(toy_runs.EXPERIMENTS, INCLUDED_FLAG_FILES[0])) as f:
        runs = [line.strip()[len("--run=name="):].split(",")[0] for line in f
                if line.startswith("--run=")]
    records = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in records] == runs
    by_name = {r["name"]: r for r in records}
    assert by_name["sf_res0.75"]["settings"]["frame_size"] == [96, 96]
    # K = 4, D = 3: each full pass is spread over four frames.
    assert by_name["sf_k4_d3"]["theoretical"]["maximum"] == pytest.approx(
        by_name["sf"]["theoretical"]["maximum"] / 4)
    assert by_name["dqn_4x2_nocells"]["settings"]["cells"] is False
    # Tab. 1 rows against the single-frame model, Tab. 2 without cells against with cells,
    # and the flag file's --compare pairs.
    assert set(by_name["dqn_4x2"]["paired"]) == {"sf", "scan_4x2", "random_4x2", "change_4x2",
                                                 "sf_k4_d3"}
    assert set(by_name["scan_2x1_nocells"]["paired"]) == {"scan_2x1"}
    assert all(set(r["accuracy_interval"]) == {"mAP"} for r in records)
    assert all(r["settings"]["jit_compile"] is False for r in records
               if r["method"] == "patchwork")
    text = (out / "report.md").read_text()
    assert "## Protocol" in text and "Tab. 1" in text and "Patchwork Cell?" in text
    assert "## Paired differences (same videos)" in text
    assert "## Training seeds" in text and "| dqn_m4n2 | mAP |" in text
    for kind in ("theoretical", "empirical"):
        Image.open(out / f"latency_{kind}.png").verify()
