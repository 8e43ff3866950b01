"""Many video streams, one exported Patchwork model: each stream's state kept by its id, the
frames of concurrent streams batched into one `step` call.

The exported module (`serving.exportable`) has explicit state: `step(frames, state)` advances
B streams at once, each with its own window (`state['next_action']`), and the state is a dict
of tensors batched along dim 0. `StreamServer` keeps one row of that state per stream id (host
numpy, treated as opaque: keys, dtypes and shapes are those `initial_state` returns) and runs
a worker thread that collects the frames of concurrent streams and serves them together:

* **Batching.** A batch opens with the oldest waiting frame and takes further frames until it
  holds `max_batch_size`, until no other live stream could add one (each has a frame in it
  or waiting behind it), or `batch_timeout_ms` after it opened. One batch holds at most one
  frame per stream (the next frame needs the state the previous one leaves) and frames of
  one shape (they are stacked); the others wait for the next batch, in their order. The
  batch's rows of state are stacked, one `step` call advances them all, and each stream's
  row is sliced back out.
* **Stream start.** A new stream, a stream reset on request, or one whose frame is a scene cut
  starts on that frame as `evaluation.stream` starts a video (`STREAM_STARTS`): "key_frame"
  runs `warm_start` on the frame (a full-frame pass that fills every memory) and then the
  frame's `step`, as `SavedModelRunner` does at a clip's first frame; "zeros" starts from
  `initial_state` (zero memories) and runs the `step`. Starting streams of one batch share
  one `warm_start` call.
* **Scene cuts.** With `scene_cut_threshold` > 0, a frame whose mean absolute difference from
  the stream's previous frame (uint8 units, 0..255, on both frames subsampled to about
  32 x 32 pixels) exceeds the threshold, or whose size differs from it, restarts the stream:
  memories of the old scene would only mislead the windows not yet revisited.
* **Expiry and limits.** A stream with no frame for `idle_timeout_s` is forgotten (its next
  frame starts it anew); a new stream beyond `max_streams` live ones is refused with
  `StreamLimitError`.
* **Errors.** A frame the model's input checks refuse fails with `InputError` carrying the
  model's message. The checks are of the frames' shape, which all frames of a batch share,
  so the batch fails as a whole; nothing of a stream's state changes, and a stream whose
  first frame failed is forgotten.

Every call of the model runs on the worker thread; `process` may be called from any number of
threads (the HTTP layer, `serving.stream_http`, calls it from one thread per request).
"""
import collections
import concurrent.futures
import dataclasses
import queue
import re
import threading
import time

import numpy as np
import tensorflow as tf

# How a stream starts, with the meanings of `patchwork_tf.evaluation.stream.STREAM_STARTS`.
STREAM_STARTS = ("key_frame", "zeros")
# Why a frame started its stream (`StreamResult.start`).
NEW, RESET, SCENE_CUT = "new", "reset", "scene_cut"
ACTION = "action"
NEXT_ACTION = "next_action"
# Scene cuts are judged on frames subsampled to about this many pixels a side.
_THUMBNAIL_SIDE = 32
_CLOSE = object()


class InputError(ValueError):
    """A frame the model or the server refuses; the message names what was wrong."""


class StreamLimitError(RuntimeError):
    """A new stream while the server holds `max_streams` live ones."""


class ServerClosedError(RuntimeError):
    """A frame sent to, or still waiting in, a closed server."""


@dataclasses.dataclass
class StreamResult:
    """The answer for one frame of one stream.

    Attributes:
      predictions: the step's predictions for this frame without the batch dimension, host
        numpy keyed as the SavedModel names them (detection: `detection_boxes` float32
        [D, 4] normalized to the frame as sent, `detection_scores` [D], `detection_classes`
        [D] 1-based, `num_detections` scalar; segmentation: `segmentation_probability` and
        `segmentation_mask` [H, W] at the frame's size).
      action: the window the step processed (an index of the exported grid).
      next_action: the window the stream's next frame will process.
      start: why this frame started the stream ("new", "reset", "scene_cut"), or None when
        it continued it.
    """

    predictions: dict
    action: int
    next_action: int
    start: str = None

    def to_json(self):
        """A JSON-serialisable dict: the predictions as nested lists."""
        return {"predictions": {key: value.tolist() for key, value in self.predictions.items()},
                "action": self.action, "next_action": self.next_action, "start": self.start}


