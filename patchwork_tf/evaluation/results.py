"""Writing evaluation results: one JSON record per configuration and Markdown tables.

Accuracies are shown in percent as "value [lo, hi]", the 95 % bootstrap interval over videos
(`evaluation.bootstrap`); records written before intervals existed show "[n/a]". A record's
`paired` entry holds paired differences with other records on the same videos (`paired`):
`{other name: {metric: {"difference": this - other, "interval": [lo, hi]}}}`.
"""
import json
import math
import os

import numpy as np

from patchwork_tf.evaluation import bootstrap

ACCURACY_ORDER = ("mAP", "J", "F", "J&F")
NOT_AVAILABLE = "n/a"


def _fmt(value, digits=1):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _fmt_interval(interval, sign=""):
    if not interval or any(v is None or math.isnan(v) for v in interval):
        return f"[{NOT_AVAILABLE}]"
    return f"[{100 * interval[0]:{sign}.1f}, {100 * interval[1]:{sign}.1f}]"


def accuracy_cell(record, metric):
    """A record's accuracy in percent with its 95 % interval: "91.5 [89.0, 93.8]"; "-" when
    the record has no such metric, "[n/a]" for the interval of a record without one."""
    if metric not in record["accuracy"]:
        return "-"
    interval = record.get("accuracy_interval", {}).get(metric)
    return f"{_fmt(100 * record['accuracy'][metric])} {_fmt_interval(interval)}"


def difference_cell(record, other, metric):
    """The paired difference record - other in points with its interval, "+6.8 [+3.1, +10.2]";
    "n/a" when it was not computed (e.g. records loaded from files of older versions)."""
    entry = record.get("paired", {}).get(other, {}).get(metric)
    if entry is None:
        return NOT_AVAILABLE
    return f"{100 * entry['difference']:+.1f} {_fmt_interval(entry['interval'], '+')}"


def paired(result_a, result_b):
    """The paired differences of two `StreamResult`s evaluated on the same videos:
    {metric: {"difference": a - b, "interval": [lo, hi]}} (`bootstrap.paired_difference`).

    Raises:
      ValueError: the results are not over the same videos in the same order.
    """
    if result_a.video_ids != result_b.video_ids or not (
            result_a.video_states and result_b.video_states):
        raise ValueError(
            f"{result_a.name!r} and {result_b.name!r} were not evaluated on the same videos "
            f"({len(result_a.video_ids)} and {len(result_b.video_ids)} videos, per-video "
            "states kept: "
            f"{bool(result_a.video_states) and bool(result_b.video_states)}); a paired "
            "difference needs both methods on the same videos, evaluated in one process.")
    if result_a.bootstrap == result_b.bootstrap and result_a.resampled and result_b.resampled:
        # The same videos and resampling settings: the same resamples, already evaluated.
        return {name: {"difference": float(result_a.accuracy[name] - result_b.accuracy[name]),
                       "interval": bootstrap.percentile_interval(
                           result_a.resampled[name] - result_b.resampled[name],
                           result_a.bootstrap["confidence"])}
                for name in result_a.resampled if name in result_b.resampled}
    return bootstrap.paired_difference(result_a.video_states, result_b.video_states)


def add_paired(records, results_by_name, pairs):
    """Adds `paired(a, b)` to record a's `paired` entry for each (a, b) name pair.

    Args:
      records: `StreamResult.to_json()` records, by name in `results_by_name`'s order.
      results_by_name: name -> `StreamResult` (with its per-video states).
      pairs: (a, b) names; names not evaluated are refused.
    """
    by_name = {r["name"]: r for r in records}
    for a, b in pairs:
        missing = [n for n in (a, b) if n not in results_by_name]
        if missing:
            raise ValueError(f"paired comparison {a}:{b} names runs that were not evaluated: "
                             f"{missing}; evaluated: {sorted(results_by_name)}.")
        by_name[a].setdefault("paired", {})[b] = paired(results_by_name[a], results_by_name[b])


