"""The stream server against each stream run alone through the module's `step`, its HTTP front
on loopback, `python -m patchwork_tf.serve` and `tools/load_test_streams.py` at toy scale."""
import json
import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf import runs
from patchwork_tf.data import synthetic
from patchwork_tf.evaluation import stream as stream_lib
from patchwork_tf.serving import exportable
from patchwork_tf.serving import stream_http
from patchwork_tf.serving import stream_server as stream_server_lib
from tests.core import small_models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRAME = 64
CLIP_LENGTH = 4
NUM_CLASSES = 3


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """A detection twin (SSDLite, MobileNetV2 0.35, 64 px, M=2 N=1, NMS inside) as an
    `ExportableModule`, and the directory it was saved to as `python -m patchwork_tf.export`
    saves it. Batch norms calibrated as after training, so that scores depend on the frame
    and are distinct (ties would make NMS's order depend on float noise). Saving traces the
    module's functions, which the in-process tests then reuse."""
    tf_keras.utils.set_random_seed(0)
    model, post = runs.build_model("detection", FRAME, 0.35, num_classes=NUM_CLASSES,
                                     max_detections=10, score_threshold=0.1)
    small_models.calibrate_batch_norm(model)
    twin = pw.patchwork_model(model, pw.WindowGrid((FRAME, FRAME), 2, 1), fold_batch_norm=True)
    module = exportable.ExportableModule(twin, postprocess=post, scan_order=[3, 1, 2, 0])
    export_dir = exportable.export_saved_model(
        module, str(tmp_path_factory.mktemp("stream_server") / "saved_model"),
        task="detection", metadata=post.export_metadata())
    # The first call of each function instantiates (optimizes) its graph: here, once.
    _solo(module, np.zeros((1, FRAME, FRAME, 3), np.uint8))
    return module, export_dir


@pytest.fixture(scope="module")
def module(detector):
    return detector[0]


@pytest.fixture(scope="module")
def saved_model(detector):
    return detector[1]


def _state_bytes(module):
    """Bytes of one stream's state, from the module's state spec."""
    return sum(spec.shape[1:].num_elements() * spec.dtype.size
               for spec in module.state_spec().values())


@pytest.fixture(scope="module")
def clips():
    """uint8 [4, T, H, W, 3]: four different synthetic clips."""
    return np.stack([clip["frames"] for clip in synthetic.synthetic_clips(
        "validation", num_clips=4, frame_size=FRAME, clip_length=CLIP_LENGTH)])


def _solo(module, frames, start="key_frame"):
    """The frames of one stream through the module alone, batch 1: the expected answers."""
    first = tf.constant(frames[:1])
    if start == "key_frame":
        state = module.warm_start(first)
    else:
        state = module.initial_state(tf.constant(1))
    keys = list(module.state_spec())
    answers = []
    for frame in frames:
        outputs = module.step(tf.constant(frame[None]), {key: state[key] for key in keys})
        answers.append({key: value.numpy()[0] for key, value in outputs.items()
                        if key not in keys or key == "next_action"})
        state = outputs
    return answers


def _assert_same(answer, expected):
    """A served answer (`StreamResult`) against a solo step's outputs."""
    assert answer.action == expected["action"]
    assert answer.next_action == expected["next_action"]
    assert sorted(answer.predictions) == sorted(set(expected) - {"action", "next_action"})
    for key, value in answer.predictions.items():
        if key in ("num_detections", "detection_classes"):
            np.testing.assert_array_equal(value, expected[key], err_msg=key)
        else:
            np.testing.assert_allclose(value, expected[key], atol=1e-5, err_msg=key)


def test_stream_starts_are_those_of_evaluation():
    assert set(stream_server_lib.STREAM_STARTS) == set(stream_lib.STREAM_STARTS)


