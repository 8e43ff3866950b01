"""Saved evaluation progress (`stream._open_progress`): which saved fingerprints resume.

A tiny run layout (a stored stage-1 config and `tf.train.Checkpoint`s of one variable) gives
real checkpoint ids through `api.load_trained`, whose model build is replaced by None; the
evaluations are `stream.evaluate_stream` on an 8x8 one-conv segmenter. A resumed evaluation
reads no frame, so the resuming runs get videos that fail when read.
"""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from patchwork_tf import runs
from patchwork_tf import tasks
from patchwork_tf.data import videos as videos_lib
from patchwork_tf.evaluation import api
from patchwork_tf.evaluation import stream
from patchwork_tf.training import configs
from patchwork_tf.training import run_config
from patchwork_tf.training import stage1
from patchwork_tf.training import stage2

SIZE = 8
# A DQN evaluation's settings as `api.evaluate` records them, bar the checkpoints.
SETTINGS = {"threads": 1, "frame_size": [SIZE, SIZE], "data": "synthetic",
            "fold_batch_norm": True, "grid": "2,1", "cells": True, "observed_cell": None,
            "jit_compile": True, "change_cue": True, "imitation_steps": 0, "stage2_steps": 3,
            "demonstration_weight": 0.0, "counterfactual_steps": 0, "n_step": 1}


@pytest.fixture(scope="module")
def runner():
    inputs = tf_keras.Input((SIZE, SIZE, 3))
    outputs = tf_keras.layers.Conv2D(1, 1)(inputs)
    return stream.SingleFrameRunner(tf_keras.Model(inputs, {"mask_logits": outputs}),
                                    tasks.SegmentationTask())


def _videos(readable=True):
    def read_frame(t):
        if not readable:
            raise AssertionError("a resumed evaluation read a frame")
        return {"frame": np.full((SIZE, SIZE, 3), 40 * t, np.uint8),
                "mask": np.zeros((SIZE, SIZE), np.uint8)}

    return [videos_lib.Video(f"video{v}", 3, read_frame) for v in range(2)]


def _evaluate(runner, progress_dir, checkpoints, readable=True, **changes):
    settings = dict(SETTINGS, checkpoints=checkpoints, **changes)
    return stream.evaluate_stream(runner, _videos(readable), settings=settings, warmup_calls=1,
                                  progress_dir=str(progress_dir))


def _save(prefix, value):
    return tf.train.Checkpoint(step=tf.Variable(value)).write(prefix)


def _run(root):
    """A run of one stage-1 and one stage-2 checkpoint ("ckpt-1") under `root`."""
    stage1_dir = os.path.join(root, runs.STAGE1_DIR)
    run_config.store(stage1_dir, stage1.CONFIG_FILE, stage1.Stage1Config("detection"))
    stage2.store_config(root, configs.AttentionConfig())
    for directory, value in ((os.path.join(stage1_dir, stage1.CHECKPOINT_DIR), 1),
                             (os.path.join(root, "stage2", "checkpoints"), 2)):
        tf.train.CheckpointManager(tf.train.Checkpoint(step=tf.Variable(value)), directory,
                                   max_to_keep=1).save()
    return root


def _checkpoints(run_dir, monkeypatch):
    monkeypatch.setattr(runs.TrainedRun, "build_model", lambda self, resolution=1.0: None)
    return api.load_trained(str(run_dir)).checkpoints


def _version_1_id(*prefixes):
    """A checkpoint id as version 1 wrote it: each prefix as given, @ its index's mtime."""
    return "; ".join(f"{p}@{os.path.getmtime(p + '.index'):.0f}" for p in prefixes)


def _read(progress_dir):
    with open(os.path.join(progress_dir, "evaluation.json")) as f:
        return json.load(f)


def _write(progress_dir, fingerprint):
    with open(os.path.join(progress_dir, "evaluation.json"), "w") as f:
        json.dump(fingerprint, f, indent=1)


