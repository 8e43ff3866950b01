"""The report tool's run specs, tables, protocol and figures (its whole sweep runs on a trained
run in tests/training/experiments_test.py)."""
import numpy as np
import pytest
from PIL import Image

from patchwork_tf import report
from patchwork_tf.evaluation import plots
from patchwork_tf.evaluation import results


def test_parse_run_types_values_and_refuses_unknown_keys():
    run = report.parse_run("name=a,policy=scanning,m=4,n=2,cells=false,resolution=0.5,"
                           "tables=policies+cells")
    assert run == {"name": "a", "policy": "scanning", "m": 4, "n": 2, "cells": False,
                   "resolution": 0.5, "tables": "policies+cells"}
    with pytest.raises(ValueError, match="key=value"):
        report.parse_run("name=a,colour=red")
    with pytest.raises(ValueError, match="no name"):
        report.parse_run("policy=random")
    with pytest.raises(ValueError, match="unknown tables"):
        report.parse_run("name=a,tables=fig9")
    with pytest.raises(ValueError, match="true or false"):
        report.parse_run("name=a,flip=maybe")


def _record(name, method, mflops, ms, accuracy, **settings):
    settings.setdefault("interval", 1)
    settings.setdefault("delay", 0)
    return {"name": name, "method": method, "settings": settings, "accuracy": accuracy,
            "theoretical": {"maximum": mflops, "average": mflops},
            "empirical": {"maximum": ms, "average": ms},
            "call_ms": {"median": ms, "p90": ms}, "tables": ["policies", "cells"]}


def test_tables_and_figures_from_records(tmp_path):
    records = [
        _record("sf", "single_frame", 512.0, 40.0, {"mAP": 0.493}),
        _record("dqn", "patchwork", 543.0, 30.0, {"mAP": 0.543}, policy="dqn", grid="4,2",
                cells=True),
        _record("dqn_nocells", "patchwork", 543.0, 30.0, {"mAP": 0.432}, policy="dqn",
                grid="4,2", cells=False),
    ]
    # Records written before intervals existed still make every table, "n/a" for intervals.
    report.write_report(records, str(tmp_path), "tiny")
    policies = results.policy_table(records).splitlines()
    assert policies[2] == "| - | - | Single-frame | 512.0 | 49.3 [n/a] | - |"
    assert policies[3] == "| 4 | 2 | DQN | 543.0 | 54.3 [n/a] | n/a |"
    cells = results.cells_table(records[1:]).splitlines()
    assert cells[2:] == ["| DQN | 4,2 | yes | 54.3 [n/a] | - |",
                         "| DQN | 4,2 | no | 43.2 [n/a] | n/a |"]
    text = (tmp_path / "report.md").read_text()
    assert "## Attention policies (Tab. 1)" in text and "## With and without" in text
    assert "Accuracy intervals: n/a" in text and "## Paired differences" not in text
    assert "- sf, dqn, dqn_nocells: synthetic," in text
    for kind in ("theoretical", "empirical"):
        image = np.asarray(Image.open(tmp_path / f"latency_{kind}.png").convert("RGB"))
        assert image.shape[0] > 300 and image.shape[1] > 400
        red = (image[..., 0] > 180) & (image[..., 1] < 80) & (image[..., 2] < 80)
        blue = (image[..., 2] > 150) & (image[..., 0] < 80)
        assert red.sum() > 20 and blue.sum() > 20   # both kinds of points are drawn