def test_concurrent_streams_equal_each_stream_served_alone(module, clips):
    # Streams 0-2 at the model's size, stream 3 at 80 x 96: a shape of its own, batched apart.
    frames = list(clips[:3]) + [np.stack([tf.image.resize(f, (80, 96)).numpy().astype(np.uint8)
                                          for f in clips[3]])]
    answers = [None] * len(frames)
    ready = threading.Barrier(len(frames))
    with stream_server_lib.StreamServer(module, max_batch_size=4,
                                        batch_timeout_ms=200) as server:
        def client(index):
            ready.wait()
            answers[index] = [server.process(f"stream-{index}", frame, timeout=120)
                              for frame in frames[index]]

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(frames))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = server.stats()
    assert stats["frames_served"] == 4 * CLIP_LENGTH
    assert stats["batches"] < stats["frames_served"], "no two streams were ever batched"
    detected = 0
    for index, stream_frames in enumerate(frames):
        expected = _solo(module, stream_frames)
        assert [a.start for a in answers[index]] == ["new"] + [None] * (CLIP_LENGTH - 1)
        for answer, solo in zip(answers[index], expected):
            _assert_same(answer, solo)
            detected += int(answer.predictions["num_detections"])
    assert detected > 0, "the comparison needs detections"


def test_interleaved_streams_never_share_state(module, clips):
    # Both streams live, then all their other frames queued at once: a batch may hold one
    # frame per stream, so the server must pair frame t of one stream with frame t of the
    # other, in order.
    with stream_server_lib.StreamServer(module, max_batch_size=8,
                                        batch_timeout_ms=1000) as server:
        answers = {name: [server.process(name, clips[index, 0])]
                   for index, name in enumerate("ab")}
        futures = [(name, server.submit(name, clips[index, t]))
                   for t in range(1, CLIP_LENGTH) for index, name in enumerate("ab")]
        for name, future in futures:
            answers[name].append(future.result(timeout=120))
        stats = server.stats()
    assert stats["batches"] == 2 + CLIP_LENGTH - 1
    for index, name in enumerate("ab"):
        for answer, solo in zip(answers[name], _solo(module, clips[index])):
            _assert_same(answer, solo)
    # The two streams' answers differ: equal answers would not show the state kept apart.
    assert not np.allclose(answers["a"][-1].predictions["detection_scores"],
                           answers["b"][-1].predictions["detection_scores"])


@pytest.mark.parametrize("start", stream_server_lib.STREAM_STARTS)
def test_a_reset_stream_equals_a_new_stream(module, clips, start):
    with stream_server_lib.StreamServer(module, stream_start=start) as server:
        for frame in clips[0, :2]:
            server.process("a", frame)
        reset = [server.process("a", frame, reset=(t == 0)) for t, frame in enumerate(clips[1])]
        new = [server.process("b", frame) for frame in clips[1]]
    assert [r.start for r in reset] == ["reset"] + [None] * (CLIP_LENGTH - 1)
    assert [r.start for r in new] == ["new"] + [None] * (CLIP_LENGTH - 1)
    for answer_reset, answer_new, solo in zip(reset, new, _solo(module, clips[1], start)):
        _assert_same(answer_reset, solo)
        _assert_same(answer_new, solo)


def test_a_scene_cut_restarts_the_stream(module, clips):
    def mad(a, b):
        return np.mean(np.abs(a[::2, ::2].astype(np.float32) - b[::2, ::2]))

    within = max(mad(clip[t], clip[t + 1]) for clip in clips[:2] for t in range(CLIP_LENGTH - 1))
    cut = 255 - clips[1]  # a scene unlike the first
    across = mad(clips[0, -1], cut[0])
    assert within < across
    threshold = (within + across) / 2
    with stream_server_lib.StreamServer(module, scene_cut_threshold=threshold) as server:
        first = [server.process("a", frame) for frame in clips[0]]
        after_cut = [server.process("a", frame) for frame in cut]
        resized = server.process("a", tf.image.resize(cut[-1], (48, 48)).numpy()
                                 .astype(np.uint8))
    assert [r.start for r in first] == ["new"] + [None] * (CLIP_LENGTH - 1)
    assert [r.start for r in after_cut] == ["scene_cut"] + [None] * (CLIP_LENGTH - 1)
    assert resized.start == "scene_cut"  # another frame size is a cut too
    for answer, solo in zip(after_cut, _solo(module, cut)):
        _assert_same(answer, solo)


def test_idle_streams_expire(module, clips):
    now = [0.0]
    with stream_server_lib.StreamServer(module, idle_timeout_s=10.0,
                                        clock=lambda: now[0]) as server:
        server.process("idle", clips[0, 0])
        now[0] = 6.0
        server.process("busy", clips[1, 0])
        now[0] = 10.5
        assert server.expire_idle() == ["idle"]
        assert server.stream_ids() == ["busy"]
        now[0] = 17.0  # the next frame's admission expires "busy" too
        assert server.process("idle", clips[0, 1]).start == "new"
        assert server.stream_ids() == ["idle"]


