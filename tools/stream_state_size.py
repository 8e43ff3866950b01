r"""Bytes of one stream's explicit serving state, whole memories against the compact layout.

    PYTHONPATH=. python tools/stream_state_size.py --task=detection --frame_size=384 \
        --depth_multiplier=1.0 --m=4 --n=2

Builds the exported module of an untrained model (`runs.build_model`, `weights=None`) as
`serving.exporter.export_trained_run` builds a trained run's: the twin with write='bands', the
attention Q-network (`--policy=dqn`, reading the task's observed cell, kept whole) or the
scanning order, and reads the state's size from `ExportableModule.state_spec` twice:
`compact_state=False` (every cell's whole memory, the layout of metadata version 3) and the
default compact layout (`serving.compact_state`). Prints bytes per stream by cell group
(halo cells by stride, the observed cell, global cells, the observer's state,
`next_action`), old against new, in bytes, MB (1e6 bytes) and MiB.

`--time_steps=N` also times `step` on `--streams` streams in both layouts, interleaved in one
process (N steps per round, `--rounds` rounds), and prints the median milliseconds per step
and their ratio with the CPU model: unpacking and packing the compact memories costs time.
"""
import json
import time

from absl import app
from absl import flags

from machine import cpu_model  # tools/machine.py
import numpy as np
import tensorflow as tf

import patchwork_tf as pw
from patchwork_tf import runs
from patchwork_tf.policy import q_network
from patchwork_tf.serving import compact_state
from patchwork_tf.serving import exportable
from patchwork_tf import tasks

_TASK = flags.DEFINE_enum("task", "detection", runs.MODEL_TASKS, "The exported model.")
_FRAME_SIZE = flags.DEFINE_integer("frame_size", 384, "Height = width in pixels.")
_ALPHA = flags.DEFINE_float("depth_multiplier", 1.0, "MobileNetV2 depth multiplier.")
_M = flags.DEFINE_integer("m", 4, "Slices per frame side (Sec. 3.1).")
_N = flags.DEFINE_integer("n", 2, "Slices per window side (Sec. 3.1).")
_WRITE = flags.DEFINE_enum("write", "bands", ("window", "bands"), "The twin's memory writes.")
_POLICY = flags.DEFINE_enum("policy", "dqn", ("dqn", "scanning"),
                            "dqn: the attention Q-network observes its cell, kept whole.")
_CHANGE_CUE = flags.DEFINE_bool("change_cue", True, "The policy observes the change cue.")
_TIME_STEPS = flags.DEFINE_integer("time_steps", 0, "Steps per round to time; 0: sizes only.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds.")
_STREAMS = flags.DEFINE_integer("streams", 1, "Streams per timed step.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Also write the results here.")

MB, MIB = 1e6, 2.0**20


def build_modules(task, frame_size, alpha, m, n, write, policy, change_cue):
    """`(twin, {'full': module, 'compact': module})` of an untrained `task` model."""
    model, postprocess = runs.build_model(task, frame_size, alpha)
    grid = pw.WindowGrid((frame_size, frame_size), m, n)
    observed = None
    if policy == "dqn":
        if task == "backbone":
            raise ValueError("--policy=dqn needs --task=detection or segmentation (the task "
                             "names the observed cell); use --policy=scanning.")
        observed = tasks.get(task).observed_cell
    twin = pw.patchwork_model(model, grid, write=write, fold_batch_norm=True,
                              full_memory_cells=[observed] if observed else [])
    network = q_network.for_twin(twin, observed, change_cue) if observed else None
    modules = {layout: exportable.ExportableModule(
        twin, postprocess=postprocess, policy=network, policy_cell=observed,
        change_cue=change_cue and observed is not None, compact_state=layout == "compact")
        for layout in ("full", "compact")}
    return twin, modules


def _group(twin, key, observed):
    """The cell group of a state key, for the table."""
    for prefix in (exportable.MEMORY_PREFIX, exportable.HALO_PREFIX):
        if key.startswith(prefix):
            cell = key[len(prefix):]
            if cell == observed:
                return f"observed cell {cell}"
            if cell in twin.global_cells:
                return "global cells (outputs, unaligned maps)"
            stride = twin.frame_size[0] // twin.halo_cells[cell].input_size[0]
            return f"halo cells at stride {stride}"
    return "next_action" if key == exportable.NEXT_ACTION else "observer (history, change cue)"


