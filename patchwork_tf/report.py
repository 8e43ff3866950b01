r"""Runs an evaluation sweep and draws the paper's latency-accuracy figures and tables.

  python -m patchwork_tf.report --flagfile=experiments/report_synthetic.flags \
      --model_dir=runs/synthetic_det --output_dir=docs/results/synthetic_det

Each `--run` is one configuration, written as comma-separated `key=value` pairs:

  name        row label (required)
  policy      single_frame | dqn | scanning | random | change  (default single_frame)
  m, n        the Patchwork grid                             (default the train job's, 4, 2)
  cells       true | false: Patchwork Cells or zero-padded crops (Tab. 2)
  flip, interval, delay, resolution                          the variants of Sec. 4
  model_dir   this run's model (e.g. another depth multiplier); default --model_dir
  alpha       with --untrained: this run's depth multiplier
  tables      '+'-separated tables the run belongs to: policies (Tab. 1), cells (Tab. 2)

Accuracies carry their 95 % bootstrap interval over videos (`evaluation.bootstrap`). Paired
differences on the same videos are computed for every Tab. 1 row against the single-frame
model, for every Tab. 2 row without cells against the same policy with cells, and for each
`--compare=A:B` (A - B; `report_runs.flags` compares DQN with the rules and with the
single-frame model of the same maximum cost). When `<model_dir>/seeds/summary.json` exists
(`python -m patchwork_tf.train --flagfile=experiments/synthetic_det_seeds.flags`), the report
adds its table: each method's accuracy per training seed, mean and spread.

  python -m patchwork_tf.report --flagfile=experiments/report_runs.flags \
      --model_dir=runs/vid --frame_size=384 --data=imagenet_vid \
      --data_dir=/path/to/ILSVRC2015 --output_dir=docs/results/vid

`--data=imagenet_vid|davis` evaluates every run on the real data set's validation videos by
the official protocol (every frame of every video; `--max_videos` for a quick look, which the
report states).

Writes into `--output_dir`: `results.json` and `results.md` (every run), `report.md` (the
protocol, the tables of all runs, the empirical latency per frame type, Tab. 1, Tab. 2 and the
figures), `latency_theoretical.png` and `latency_empirical.png` (maximum latency vs accuracy,
single-frame blue, Patchwork red: the left panels of Fig. 5 / 6 for detection, Fig. 7 / 8 for
segmentation; the empirical maximum is the p95 of the worst frame type, one thread).
"""
import os

from absl import app
from absl import flags

from patchwork_tf import cli

_RUN_KEYS = {"name": str, "policy": str, "m": int, "n": int, "cells": "bool", "flip": "bool",
             "interval": int, "delay": int, "resolution": float, "model_dir": str,
             "alpha": float, "tables": str, "observed_cell": str}
TABLES = ("policies", "cells")


def _define_flags():
    # --task and --depth_multiplier shape --untrained models (a run's alpha= overrides the
    # depth multiplier); --frame_size is the clips' (and the --untrained models').
    cli.define_data_flags()
    cli.define_model_flags()
    flags.DEFINE_multi_string("run", [], "One configuration of the sweep (see the module doc).")
    flags.DEFINE_multi_string("compare", [], "A:B, two run names: the report gives A - B with "
                              "its paired 95 % bootstrap interval over the same videos.")
    flags.DEFINE_string("model_dir", None, "Default model (train job output) of the runs.")
    flags.DEFINE_bool("untrained", False, "Freshly initialised models (latency only).")
    flags.DEFINE_enum("split", "validation", ["train", "validation", "test"], "Synthetic split.")
    flags.DEFINE_integer("max_videos", None, "Real data: only the first videos (a quick look; "
                         "the report says the numbers are not over the whole split).")
    flags.DEFINE_enum("stream_start", None, ["zeros", "key_frame"], "How each video's stream "
                      "starts; default zeros on real data, key_frame on synthetic.")
    flags.DEFINE_integer("num_clips", 16, "Synthetic clips per run.")
    flags.DEFINE_integer("clip_length", 16, "Frames per clip.")
    flags.DEFINE_string("output_dir", None, "Where the report goes.")
    flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op threads.")
    flags.DEFINE_string("title", None, "Title of the report and figures.")
    flags.DEFINE_bool("jit_compile", True, "The Patchwork step compiled by XLA (the inference "
                      "preset); --nojit_compile runs it as a plain graph: the same outputs, no "
                      "XLA compile per run, slower frames (toy sweeps).")


