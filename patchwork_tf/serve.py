r"""Serves many video streams with one exported Patchwork SavedModel over HTTP.

  python -m patchwork_tf.serve --saved_model=/tmp/patchwork_det --port=8500

Loads the SavedModel of `python -m patchwork_tf.export` (TensorFlow alone), keeps each
stream's state by its id and batches the frames of concurrent streams into one `step` call
(`patchwork_tf.serving.stream_server`), behind the HTTP API of
`patchwork_tf.serving.stream_http` (`POST /v1/streams/<id>/frames`, `DELETE
/v1/streams/<id>`, `GET /v1/status`). Prints `Serving <dir> on http://<host>:<port>` once it
listens (`--port=0` takes a free port) and stops on SIGINT or SIGTERM.
"""
import signal

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from patchwork_tf.serving import metadata as metadata_lib
from patchwork_tf.serving import stream_http
from patchwork_tf.serving import stream_server as stream_server_lib


def define_flags():
    flags.DEFINE_string("saved_model", None, "SavedModel of python -m patchwork_tf.export.",
                        required=True)
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
    flags.DEFINE_integer("port", 8500, "Port to listen on; 0 takes a free one.")
    flags.DEFINE_integer("max_batch_size", 8, "Streams' frames per step call at most.")
    flags.DEFINE_float("batch_timeout_ms", 2.0,
                       "How long an open batch waits for more streams' frames (ms).")
    flags.DEFINE_float("idle_timeout_s", 60.0, "Streams idle this long (s) are forgotten.")
    flags.DEFINE_integer("max_streams", 64, "Live streams at most; new ones beyond get 503.")
    flags.DEFINE_enum("stream_start", "key_frame", stream_server_lib.STREAM_STARTS,
                      "How a stream starts: a full-frame pass on its first frame, or zeros.")
    flags.DEFINE_float("scene_cut_threshold", 0.0,
                       "Restart a stream when its frame's mean absolute difference from the "
                       "previous one (0..255, on ~32x32 subsamples) exceeds this; 0: off.")


def main(argv):
    del argv
    f = flags.FLAGS
    if not tf.saved_model.contains_saved_model(f.saved_model):
        raise app.UsageError(f"{f.saved_model} holds no SavedModel; pass the --export_dir of "
                             "python -m patchwork_tf.export.")
    module = tf.saved_model.load(f.saved_model)
    record = metadata_lib.read(module, f.saved_model)
    server = stream_server_lib.StreamServer(
        module, max_batch_size=f.max_batch_size, batch_timeout_ms=f.batch_timeout_ms,
        idle_timeout_s=f.idle_timeout_s, max_streams=f.max_streams,
        stream_start=f.stream_start, scene_cut_threshold=f.scene_cut_threshold)
    http_server = stream_http.make_http_server(server, f.host, f.port, metadata=record)
    host, port = http_server.server_address[:2]
    # SIGTERM stops as SIGINT does: serve_forever returns through KeyboardInterrupt.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"Serving {f.saved_model} on http://{host}:{port}", flush=True)
    try:
        http_server.serve_forever()
    except KeyboardInterrupt:
        logging.info("Stopping.")
    finally:
        http_server.server_close()
        server.close()


if __name__ == "__main__":
    define_flags()
    app.run(main)