def size_rows(twin, modules):
    """Rows `{group, cells, full_bytes, compact_bytes}` per cell group, and the totals."""
    observed = modules["compact"].policy_cell
    rows = {}
    for layout, module in modules.items():
        for key, spec in module.state_spec().items():
            group = _group(twin, key, observed)
            row = rows.setdefault(group, {"group": group, "cells": 0, "full_bytes": 0,
                                          "compact_bytes": 0})
            row[f"{layout}_bytes"] += compact_state.state_bytes({key: spec})
            row["cells"] += layout == "full" and key.startswith(exportable.MEMORY_PREFIX)
    totals = {layout: module.state_bytes() for layout, module in modules.items()}
    return sorted(rows.values(), key=lambda row: -row["full_bytes"]), totals


def time_steps(modules, frame_size, streams, steps, rounds):
    """Median ms per `step` of each layout, rounds interleaved."""
    rng = np.random.default_rng(0)
    frames = tf.constant(rng.integers(0, 256, (streams, frame_size, frame_size, 3), np.uint8))
    states, times = {}, {layout: [] for layout in modules}
    for layout, module in modules.items():
        warm = module.warm_start(frames)  # traces both signatures
        states[layout] = module.step(frames, {k: warm[k] for k in module.state_keys})
    for _ in range(rounds):
        for layout, module in modules.items():
            for _ in range(steps):
                start = time.perf_counter()
                result = module.step(frames, {k: states[layout][k] for k in module.state_keys})
                result[exportable.NEXT_ACTION].numpy()
                times[layout].append(1e3 * (time.perf_counter() - start))
                states[layout] = result
    return {layout: float(np.median(values)) for layout, values in times.items()}


def main(argv):
    del argv
    twin, modules = build_modules(_TASK.value, _FRAME_SIZE.value, _ALPHA.value, _M.value,
                                  _N.value, _WRITE.value, _POLICY.value, _CHANGE_CUE.value)
    rows, totals = size_rows(twin, modules)
    print(f"{_TASK.value}, MobileNetV2 alpha {_ALPHA.value}, {_FRAME_SIZE.value} px, "
          f"M={_M.value}, N={_N.value}, write={_WRITE.value}, policy {_POLICY.value} "
          f"(observed cell {modules['compact'].policy_cell}), change cue "
          f"{modules['compact'].change_cue}; bytes per stream")
    print(f"{'cell group':42s} {'cells':>5s} {'whole memories':>15s} {'compact':>12s} "
          f"{'compact/whole':>13s}")
    for row in rows:
        print(f"{row['group']:42s} {row['cells']:5d} {row['full_bytes']:15d} "
              f"{row['compact_bytes']:12d} {row['compact_bytes'] / row['full_bytes']:13.4f}")
    for layout in ("full", "compact"):
        print(f"total {layout:7s}: {totals[layout]:12d} bytes = {totals[layout] / MB:8.3f} MB "
              f"= {totals[layout] / MIB:8.3f} MiB")
    print(f"compact / whole: {totals['compact'] / totals['full']:.4f}; goal <= 25 MB (1e6 "
          f"bytes): {'met' if totals['compact'] <= 25 * MB else 'NOT met'}")
    result = {"rows": rows, "totals": totals, "cpu": cpu_model()}
    if _TIME_STEPS.value:
        medians = time_steps(modules, _FRAME_SIZE.value, _STREAMS.value, _TIME_STEPS.value,
                             _ROUNDS.value)
        print(f"step, {_STREAMS.value} stream(s), median of {_ROUNDS.value} x "
              f"{_TIME_STEPS.value} interleaved steps on {cpu_model()}: whole memories "
              f"{medians['full']:.2f} ms, compact {medians['compact']:.2f} ms, compact / "
              f"whole {medians['compact'] / medians['full']:.3f}")
        result["step_ms"] = medians
    if _OUTPUT_JSON.value:
        with open(_OUTPUT_JSON.value, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)