@dataclasses.dataclass
class _Stream:
    last_seen: float
    state: dict = None         # key -> numpy [1, ...]; None until the first frame is served
    thumbnail: np.ndarray = None
    queued: int = 0            # frames admitted and not yet answered
    frames: int = 0


@dataclasses.dataclass
class _Request:
    stream_id: str
    stream: _Stream
    frame: np.ndarray
    reset: bool
    future: concurrent.futures.Future


def _thumbnail(frame):
    """The frame subsampled to about `_THUMBNAIL_SIDE` pixels a side, float32."""
    step_y = max(1, frame.shape[0] // _THUMBNAIL_SIDE)
    step_x = max(1, frame.shape[1] // _THUMBNAIL_SIDE)
    return frame[::step_y, ::step_x].astype(np.float32)


def _assertion(message):
    """The message of the model's failed input check within TensorFlow's error text."""
    match = re.search(r"assertion failed: \[(.*)", message)
    return match.group(1) if match else message


class StreamServer:
    """Serves many streams with one exported Patchwork module (see the module docstring).

    Usable in process, with no network: `process(stream_id, frame)` from any thread.
    """

    def __init__(self, module, max_batch_size=8, batch_timeout_ms=2.0, idle_timeout_s=60.0,
                 max_streams=64, stream_start="key_frame", scene_cut_threshold=0.0,
                 clock=time.monotonic):
        """Starts the worker thread.

        Args:
          module: the model: a SavedModel of `python -m patchwork_tf.export` loaded with
            `tf.saved_model.load`, or an `exportable.ExportableModule`; anything with
            `initial_state(batch_size)`, `warm_start(frames)` and `step(frames, state)` as
            `serving.exportable` defines them.
          max_batch_size: at most this many streams' frames per `step` call (1 serves one
            stream at a time).
          batch_timeout_ms: how long an open batch waits for more frames, in milliseconds.
          idle_timeout_s: a stream with no frame for this many seconds is forgotten.
          max_streams: live streams at most; a new one beyond is refused.
          stream_start: how a stream starts, one of `STREAM_STARTS`.
          scene_cut_threshold: a frame whose mean absolute difference from its stream's
            previous frame exceeds this (0..255) restarts the stream; 0 turns it off.
          clock: seconds, monotonic; the idle timeout's clock (tests pass a fake one).

        Raises:
          ValueError: an argument out of range.
        """
        if stream_start not in STREAM_STARTS:
            raise ValueError(f"stream_start must be one of {STREAM_STARTS}, got "
                             f"{stream_start!r}.")
        for name, value in (("max_batch_size", max_batch_size), ("max_streams", max_streams)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        for name, value in (("batch_timeout_ms", batch_timeout_ms),
                            ("scene_cut_threshold", scene_cut_threshold)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}.")
        if idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s!r}.")
        self._module = module
        self.max_batch_size = int(max_batch_size)
        self.batch_timeout_s = batch_timeout_ms / 1e3
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_streams = int(max_streams)
        self.stream_start = stream_start
        self.scene_cut_threshold = float(scene_cut_threshold)
        self._clock = clock

        initial = module.initial_state(tf.constant(1, tf.int32))
        self.state_keys = sorted(initial)
        self.state_bytes_per_stream = int(sum(value.numpy().nbytes for value in initial.values()))

        self._lock = threading.Lock()
        self._streams = {}
        self._queue = queue.Queue()
        self._closed = False
        self._frames_served = 0
        self._batches = 0
        self._worker = threading.Thread(target=self._run, name="stream_server", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ clients' side
    def submit(self, stream_id, frame, reset=False):
        """Queues one frame of a stream; returns a `concurrent.futures.Future` of its
        `StreamResult`.

        Args:
          stream_id: the stream's id, a str.
          frame: uint8 RGB `[H, W, 3]`, any H and W (the model resizes it inside).
          reset: start the stream anew on this frame.

        Raises:
          InputError: the frame is not uint8 (the model's checks refuse wrong shapes; their
            message comes back through the future).
          StreamLimitError: `stream_id` is new and `max_streams` streams are live.
          ServerClosedError: the server is closed.
        """
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise InputError(
                f"frame must be uint8 RGB [H, W, 3] (0..255); got {frame.dtype} shape "
                f"{list(frame.shape)}. Send the decoder's or camera's uint8 pixels.")
        future = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise ServerClosedError("The stream server is closed.")
            now = self._clock()
            self._expire_locked(now)
            stream = self._streams.get(stream_id)
            if stream is None:
                if len(self._streams) >= self.max_streams:
                    raise StreamLimitError(
                        f"The server holds its maximum of {self.max_streams} live streams; "
                        f"stream {stream_id!r} cannot start. End a stream, retry after idle "
                        f"streams expire ({self.idle_timeout_s:g} s), or add replicas.")
                stream = self._streams[stream_id] = _Stream(last_seen=now)
            stream.queued += 1
            stream.last_seen = now
        self._queue.put(_Request(stream_id, stream, frame, bool(reset), future))
        return future

    def process(self, stream_id, frame, reset=False, timeout=None):
        """`submit` and wait: the `StreamResult` of the frame (see `submit`).

        Raises:
          InputError: the model refused the frame, with its message.
        """
        return self.submit(stream_id, frame, reset).result(timeout)

    def end_stream(self, stream_id):
        """Forgets a stream (frames of it still waiting are served); returns whether it was
        live."""
        with self._lock:
            return self._streams.pop(stream_id, None) is not None

    def expire_idle(self):
        """Forgets the streams idle for longer than `idle_timeout_s`; returns their ids.
        (Also done at every frame admitted and while the worker waits.)"""
        with self._lock:
            return self._expire_locked(self._clock())

    def stream_ids(self):
        """The ids of the live streams."""
        with self._lock:
            return sorted(self._streams)

    def stats(self):
        """Counters: live streams, frames served, `step` calls and their mean batch size, the
        state's bytes per stream and the settings."""
        with self._lock:
            return {"streams": len(self._streams), "max_streams": self.max_streams,
                    "frames_served": self._frames_served, "batches": self._batches,
                    "mean_batch_size": self._frames_served / max(self._batches, 1),
                    "state_bytes_per_stream": self.state_bytes_per_stream,
                    "max_batch_size": self.max_batch_size,
                    "batch_timeout_ms": 1e3 * self.batch_timeout_s,
                    "idle_timeout_s": self.idle_timeout_s, "stream_start": self.stream_start,
                    "scene_cut_threshold": self.scene_cut_threshold}

    def close(self):
        """Stops the worker; frames still waiting fail with `ServerClosedError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_CLOSE)
        self._worker.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _expire_locked(self, now):
        expired = [stream_id for stream_id, stream in self._streams.items()
                   if stream.queued == 0 and now - stream.last_seen > self.idle_timeout_s]
        for stream_id in expired:
            del self._streams[stream_id]
        return expired

    # ------------------------------------------------------------------ the worker
    def _run(self):
        waiting = collections.deque()  # frames taken from the queue that did not fit a batch
        while True:
            batch, closing = self._next_batch(waiting)
            if batch:
                self._serve(batch)
            if closing:
                break
            if not batch:
                self.expire_idle()
        error = ServerClosedError("The stream server closed before serving this frame.")
        while waiting or not self._queue.empty():
            request = waiting.popleft() if waiting else self._queue.get()
            if request is not _CLOSE:
                request.future.set_exception(error)

    def _next_batch(self, waiting):
        """The next batch (a list of `_Request`, empty when none came in time) and whether
        the server is closing."""
        if waiting:
            first = waiting.popleft()
        else:
            try:
                first = self._queue.get(timeout=min(1.0, self.idle_timeout_s / 2))
            except queue.Empty:
                return [], False
            if first is _CLOSE:
                return [], True
        batch = [first]
        taken, held = {first.stream_id}, set()

        def offer(request):
            """Takes `request` into the batch if it fits; else holds its stream back, so
            that the stream's later frames wait behind it."""
            if (len(batch) < self.max_batch_size and request.stream_id not in taken
                    and request.stream_id not in held
                    and request.frame.shape == first.frame.shape):
                batch.append(request)
                taken.add(request.stream_id)
                return True
            held.add(request.stream_id)
            return False

        kept = collections.deque(request for request in waiting if not offer(request))
        waiting.clear()
        waiting.extend(kept)
        deadline = time.monotonic() + self.batch_timeout_s
        closing = False
        while len(batch) < self.max_batch_size:
            with self._lock:
                if not self._streams.keys() - taken - held:
                    break  # no other live stream could add a frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                request = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if request is _CLOSE:
                closing = True
                break
            if not offer(request):
                waiting.append(request)
        return batch, closing

    def _serve(self, batch):
        try:
            answers = self._step(batch)
        except tf.errors.InvalidArgumentError as error:
            self._fail(batch, InputError(
                f"The model refused the frame of shape {list(batch[0].frame.shape)}: "
                f"{_assertion(error.message)}"))
            return
        except Exception as error:  # pylint: disable=broad-except
            self._fail(batch, error)
            return
        for request, answer in zip(batch, answers):
            request.future.set_result(answer)

    def _fail(self, batch, error):
        with self._lock:
            for request in batch:
                request.stream.queued -= 1
                if (request.stream.state is None and request.stream.queued == 0
                        and self._streams.get(request.stream_id) is request.stream):
                    del self._streams[request.stream_id]
        for request in batch:
            request.future.set_exception(error)

    def _start_reason(self, request, thumbnail):
        stream = request.stream
        if stream.state is None:
            return NEW
        if request.reset:
            return RESET
        if thumbnail is not None and (
                stream.thumbnail is None or stream.thumbnail.shape != thumbnail.shape
                or np.mean(np.abs(thumbnail - stream.thumbnail)) > self.scene_cut_threshold):
            return SCENE_CUT
        return None

    def _step(self, batch):
        """One `step` call for the batch (after one `warm_start` for its starting streams);
        commits each stream's new state and returns the `StreamResult`s."""
        thumbnails = [_thumbnail(request.frame) if self.scene_cut_threshold > 0
                      and request.frame.ndim == 3 else None for request in batch]
        starts = [self._start_reason(request, thumbnail)
                  for request, thumbnail in zip(batch, thumbnails)]
        frames = np.stack([request.frame for request in batch])
        rows = [request.stream.state for request in batch]
        starting = [i for i, start in enumerate(starts) if start]
        if starting:
            if self.stream_start == "key_frame":
                begun = self._module.warm_start(tf.constant(frames[starting]))
            else:
                begun = self._module.initial_state(tf.constant(len(starting), tf.int32))
            begun = {key: begun[key].numpy() for key in self.state_keys}
            for row, i in enumerate(starting):
                rows[i] = {key: value[row:row + 1] for key, value in begun.items()}
        state = {key: tf.constant(np.concatenate([row[key] for row in rows]))
                 for key in self.state_keys}
        outputs = {key: value.numpy()
                   for key, value in self._module.step(tf.constant(frames), state).items()}
        prediction_keys = sorted(set(outputs) - set(self.state_keys) - {ACTION})
        answers = []
        now = self._clock()
        with self._lock:
            for i, request in enumerate(batch):
                stream = request.stream
                stream.state = {key: outputs[key][i:i + 1].copy() for key in self.state_keys}
                stream.thumbnail = thumbnails[i]
                stream.frames += 1
                stream.queued -= 1
                stream.last_seen = now
                answers.append(StreamResult(
                    {key: outputs[key][i].copy() for key in prediction_keys},
                    int(outputs[ACTION][i]), int(outputs[NEXT_ACTION][i]), starts[i]))
            self._frames_served += len(batch)
            self._batches += 1
        return answers
