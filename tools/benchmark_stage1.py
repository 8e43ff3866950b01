"""Stage-1 throughput benchmark: the input pipeline and the train step, per CPU kernel backend.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512-VNNI, AVX512-BF16,
AVX-VNNI or AMX (`IsMklEnabled` in tensorflow/core/util/util.cc); elsewhere (e.g. AMD Zen 1
to 3, Intel before Cascade Lake) stage 1 runs on TF's own Eigen kernels unless
`TF_ENABLE_ONEDNN_OPTS=1` is set. The backend is
fixed when TensorFlow loads, so each backend runs in its own worker process; the workers
alternate round by round (so machine load hits every backend alike) and the medians are
compared. Backends (`--backends`):

* `eigen`: `TF_ENABLE_ONEDNN_OPTS=0`, what a CPU without those features runs by default;
* `onednn_avx2`: oneDNN capped at AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`), what an AVX2 CPU (e.g. a
  Zen 1) would run with `TF_ENABLE_ONEDNN_OPTS=1`;
* `onednn`: oneDNN with every ISA this CPU has.

Per backend it measures, on the model and data of `experiments/synthetic_det.flags` (SSDLite
MobileNetV2 at `--frame_size`, `--depth_multiplier`, `--batch_size` frames of the synthetic benchmark):
milliseconds per batch of the stage-1 input pipeline alone (`stage1_data.training_dataset`:
shuffle, flip, scale to [-1, 1], batch), per train step on one cached batch (forward, target
assignment, loss, backward, Adam), and per train step reading the pipeline
(`stage1.make_train_step`, what `train_stage1` runs). It also prints each backend's loss and
gradient norm of the first step from the same initial weights and batch, and the relative
difference of the gradients (all variables) to the first backend's: numerical parity of the
backends. With batch statistics (training) float32 round-off differs by a few per cent,
amplified by the batch norms of the 2 x 2 and 1 x 1 extra-layer maps (16 values per channel
at batch 16); with the moving statistics (inference batch norm) the gradients agree closely.

  PYTHONPATH=. python tools/benchmark_stage1.py --backends=eigen,onednn_avx2,onednn
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("frame_size", 128, "Square frame size in pixels.")
flags.DEFINE_float("depth_multiplier", 0.35, "MobileNetV2 depth multiplier.")
flags.DEFINE_integer("batch_size", 16, "Frames per batch.")
flags.DEFINE_integer("num_train_clips", 32, "Synthetic clips the frames come from.")
flags.DEFINE_integer("steps", 20, "Measured steps per backend and round.")
flags.DEFINE_integer("warmup", 3, "Unmeasured steps per worker before measuring.")
flags.DEFINE_integer("rounds", 2, "Rounds; each runs one worker per backend.")
flags.DEFINE_list("backends", ["eigen", "onednn_avx2", "onednn"],
                  "Kernel backends to compare (see the module docstring); the first is the "
                  "reference of the ratios.")
flags.DEFINE_string("json_out", None, "If set, write the results as JSON here.")
flags.DEFINE_string("worker", None, "Internal: run one worker with this backend.")
flags.DEFINE_string("gradients_out", None, "Internal: the worker's first-step gradients (.npy).")

BACKENDS = {
    "eigen": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "onednn_avx2": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "onednn": {"TF_ENABLE_ONEDNN_OPTS": "1"},
}
# The CPU features for which TensorFlow's Linux build turns oneDNN on by default
# (/proc/cpuinfo names).
ONEDNN_DEFAULT_FEATURES = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
                           "amx_bf16")
TIMINGS = ("input_ms", "cached_step_ms", "step_ms")


def cpu_info():
    """(CPU model name, cores, whether TensorFlow turns oneDNN on by default on it)."""
    model, features = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key.strip() == "flags" and not features:
                    features = set(value.split())
    except OSError:
        pass
    return model, os.cpu_count(), bool(features & set(ONEDNN_DEFAULT_FEATURES))


def _worker():
    """Measures one backend (its environment set by the parent); prints one JSON line."""
    import tensorflow as tf
    import tf_keras

    from patchwork_tf import tasks
    from patchwork_tf.training import stage1
    from patchwork_tf.training import stage1_data

    config = stage1.Stage1Config(
        task="detection", frame_size=(FLAGS.frame_size, FLAGS.frame_size), alpha=FLAGS.depth_multiplier,
        batch_size=FLAGS.batch_size, num_train_clips=FLAGS.num_train_clips, num_steps=8000)
    frames = stage1_data.synthetic_frames("train", "detection", FLAGS.num_train_clips,
                                          config.frame_size, config.frames_per_clip,
                                          max_objects=config.max_objects)
    dataset = stage1_data.training_dataset(frames, config.batch_size, seed=config.seed)
    tf_keras.utils.set_random_seed(config.seed)
    model = stage1.build_model(config)
    optimizer = tf_keras.optimizers.Adam(stage1.learning_rate_schedule(config))
    optimizer.build(model.trainable_variables)
    task = tasks.get(config.task).for_model(model, config)
    iterator = iter(dataset)
    batch = next(iterator)

    @tf.function
    def gradients(images, labels, training):
        with tf.GradientTape() as tape:
            losses = task.loss(model(images, training=training), labels)
        return losses["total"], tape.gradient(losses["total"], model.trainable_variables)

    # Parity: the first step's loss and gradients before any update, with batch statistics
    # (training) and with the moving ones (inference), both rows saved.
    loss, grads = gradients(*batch, True)
    _, inference_grads = gradients(*batch, False)
    flat = [np.concatenate([g.numpy().ravel() for g in gs]) for gs in (grads, inference_grads)]
    np.save(FLAGS.gradients_out, np.stack(flat))
    replica_step = stage1.make_replica_step(model, optimizer, task, 1)
    cached_step = tf.function(replica_step)
    step = stage1.make_train_step(tf.distribute.get_strategy(), optimizer, replica_step)

    def timed(fn, count):
        for _ in range(FLAGS.warmup):
            fn()
        started = time.perf_counter()
        for _ in range(count):
            out = fn()
        if isinstance(out, dict):
            float(out["total"])
        return (time.perf_counter() - started) / count * 1e3

    result = {
        "input_ms": timed(lambda: next(iterator), 5 * FLAGS.steps),
        "cached_step_ms": timed(lambda: cached_step(*batch), FLAGS.steps),
        "step_ms": timed(lambda: step(iterator), FLAGS.steps),
        "loss": float(loss),
        "grad_norm": float(np.linalg.norm(flat[0])),
    }
    print("RESULT " + json.dumps(result), flush=True)


def _run_worker(backend, gradients_out):
    argv = [sys.executable, os.path.abspath(__file__), f"--worker={backend}",
            f"--gradients_out={gradients_out}"] + [
        f"--{name}={getattr(FLAGS, name)}" for name in
        ("frame_size", "depth_multiplier", "batch_size", "num_train_clips", "steps", "warmup")]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=path)
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    env.update(BACKENDS[backend])
    process = subprocess.run(argv, capture_output=True, text=True, env=env)
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        raise RuntimeError(f"The {backend} worker failed:\n{process.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv):
    del argv
    if FLAGS.worker:
        _worker()
        return
    unknown = [b for b in FLAGS.backends if b not in BACKENDS]
    if not FLAGS.backends or unknown:
        raise app.UsageError(f"--backends takes {', '.join(BACKENDS)}, got "
                             f"{','.join(FLAGS.backends)!r}.")
    if FLAGS.steps < 1 or FLAGS.rounds < 1:
        raise app.UsageError("--steps and --rounds must be >= 1.")
    model, cores, onednn_default = cpu_info()
    print(f"CPU: {model}, {cores} cores; TensorFlow's default here: oneDNN "
          f"{'on' if onednn_default else 'off'}")
    print(f"SSDLite MobileNetV2 alpha {FLAGS.depth_multiplier:g} at {FLAGS.frame_size} px, batch "
          f"{FLAGS.batch_size}; {FLAGS.steps} steps x {FLAGS.rounds} rounds per backend")
    runs = {backend: [] for backend in FLAGS.backends}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {b: os.path.join(tmp, f"{b}.npy") for b in FLAGS.backends}
        for round_index in range(FLAGS.rounds):
            for backend in FLAGS.backends:
                runs[backend].append(_run_worker(backend, paths[backend]))
                print(f"round {round_index + 1}, {backend}: "
                      f"{runs[backend][-1]['step_ms']:.1f} ms/step", file=sys.stderr,
                      flush=True)
        gradients = {b: np.load(path) for b, path in paths.items()}
    reference = FLAGS.backends[0]
    medians = {b: {k: statistics.median(r[k] for r in rs) for k in TIMINGS}
               for b, rs in runs.items()}
    print(f"| backend | input ms/batch | step ms (cached batch) | step ms (pipeline) | "
          f"steps/s | speed-up vs {reference} | first loss | gradient norm | gradient rel. "
          f"diff | same, BN inference |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for backend in FLAGS.backends:
        m, first = medians[backend], runs[backend][0]
        # ||g - g_reference|| / ||g_reference|| over all trainable variables, with batch
        # statistics and with the moving ones.
        rel, inference_rel = (
            float(np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-12))
            for ours, theirs in zip(gradients[backend], gradients[reference]))
        row = dict(backend=backend, **m, steps_per_second=1e3 / m["step_ms"],
                   speedup=medians[reference]["step_ms"] / m["step_ms"], loss=first["loss"],
                   grad_norm=first["grad_norm"], gradient_rel_diff=rel,
                   inference_gradient_rel_diff=inference_rel)
        rows.append(row)
        print(f"| {backend} | {m['input_ms']:.1f} | {m['cached_step_ms']:.1f} | "
              f"{m['step_ms']:.1f} | {row['steps_per_second']:.2f} | {row['speedup']:.2f} | "
              f"{row['loss']:.5f} | {row['grad_norm']:.5f} | {rel:.2e} | {inference_rel:.2e} |")
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump({"cpu": model, "cores": cores, "onednn_default": onednn_default,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
