"""tools/benchmark_still_readers.py at toy scale: its synthetic copy, decode counts and output."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_decode_kept_decodes_only_the_images_with_a_vid_object(tmp_path):
    output = tmp_path / "result.json"
    process = subprocess.run(
        [sys.executable, "tools/benchmark_still_readers.py", "--max_images=5",
         "--image_size=24,32", "--vid_share=0.4", "--rounds=1", f"--output_json={output}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(output.read_text())
    # 2 of the 5 synthetic positives show an airplane (VID class 0), the others an apple.
    assert (result["images"], result["kept"]) == (5, 2)
    assert result["decoded"] == {"all": 5, "kept": 2}
    assert result["root"] == "a synthetic copy (24x32, vid_share 0.4)"
    assert f"decode kept / decode all: {result['ratio']:.3f} on {result['cpu']}" in (
        process.stdout)
    assert "5 images of a synthetic copy (24x32, vid_share 0.4): 2 with a VID object (40.0%)" in (
        process.stdout)