def test_checkpoint_ids_name_the_checkpoints_in_the_run_and_their_contents(tmp_path,
                                                                          monkeypatch):
    run = _run(str(tmp_path / "run"))
    checkpoints = _checkpoints(run, monkeypatch)
    names = [entry.split("@sha1:") for entry in checkpoints.split("; ")]
    assert [name for name, _ in names] == [os.path.join("stage1", "checkpoints", "ckpt-1"),
                                           os.path.join("stage2", "checkpoints", "ckpt-1")]
    # The digest is the .index file's sha1, and another value of the variable changes it.
    index = os.path.join(run, "stage2", "checkpoints", "ckpt-1.index")
    with open(index, "rb") as f:
        assert names[1][1] == hashlib.sha1(f.read()).hexdigest()
    _save(os.path.join(run, "stage2", "checkpoints", "ckpt-1"), 3)
    assert _checkpoints(run, monkeypatch).split("; ")[1] != checkpoints.split("; ")[1]


def test_a_copied_run_resumes_and_a_retrained_one_is_refused(tmp_path, monkeypatch, runner):
    original = _run(str(tmp_path / "run"))
    progress = os.path.join(original, "eval", "dqn_progress")
    first = _evaluate(runner, progress, _checkpoints(original, monkeypatch))
    copy = str(tmp_path / "moved" / "run")
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    progress = os.path.join(copy, "eval", "dqn_progress")
    resumed = _evaluate(runner, progress, _checkpoints(copy, monkeypatch), readable=False)
    assert resumed.accuracy == first.accuracy and resumed.num_frames == first.num_frames == 6
    # The same checkpoint name with other weights is another evaluation.
    _save(os.path.join(copy, "stage2", "checkpoints", "ckpt-1"), 5)
    with pytest.raises(ValueError, match=r"differs in \['checkpoints'\]"):
        _evaluate(runner, progress, _checkpoints(copy, monkeypatch), readable=False)


def _export(directory, graph=b"graph", index=b"index"):
    os.makedirs(os.path.join(directory, "variables"), exist_ok=True)
    for name, content in zip(stream.SAVED_MODEL_FILES, (graph, index)):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(content)
    return directory


def test_a_moved_saved_model_resumes_and_another_is_refused(tmp_path, runner):
    export = _export(str(tmp_path / "export"))
    names = [entry.split("@sha1:") for entry in stream.saved_model_id(export).split("; ")]
    assert names == [["saved_model.pb", hashlib.sha1(b"graph").hexdigest()],
                     [os.path.join("variables", "variables.index"),
                      hashlib.sha1(b"index").hexdigest()]]
    progress = tmp_path / "progress"
    first = _evaluate(runner, progress, None, saved_model=stream.saved_model_id(export))
    moved = str(tmp_path / "moved")
    shutil.move(export, moved)
    resumed = _evaluate(runner, progress, None, readable=False,
                        saved_model=stream.saved_model_id(moved))
    assert resumed.accuracy == first.accuracy
    _export(moved, index=b"retrained")
    with pytest.raises(ValueError, match=r"differs in \['saved_model'\]"):
        _evaluate(runner, progress, None, readable=False,
                  saved_model=stream.saved_model_id(moved))


def test_a_version_2_record_of_a_saved_models_path_resumes_where_it_still_is(tmp_path,
                                                                            runner):
    export = _export(str(tmp_path / "export"))
    progress = tmp_path / "progress"
    _evaluate(runner, progress, None, saved_model=stream.saved_model_id(export))
    current = _read(progress)
    # Version 2 named the export by the path it was given, and had no n_step.
    version_2 = {k: v for k, v in current.items() if k != "n_step"}
    version_2.update(fingerprint_version=2, saved_model=export)
    _write(progress, version_2)
    _evaluate(runner, progress, None, readable=False, saved_model=stream.saved_model_id(export))
    assert _read(progress) == current
    # Moved, or retrained where it was, the path no longer names this export.
    for change in ("move", "retrain"):
        _write(progress, version_2)
        if change == "move":
            shutil.move(export, str(tmp_path / "moved"))
            current_id = stream.saved_model_id(str(tmp_path / "moved"))
        else:
            shutil.move(str(tmp_path / "moved"), export)
            _export(export, graph=b"other graph")
            current_id = stream.saved_model_id(export)
        with pytest.raises(ValueError, match=r"differs in \['saved_model'\]"):
            _evaluate(runner, progress, None, readable=False, saved_model=current_id)


