"""The flags the entry points share, each defined once: the same name, type, default and
meaning in `train`, `evaluate`, `report`, `export` and `visualize`.

Each function defines its flags in `flag_values` (absl's global `FLAGS` by default). This
module only defines flags; the entry points map them onto the library's plain arguments,
and the library never reads them.
"""
from absl import flags

from patchwork_tf import runs
from patchwork_tf import tasks
from patchwork_tf.training import sources

FRAME_SIZE = 128
DEPTH_MULTIPLIER = 0.35
GRID = (4, 2)


def define_data_flags(flag_values=flags.FLAGS):
    """--data (a `training.sources.SOURCES` name) and --data_dir (a real source's copy)."""
    flags.DEFINE_enum("data", sources.SYNTHETIC, list(sources.SOURCES),
                      "Data source: the embedded synthetic benchmark, or a local copy of a real "
                      "data set under --data_dir (evaluated on its val split by the official "
                      "protocol).", flag_values=flag_values)
    flags.DEFINE_string("data_dir", None, "Root of the real data source's local copy.",
                        flag_values=flag_values)


def define_model_flags(backbone=False, flag_values=flags.FLAGS):
    """--task, --frame_size and --depth_multiplier: the single-frame model of a new run, of an
    untrained model, or of clips evaluated. `backbone` also accepts --task=backbone (the
    bare MobileNetV2, `runs.BACKBONE`)."""
    choices = list(runs.MODEL_TASKS if backbone else tasks.TASKS)
    flags.DEFINE_enum("task", tasks.DetectionTask.name, choices, "The model's task.",
                      flag_values=flag_values)
    flags.DEFINE_integer("frame_size", FRAME_SIZE, "Frame height = width in pixels.",
                         flag_values=flag_values)
    flags.DEFINE_float("depth_multiplier", DEPTH_MULTIPLIER,
                       "MobileNetV2 depth multiplier (its alpha).", flag_values=flag_values)


def define_grid_flags(flag_values=flags.FLAGS):
    """--m and --n: the window grid (Sec. 3.1). An entry point reading a trained run takes
    the run's grid unless the flag is given."""
    flags.DEFINE_integer("m", GRID[0], "Grid slices per frame side (Sec. 3.1).",
                         flag_values=flag_values)
    flags.DEFINE_integer("n", GRID[1], "Slices per window side (Sec. 3.1).",
                         flag_values=flag_values)
