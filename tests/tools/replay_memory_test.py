"""tools/replay_memory.py at toy scale: the command runs and its numbers add up."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STREAMS, CAPACITY = 2, 8000
# MobileNetV2 0.35 at 64 pixels: block_13_depthwise's memory is 4 x 4 x 192 (stride 16);
# M=2, N=1: 4 windows of 2 x 2.
MEMORY_FLOATS, POOLED_FLOATS, NUM_ACTIONS = 4 * 4 * 192, 4 * 192, 4


def _run(tmp_path, *args):
    flag_file = tmp_path / "toy.flags"
    flag_file.write_text("\n".join([
        f"--model_dir={tmp_path}/run", "--task=detection", "--frame_size=64",
        "--depth_multiplier=0.35",
        "--m=2", "--n=1", f"--num_streams={STREAMS}", "--clip_length=4",
        f"--replay_capacity={CAPACITY}", "--sample_batch_size=4",
        "--initial_collect_steps=2"]) + "\n")
    output = tmp_path / "out.json"
    process = subprocess.run(
        [sys.executable, "tools/replay_memory.py", f"--flagfile={flag_file}", "--steps=2",
         f"--output_json={output}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert process.returncode == 0, process.stderr[-3000:]
    return process.stdout, {row["storage"]: row for row in json.loads(output.read_text())["rows"]}


def _step_bytes(observation_floats):
    # Observation and history + change (float32), step and next step types, action (int32),
    # reward, discount (float32); the buffer's int64 id.
    return (observation_floats + 2 * NUM_ACTIONS) * 4 + 5 * 4 + 8


@pytest.mark.slow
def test_both_storages_at_toy_scale(tmp_path):
    stdout, rows = _run(tmp_path)
    assert "memory of block_13_depthwise [4, 4, 192], 4 windows" in stdout
    old, new = rows["memory"], rows["pooled_memory"]
    assert old["run"] and new["run"] and old["train_steps"] == new["train_steps"] == 2
    assert old["shape"] == [4, 4, 192] and new["shape"] == [4, 192]
    assert old["buffer_bytes"] == STREAMS * CAPACITY * _step_bytes(MEMORY_FLOATS) + 8
    assert new["buffer_bytes"] == STREAMS * CAPACITY * _step_bytes(POOLED_FLOATS) + 8
    # The checkpoints hold no buffer: the same small size for both (but for the temporary
    # folder's name in the `checkpoint` index file).
    assert old["checkpoint_bytes"] < 1e6 and new["checkpoint_bytes"] < 1e6
    assert abs(old["checkpoint_bytes"] - new["checkpoint_bytes"]) < 100
    # The buffer is resident: the old storage's peak exceeds the new one's by most of the
    # 147 MB the buffers differ by.
    freed = old["buffer_bytes"] - new["buffer_bytes"]
    grown = (old["peak_rss"] - old["baseline_rss"]) - (new["peak_rss"] - new["baseline_rss"])
    assert grown > 0.6 * freed, (grown, freed)


@pytest.mark.slow
def test_a_buffer_over_the_limit_is_computed_not_run(tmp_path):
    stdout, rows = _run(tmp_path, "--memory_limit_gb=0.1", "--memory_shape=4,4,192")
    assert not rows["memory"]["run"] and rows["pooled_memory"]["run"]
    assert rows["memory"]["buffer_bytes"] == STREAMS * CAPACITY * _step_bytes(MEMORY_FLOATS) + 8
    assert "(computed; not run: needs 0.198 GB, limit 0.100 GB)" in stdout