def test_version_1_progress_resumes_where_the_run_was_and_is_upgraded(tmp_path, monkeypatch,
                                                                      runner):
    run = _run(str(tmp_path / "run"))
    checkpoints = _checkpoints(run, monkeypatch)
    progress = tmp_path / "out" / "dqn_progress"
    _evaluate(runner, progress, checkpoints)
    # The fingerprint as version 1 wrote it for this evaluation: no version, the settings of
    # `stream.ADDED_SETTINGS[2]` left out at their defaults, checkpoints by path and time.
    prefixes = [os.path.join(run, "stage1", "checkpoints", "ckpt-1"),
                os.path.join(run, "stage2", "checkpoints", "ckpt-1")]
    version_1 = {
        "cells": True, "change_cue": True, "checkpoints": _version_1_id(*prefixes),
        "complete": True, "data": "synthetic", "delay": 0, "flip": False,
        "fold_batch_norm": True, "frame_size": [SIZE, SIZE], "grid": "2,1",
        "imitation_steps": 0, "interval": 1, "job_flops": float(runner.job_flops()),
        "method": "single_frame", "observed_cell": None, "policy": None,
        "stage2_steps": 3, "stream_start": "key_frame", "task": "segmentation", "threads": 1}
    _write(progress, version_1)
    _evaluate(runner, progress, checkpoints, readable=False)
    upgraded = _read(progress)
    assert upgraded == dict(version_1, checkpoints=checkpoints,
                            fingerprint_version=stream.FINGERPRINT_VERSION, jit_compile=True,
                            demonstration_weight=0.0, counterfactual_steps=0, n_step=1)
    # Version 1's ids hold the run's path: once the run has moved, they no longer match.
    _write(progress, version_1)
    moved = str(tmp_path / "moved")
    shutil.move(run, moved)
    with pytest.raises(ValueError, match=r"differs in \['checkpoints'\]"):
        _evaluate(runner, progress, _checkpoints(moved, monkeypatch), readable=False)
    # Where it was, a retrained checkpoint (written later: version 1 has only the time to
    # tell) is refused.
    shutil.move(moved, run)
    later = os.path.getmtime(prefixes[1] + ".index") + 60
    _save(prefixes[1], 7)
    os.utime(prefixes[1] + ".index", (later, later))
    with pytest.raises(ValueError, match=r"differs in \['checkpoints'\]"):
        _evaluate(runner, progress, _checkpoints(run, monkeypatch), readable=False)


@pytest.mark.parametrize("added_in, key, other", [(2, "jit_compile", False),
                                                  (2, "demonstration_weight", 0.5),
                                                  (2, "counterfactual_steps", 1000),
                                                  (3, "n_step", 3)])
def test_a_record_older_than_a_setting_had_it_at_its_default(tmp_path, runner, added_in, key,
                                                             other):
    default = stream.ADDED_SETTINGS[added_in][key]
    progress = tmp_path / "progress"
    _evaluate(runner, progress, "stage1/checkpoints/ckpt-1@sha1:0")
    current = _read(progress)
    for version in range(1, added_in):
        older = {k: v for k, v in current.items() if k != key}
        older["fingerprint_version"] = version
        if version == 1:
            del older["fingerprint_version"]
        _write(progress, older)
        _evaluate(runner, progress, "stage1/checkpoints/ckpt-1@sha1:0", readable=False)
        assert _read(progress)[key] == default
        assert _read(progress)["fingerprint_version"] == stream.FINGERPRINT_VERSION
        _write(progress, older)
        with pytest.raises(ValueError, match=rf"differs in \['{key}'\]: {key} saved "):
            _evaluate(runner, progress, "stage1/checkpoints/ckpt-1@sha1:0", readable=False,
                      **{key: other})
    # The version that added it records it: a record of that version without it is of
    # another evaluation.
    _write(progress, dict({k: v for k, v in current.items() if k != key},
                          fingerprint_version=added_in))
    with pytest.raises(ValueError, match=rf"differs in \['{key}'\]"):
        _evaluate(runner, progress, "stage1/checkpoints/ckpt-1@sha1:0", readable=False)


def test_progress_of_a_newer_fingerprint_version_is_refused(tmp_path, runner):
    progress = tmp_path / "progress"
    _evaluate(runner, progress, "x@sha1:0")
    _write(progress, dict(_read(progress), fingerprint_version=stream.FINGERPRINT_VERSION + 1))
    with pytest.raises(ValueError, match=f"fingerprint version {stream.FINGERPRINT_VERSION + 1}; "
                       "this patchwork_tf reads up"):
        _evaluate(runner, progress, "x@sha1:0", readable=False)
