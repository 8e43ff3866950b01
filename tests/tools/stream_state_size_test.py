"""tools/stream_state_size.py at toy scale: its byte counts against the core's own tables."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import patchwork_tf as pw
from patchwork_tf import runs
from patchwork_tf.policy import observation
from patchwork_tf import tasks

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE, M, N = 64, 2, 1


def _expected_bytes():
    """Whole and compact bytes per stream, counted from the twin with write='bands': every
    halo cell but the observed one keeps the in-frame pixels of its step's ring tables."""
    model, _ = runs.build_model("detection", SIZE, 0.35)
    grid = pw.WindowGrid((SIZE, SIZE), M, N)
    observed = tasks.get("detection").observed_cell
    twin = pw.patchwork_model(model, grid, write="bands", full_memory_cells=[observed])
    observer = observation.AttentionObservation(grid, change_cue=True)
    other = sum(int(np.prod(s.shape[1:])) * 4 for s in observer.state_spec().values()) + 4
    full = compact = other
    for name, spec in twin.state_spec().items():
        whole = int(np.prod(spec.shape[1:])) * 4
        full += whole
        cell = twin.halo_cells.get(name)
        if cell is None or cell.write != "bands":
            compact += whole
            continue
        (top, _), (left, _) = cell.geometry.pad
        ring = {(y, x) for table in cell._ring_in_memory for _, y, x in table
                if top <= y < top + cell.input_size[0] and left <= x < left + cell.input_size[1]}
        compact += len(ring) * spec.shape[-1] * 4
    return full, compact


@pytest.mark.slow
def test_sizes_and_timing_at_toy_scale(tmp_path):
    output = tmp_path / "sizes.json"
    process = subprocess.run(
        [sys.executable, "tools/stream_state_size.py", "--task=detection",
         f"--frame_size={SIZE}", "--depth_multiplier=0.35", f"--m={M}", f"--n={N}", "--time_steps=2",
         "--rounds=1", f"--output_json={output}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(output.read_text())
    full, compact = _expected_bytes()
    assert result["totals"] == {"full": full, "compact": compact}
    assert sum(row["full_bytes"] for row in result["rows"]) == full
    assert sum(row["compact_bytes"] for row in result["rows"]) == compact
    groups = {row["group"]: row for row in result["rows"]}
    observed = groups["observed cell block_13_depthwise"]
    assert observed["cells"] == 1 and observed["full_bytes"] == observed["compact_bytes"]
    assert groups["halo cells at stride 2"]["compact_bytes"] < (
        groups["halo cells at stride 2"]["full_bytes"] / 4)
    assert f"total compact: {compact:12d} bytes" in process.stdout
    assert "goal <= 25 MB (1e6 bytes): met" in process.stdout
    assert set(result["step_ms"]) == {"full", "compact"}
    assert f"on {result['cpu']}" in process.stdout