def test_tables_and_figures_show_the_worst_frame_types_p95_not_the_sample_maximum(tmp_path):
    # A single-frame run whose sample maximum is one outlier (9 ms) and a Patchwork run with
    # a key-frame start; records as `StreamResult.to_json()` writes them.
    plain = _record("sf", "single_frame", 512.0, 9.0, {"mAP": 0.49})
    plain["empirical"].update(maximum_p95=3.25, p95=3.25, by_type={
        "key_frame": {"p50": 3.0, "p95": 3.25, "frames": 256}})
    plain["call_ms"].update(p95=3.25)
    step = _record("scan", "patchwork", 130.0, 5.0, {"mAP": 0.41}, policy="scanning",
                   grid="4,2", cells=True, interval=4, delay=1)
    step["empirical"].update(maximum_p95=1.5, by_type={
        "window_step": {"p50": 1.2, "p95": 1.5, "frames": 64},
        "interval_frame": {"p50": 0.0, "p95": 0.75, "frames": 200}})
    step["call_ms"].update(p95=1.75)
    old = _record("old", "single_frame", 512.0, 8.0, {"mAP": 0.5})   # before per-type stats
    rows = results.markdown_table([plain, step, old]).splitlines()
    assert "max ms (p95)" in rows[0] and "call p95 ms" in rows[0]
    assert rows[2].endswith("| 512.0 | 512.0 | 3.25 | 9.00 | 9.00 | 3.25 |")
    assert rows[3].endswith("| 130.0 | 130.0 | 1.50 | 5.00 | 5.00 | 1.75 |")
    assert rows[4].endswith("| 512.0 | 512.0 | - | 8.00 | 8.00 | - |")
    assert results.latency_table([plain, step, old]).splitlines()[2:] == [
        "| sf | key frame (max) | 256 | 3.00 | 3.25 |",
        "| scan | window step (max) | 64 | 1.20 | 1.50 |",
        "| scan | interval frame | 200 | 0.00 | 0.75 |"]
    # The empirical figure draws each run at its p95 (an old record at its sample maximum,
    # named so); the theoretical one at the maximum FLOPs.
    assert plots.maximum_latency(plain, "empirical") == (3.25, "")
    assert plots.maximum_latency(old, "empirical") == (8.0, " (sample max)")
    assert plots.maximum_latency(step, "theoretical") == (130.0, "")
    assert "p95" in plots.LATENCY["empirical"]
    report.write_report([plain, step, old], str(tmp_path), "p95")
    text = (tmp_path / "report.md").read_text()
    assert "| scan | window step (max) | 64 | 1.20 | 1.50 |" in text
    assert "The maximum latency is the p95 of the worst type." in text
    assert "| sf | key frame (max) | 256 | 3.00 | 3.25 |" in (tmp_path / "results.md").read_text()


def _with_intervals(record, bounds, paired=None, **settings):
    record = dict(record, accuracy_interval={"mAP": bounds},
                  bootstrap={"unit": "video", "resamples": 1000, "confidence": 0.95, "seed": 0,
                             "method": "percentile"})
    record["settings"] = dict(record["settings"], **settings)
    if paired:
        record["paired"] = paired
    return record


def test_tables_show_intervals_and_paired_differences(tmp_path):
    sf = _with_intervals(_record("sf", "single_frame", 48.9, 9.0, {"mAP": 0.915}),
                         [0.897, 0.931], resolution=1.0)
    sf_k4 = _with_intervals(_record("sf_k4_d3", "single_frame", 12.2, 2.3, {"mAP": 0.838}),
                            [0.80, 0.87], interval=4, delay=3)
    dqn = _with_intervals(
        _record("dqn", "patchwork", 12.6, 3.0, {"mAP": 0.842}), [0.81, 0.871],
        {"sf": {"mAP": {"difference": -0.073, "interval": [-0.091, -0.052]}},
         "scan": {"mAP": {"difference": 0.109, "interval": [0.071, 0.15]}}},
        policy="dqn", grid="4,2", cells=True, change_cue=True)
    paper = _with_intervals(_record("dqn_paper", "patchwork", 12.6, 3.0, {"mAP": 0.80}),
                            [0.76, 0.84], policy="dqn", grid="4,2", cells=True,
                            change_cue=False)
    scan_nocells = _with_intervals(
        _record("scan_nocells", "patchwork", 12.5, 3.0, {"mAP": 0.605}), [0.55, 0.66],
        {"scan": {"mAP": {"difference": -0.128, "interval": [-0.17, -0.09]}}},
        policy="scanning", grid="4,2", cells=False)
    scan = _with_intervals(_record("scan", "patchwork", 12.5, 3.0, {"mAP": 0.733}),
                           [0.69, 0.77], policy="scanning", grid="4,2", cells=True)
    records = [sf_k4, sf, dqn, paper, scan, scan_nocells]
    assert results.single_frame_baseline(records) == "sf"
    assert results.cells_pairs(records) == [("scan_nocells", "scan")]
    for r, tables in zip(records, (["policies"], ["policies"], ["policies", "cells"],
                                   ["policies"], ["policies", "cells"], ["cells"])):
        r["tables"] = tables
    assert report.comparisons(records, [("dqn", "sf_k4_d3")]) == [
        ("sf_k4_d3", "sf"), ("dqn", "sf"), ("dqn_paper", "sf"), ("scan", "sf"),
        ("scan_nocells", "scan"), ("dqn", "sf_k4_d3")]
    policies = results.policy_table(records[:4]).splitlines()
    assert policies[0] == ("| M | N | Policy | MFLOPs | mAP % [95 %] | mAP vs single-frame, "
                           "points [95 %] |")
    assert policies[3] == "| - | - | Single-frame | 48.9 | 91.5 [89.7, 93.1] | - |"
    assert policies[4] == ("| 4 | 2 | DQN (ours: change cue) | 12.6 | 84.2 [81.0, 87.1] | "
                           "-7.3 [-9.1, -5.2] |")
    # The paper's variant beside ours, its difference not computed in these records.
    assert policies[5] == ("| 4 | 2 | DQN (paper: no change cue) | 12.6 | 80.0 [76.0, 84.0] | "
                           "n/a |")
    cells = results.cells_table([scan, scan_nocells]).splitlines()
    assert cells[2:] == ["| Scanning | 4,2 | yes | 73.3 [69.0, 77.0] | - |",
                         "| Scanning | 4,2 | no | 60.5 [55.0, 66.0] | -12.8 [-17.0, -9.0] |"]
    assert results.paired_table(records).splitlines()[2:] == [
        "| dqn | sf | -7.3 [-9.1, -5.2] |", "| dqn | scan | +10.9 [+7.1, +15.0] |",
        "| scan_nocells | scan | -12.8 [-17.0, -9.0] |"]
    report.write_report(records, str(tmp_path), "tiny")
    text = (tmp_path / "report.md").read_text()
    assert "95 % bootstrap confidence interval over videos" in text
    assert "1000 resamples" in text and "## Paired differences (same videos)" in text


