"""Latency benchmark: the Patchwork window step against the stock MobileNetV2, one CPU thread.

Measures, side by side in one process and interleaved round by round (so machine load hits
every variant alike), the median and p90 milliseconds per frame of:
  * the stock model on the full frame and on the ideal window-sized input (frame / 2 per
    side, the cost of a 1/4 window), each in plain graph mode and with XLA, and per
    batch-norm handling (`--batch_norm`: `as_is` runs the stock layers, `folded` the model
    with each batch norm folded into its conv, `core.folding`); the fastest of these counts
    as "stock", the fastest way a user could run it;
  * the Patchwork twin's stateful window step for each `(M, N)` grid, cycling over actions,
    per compile mode (`--step_modes`), write mode (`--writes`) and batch-norm handling
    (`folded` is the inference option `patchwork_model(..., fold_batch_norm=True)`);
  * and per `--presets`: `default`, the twin `patchwork_model(model, grid)` (the
    differentiable one training unrolls), and `inference`, `patchwork_model(model, grid,
    inference=True)`; the ratio inference / default is printed per grid.
Prints the CPU model and a table with FLOPs (analytic, `patchwork_tf.core.flops`) and the
ratios step / full frame and step / ideal window. `--profile_dir` writes a TF profiler trace
of the measured steps that TensorBoard's profile plugin opens.

  python tools/benchmark_latency.py --depth_multiplier=1.0 --frame_size=384 --grids=2:1,4:2,4:1 \
      --batch_norm=as_is,folded
  python tools/benchmark_latency.py --depth_multiplier=0.35 --frame_size=128 --grids=4:2 \
      --step_modes=graph --writes=bands --batch_norm=folded --presets=default,inference

`--mode=frame_call` times instead what a deployed detector runs per frame, uint8 frame in,
detections out (`frame_call_main`): the single-frame SSDLite (model, head,
box decoding and NMS) and the Patchwork frame call (the change cue's observation, the
attention Q-network, the window step, the head on the full memories and the same
post-processing), each on every runtime of `--runtimes` (TF graph, XLA, TFLite with its
default XNNPACK delegate), one thread, interleaved round by round, for each `alpha:size`
of `--frame_call_configs`; it prints each side's fastest runtime and the ratio Patchwork /
single frame, with the CPU model:

  python tools/benchmark_latency.py --mode=frame_call --frame_call_configs=0.35:128,1.0:384
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from machine import cpu_model  # noqa: E402  (tools/machine.py)

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", "step", ("step", "frame_call"),
                  "step: the twin's window step against the stock backbone; frame_call: the "
                  "whole per-frame call of the detector, single frame against Patchwork.")
flags.DEFINE_list("frame_call_configs", ["0.35:128", "1.0:384"],
                  "With --mode=frame_call: the models to time, each as alpha:frame_size.")
flags.DEFINE_string("frame_call_grid", "4:2", "With --mode=frame_call: Patchwork's M:N.")
flags.DEFINE_list("runtimes", ["graph", "xla", "tflite"],
                  "With --mode=frame_call: the runtimes each side is timed on.")
flags.DEFINE_float("depth_multiplier", 1.0, "MobileNetV2 depth multiplier.")
flags.DEFINE_integer("frame_size", 384, "Square frame size in pixels.")
flags.DEFINE_list("grids", ["2:1", "4:2", "4:1"], "Grids to measure, each as M:N.")
flags.DEFINE_integer("steps", 60, "Measured steps per variant (at least 50 for the report).")
flags.DEFINE_integer("warmup", 10, "Unmeasured steps per variant before measuring.")
flags.DEFINE_integer("rounds", 6, "Rounds over which the measured steps are interleaved.")
flags.DEFINE_integer("threads", 1, "intra- and inter-op threads.")
flags.DEFINE_list("stock_modes", ["graph", "xla"],
                  "How the stock models are compiled: graph and/or xla (XLA is ~10x slower "
                  "for the stock MobileNetV2 on the CPU).")
flags.DEFINE_list("step_modes", ["graph", "xla"],
                  "How the twin's step is compiled: graph and/or xla.")
flags.DEFINE_list("writes", ["bands"], "Memory write modes of the twin: window and/or bands.")
flags.DEFINE_list("batch_norm", ["as_is", "folded"],
                  "How the stock models and the twin's step run batch norm: as_is (the stock "
                  "layers) and/or folded into the convs before them (inference only).")
flags.DEFINE_list("presets", [], "Twins built by name: default (patchwork_model(model, "
                  "grid)) and/or inference (patchwork_model(model, grid, inference=True)).")
flags.DEFINE_string("profile_dir", None, "If set, write a TF profiler trace here.")
flags.DEFINE_string("json_out", None, "If set, write the results as JSON here.")


def _fail_on_bad_flags():
    for spec in FLAGS.frame_call_configs:
        parts = spec.split(":")
        if len(parts) != 2 or not parts[1].isdigit():
            raise app.UsageError(
                f"--frame_call_configs entries must look like alpha:size (e.g. 0.35:128), "
                f"got {spec!r}.")
    if not FLAGS.runtimes or not set(FLAGS.runtimes) <= {"graph", "xla", "tflite"}:
        raise app.UsageError(f"--runtimes takes graph, xla, tflite; got {FLAGS.runtimes}.")
    for spec in FLAGS.grids + [FLAGS.frame_call_grid]:
        parts = spec.split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise app.UsageError(f"--grids entries must look like M:N (e.g. 4:2), got {spec!r}.")
    if not FLAGS.stock_modes or not set(FLAGS.stock_modes) <= {"graph", "xla"}:
        raise app.UsageError(f"--stock_modes takes graph and/or xla, got {FLAGS.stock_modes}.")
    if not set(FLAGS.step_modes) <= {"graph", "xla"} or not set(FLAGS.writes) <= {
            "window", "bands"}:
        raise app.UsageError("--step_modes takes graph, xla; --writes takes window, bands.")
    if not FLAGS.batch_norm or not set(FLAGS.batch_norm) <= {"as_is", "folded"}:
        raise app.UsageError(
            f"--batch_norm takes as_is and/or folded, got {','.join(FLAGS.batch_norm)!r}.")
    if not set(FLAGS.presets) <= {"default", "inference"}:
        raise app.UsageError(f"--presets takes default, inference, got {FLAGS.presets}.")
    if FLAGS.steps < 1 or FLAGS.rounds < 1 or FLAGS.steps % FLAGS.rounds:
        raise app.UsageError(
            f"--steps={FLAGS.steps} must be a positive multiple of --rounds={FLAGS.rounds}.")


def main(argv):
    del argv
    _fail_on_bad_flags()
    if FLAGS.mode == "frame_call":
        frame_call_main()
        return
    import itertools
    import json
    import time

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)

    import tf_keras

    import patchwork_tf as pw
    from patchwork_tf.core import flops
    from patchwork_tf.core import folding

    size, alpha = FLAGS.frame_size, FLAGS.depth_multiplier
    variants = {}  # name -> (callable running one frame, FLOPs report)

    def stock(input_size):
        model = tf_keras.applications.MobileNetV2(
            input_shape=(input_size, input_size, 3), alpha=alpha, include_top=False,
            weights=None)
        frames = tf.random.uniform((1, input_size, input_size, 3), -1, 1)
        for bn, jit in itertools.product(FLAGS.batch_norm,
                                         [mode == "xla" for mode in FLAGS.stock_modes]):
            runs = model if bn == "as_is" else folding.fold_batch_norm_model(model)
            fn = tf.function(lambda x, m=runs: m(x, training=False), jit_compile=jit)
            variants[f"stock {input_size} {'xla' if jit else 'graph'} {bn}"] = (
                lambda fn=fn: fn(frames), flops.model_flops(runs))
        return model

    model = stock(size)
    stock(size // 2)
    frames = tf.random.uniform((1, size, size, 3), -1, 1)
    for spec in FLAGS.grids:
        m, n = (int(v) for v in spec.split(":"))
        grid = pw.WindowGrid((size, size), m, n)
        twins = {f"step M={m},N={n} {mode} {write} {bn}": dict(
            jit_compile=mode == "xla", write=write, fold_batch_norm=bn == "folded")
            for mode, write, bn in itertools.product(FLAGS.step_modes, FLAGS.writes,
                                                     FLAGS.batch_norm)}
        twins.update({f"step M={m},N={n} preset {preset}": dict(inference=preset == "inference")
                      for preset in FLAGS.presets})
        for name, options in twins.items():
            twin = pw.patchwork_model(model, grid, **options)
            twin.reset_states(1)
            twin.warm_start(frames)
            actions = [tf.constant([a], tf.int32) for a in range(grid.num_actions)]
            counter = iter(range(10**9))
            variants[name] = (
                lambda t=twin, acts=actions, c=counter: t.step(frames, acts[next(c) % len(acts)]),
                flops.step_flops(twin))

    def run(fn, count):
        times = []
        for _ in range(count):
            start = time.perf_counter()
            out = fn()
            tf.nest.map_structure(lambda t: t.numpy(), out)
            times.append(time.perf_counter() - start)
        return times

    for fn, _ in variants.values():
        run(fn, FLAGS.warmup)
    times = {name: [] for name in variants}
    if FLAGS.profile_dir:
        tf.profiler.experimental.start(FLAGS.profile_dir)
    for _ in range(FLAGS.rounds):
        for name, (fn, _) in variants.items():
            with tf.profiler.experimental.Trace(name):
                times[name] += run(fn, FLAGS.steps // FLAGS.rounds)
    if FLAGS.profile_dir:
        tf.profiler.experimental.stop()

    stats = {name: (1e3 * float(np.median(t)), 1e3 * float(np.percentile(t, 90)))
             for name, t in times.items()}
    def fastest_stock(input_size):
        return min(median for name, (median, _) in stats.items()
                   if name.startswith(f"stock {input_size} "))

    best_full, best_ideal = fastest_stock(size), fastest_stock(size // 2)
    print(f"CPU: {cpu_model()}")
    print(f"MobileNetV2 alpha={alpha} {size}x{size}, batch 1, {FLAGS.threads} thread(s), "
          f"{FLAGS.steps} steps per variant; /full and /ideal divide by the fastest stock "
          "variant of that input size")
    print(f"{'variant':40s} {'MFLOPs':>8s} {'overhead Melem':>14s} {'median ms':>10s} "
          f"{'p90 ms':>8s} {'/full':>6s} {'/ideal':>7s}")
    rows = []
    for name, (_, report) in variants.items():
        median, p90 = stats[name]
        rows.append(dict(variant=name, mflops=report.mflops,
                         overhead_melements=report.overhead_elements / 1e6,
                         median_ms=median, p90_ms=p90, over_full=median / best_full,
                         over_ideal=median / best_ideal))
        print(f"{name:40s} {report.mflops:8.1f} {report.overhead_elements / 1e6:14.2f} "
              f"{median:10.2f} {p90:8.2f} {median / best_full:6.3f} {median / best_ideal:7.3f}")
    preset_ratios = {}
    for spec in FLAGS.grids if {"default", "inference"} <= set(FLAGS.presets) else []:
        m, n = spec.split(":")
        ratio = (stats[f"step M={m},N={n} preset inference"][0]
                 / stats[f"step M={m},N={n} preset default"][0])
        preset_ratios[spec] = ratio
        print(f"M={m},N={n}: inference preset / default twin (median ms) = {ratio:.3f}")
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(dict(alpha=alpha, frame_size=size, threads=FLAGS.threads,
                           cpu=cpu_model(), rows=rows, preset_ratios=preset_ratios), f,
                      indent=2)


def _frame_call_variants(alpha, size, grid_spec, work_dir):
    """`{(side, runtime): (call, reset)}`: one whole frame call of uint8 frame [1, H, W, 3]
    -> numpy detections per `call(frame)`; `reset(frame)` starts a stream (key frame).
    Also returns the model, its batch-norm-folded clone and the grid."""
    import tensorflow as tf

    import patchwork_tf as pw
    from patchwork_tf import runs
    from patchwork_tf import tasks
    from patchwork_tf.core import folding
    from patchwork_tf.data import clips as clips_lib
    from patchwork_tf.policy import q_network
    from patchwork_tf.serving import exportable
    from patchwork_tf.serving import tflite_export

    # Default NMS settings (score threshold 1e-8, 100 per class and in total): every anchor
    # and class is a candidate, as for a trained model at the OD API's threshold.
    model, post = runs.build_model("detection", size, alpha)
    folded = folding.fold_batch_norm_model(model)
    m, n = (int(v) for v in grid_spec.split(":"))
    grid = pw.WindowGrid((size, size), m, n)
    cell = tasks.get("detection").observed_cell
    frame_spec = [tf.TensorSpec((1, size, size, 3), tf.uint8)]
    policy = None
    variants = {}

    def numpy(outputs):
        return {k: v.numpy() for k, v in outputs.items()}

    def module_for(write, jit, postprocess):
        nonlocal policy
        twin = pw.patchwork_model(model, grid, jit_compile=jit, write=write,
                                  fold_batch_norm=True, full_memory_cells=[cell])
        if policy is None:
            policy = q_network.for_twin(twin, cell, change_cue=True)
        return exportable.ExportableModule(twin, postprocess=postprocess, policy=policy,
                                           policy_cell=cell, change_cue=True,
                                           compact_state=False)

    for runtime in FLAGS.runtimes:
        if runtime == "tflite":
            continue
        jit = runtime == "xla"
        net = tf.function(lambda x: folded(clips_lib.preprocess_frames(x), training=False),
                          jit_compile=jit)
        single = tf.function(lambda x, net=net: post(net(x)), input_signature=frame_spec)
        variants[("single frame", runtime)] = (lambda f, fn=single: numpy(fn(f)),
                                               lambda f: None)
        module = module_for("bands", jit, None if jit else post)
        state = module.stream_state
        if jit:
            # The network, policy and state update compiled by XLA (memories updated in
            # place); the NMS, which XLA does not compile, in the graph around it.
            def core(frames, module=module, state=state):
                current = {key: var.read_value() for key, var in state.items()}
                result = module.frame_call(frames, current)
                for key in module.state_keys:
                    state[key].assign(result[key])
                return {key: result[key] for key in ("box_encodings", "class_logits")}

            core = tf.function(core, jit_compile=True)
            step = tf.function(lambda x, core=core: post(core(x)), input_signature=frame_spec)
            call = lambda f, fn=step: numpy(fn(f))
        else:
            call = lambda f, module=module: numpy(module.stream_step(f[0]))
        variants[("Patchwork", runtime)] = (
            call, lambda f, module=module: module.stream_warm_start(f[0]))
    if "tflite" in FLAGS.runtimes:
        lite = tflite_export.lite_postprocess(post)
        module = module_for("window", False, lite)
        single = tflite_export.single_frame_function(folded, lite, (size, size))
        files = {}
        for name, functions, variables in (
                ("single", {"serving_default": single}, folded.variables),
                ("patchwork", tflite_export.patchwork_functions(module),
                 module.model_variables + module.policy_variables)):
            interpreter = tf.lite.Interpreter(
                model_content=tflite_export.convert(functions, variables,
                                                    f"{work_dir}/{size}_{name}"),
                num_threads=1)
            interpreter.allocate_tensors()
            files[name] = interpreter
        variants[("single frame", "tflite")] = (_lite_single(files["single"]), lambda f: None)
        stream = tflite_export.LiteStream(files["patchwork"])
        variants[("Patchwork", "tflite")] = (stream.step, stream.warm_start)
    return variants, model, folded, grid


def _lite_single(interpreter):
    """One call of a one-signature TFLite interpreter: frame in, numpy outputs out."""
    frame_index = interpreter.get_input_details()[0]["index"]
    outputs = [d["index"] for d in interpreter.get_output_details()]

    def call(frame):
        interpreter.set_tensor(frame_index, frame)
        interpreter.invoke()
        return [interpreter.get_tensor(i) for i in outputs]

    return call


def frame_call_main():
    """`--mode=frame_call`: see the module docstring."""
    import tempfile
    import time

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    import patchwork_tf as pw
    from patchwork_tf.core import flops

    rng = np.random.default_rng(0)
    print(f"CPU: {cpu_model()}; whole frame call (uint8 frame in, detections out), batch 1, "
          f"{FLAGS.threads} thread(s), {FLAGS.steps} calls per variant over {FLAGS.rounds} "
          f"interleaved rounds; Patchwork M:N={FLAGS.frame_call_grid}, Q-network with change "
          "cue, untrained weights, NMS over every anchor and class")
    summary, rows = [], []
    with tempfile.TemporaryDirectory() as work_dir:
        for spec in FLAGS.frame_call_configs:
            alpha, size = float(spec.split(":")[0]), int(spec.split(":")[1])
            variants, model, folded, grid = _frame_call_variants(
                alpha, size, FLAGS.frame_call_grid, work_dir)
            frames = rng.integers(0, 256, (8, 1, size, size, 3), np.uint8)
            for call, reset in variants.values():
                reset(frames[0])
                for i in range(FLAGS.warmup):
                    call(frames[i % len(frames)])
            times = {key: [] for key in variants}
            for _ in range(FLAGS.rounds):
                for key, (call, _) in variants.items():
                    for i in range(FLAGS.steps // FLAGS.rounds):
                        start = time.perf_counter()
                        call(frames[i % len(frames)])
                        times[key].append(time.perf_counter() - start)
            medians = {key: 1e3 * float(np.median(t)) for key, t in times.items()}
            print(f"\nMobileNetV2 {alpha} SSDLite at {size} px")
            print(f"{'side':14s} {'runtime':8s} {'median ms':>10s} {'p90 ms':>8s}")
            for key, t in times.items():
                print(f"{key[0]:14s} {key[1]:8s} {medians[key]:10.2f} "
                      f"{1e3 * float(np.percentile(t, 90)):8.2f}")
            best = {side: min((ms, runtime) for (s, runtime), ms in medians.items() if s == side)
                    for side in ("single frame", "Patchwork")}
            # The networks both sides run: the folded step against the folded model.
            twin = pw.patchwork_model(model, grid, fold_batch_norm=True)
            flops_ratio = flops.step_flops(twin).flops / flops.model_flops(folded).flops
            ratio = best["Patchwork"][0] / best["single frame"][0]
            summary.append((spec, best, ratio, flops_ratio))
            rows.append(dict(alpha=alpha, frame_size=size, medians_ms={
                f"{side} {runtime}": ms for (side, runtime), ms in medians.items()},
                best={side: dict(runtime=runtime, median_ms=ms)
                      for side, (ms, runtime) in best.items()},
                ratio=ratio, flops_ratio=flops_ratio))
            print(f"fastest: single frame {best['single frame'][1]} "
                  f"{best['single frame'][0]:.2f} ms, Patchwork {best['Patchwork'][1]} "
                  f"{best['Patchwork'][0]:.2f} ms; Patchwork / single frame {ratio:.3f} "
                  f"(network FLOPs ratio {flops_ratio:.3f})")
    print("\nalpha:size  single frame (runtime, ms)  Patchwork (runtime, ms)  ratio  FLOPs ratio")
    for spec, best, ratio, flops_ratio in summary:
        print(f"{spec:11s} {best['single frame'][1]:>8s} {best['single frame'][0]:8.2f}  "
              f"{best['Patchwork'][1]:>8s} {best['Patchwork'][0]:8.2f}  {ratio:6.3f}  "
              f"{flops_ratio:6.3f}")
    if FLAGS.json_out:
        import json

        with open(FLAGS.json_out, "w") as f:
            json.dump(dict(cpu=cpu_model(), threads=FLAGS.threads, grid=FLAGS.frame_call_grid,
                           rows=rows), f, indent=2)


if __name__ == "__main__":
    app.run(main)