def test_a_new_stream_beyond_max_streams_is_refused(module, clips):
    now = [0.0]
    with stream_server_lib.StreamServer(module, max_streams=2, idle_timeout_s=5.0,
                                        clock=lambda: now[0]) as server:
        server.process("a", clips[0, 0])
        server.process("b", clips[1, 0])
        with pytest.raises(stream_server_lib.StreamLimitError,
                           match=r"maximum of 2 live streams; stream 'c' cannot start"):
            server.process("c", clips[2, 0])
        assert server.process("a", clips[0, 1]).start is None  # live streams go on
        assert server.end_stream("b") and not server.end_stream("b")
        assert server.process("c", clips[2, 0]).start == "new"
        now[0] = 6.0  # "a" and "c" expire, making room
        server.process("d", clips[3, 0])
        server.process("e", clips[3, 0])
        assert server.stream_ids() == ["d", "e"]


def test_refused_frames_come_back_with_the_models_message(module, clips):
    gray = np.zeros((FRAME, FRAME, 1), np.uint8)
    expected = _solo(module, clips[0, :2])
    with stream_server_lib.StreamServer(module) as server:
        with pytest.raises(stream_server_lib.InputError, match="frame must be uint8 RGB"):
            server.submit("a", clips[0, 0].astype(np.float32))
        with pytest.raises(stream_server_lib.InputError, match=re.escape(
                "The model refused the frame of shape [64, 64, 1]: warm_start: frames must be "
                "uint8 [B, H, W, 3] RGB with H, W >= 1; got uint8 shape] [1 64 64 1]")):
            server.process("gray", gray)
        assert server.stream_ids() == []  # a stream whose first frame failed is forgotten
        _assert_same(server.process("good", clips[0, 0]), expected[0])
        with pytest.raises(stream_server_lib.InputError, match=re.escape(
                "step: frames must be uint8 [B, H, W, 3] RGB")):
            server.process("good", gray)
        # The refused frame left the stream's state as it was.
        _assert_same(server.process("good", clips[0, 1]), expected[1])
    with pytest.raises(stream_server_lib.ServerClosedError):
        server.submit("a", clips[0, 0])


def test_constructor_refuses_bad_settings(module):
    for kwargs, message in ((dict(stream_start="cold"), "stream_start must be one of"),
                            (dict(max_batch_size=0), "max_batch_size must be an integer"),
                            (dict(idle_timeout_s=0), "idle_timeout_s must be > 0"),
                            (dict(scene_cut_threshold=-1), "scene_cut_threshold must be")):
        with pytest.raises(ValueError, match=message):
            stream_server_lib.StreamServer(module, **kwargs)


def test_http_round_trip_on_loopback(module, clips):
    server = stream_server_lib.StreamServer(module, max_streams=2)
    http_server = stream_http.make_http_server(server, metadata={"task": "detection"})
    stream_http.serve_in_thread(http_server)
    client = stream_http.StreamClient("127.0.0.1", http_server.server_address[1])
    try:
        expected = _solo(module, clips[0, :3])
        status, payload = client.send_frame("cam-1", clips[0, 0])
        assert status == 200 and payload["stream_id"] == "cam-1" and payload["start"] == "new"
        status, png = client.send_frame("cam-1", clips[0, 1], encoding="png")
        assert status == 200 and png["start"] is None
        status, reset = client.send_frame("cam-1", clips[0, 2], reset=True)
        for answer, solo in zip((payload, png), expected):
            _assert_same(stream_server_lib.StreamResult(
                {k: np.asarray(v) for k, v in answer["predictions"].items()},
                answer["action"], answer["next_action"]), solo)
        assert reset["start"] == "reset"
        assert sorted(payload["predictions"]) == ["detection_boxes", "detection_classes",
                                                  "detection_scores", "num_detections"]

        status, error = client.send_frame("gray", np.zeros((8, 8, 1), np.uint8))
        assert status == 400 and error["error"].endswith(
            "warm_start: frames must be uint8 [B, H, W, 3] RGB with H, W >= 1; got uint8 "
            "shape] [1 8 8 1]")
        client.send_frame("cam-2", clips[1, 0])
        status, error = client.send_frame("cam-3", clips[2, 0])
        assert status == 503 and "maximum of 2 live streams" in error["error"]
        status, stats = client.status()
        assert status == 200 and stats["streams"] == 2 and stats["rss_bytes"] > 0
        assert stats["metadata"] == {"task": "detection"}
        assert stats["state_bytes_per_stream"] == _state_bytes(module)
        assert client.end_stream("cam-2") == (204, None)
        assert client.end_stream("cam-2")[0] == 404
        assert client.request("POST", "/v1/other", b"")[0] == 404
        status, error = client.request("POST", "/v1/streams/x/frames?height=3&width=3",
                                        b"\0" * 10, {"Content-Type": stream_http.RAW})
        assert status == 400 and "the body has 10" in error["error"]
    finally:
        client.close()
        http_server.shutdown()
        server.close()


