"""HTTP front of a `StreamServer`, on the standard library's `http.server`.

Requests (HTTP/1.1, keep-alive; one thread per connection):

* `POST /v1/streams/<stream_id>/frames?height=H&width=W[&reset=true]` with the frame as the
  body: raw uint8 RGB bytes, row-major `[H, W, 3]` (`Content-Type: application/octet-stream`,
  `height` and `width` required; the model refuses other channel counts than 3), or a PNG
  or JPEG image (`Content-Type: image/png` or `image/jpeg`, decoded with
  `tf.io.decode_image` to RGB, no `height` / `width`). `stream_id`: 1 to 128 of
  `A-Z a-z 0-9 . _ -`. Answer 200 with the JSON of `StreamResult.to_json` plus the stream id:
  `{"stream_id", "predictions": {name: nested lists}, "action", "next_action", "start"}`.
* `DELETE /v1/streams/<stream_id>`: ends the stream (204; 404 if it was not live).
* `GET /v1/status`: the server's counters (`StreamServer.stats`), its resident memory
  (`rss_bytes`, VmRSS of /proc/self/status) and the SavedModel's metadata record if given.

Errors come back as `{"error": message}`: 400 for a frame the model's input checks (or the
request's parsing) refuse, with the model's message; 503 with `Retry-After` when the server
holds `max_streams` streams; 404 for another path; 413 for a body over `MAX_BODY_BYTES`; 500
with the exception's text for anything else.
"""
import http.client
import http.server
import json
import re
import threading
import urllib.parse

import numpy as np
import tensorflow as tf

from patchwork_tf.serving import stream_server as stream_server_lib

MAX_BODY_BYTES = 64 * 2**20
RAW = "application/octet-stream"
IMAGE_TYPES = ("image/png", "image/jpeg")
_STREAM_ID = r"[A-Za-z0-9._-]{1,128}"
_FRAMES_PATH = re.compile(rf"^/v1/streams/({_STREAM_ID})/frames$")
_STREAM_PATH = re.compile(rf"^/v1/streams/({_STREAM_ID})$")
STATUS_PATH = "/v1/status"


class RequestError(ValueError):
    """A request that cannot be served as sent; `status` is its HTTP status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def resident_bytes():
    """This process's resident memory (VmRSS of /proc/self/status) in bytes, or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def decode_frame(body, content_type, query):
    """The uint8 `[H, W, 3]` frame of a request body (see the module docstring).

    Raises:
      RequestError: a content type other than raw, PNG or JPEG; raw bytes without a valid
        `height` and `width` or of another length than `height * width * 3`; an image that
        does not decode.
    """
    content_type = (content_type or RAW).split(";")[0].strip().lower()
    if content_type in IMAGE_TYPES:
        try:
            return tf.io.decode_image(body, channels=3, expand_animations=False).numpy()
        except tf.errors.InvalidArgumentError as error:
            raise RequestError(400, f"The {content_type} body does not decode: "
                                    f"{error.message}") from error
    if content_type != RAW:
        raise RequestError(400, f"Content-Type must be {RAW} (raw uint8 RGB with height and "
                                f"width) or one of {IMAGE_TYPES}; got {content_type!r}.")
    try:
        height, width = int(query["height"][0]), int(query["width"][0])
    except (KeyError, ValueError) as error:
        raise RequestError(400, "A raw frame needs integer query parameters height and width "
                                "(e.g. ?height=480&width=640).") from error
    if height < 1 or width < 1 or not body or len(body) % (height * width):
        raise RequestError(400, f"A raw frame of height {height} and width {width} is "
                                f"{height} * {width} * 3 = {max(height * width * 3, 0)} "
                                f"bytes of uint8 RGB; the body has {len(body)}.")
    # Other channel counts than 3 go on to the model, whose check names them.
    return np.frombuffer(body, np.uint8).reshape(height, width, -1)