def paired_table(records):
    """Every paired difference of the records: | A | B | metric A - B in points [95 %] |."""
    metrics = _metrics(records)
    rows = [(r, other) for r in records for other in r.get("paired", {})]
    lines = ["| A | B | " + " | ".join(f"{m}: A - B, points [95 %]" for m in metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    for record, other in rows:
        lines.append(f"| {record['name']} | {other} | "
                     + " | ".join(difference_cell(record, other, m) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def interval_text(records):
    """How to read the intervals, in words (with the resampling settings of the records)."""
    settings = next((r["bootstrap"] for r in records if r.get("bootstrap")), None)
    if settings is None:
        return ("Accuracy intervals: n/a (these results were written before evaluation "
                "computed them).\n")
    return (f"Accuracy is in percent, with its {100 * settings['confidence']:g} % bootstrap "
            f"confidence interval over {settings['unit']}s in brackets: "
            f"{settings['resamples']} resamples of the evaluated videos with replacement "
            f"(seed {settings['seed']}), the metric recomputed on the pooled frames of each "
            "(mAP on the pooled detections), percentile interval. A paired difference A - B "
            "is over the same resamples for both methods, so it is the interval to read when "
            "comparing two methods; a difference whose interval excludes 0 is one the "
            "evaluated videos support. Intervals cover the choice of videos, not the training "
            "seed (see the seeds summary for that).\n")


def _setting(record, key):
    return record["settings"].get(key)


def maximum_ms(record):
    """The empirical maximum latency of a record, ms per frame: the worst frame type's p95
    (`latency.LatencyStats.maximum_p95`); None for records written before it existed."""
    value = record["empirical"].get("maximum_p95")
    return None if value is None or math.isnan(value) else value


def markdown_table(records):
    """A Markdown table of `StreamResult.to_json()` records, one row each.

    Accuracy in percent with its 95 % bootstrap interval over videos ('n/a' for records
    without one); theoretical latency in MFLOPs per frame (maximum / average); empirical
    in ms per frame after the key-frame schedule: the maximum as the p95 of the worst frame
    type (`maximum_ms`; '-' for records without it) and the average; then the median and p95
    of the timed calls ('-' where a record has no p95).
    """
    metrics = [m for m in ACCURACY_ORDER if any(m in r["accuracy"] for r in records)]
    header = (["name", "method", "policy", "M,N", "cells", "K", "D", "flip"]
              + [f"{m} % [95 %]" for m in metrics]
              + ["max MFLOPs", "avg MFLOPs", "max ms (p95)", "avg ms", "call median ms",
                 "call p95 ms"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        grid = _setting(r, "grid")
        cells = _setting(r, "cells")
        partial = " (not the whole split)" if _setting(r, "complete") is False else ""
        row = [r["name"] + partial, r["method"], str(_setting(r, "policy") or "-"),
               grid if grid else "-", "-" if cells is None else ("yes" if cells else "no"),
               str(_setting(r, "interval")), str(_setting(r, "delay")),
               "yes" if _setting(r, "flip") else "no"]
        row += [accuracy_cell(r, m) for m in metrics]
        row += [_fmt(r["theoretical"]["maximum"]), _fmt(r["theoretical"]["average"]),
                _fmt(maximum_ms(r), 2), _fmt(r["empirical"]["average"], 2),
                _fmt(r["call_ms"]["median"], 2), _fmt(r["call_ms"].get("p95"), 2)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


FRAME_TYPE_NAMES = {"key_frame": "key frame", "window_step": "window step",
                    "interval_frame": "interval frame"}


def latency_table(records):
    """A Markdown table of the empirical latency per frame type (`latency.FRAME_TYPES`), a row
    per record and type: frames, p50 and p95 in ms per frame; the worst type's p95 is the
    record's maximum latency. Records written before per-type statistics have no rows."""
    lines = ["| name | frame type | frames | p50 ms | p95 ms |", "|---|---|---|---|---|"]
    for r in records:
        by_type = r["empirical"].get("by_type", {})
        worst = max(by_type, key=lambda t: by_type[t]["p95"]) if by_type else None
        for name, stats in by_type.items():
            mark = " (max)" if name == worst else ""
            lines.append(f"| {r['name']} | {FRAME_TYPE_NAMES[name]}{mark} | {stats['frames']} | "
                         f"{_fmt(stats['p50'], 2)} | {_fmt(stats['p95'], 2)} |")
    return "\n".join(lines) + "\n"


LATENCY_NOTE = (
    "Empirical latency: ms per frame on one thread after the key-frame schedule, every frame "
    "of every video; per frame type (key frame: a full-frame pass; window step: a Patchwork "
    "step; interval frame: no job, its share of a delayed key frame's) the median and the "
    "95th percentile (numpy's linear interpolation) over that type's frames, warm-up calls "
    "excluded. The maximum latency is the p95 of the worst type.\n")


def protocol_text(records):
    """What the records were evaluated on, in words: data, videos and frames (and whether
    that is the whole split), and how each video's stream started."""
    lines = []
    for (data, videos, frames, complete, start), names in _group_protocols(records).items():
        scope = ("the whole split" if complete else
                 "**not the whole validation split** (--max_videos): not the official number")
        start_text = ("from zero memories: no frame costs more than the maximum" if
                      start == "zeros" else
                      "with a full-frame key frame on each video's first frame; the maximum "
                      "latency counts window steps, `maximum_with_start` in results.json adds "
                      "the start-up pass")
        lines.append(f"- {', '.join(names)}: {data}, {videos} videos, {frames} frames "
                     f"({scope}); streams start {start_text}.")
    return "## Protocol\n\n" + "\n".join(lines) + "\n"


def _group_protocols(records):
    groups = {}
    for r in records:
        key = (r["settings"].get("data", "synthetic"), r.get("num_clips"), r.get("num_frames"),
               r["settings"].get("complete", True), r.get("stream_start", "key_frame"))
        groups.setdefault(key, []).append(r["name"])
    return groups


def write_results(records, output_dir, basename="results"):
    """Writes `<basename>.json` (the records) and `<basename>.md` (their table).

    Returns:
      (json path, markdown path).
    """
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, f"{basename}.json")
    md_path = os.path.join(output_dir, f"{basename}.md")
    with open(json_path, "w") as f:
        json.dump(records, f, indent=2)
    with open(md_path, "w") as f:
        f.write(markdown_table(records) + "\n" + LATENCY_NOTE + "\n" + latency_table(records))
        if any(r.get("paired") for r in records):
            f.write("\nPaired differences on the same videos:\n\n" + paired_table(records))
    return json_path, md_path


def _accuracy_cells(record, metrics):
    return [accuracy_cell(record, m) for m in metrics]


def _metrics(records):
    return [m for m in ACCURACY_ORDER if any(m in r["accuracy"] for r in records)]


def _policy_label(record):
    if record["method"] == "single_frame":
        return "Single-frame"
    policy = record["settings"]["policy"]
    if policy == "dqn" and record["settings"].get("demonstration_weight"):
        return "DQN with the change rule's demonstrations (ours, DQfD)"
    if policy == "dqn" and record["settings"].get("counterfactual_steps"):
        return ("Every window's reward (ours, full information)"
                if not record["settings"]["stage2_steps"]
                else "DQN after every window's reward (ours)")
    if policy == "dqn" and record["settings"].get("imitation_steps"):
        return ("Imitation of the change rule (ours)" if not record["settings"]["stage2_steps"]
                else "DQN after imitation of the change rule (ours)")
    if policy == "dqn" and record["settings"].get("n_step", 1) > 1:
        return f"DQN, {record['settings']['n_step']}-step returns (ours)"
    if policy == "dqn" and record["settings"].get("change_cue") is not None:
        return ("DQN (ours: change cue)" if record["settings"]["change_cue"]
                else "DQN (paper: no change cue)")
    return {"dqn": "DQN", "scanning": "Scanning", "random": "Random",
            "change": "Change (ours)"}[policy]


def single_frame_baseline(records):
    """The name of the plain single-frame model among the records (every frame, full
    resolution, no flip), or None."""
    for r in records:
        settings = r["settings"]
        if (r["method"] == "single_frame" and settings.get("interval", 1) == 1
                and not settings.get("flip") and settings.get("resolution", 1.0) == 1.0):
            return r["name"]
    return None


def cells_pairs(records):
    """(without cells, with cells) name pairs of the same policy and grid (Tab. 2)."""
    with_cells = {(r["settings"].get("policy"), r["settings"].get("grid")): r["name"]
                  for r in records if r["settings"].get("cells")}
    return [(r["name"], with_cells[key]) for r in records
            if r["settings"].get("cells") is False
            and (key := (r["settings"].get("policy"), r["settings"].get("grid"))) in with_cells]


def policy_table(records):
    """Tab. 1: M, N, policy, theoretical maximum MFLOPs per frame, accuracy [95 %] and the
    paired difference with the single-frame model (`single_frame_baseline`)."""
    metrics = _metrics(records)
    baseline = single_frame_baseline(records)
    lines = ["| M | N | Policy | MFLOPs | " + " | ".join(f"{m} % [95 %]" for m in metrics)
             + " | " + " | ".join(f"{m} vs single-frame, points [95 %]" for m in metrics)
             + " |", "|---|---|---|---|" + "---|" * 2 * len(metrics)]
    for r in records:
        m, n = (r["settings"]["grid"].split(",") if r["settings"].get("grid") else ("-", "-"))
        differences = [("-" if r["name"] == baseline else difference_cell(r, baseline, metric))
                       for metric in metrics]
        lines.append(f"| {m} | {n} | {_policy_label(r)} | {_fmt(r['theoretical']['maximum'])} | "
                     + " | ".join(_accuracy_cells(r, metrics)) + " | "
                     + " | ".join(differences) + " |")
    return "\n".join(lines) + "\n"


def cells_table(records):
    """Tab. 2: policy, Patchwork Cells or not, accuracy [95 %], and on each row without
    cells the paired difference with the same policy and grid with cells."""
    metrics = _metrics(records)
    partner = dict(cells_pairs(records))
    lines = ["| Policy | M, N | Patchwork Cell? | " + " | ".join(f"{m} % [95 %]" for m in metrics)
             + " | " + " | ".join(f"{m} without - with cells, points [95 %]" for m in metrics)
             + " |", "|---|---|---|" + "---|" * 2 * len(metrics)]
    for r in records:
        cells = "yes" if r["settings"].get("cells") else "no"
        differences = [difference_cell(r, partner[r["name"]], metric) if r["name"] in partner
                       else "-" for metric in metrics]
        lines.append(f"| {_policy_label(r)} | {r['settings'].get('grid', '-')} | {cells} | "
                     + " | ".join(_accuracy_cells(r, metrics)) + " | "
                     + " | ".join(differences) + " |")
    return "\n".join(lines) + "\n"


def _spread(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "min": float(np.min(values)), "max": float(np.max(values))}


def seeds_summary(records_by_seed):
    """Mean and spread over training seeds of every method's accuracy and paired differences.

    Args:
      records_by_seed: seed -> the records of one evaluation of that seed's run (the same
        names in each, e.g. `train.evaluate_run`'s).

    Returns:
      {"seeds": [...], "num_clips": V, "accuracy": {name: {metric: entry}}, "paired": {"A - B":
      {metric: entry}}}, an entry {"per_seed": [...], "intervals": [[lo, hi] or None per seed],
      "mean", "std" (sample, ddof 1; None for one seed), "min", "max"}, as fractions.
    """
    seeds = sorted(records_by_seed)
    if not seeds:
        raise ValueError("seeds_summary needs the records of at least one seed.")
    by_seed = {seed: {r["name"]: r for r in records_by_seed[seed]} for seed in seeds}
    names = [r["name"] for r in records_by_seed[seeds[0]]]
    for seed in seeds:
        if sorted(by_seed[seed]) != sorted(names):
            raise ValueError(f"seed {seed} evaluated {sorted(by_seed[seed])}, seed {seeds[0]} "
                             f"{sorted(names)}; evaluate every seed the same way.")
    accuracy, differences = {}, {}
    for name in names:
        for metric in by_seed[seeds[0]][name]["accuracy"]:
            records = [by_seed[seed][name] for seed in seeds]
            accuracy.setdefault(name, {})[metric] = dict(
                per_seed=[r["accuracy"][metric] for r in records],
                intervals=[r.get("accuracy_interval", {}).get(metric) for r in records],
                **_spread([r["accuracy"][metric] for r in records]))
        for other, by_metric in by_seed[seeds[0]][name].get("paired", {}).items():
            for metric in by_metric:
                entries = [by_seed[seed][name].get("paired", {}).get(other, {}).get(metric)
                           for seed in seeds]
                if any(e is None for e in entries):
                    continue
                differences.setdefault(f"{name} - {other}", {})[metric] = dict(
                    per_seed=[e["difference"] for e in entries],
                    intervals=[e["interval"] for e in entries],
                    **_spread([e["difference"] for e in entries]))
    return {"seeds": seeds, "num_clips": by_seed[seeds[0]][names[0]].get("num_clips"),
            "accuracy": accuracy, "paired": differences}


def seeds_table(summary):
    """Markdown of a `seeds_summary`: per seed "value [95 % over videos]", mean, standard
    deviation and range over seeds, in percent (differences in points)."""
    seeds = summary["seeds"]

    def rows(entries, sign):
        lines = []
        for name, by_metric in entries.items():
            for metric, e in by_metric.items():
                cells = [f"{100 * v:{sign}.1f} {_fmt_interval(i, sign)}"
                         for v, i in zip(e["per_seed"], e["intervals"])]
                std = "-" if e["std"] is None else f"{100 * e['std']:.1f}"
                lines.append(f"| {name} | {metric} | " + " | ".join(cells)
                             + f" | {100 * e['mean']:{sign}.1f} | {std} | "
                             f"{100 * e['min']:{sign}.1f} to {100 * e['max']:{sign}.1f} |")
        return lines

    header = ("| {} | metric | " + " | ".join(f"seed {s} [95 %]" for s in seeds)
              + " | mean | std | range |")
    rule = "|---|---|" + "---|" * (len(seeds) + 3)
    lines = [f"{len(seeds)} training seeds of stages 2 and 3 on one stage-1 model, each "
             f"evaluated on the same {summary.get('num_clips')} videos; brackets: the 95 % "
             "bootstrap interval over videos of that seed's run; std: the sample standard "
             "deviation over seeds.", "", header.format("method") + "", rule]
    lines += rows(summary["accuracy"], "")
    if summary.get("paired"):
        lines += ["", "Paired differences A - B on the same videos, in points:", "",
                  header.format("A - B"), rule]
        lines += rows(summary["paired"], "+")
    return "\n".join(lines) + "\n"
