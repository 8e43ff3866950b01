"""What an exported Patchwork SavedModel records about itself, for evaluation and serving.

A SavedModel keeps its signatures' tensors but not what they were built from: the task, the
window grid, the attention policy and the FLOPs of Sec. 4's theoretical latency, which need
the Keras model and the twin's traced step to count. `describe` writes them down at export
time; `export_saved_model` stores the record as a JSON string returned by the SavedModel's
`metadata` function (and signature), and `read` gets it back with TensorFlow alone:

  json.loads(tf.saved_model.load(export_dir).metadata().numpy())

The record (`VERSION` 4; version 3 kept every cell's whole memory in the explicit state;
version 2 took frames of `frame_size` only and named predictions `boxes`, `scores`, 0-based
int `classes`, `mask`, `probability`):

| key              | meaning                                                               |
|------------------|-----------------------------------------------------------------------|
| `version`        | `VERSION`                                                             |
| `task`           | the exporter's task ('detection', 'segmentation', 'backbone') or None |
| `frame_size`     | `[H, W]` the model runs at; frames of any size are resized to it      |
| `predictions`    | the prediction names the signatures return (`serving.exportable`)     |
| `m`, `n`         | the window grid (Sec. 3.1); `num_actions` its windows                 |
| `policy`         | 'dqn' (greedy argmax of the exported Q-network) or 'scanning'         |
| `policy_cell`    | the cell the Q-network observes (layer L), None for 'scanning'        |
| `scan_order`     | the scanning order of the windows, None for 'dqn'                     |
| `history_alpha`  | alpha of the action history, Eq. 1                                    |
| `change_cue`     | whether the policy observes the change cue (`policy.observation`)     |
| `fold_batch_norm`| whether the step runs batch norm folded into the convs before it      |
| `state`          | the explicit state of `initial_state` / `step` / `warm_start`:        |
|                  | `layout` 'compact' (halo cells as `halo_<cell>`, only the pixels      |
|                  | later steps read, `serving.compact_state`) or 'full' (whole memories),|
|                  | `bytes_per_stream` its size for one stream                            |
| `flops`          | `step`: one window step of the twin (`core.flops.step_flops`);        |
|                  | `full_frame`: the stock model's pass, what `warm_start` runs          |
|                  | (`core.flops.model_flops`); `policy`: one Q-network call (TF profiler |
|                  | count, `evaluation.flops.function_flops`) plus the change cue's       |
|                  | analytic count, 0 for scanning. Batch 1.                              |

plus what the exporter adds (`extra`), e.g. a detector's `num_classes` and NMS settings.
"""
import json

from patchwork_tf.core import flops as flops_lib
from patchwork_tf.evaluation import flops as decision_flops_lib

VERSION = 4
REQUIRED_KEYS = ("version", "task", "frame_size", "predictions", "m", "n", "num_actions",
                 "policy", "policy_cell", "scan_order", "history_alpha", "change_cue",
                 "fold_batch_norm", "state", "flops")
FLOPS_KEYS = ("step", "full_frame", "policy")


def _q_values(output):
    return output[0] if isinstance(output, tuple) else output


def policy_flops(module):
    """FLOPs of one decision of an `ExportableModule`'s policy (batch 1): the Q-network and
    the change cue it observes; 0 without a policy."""
    if module.policy is None:
        return 0
    return decision_flops_lib.decision_flops(
        module.observer, module.twin.view_shape(module.policy_cell),
        lambda observation: _q_values(module.policy(observation)))


def describe(module, task=None, extra=None):
    """The metadata record of an `ExportableModule` (see the module docstring).

    Args:
      module: the `ExportableModule` to be saved.
      task: the task name the exporter built the model for, or None.
      extra: dict of further JSON-serialisable entries; may not redefine the keys above.

    Returns:
      A JSON-serialisable dict.
    """
    twin = module.twin
    grid = twin.grid
    record = {
        "version": VERSION,
        "task": task,
        "frame_size": [int(v) for v in module.frame_size],
        "predictions": list(module.prediction_keys),
        "m": int(grid.m),
        "n": int(grid.n),
        "num_actions": int(module.num_actions),
        "policy": "scanning" if module.policy is None else "dqn",
        "policy_cell": module.policy_cell,
        "scan_order": None if module.policy is not None else module.scan_order,
        "history_alpha": float(module.alpha),
        "change_cue": bool(module.change_cue),
        "fold_batch_norm": twin.fold_batch_norm,
        "state": {"layout": "compact" if module.compact_state else "full",
                  "bytes_per_stream": int(module.state_bytes())},
        "flops": {
            "step": int(flops_lib.step_flops(twin).flops),
            "full_frame": int(flops_lib.model_flops(twin.keras_model).flops),
            "policy": int(policy_flops(module)),
        },
    }
    clash = set(extra or {}) & set(record)
    if clash:
        raise ValueError(f"extra metadata may not redefine {sorted(clash)}; those keys are "
                         "computed from the module.")
    record.update(extra or {})
    return record


def read(loaded, export_dir="the SavedModel"):
    """The metadata record of a SavedModel loaded with `tf.saved_model.load`.

    Raises:
      ValueError: the SavedModel has no `metadata` function (exported before it was
        recorded) or its record lacks keys or has another version; the fix is to re-export.
    """
    reexport = ("Re-export it with this version of patchwork_tf: python -m patchwork_tf.export "
                "--export_dir=... (--model_dir=<train run> or the model flags it was exported "
                "with).")
    if not hasattr(loaded, "metadata"):
        raise ValueError(
            f"{export_dir} has no Patchwork metadata (the `metadata` function with task, grid, "
            f"policy and FLOPs): it was exported before patchwork_tf recorded them. {reexport}")
    record = json.loads(loaded.metadata().numpy())
    missing = [k for k in REQUIRED_KEYS if k not in record] + [
        f"flops.{k}" for k in FLOPS_KEYS if k not in record.get("flops", {})]
    if missing or record.get("version") != VERSION:
        raise ValueError(
            f"The metadata of {export_dir} is version {record.get('version')} and lacks "
            f"{missing}; this patchwork_tf reads version {VERSION}. {reexport}")
    return record
