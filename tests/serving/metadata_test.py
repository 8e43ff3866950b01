"""Reading an export's metadata record back: what is refused and why."""
import json
import types

import pytest
import tensorflow as tf

from patchwork_tf.serving import metadata


def _loaded(record):
    return types.SimpleNamespace(metadata=lambda: tf.constant(json.dumps(record)))


def _record():
    return {"version": metadata.VERSION, "task": "detection", "frame_size": [64, 64],
            "predictions": ["detection_boxes", "detection_classes", "detection_scores",
                            "num_detections"],
            "m": 2, "n": 1, "num_actions": 4, "policy": "dqn", "policy_cell": "block_6_depthwise",
            "scan_order": None, "history_alpha": 0.5, "change_cue": False, "fold_batch_norm": True,
            "state": {"layout": "compact", "bytes_per_stream": 1000},
            "flops": {"step": 3, "full_frame": 9, "policy": 1}, "num_classes": 5}


def test_a_complete_record_reads_back_as_written():
    assert metadata.read(_loaded(_record())) == _record()


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(version=0), r"version 0 and lacks \[\]"),
    (lambda r: r.pop("policy"), r"lacks \['policy'\]"),
    # A version 2 export: frames of the training size only, the project's prediction names.
    (lambda r: (r.update(version=2), r.pop("predictions")),
     r"version 2 and lacks \['predictions'\]"),
    (lambda r: r["flops"].pop("full_frame"), r"lacks \['flops.full_frame'\]"),
    # A version 3 export: whole memories in the explicit state, not recorded.
    (lambda r: (r.update(version=3), r.pop("state")), r"version 3 and lacks \['state'\]"),
])
def test_another_version_or_missing_keys_ask_for_a_reexport(change, message):
    record = _record()
    change(record)
    with pytest.raises(ValueError, match=message + ".*Re-export"):
        metadata.read(_loaded(record), "/exports/det")


def test_no_metadata_function_asks_for_a_reexport():
    with pytest.raises(ValueError, match="/exports/old has no Patchwork metadata.*Re-export"):
        metadata.read(types.SimpleNamespace(), "/exports/old")
