r"""Load test of the stream server on loopback: N concurrent streams of K frames each.

    PYTHONPATH=. python tools/load_test_streams.py --saved_model=/tmp/patchwork_det \
        --streams=8 --frames=50

Runs twice, side by side, each time in a fresh process (so that memory is measured from the
same start): the server batching up to `--streams` streams' frames per `step` call
(`batched`), and the same server serving one stream's frame at a time (`one_at_a_time`,
`max_batch_size=1`). Each process loads the SavedModel, starts `StreamServer` behind its HTTP
front (`serving.stream_http`) on 127.0.0.1 with a free port, runs one `warm_start` and one
`step` at batch N directly (so that the first measured frames do not pay one-time set-up), then
starts N client threads, each with its own keep-alive HTTP connection, that send their
stream's frames (synthetic clips at the model's frame size, or `--frame_size`) one after the
other, each after the previous answer.

Prints per mode: throughput (frames answered per second of wall time), per-frame latency as
the client sees it (request to decoded JSON answer) at p50 and p99 over the window steps, and
p50 of each stream's first frame (a key-frame start: `warm_start` then `step`), the mean batch
size of the `step` calls, the resident memory's growth per stream (VmRSS once every stream is
live, less VmRSS before the first stream, over N: the streams' state plus whatever the
process's allocators keep for batches of N) and the state's bytes per stream (from the state
tensors). Then the ratios batched / one at a time, and the CPU model. The clients and the
server share the process and its CPUs; the numbers are of the whole.

Bounded: at most `--streams` x `--frames` frames per mode, and a mode stops sending after
`--timeout_s` (reporting the frames answered by then).
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags

from machine import cpu_model  # tools/machine.py
import numpy as np

FLAGS = flags.FLAGS
MODES = {"batched": None, "one_at_a_time": 1}  # max_batch_size; None: --streams

_SAVED_MODEL = flags.DEFINE_string("saved_model", None,
                                   "SavedModel of python -m patchwork_tf.export.",
                                   required=True)
_STREAMS = flags.DEFINE_integer("streams", 8, "Concurrent client streams N (1..256).",
                                lower_bound=1, upper_bound=256)
_FRAMES = flags.DEFINE_integer("frames", 50, "Frames per stream K (1..10000).", lower_bound=1,
                               upper_bound=10000)
_FRAME_SIZE = flags.DEFINE_list("frame_size", None,
                                "H,W of the frames sent; default the model's frame size.")
_BATCH_TIMEOUT_MS = flags.DEFINE_float("batch_timeout_ms", 2.0,
                                       "The server's batch timeout (ms).")
_TIMEOUT_S = flags.DEFINE_float("timeout_s", 300.0,
                                "A mode stops sending after this many seconds.", lower_bound=1)
_MODE = flags.DEFINE_enum("mode", None, list(MODES),
                          "Measure this mode alone, in this process (as the tool runs itself "
                          "per mode).")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Also write the results here as JSON.")


def _frames(frame_size, num_streams, num_frames):
    """uint8 [N, L, H, W, 3]: one synthetic clip per stream, L = min(K, 16) frames, played
    forth and back (`_frame_index`) to give K frames."""
    from patchwork_tf.data import synthetic

    clips = synthetic.synthetic_clips("test", num_clips=num_streams, frame_size=frame_size,
                                      clip_length=min(num_frames, 16))
    return np.stack([np.asarray(clip["frames"], np.uint8) for clip in clips])


def _frame_index(t, length):
    period = max(2 * length - 2, 1)
    t %= period
    return t if t < length else period - t


def measure(mode):
    """One mode in this process; returns its numbers (a dict)."""
    import tensorflow as tf

    from patchwork_tf.serving import metadata as metadata_lib
    from patchwork_tf.serving import stream_http
    from patchwork_tf.serving import stream_server as stream_server_lib

    num_streams, num_frames = _STREAMS.value, _FRAMES.value
    module = tf.saved_model.load(_SAVED_MODEL.value)
    record = metadata_lib.read(module, _SAVED_MODEL.value)
    frame_size = tuple(int(v) for v in (_FRAME_SIZE.value or record["frame_size"]))
    frames = _frames(frame_size, num_streams, num_frames)
    # One-time set-up (kernels for batch N) before the baseline.
    warm = module.warm_start(tf.constant(frames[:, 0]))
    module.step(tf.constant(frames[:, 0]),
                {key: warm[key] for key in module.initial_state(tf.constant(1))})
    max_batch_size = MODES[mode] or num_streams
    server = stream_server_lib.StreamServer(
        module, max_batch_size=max_batch_size, batch_timeout_ms=_BATCH_TIMEOUT_MS.value,
        idle_timeout_s=3600.0, max_streams=num_streams)
    http_server = stream_http.make_http_server(server)
    stream_http.serve_in_thread(http_server)
    port = http_server.server_address[1]
    baseline_rss = stream_http.resident_bytes()

    latencies = [[] for _ in range(num_streams)]
    errors = []
    start = threading.Barrier(num_streams + 1)
    deadline = [None]

    def client(index):
        connection = stream_http.StreamClient("127.0.0.1", port)
        start.wait()
        try:
            for t in range(num_frames):
                if time.monotonic() > deadline[0]:
                    break
                frame = frames[index, _frame_index(t, frames.shape[1])]
                begin = time.perf_counter()
                status, payload = connection.send_frame(f"stream-{index}", frame)
                latencies[index].append(time.perf_counter() - begin)
                if status != 200:
                    errors.append(f"stream {index} frame {t}: HTTP {status} {payload}")
                    break
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(num_streams)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + _TIMEOUT_S.value
    begin = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - begin
    live_rss = stream_http.resident_bytes()
    stats = server.stats()
    http_server.shutdown()
    server.close()
    if errors:
        raise RuntimeError("Frames failed: " + "; ".join(errors[:5]))

    answered = sum(len(stream) for stream in latencies)
    steps = [1e3 * x for stream in latencies for x in stream[1:]]
    firsts = [1e3 * stream[0] for stream in latencies if stream]
    return {
        "mode": mode, "streams": num_streams, "frames_per_stream": num_frames,
        "frame_size": list(frame_size), "max_batch_size": max_batch_size,
        "frames_answered": answered, "timed_out": answered < num_streams * num_frames,
        "wall_s": wall, "frames_per_s": answered / wall,
        "p50_ms": float(np.percentile(steps, 50)) if steps else None,
        "p99_ms": float(np.percentile(steps, 99)) if steps else None,
        "first_frame_p50_ms": float(np.percentile(firsts, 50)),
        "mean_batch_size": stats["mean_batch_size"], "step_calls": stats["batches"],
        "baseline_rss_bytes": baseline_rss, "live_rss_bytes": live_rss,
        "rss_growth_per_stream_bytes": (live_rss - baseline_rss) / num_streams,
        "state_bytes_per_stream": stats["state_bytes_per_stream"],
        "task": record["task"], "model_frame_size": record["frame_size"],
        "m": record["m"], "n": record["n"], "cpu": cpu_model(),
    }


def _run_mode(mode, output):
    argv = [sys.executable, os.path.abspath(__file__), f"--mode={mode}",
            f"--output_json={output}", f"--saved_model={_SAVED_MODEL.value}",
            f"--streams={_STREAMS.value}", f"--frames={_FRAMES.value}",
            f"--batch_timeout_ms={_BATCH_TIMEOUT_MS.value}", f"--timeout_s={_TIMEOUT_S.value}"]
    if _FRAME_SIZE.value:
        argv.append(f"--frame_size={','.join(_FRAME_SIZE.value)}")
    process = subprocess.run(argv, capture_output=True, text=True,
                             timeout=_TIMEOUT_S.value + 600)
    if process.returncode != 0:
        raise RuntimeError(f"The {mode} run failed:\n{process.stderr[-4000:]}")
    with open(output) as f:
        return json.load(f)


def _report(rows):
    first = rows[0]
    lines = [
        f"CPU: {first['cpu']} (shared with other work: compare the ratios, measured side by "
        "side)",
        f"Model: {_SAVED_MODEL.value}: {first['task']}, {first['model_frame_size']} px, "
        f"M={first['m']} N={first['n']}; frames sent at {first['frame_size']} px; state "
        f"{first['state_bytes_per_stream'] / 1e6:.3f} MB per stream",
        f"{'mode':<14} {'streams':>7} {'frames':>6} {'wall_s':>7} {'frames/s':>9} "
        f"{'p50_ms':>7} {'p99_ms':>7} {'first_p50_ms':>12} {'batch':>5} "
        f"{'rss_MB/stream':>13}"]
    for row in rows:
        lines.append(
            f"{row['mode']:<14} {row['streams']:>7} {row['frames_answered']:>6} "
            f"{row['wall_s']:>7.2f} {row['frames_per_s']:>9.1f} {row['p50_ms'] or 0:>7.1f} "
            f"{row['p99_ms'] or 0:>7.1f} {row['first_frame_p50_ms']:>12.1f} "
            f"{row['mean_batch_size']:>5.2f} {row['rss_growth_per_stream_bytes'] / 1e6:>13.3f}"
            + ("  (stopped at --timeout_s)" if row["timed_out"] else ""))
    batched, single = rows
    throughput = batched["frames_per_s"] / single["frames_per_s"]
    lines.append(f"batched / one at a time: throughput x{throughput:.2f}"
                 + (f", p50 latency x{batched['p50_ms'] / single['p50_ms']:.2f}, p99 latency "
                    f"x{batched['p99_ms'] / single['p99_ms']:.2f}"
                    if batched["p50_ms"] and single["p50_ms"] else ""))
    return "\n".join(lines)


def main(argv):
    del argv
    if _MODE.value:
        result = measure(_MODE.value)
        with open(_OUTPUT_JSON.value, "w") as f:
            json.dump(result, f)
        return
    with tempfile.TemporaryDirectory() as scratch:
        rows = [_run_mode(mode, os.path.join(scratch, f"{mode}.json")) for mode in MODES]
    print(_report(rows))
    if _OUTPUT_JSON.value:
        with open(_OUTPUT_JSON.value, "w") as f:
            json.dump({"rows": rows}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