def parse_run(spec):
    """`'name=a,policy=scanning,m=4'` -> dict with typed values; raises on unknown keys."""
    run = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in _RUN_KEYS:
            raise ValueError(f"--run entry {item!r} in {spec!r} is not key=value with a key of "
                             f"{sorted(_RUN_KEYS)}.")
        kind = _RUN_KEYS[key]
        if kind == "bool":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--run {key}={value!r} must be true or false.")
            run[key] = value.lower() in ("true", "1")
        else:
            try:
                run[key] = kind(value)
            except ValueError:
                raise ValueError(f"--run {key}={value!r} is not a {kind.__name__}.") from None
    if "name" not in run:
        raise ValueError(f"--run {spec!r} has no name=.")
    unknown = set(run.get("tables", "").split("+")) - set(TABLES) - {""}
    if unknown:
        raise ValueError(f"--run {spec!r}: unknown tables {sorted(unknown)}; choose from {TABLES}.")
    return run


def parse_compare(spec, names):
    """`'dqn:scan'` -> ('dqn', 'scan'); both must be names of runs."""
    a, sep, b = spec.partition(":")
    if not sep or a not in names or b not in names or a == b:
        raise ValueError(f"--compare={spec!r} must be A:B with two different run names of "
                         f"{sorted(names)}.")
    return a, b


def comparisons(records, compare=()):
    """The (A, B) pairs a report compares: every Tab. 1 row with the single-frame model, Tab. 2
    rows without cells with the same policy with cells, then `compare`."""
    from patchwork_tf.evaluation import results

    policy_rows = [r for r in records if "policies" in r.get("tables", [])]
    baseline = results.single_frame_baseline(policy_rows)
    pairs = [(r["name"], baseline) for r in policy_rows if baseline and r["name"] != baseline]
    pairs += results.cells_pairs([r for r in records if "cells" in r.get("tables", [])])
    return list(dict.fromkeys(pairs + [tuple(pair) for pair in compare]))


def run_sweep(runs, output_dir, model_dir=None, untrained=False, task="detection", alpha=0.35,
              frame_size=128, split="validation", num_clips=16, clip_length=16, title=None,
              data="synthetic", data_dir=None, max_videos=None, stream_start=None, compare=(),
              jit_compile=True):
    """Evaluates every run (dicts from `parse_run`) and writes the report.

    `compare` lists (A, B) run names whose paired difference A - B the report gives, beside
    those of `comparisons`. `jit_compile`: of `evaluation.api.build_runner`.

    Real data (`data` "imagenet_vid" or "davis") is evaluated by the official protocol of
    `evaluation.api.evaluate`; each run keeps its progress per video under
    `<output_dir>/progress/<name>`, so a stopped sweep run again continues where it stopped.

    Returns:
      the list of result records (`StreamResult.to_json()` plus `tables`).
    """
    from patchwork_tf import runs as run_lib
    from patchwork_tf.evaluation import api
    from patchwork_tf.evaluation import results

    names = [r["name"] for r in runs]
    if len(set(names)) != len(names) or not runs:
        raise ValueError(f"Runs need distinct names and there must be at least one; got {names}.")
    compare = [parse_compare(":".join(pair), names) for pair in compare]
    models = {}
    records, evaluated = [], {}
    for run in runs:
        resolution = run.get("resolution", 1.0)
        policy = run.get("policy", "single_frame")
        if untrained:
            key = ("untrained", run.get("alpha", alpha), resolution)
            if key not in models:
                size = run_lib.scaled_size((frame_size, frame_size), resolution)
                models[key] = api.untrained_model(task, key[1], size)
        else:
            directory = run.get("model_dir", model_dir)
            if not directory:
                raise ValueError(
                    f"Run {run['name']!r} has no model_dir and --model_dir is not set.")
            key = (directory, resolution, policy == "dqn")
            if key not in models:
                models[key] = api.load_trained(directory, resolution, with_q_network=key[2])
        loaded = models[key]
        print(f"[report] {run['name']}", flush=True)
        default_m, default_n = api.default_grid(loaded)
        result, _ = api.evaluate(
            loaded, policy, run.get("m", default_m), run.get("n", default_n),
            run.get("cells", True),
            run.get("flip", False), run.get("interval", 1), run.get("delay", 0),
            run.get("observed_cell"), split, num_clips, clip_length, (frame_size, frame_size),
            name=run["name"], settings={"resolution": resolution,
                                        "alpha": run.get("alpha", alpha) if untrained else None},
            data=data, data_dir=data_dir, stream_start=stream_start, max_videos=max_videos,
            progress_dir=os.path.join(output_dir, "progress", run["name"]),
            show_progress=data != "synthetic", jit_compile=jit_compile)
        record = result.to_json()
        record["tables"] = [t for t in run.get("tables", "").split("+") if t]
        records.append(record)
        evaluated[run["name"]] = result
    results.add_paired(records, evaluated, comparisons(records, compare))
    seeds = None
    if model_dir and not untrained:
        seeds = load_seeds_summary(model_dir)
    write_report(records, output_dir, title, seeds)
    return records


