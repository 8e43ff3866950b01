"""A TF profiler trace of the measured frames and a per-op summary of it.

`trace_session(profile_dir)` wraps `tf.profiler.experimental.start/stop`; the trace (an
XSpace under `<profile_dir>/plugins/profile/<run>/`) opens in TensorBoard's profile plugin.
`op_summary(profile_dir)` reads that trace back with the converter TensorBoard's plugin uses
(`xspace_to_tools_data(..., "framework_op_stats")`, shipped with TensorFlow in
`tensorflow.python.profiler.internal._pywrap_profiler_plugin`; a private module, the only
way TensorFlow offers to read an XSpace without the plugin) and ranks TensorFlow ops by
self-time.
"""
import contextlib
import glob
import json
import os

import tensorflow as tf
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin


@contextlib.contextmanager
def trace_session(profile_dir):
    """Profiles everything run inside the block into `profile_dir` (host CPU ops)."""
    tf.profiler.experimental.start(profile_dir)
    try:
        yield
    finally:
        tf.profiler.experimental.stop()


def step_trace(frame_number):
    """A profiler step marker for one timed call (TensorBoard shows one step per frame)."""
    return tf.profiler.experimental.Trace("frame", step_num=frame_number, _r=1)


def _latest_run(profile_dir):
    runs = sorted(glob.glob(os.path.join(profile_dir, "plugins", "profile", "*")))
    if not runs:
        raise FileNotFoundError(
            f"No profiler run under {os.path.join(profile_dir, 'plugins', 'profile')}; profile "
            "with trace_session(profile_dir) first.")
    paths = sorted(glob.glob(os.path.join(runs[-1], "*.xplane.pb")))
    if not paths:
        raise FileNotFoundError(f"Profiler run {runs[-1]} holds no .xplane.pb trace.")
    return paths


def op_summary(profile_dir, top=20):
    """The `top` TensorFlow ops of the latest trace in `profile_dir`, by total self-time.

    Returns:
      list of dicts: `type` (op type, e.g. Conv2D), `operation` (node name), `occurrences`,
      `self_time_us` (total), `avg_self_time_us`, `percent` (of the host's busy self-time);
      idle time is left out.
    """
    data, ok = _pywrap_profiler_plugin.xspace_to_tools_data(
        _latest_run(profile_dir), "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"The profiler could not convert the trace in {profile_dir}: {data!r}")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    rows = [dict(zip(columns, [cell.get("v") for cell in row["c"]])) for row in table["rows"]]
    rows = [r for r in rows if r["type"] != "IDLE"]
    busy = sum(r["total_self_time"] for r in rows) or 1.0
    rows.sort(key=lambda r: -r["total_self_time"])
    return [{"type": r["type"], "operation": r["operation"], "occurrences": int(r["occurrences"]),
             "self_time_us": float(r["total_self_time"]),
             "avg_self_time_us": float(r["avg_self_time"]),
             "percent": 100.0 * r["total_self_time"] / busy} for r in rows[:top]]


def op_summary_markdown(summary):
    """A Markdown table of `op_summary` rows."""
    lines = ["| op type | operation | calls | self-time ms | avg us | % |",
             "|---|---|---|---|---|---|"]
    for r in summary:
        lines.append(f"| {r['type']} | {r['operation']} | {r['occurrences']} | "
                     f"{r['self_time_us'] / 1e3:.2f} | {r['avg_self_time_us']:.1f} | "
                     f"{r['percent']:.1f} |")
    return "\n".join(lines) + "\n"
