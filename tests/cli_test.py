"""The shared flags: defined once in `patchwork_tf.cli`, never again by an entry point."""
import ast
import os

from absl import flags
import pytest

from patchwork_tf import cli
from patchwork_tf import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = ("train", "evaluate", "report", "export", "visualize")


def _shared_flags(backbone=False):
    values = flags.FlagValues()
    cli.define_data_flags(values)
    cli.define_model_flags(backbone, values)
    cli.define_grid_flags(values)
    return values


def test_the_shared_flags_parse_with_their_documented_defaults():
    values = _shared_flags()
    values(["prog", "--frame_size=64", "--m=2"])
    assert (values.task, values.frame_size, values.depth_multiplier) == ("detection", 64, 0.35)
    assert (values.m, values.n, values.data, values.data_dir) == (2, 2, "synthetic", None)
    assert values["m"].present and not values["n"].present
    with pytest.raises(flags.IllegalFlagValueError):
        values["task"].parse(runs.BACKBONE)
    backbone = _shared_flags(backbone=True)
    backbone(["prog", "--task=backbone"])
    assert backbone.task == runs.BACKBONE
    with pytest.raises(flags.UnrecognizedFlagError):
        _shared_flags()(["prog", "--alpha=0.5"])  # one spelling: --depth_multiplier


def _defined_flags(path):
    """(flag name, line) of every flags.DEFINE_* call in a file."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("DEFINE_") and node.args
                and isinstance(node.args[0], ast.Constant)):
            yield node.args[0].value, node.lineno


def test_no_entry_point_defines_a_shared_flag_itself():
    shared = set(_shared_flags(backbone=True)) | {"alpha"}
    redefined = [f"patchwork_tf/{name}.py:{line} defines --{flag}"
                 for name in ENTRY_POINTS
                 for flag, line in _defined_flags(os.path.join(ROOT, "patchwork_tf", f"{name}.py"))
                 if flag in shared]
    assert not redefined, "Define them with patchwork_tf.cli:\n" + "\n".join(redefined)
    assert {flag for flag, _ in _defined_flags(os.path.join(ROOT, "patchwork_tf", "cli.py"))} \
        == shared - {"alpha"}
