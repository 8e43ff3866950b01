"""tools/benchmark_latency.py --mode=frame_call at toy scale: the command runs every runtime on
both sides and its summary follows from its own table."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNTIMES = ("graph", "xla", "tflite")


@pytest.mark.slow
def test_frame_call_mode_at_toy_scale(tmp_path):
    output = tmp_path / "frame_call.json"
    process = subprocess.run(
        [sys.executable, "tools/benchmark_latency.py", "--mode=frame_call",
         "--frame_call_configs=0.35:64", "--frame_call_grid=2:1", "--steps=2", "--rounds=2",
         "--warmup=1", f"--json_out={output}"],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.startswith("CPU: ")
    result = json.loads(output.read_text())
    assert result["cpu"] in process.stdout.splitlines()[0]
    (row,) = result["rows"]
    medians = row["medians_ms"]
    assert sorted(medians) == sorted(f"{side} {runtime}" for side in ("single frame", "Patchwork")
                                     for runtime in RUNTIMES)
    for side, best in row["best"].items():
        times = {key.split()[-1]: ms for key, ms in medians.items() if key.startswith(side)}
        assert best["median_ms"] == min(times.values())
        assert times[best["runtime"]] == best["median_ms"]
    assert row["ratio"] == pytest.approx(
        row["best"]["Patchwork"]["median_ms"] / row["best"]["single frame"]["median_ms"])
    # M=2, N=1: a window is a quarter of the frame; halos and the full-frame heads add.
    assert 0.25 < row["flops_ratio"] < 0.6
    assert f"{row['ratio']:6.3f}" in process.stdout