def test_other_model_errors_reach_the_caller_and_http_answers_500(module, clips):
    class Failing:
        """The module, but its step fails as no input check would."""

        def __init__(self):
            self.initial_state, self.warm_start = module.initial_state, module.warm_start

        def step(self, frames, state):
            raise RuntimeError("out of memory, say")

    server = stream_server_lib.StreamServer(Failing())
    http_server = stream_http.make_http_server(server)
    stream_http.serve_in_thread(http_server)
    client = stream_http.StreamClient("127.0.0.1", http_server.server_address[1])
    try:
        with pytest.raises(RuntimeError, match="out of memory, say"):
            server.process("a", clips[0, 0])
        assert client.send_frame("b", clips[0, 0]) == (
            500, {"error": "RuntimeError: out of memory, say"})
        assert server.stream_ids() == []
    finally:
        client.close()
        http_server.shutdown()
        server.close()


@pytest.mark.slow
def test_serve_entry_point_answers_on_loopback(module, saved_model, clips):
    process = subprocess.Popen(
        [sys.executable, "-m", "patchwork_tf.serve", f"--saved_model={saved_model}",
         "--port=0", "--max_batch_size=4", "--batch_timeout_ms=2", "--max_streams=4",
         "--idle_timeout_s=60", "--stream_start=key_frame", "--scene_cut_threshold=0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(600, process.kill)  # a server that never starts fails the test
    watchdog.start()
    try:
        line = process.stdout.readline()
        match = re.match(r"Serving .* on http://127\.0\.0\.1:(\d+)", line)
        assert match, line + process.stderr.read()[-3000:]
        client = stream_http.StreamClient("127.0.0.1", int(match.group(1)))
        answers = [client.send_frame("s", frame, encoding="png") for frame in clips[2]]
        status, stats = client.status()
        client.close()
    finally:
        watchdog.cancel()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    assert stats["metadata"]["task"] == "detection" and stats["frames_served"] == CLIP_LENGTH
    for (status, answer), solo in zip(answers, _solo(module, clips[2])):
        assert status == 200
        _assert_same(stream_server_lib.StreamResult(
            {k: np.asarray(v) for k, v in answer["predictions"].items()},
            answer["action"], answer["next_action"]), solo)


@pytest.mark.slow
def test_load_test_tool_at_toy_scale(module, saved_model, tmp_path):
    output = tmp_path / "load.json"
    process = subprocess.run(
        [sys.executable, "tools/load_test_streams.py", f"--saved_model={saved_model}",
         "--streams=2", "--frames=3", f"--output_json={output}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert process.returncode == 0, process.stderr[-3000:]
    assert "CPU: " in process.stdout and "batched / one at a time: throughput x" in \
        process.stdout
    rows = {row["mode"]: row for row in json.loads(output.read_text())["rows"]}
    state_bytes = _state_bytes(module)
    for mode, max_batch_size in (("batched", 2), ("one_at_a_time", 1)):
        row = rows[mode]
        assert row["frames_answered"] == 6 and not row["timed_out"]
        assert row["max_batch_size"] == max_batch_size
        assert row["state_bytes_per_stream"] == state_bytes
        assert row["frames_per_s"] == pytest.approx(6 / row["wall_s"])
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert 1 <= row["mean_batch_size"] <= max_batch_size
    assert rows["one_at_a_time"]["mean_batch_size"] == 1