def _flag(query, name):
    values = query.get(name, ["false"])
    if values[-1].lower() not in ("true", "false", "1", "0"):
        raise RequestError(400, f"{name} must be true or false, got {values[-1]!r}.")
    return values[-1].lower() in ("true", "1")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PatchworkStreamServer/1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        del format, args  # one line per frame would drown the log

    def _send(self, status, payload=None, headers=()):
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise RequestError(413, f"The body has {length} bytes; at most {MAX_BODY_BYTES} "
                                    "are taken. Send a smaller frame or a PNG / JPEG.")
        return self.rfile.read(length)

    def _answer(self, handle):
        try:
            handle()
        except RequestError as error:
            self._send(error.status, {"error": str(error)})
        except stream_server_lib.InputError as error:
            self._send(400, {"error": str(error)})
        except stream_server_lib.StreamLimitError as error:
            self._send(503, {"error": str(error)}, headers=[("Retry-After", "1")])
        except stream_server_lib.ServerClosedError as error:
            self._send(503, {"error": str(error)})
        except Exception as error:  # pylint: disable=broad-except
            # The client gets the message; the server goes on with the next request.
            self._send(500, {"error": f"{type(error).__name__}: {error}"})

    def do_POST(self):  # pylint: disable=invalid-name
        def handle():
            url = urllib.parse.urlsplit(self.path)
            match = _FRAMES_PATH.match(url.path)
            body = self._body()  # read even when refused, so the connection stays in step
            if not match:
                raise RequestError(404, f"No such path {url.path!r}; POST frames to "
                                        "/v1/streams/<stream_id>/frames.")
            query = urllib.parse.parse_qs(url.query)
            frame = decode_frame(body, self.headers.get("Content-Type"), query)
            result = self.server.stream_server.process(match.group(1), frame,
                                                       reset=_flag(query, "reset"))
            self._send(200, dict(stream_id=match.group(1), **result.to_json()))
        self._answer(handle)

    def do_DELETE(self):  # pylint: disable=invalid-name
        def handle():
            match = _STREAM_PATH.match(urllib.parse.urlsplit(self.path).path)
            if not match:
                raise RequestError(404, f"No such path {self.path!r}; DELETE "
                                        "/v1/streams/<stream_id>.")
            if not self.server.stream_server.end_stream(match.group(1)):
                raise RequestError(404, f"No live stream {match.group(1)!r}.")
            self._send(204)
        self._answer(handle)

    def do_GET(self):  # pylint: disable=invalid-name
        def handle():
            if urllib.parse.urlsplit(self.path).path != STATUS_PATH:
                raise RequestError(404, f"No such path {self.path!r}; GET {STATUS_PATH}.")
            self._send(200, dict(self.server.stream_server.stats(),
                                 rss_bytes=resident_bytes(), metadata=self.server.metadata))
        self._answer(handle)


def make_http_server(stream_server, host="127.0.0.1", port=0, metadata=None):
    """A `ThreadingHTTPServer` answering the requests of the module docstring with
    `stream_server`; `port` 0 takes a free one (`server.server_address[1]`). Call
    `serve_forever()` on it (e.g. in a thread) and `shutdown()` to stop."""
    server = http.server.ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.stream_server = stream_server
    server.metadata = metadata
    return server


def serve_in_thread(http_server):
    """Runs `http_server.serve_forever()` in a daemon thread; returns the thread."""
    thread = threading.Thread(target=http_server.serve_forever, name="stream_http",
                              daemon=True)
    thread.start()
    return thread


class StreamClient:
    """A client of one HTTP connection (keep-alive), e.g. one per stream.

    `send_frame` returns `(status, payload)`: the HTTP status and the decoded JSON (None for
    an empty body)."""

    def __init__(self, host, port, timeout=60.0):
        self._connection = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        """Any request; returns `(status, decoded JSON or None)`."""
        self._connection.request(method, path, body=body, headers=headers or {})
        response = self._connection.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else None)

    def send_frame(self, stream_id, frame, reset=False, encoding="raw"):
        """Sends uint8 `frame` `[H, W, 3]` raw, or encoded as "png" or "jpeg"."""
        frame = np.asarray(frame)
        query = {"reset": str(bool(reset)).lower()}
        if encoding == "raw":
            body, content_type = frame.tobytes(), RAW
            query.update(height=frame.shape[0], width=frame.shape[1])
        elif encoding in ("png", "jpeg"):
            encode = tf.io.encode_png if encoding == "png" else tf.io.encode_jpeg
            body, content_type = encode(frame).numpy(), f"image/{encoding}"
        else:
            raise ValueError(f"encoding must be raw, png or jpeg, got {encoding!r}.")
        return self.request("POST", f"/v1/streams/{stream_id}/frames?"
                             f"{urllib.parse.urlencode(query)}", body,
                             {"Content-Type": content_type})

    def end_stream(self, stream_id):
        return self.request("DELETE", f"/v1/streams/{stream_id}")

    def status(self):
        return self.request("GET", STATUS_PATH)

    def close(self):
        self._connection.close()