def test_seeds_summary_mean_and_spread():
    def records(dqn, scan, sf):
        return [dict(_record("single_frame", "single_frame", 1, 1, {"mAP": sf}),
                     accuracy_interval={"mAP": [sf - 0.02, sf + 0.02]}, num_clips=64),
                dict(_record("dqn_m4n2", "patchwork", 1, 1, {"mAP": dqn}),
                     accuracy_interval={"mAP": [dqn - 0.03, dqn + 0.03]},
                     paired={"scanning_m4n2": {"mAP": {"difference": dqn - scan,
                                                       "interval": [0.1, 0.2]}}}),
                dict(_record("scanning_m4n2", "patchwork", 1, 1, {"mAP": scan}))]

    dqn, scan = [0.842, 0.892, 0.886], [0.733, 0.730, 0.729]
    summary = report.load_seeds_summary("/nonexistent")
    assert summary is None
    summary = results.seeds_summary({s: records(d, c, 0.915) for s, d, c in
                                     zip((0, 1, 2), dqn, scan)})
    entry = summary["accuracy"]["dqn_m4n2"]["mAP"]
    assert entry["per_seed"] == dqn
    assert entry["mean"] == pytest.approx(np.mean(dqn))
    assert entry["std"] == pytest.approx(np.std(dqn, ddof=1))
    assert (entry["min"], entry["max"]) == (0.842, 0.892)
    difference = summary["paired"]["dqn_m4n2 - scanning_m4n2"]["mAP"]
    assert difference["mean"] == pytest.approx(np.mean(np.subtract(dqn, scan)))
    table = results.seeds_table(summary)
    assert "| method | metric | seed 0 [95 %] | seed 1 [95 %] | seed 2 [95 %] | mean | std" in table
    assert ("| dqn_m4n2 | mAP | 84.2 [81.2, 87.2] | 89.2 [86.2, 92.2] | 88.6 [85.6, 91.6] | "
            "87.3 | 2.7 | 84.2 to 89.2 |") in table
    assert "| scanning_m4n2 | mAP | 73.3 [n/a] |" in table
    assert "| dqn_m4n2 - scanning_m4n2 | mAP | +10.9 [+10.0, +20.0] |" in table
    with pytest.raises(ValueError, match="evaluate every seed the same way"):
        results.seeds_summary({0: records(0.8, 0.7, 0.9), 1: records(0.8, 0.7, 0.9)[:2]})


