"""The evaluate entry point and its library function on tiny untrained models."""
import dataclasses
import json
import os
import subprocess
import sys
import types

import pytest

from patchwork_tf import evaluate
from patchwork_tf.core import flops


@pytest.fixture(scope="module")
def detector():
  return evaluate.untrained_model("detection", alpha=0.35, frame_size=(64, 64))


def _evaluate(loaded, **kwargs):
  kwargs.setdefault("num_clips", 1)
  kwargs.setdefault("clip_length", 4)
  kwargs.setdefault("clip_frame_size", (64, 64))
  result, ops = evaluate.evaluate(loaded, **kwargs)
  assert ops is None
  return result


def test_single_frame_costs_the_stock_model(detector):
  result = _evaluate(detector, policy="single_frame")
  assert result.job_mflops == pytest.approx(flops.model_flops(detector.model).mflops)
  assert result.theoretical.maximum == pytest.approx(result.job_mflops)
  assert 0.0 <= result.accuracy["mAP"] <= 1.0
  json.dumps(result.to_json())


@pytest.mark.slow
def test_patchwork_scanning_is_cheaper_per_frame_and_starts_with_a_full_pass(detector):
  single = _evaluate(detector, policy="single_frame")
  result = _evaluate(detector, policy="scanning", m=2, n=1)
  assert result.actions == [0, 1, 2, 3]
  assert result.theoretical.maximum < single.theoretical.maximum
  assert result.startup_mflops == pytest.approx(single.job_mflops)
  assert result.settings["grid"] == "2,1" and result.settings["cells"] is True


def test_nocells_builds_the_zero_context_twin(detector, monkeypatch):
  import patchwork_tf as pw
  contexts = []
  original = pw.patchwork_model

  def spy(*args, **kwargs):
    contexts.append(kwargs.get("context"))
    return original(*args, **kwargs)

  monkeypatch.setattr(pw, "patchwork_model", spy)
  result = _evaluate(detector, policy="random", m=2, n=1, cells=False)
  assert contexts == ["zeros"]
  assert result.settings["cells"] is False


def test_resolution_variant_resizes_clips_to_the_smaller_model():
  small = evaluate.untrained_model("segmentation", alpha=0.35, frame_size=(32, 32))
  full = evaluate.untrained_model("segmentation", alpha=0.35, frame_size=(64, 64))
  result = _evaluate(small, policy="single_frame")
  assert result.settings["frame_size"] == [32, 32]
  assert set(result.accuracy) == {"J", "F", "J&F"}
  assert result.job_mflops < 0.5 * flops.model_flops(full.model).mflops


def test_dqn_without_an_attention_network_is_refused(detector):
  with pytest.raises(ValueError, match="attention network"):
    _evaluate(detector, policy="dqn", m=2, n=1)


@pytest.mark.slow
def test_command_line_writes_json_markdown_and_profile(tmp_path):
  out, prof = tmp_path / "out", tmp_path / "prof"
  command = [sys.executable, "-m", "patchwork_tf.evaluate", "--untrained",
             "--task=segmentation", "--frame_size=64", "--policy=scanning", "--m=2", "--n=1",
             "--interval=2", "--delay=1", "--num_clips=1", "--clip_length=4",
             f"--output_dir={out}", f"--profile_dir={prof}"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  subprocess.run(command, check=True, env=env, capture_output=True)
  name = "scanning_m2n1_k2_d1"
  record, = json.loads((out / f"{name}.json").read_text())
  assert record["settings"]["interval"] == 2 and record["settings"]["delay"] == 1
  assert record["settings"]["threads"] == 1
  # K = 2, D = 1: each step is spread over two frames, so maximum = average = step / 2.
  assert record["theoretical"]["maximum"] == pytest.approx(record["job_mflops"] / 2)
  assert record["theoretical"]["average"] == pytest.approx(record["job_mflops"] / 2)
  assert "| scanning_m2n1_k2_d1 |" in (out / f"{name}.md").read_text()
  ops = (out / f"{name}_ops.md").read_text().splitlines()
  assert len(ops) > 3 and ops[0].startswith("| op type")
  assert list(prof.glob("plugins/profile/*/*.xplane.pb"))


def test_command_line_refuses_two_model_sources(tmp_path):
  command = [sys.executable, "-m", "patchwork_tf.evaluate", "--untrained",
             f"--model_dir={tmp_path}", f"--output_dir={tmp_path}"]
  run = subprocess.run(command, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                       capture_output=True, text=True)
  assert run.returncode != 0
  assert "exactly one of --model_dir and --untrained" in run.stderr


@dataclasses.dataclass(frozen=True)
class _Config:
  task: str
  frame_size: tuple
  num_extra_layers: object = None


def _fake_stage1():
  from patchwork_tf.models import deeplab
  from patchwork_tf.models import ssdlite

  def build_model(config):
    shape = tuple(config.frame_size) + (3,)
    if config.task == "detection":
      return ssdlite.ssdlite_mobilenet_v2(shape, num_classes=2, alpha=0.35,
                                          num_extra_layers=config.num_extra_layers)
    return deeplab.deeplabv3_mobilenet_v2(shape, alpha=0.35)
  return types.SimpleNamespace(build_model=build_model)


def test_resolution_rebuild_keeps_the_trained_layers_or_refuses():
  stage1 = _fake_stage1()
  segmenter = evaluate._build_at_resolution(  # pylint: disable=protected-access
      stage1, _Config("segmentation", (64, 64)), 0.5, "seg")
  assert tuple(segmenter.inputs[0].shape[1:3]) == (32, 32)
  # 128 px SSDLite has 2 extra layers; 96 px still holds them, 64 px does not.
  detector = evaluate._build_at_resolution(  # pylint: disable=protected-access
      stage1, _Config("detection", (128, 128)), 0.75, "det")
  assert len([l for l in detector.layers if l.name.endswith("_project_relu")
              and l.name.startswith("ssd_extra")]) == 2
  with pytest.raises(ValueError, match="Train a model at that frame size"):
    evaluate._build_at_resolution(  # pylint: disable=protected-access
        stage1, _Config("detection", (128, 128)), 0.5, "det")
