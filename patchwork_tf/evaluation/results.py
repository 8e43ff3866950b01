"""Writing evaluation results: one JSON record per configuration and a Markdown table."""
import json
import math
import os

ACCURACY_ORDER = ("mAP", "J", "F", "J&F")


def _fmt(value, digits=1):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _setting(record, key):
    return record["settings"].get(key)


def maximum_ms(record):
    """The empirical maximum latency of a record, ms per frame: the worst frame type's p95
    (`latency.LatencyStats.maximum_p95`); None for records written before it existed."""
    value = record["empirical"].get("maximum_p95")
    return None if value is None or math.isnan(value) else value


def markdown_table(records):
    """A Markdown table of `StreamResult.to_json()` records, one row each.

    Accuracy in percent; theoretical latency in MFLOPs per frame (maximum / average); empirical
    in ms per frame after the key-frame schedule: the maximum as the p95 of the worst frame
    type (`maximum_ms`; '-' for records without it) and the average; then the median and p95
    of the timed calls ('-' where a record has no p95).
    """
    metrics = [m for m in ACCURACY_ORDER if any(m in r["accuracy"] for r in records)]
    header = (["name", "method", "policy", "M,N", "cells", "K", "D", "flip"]
              + [f"{m} %" for m in metrics]
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
        row += [_fmt(100 * r["accuracy"][m]) if m in r["accuracy"] else "-" for m in metrics]
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
    return json_path, md_path


def _accuracy_cells(record, metrics):
    return [_fmt(100 * record["accuracy"][m]) if m in record["accuracy"] else "-" for m in metrics]


def _metrics(records):
    return [m for m in ACCURACY_ORDER if any(m in r["accuracy"] for r in records)]


def _policy_label(record):
    if record["method"] == "single_frame":
        return "Single-frame"
    return {"dqn": "DQN", "scanning": "Scanning", "random": "Random",
            "change": "Change (ours)"}[record["settings"]["policy"]]


def policy_table(records):
    """Tab. 1: M, N, policy, theoretical maximum MFLOPs per frame and accuracy."""
    metrics = _metrics(records)
    lines = ["| M | N | Policy | MFLOPs | " + " | ".join(f"{m} %" for m in metrics) + " |",
             "|---|---|---|---|" + "---|" * len(metrics)]
    for r in records:
        m, n = (r["settings"]["grid"].split(",") if r["settings"].get("grid") else ("-", "-"))
        lines.append(f"| {m} | {n} | {_policy_label(r)} | {_fmt(r['theoretical']['maximum'])} | "
                     + " | ".join(_accuracy_cells(r, metrics)) + " |")
    return "\n".join(lines) + "\n"


def cells_table(records):
    """Tab. 2: policy, Patchwork Cells or not, and accuracy."""
    metrics = _metrics(records)
    lines = ["| Policy | M, N | Patchwork Cell? | " + " | ".join(f"{m} %" for m in metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for r in records:
        cells = "yes" if r["settings"].get("cells") else "no"
        lines.append(f"| {_policy_label(r)} | {r['settings'].get('grid', '-')} | {cells} | "
                     + " | ".join(_accuracy_cells(r, metrics)) + " |")
    return "\n".join(lines) + "\n"