def load_seeds_summary(model_dir):
    """The seeds summary of a train job (`train --seeds`), or None when it has none."""
    import json
    path = os.path.join(model_dir, "seeds", "summary.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_report(records, output_dir, title=None, seeds=None):
    """Writes results.json/md, the two figures and report.md from result records (and the
    seeds table of a `train --seeds` summary)."""
    from patchwork_tf.evaluation import plots
    from patchwork_tf.evaluation import results

    results.write_results(records, output_dir, "results")
    title = title or "Patchwork evaluation report"
    figures = {}
    for kind in ("theoretical", "empirical"):
        path = os.path.join(output_dir, f"latency_{kind}.png")
        plots.latency_accuracy_figure(records, kind, path, f"{title}: {kind} maximum latency")
        figures[kind] = os.path.basename(path)
    sections = [f"# {title}\n", results.protocol_text(records),
                "## Reading the intervals\n", results.interval_text(records), "## All runs\n",
                results.markdown_table(records), "## Empirical latency per frame type\n",
                results.LATENCY_NOTE, results.latency_table(records)]
    policy_rows = [r for r in records if "policies" in r.get("tables", [])]
    if policy_rows:
        sections += ["## Attention policies (Tab. 1)\n", results.policy_table(policy_rows)]
    cell_rows = [r for r in records if "cells" in r.get("tables", [])]
    if cell_rows:
        sections += ["## With and without Patchwork Cells (Tab. 2)\n",
                     results.cells_table(cell_rows)]
    if any(r.get("paired") for r in records):
        sections += ["## Paired differences (same videos)\n", results.paired_table(records)]
    if seeds:
        sections += ["## Training seeds (stages 2 and 3 on one stage-1 model)\n",
                     results.seeds_table(seeds)]
    sections += ["## Maximum latency vs accuracy (Fig. 5 to 8, left)\n",
                 f"![theoretical]({figures['theoretical']})\n",
                 f"![empirical]({figures['empirical']})\n"]
    with open(os.path.join(output_dir, "report.md"), "w") as f:
        f.write("\n".join(sections))


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required.")
    if bool(FLAGS.model_dir) and FLAGS.untrained:
        raise app.UsageError("Give --model_dir or --untrained, not both.")
    try:
        runs = [parse_run(spec) for spec in FLAGS.run]
        compare = [parse_compare(spec, [r["name"] for r in runs]) for spec in FLAGS.compare]
    except ValueError as e:
        raise app.UsageError(str(e))
    if not runs:
        raise app.UsageError("No --run given; see experiments/report_synthetic.flags.")
    from patchwork_tf.evaluation import api
    api.pin_threads(FLAGS.threads)
    run_sweep(runs, FLAGS.output_dir, FLAGS.model_dir, FLAGS.untrained, FLAGS.task,
              FLAGS.depth_multiplier, FLAGS.frame_size, FLAGS.split, FLAGS.num_clips,
              FLAGS.clip_length, FLAGS.title, FLAGS.data, FLAGS.data_dir, FLAGS.max_videos,
              FLAGS.stream_start, compare, FLAGS.jit_compile)
    print(f"Report written to {os.path.join(FLAGS.output_dir, 'report.md')}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