def test_compare_names_runs():
    assert report.parse_compare("dqn:scan", ["dqn", "scan"]) == ("dqn", "scan")
    for bad in ("dqn", "dqn:dqn", "dqn:nothing"):
        with pytest.raises(ValueError, match="two different run names"):
            report.parse_compare(bad, ["dqn", "scan"])


def test_a_run_short_of_the_whole_split_says_so():
    whole = dict(_record("sf", "single_frame", 1.0, 1.0, {"mAP": 0.5}, data="imagenet_vid",
                         complete=True), num_clips=555, num_frames=176126, stream_start="zeros")
    quick = dict(_record("quick", "single_frame", 1.0, 1.0, {"mAP": 0.5}, data="imagenet_vid",
                         complete=False), num_clips=20, num_frames=5000, stream_start="zeros")
    protocol = results.protocol_text([whole, quick])
    assert "- sf: imagenet_vid, 555 videos, 176126 frames (the whole split)" in protocol
    assert "- quick: imagenet_vid, 20 videos, 5000 frames (**not the whole" in protocol
    assert "from zero memories" in protocol
    rows = results.markdown_table([whole, quick]).splitlines()
    assert rows[2].startswith("| sf |") and rows[3].startswith("| quick (not the whole split) |")


@pytest.mark.slow
def test_a_sweep_on_real_data_follows_the_official_protocol(tmp_path):
    from tests.data import fixtures
    root = fixtures.write_davis(str(tmp_path / "DAVIS"), num_sequences=(1, 2),
                                num_frames=(4, 5))
    runs = [report.parse_run("name=sf,tables=policies"),
            report.parse_run("name=scan,policy=scanning,m=2,n=1,tables=policies+cells")]
    records = report.run_sweep(runs, str(tmp_path / "report"), untrained=True,
                               task="segmentation", frame_size=64, data="davis", data_dir=root)
    for record in records:
        # Every frame of both val sequences, from zero memories, the whole split.
        assert (record["num_clips"], record["num_frames"]) == (2, 10)
        assert record["stream_start"] == "zeros" and record["settings"]["complete"] is True
    text = (tmp_path / "report" / "report.md").read_text()
    assert "- sf, scan: davis, 2 videos, 10 frames (the whole split)" in text
    assert (tmp_path / "report" / "progress" / "scan" / "evaluation.json").exists()


def test_tab1_names_the_imitation_runs_apart_from_the_dqn():
    sf = _with_intervals(_record("sf", "single_frame", 48.9, 9.0, {"mAP": 0.893}),
                         [0.879, 0.906], resolution=1.0)
    imitation = _with_intervals(_record("imitation", "patchwork", 12.6, 3.0, {"mAP": 0.867}),
                                [0.853, 0.881], policy="dqn", grid="4,2", cells=True,
                                change_cue=True, imitation_steps=2000, stage2_steps=0)
    after = _with_intervals(_record("after", "patchwork", 12.6, 3.0, {"mAP": 0.85}),
                            [0.83, 0.87], policy="dqn", grid="4,2", cells=True,
                            change_cue=True, imitation_steps=2000, stage2_steps=3000)
    dqfd = _with_intervals(_record("dqfd", "patchwork", 12.6, 3.0, {"mAP": 0.86}),
                           [0.84, 0.88], policy="dqn", grid="4,2", cells=True, change_cue=True,
                           imitation_steps=2000, stage2_steps=3000, demonstration_weight=1.0)
    full = _with_intervals(_record("full", "patchwork", 12.6, 3.0, {"mAP": 0.87}),
                           [0.85, 0.89], policy="dqn", grid="4,2", cells=True, change_cue=True,
                           imitation_steps=0, stage2_steps=0, counterfactual_steps=3000)
    n_step = _with_intervals(_record("n_step", "patchwork", 12.6, 3.0, {"mAP": 0.85}),
                             [0.83, 0.87], policy="dqn", grid="4,2", cells=True,
                             change_cue=True, imitation_steps=0, stage2_steps=600, n_step=3)
    rows = results.policy_table([sf, imitation, after, dqfd, full, n_step]).splitlines()[2:]
    assert [row.split(" | ")[2] for row in rows[1:]] == [
        "Imitation of the change rule (ours)", "DQN after imitation of the change rule (ours)",
        "DQN with the change rule's demonstrations (ours, DQfD)",
        "Every window's reward (ours, full information)", "DQN, 3-step returns (ours)"]
