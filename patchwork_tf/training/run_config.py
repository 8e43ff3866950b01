"""A run's settings as JSON in its directory: written once, checked on every resume."""
import dataclasses
import json
import os

import tensorflow as tf


def load(model_dir, filename, config_class, missing_hint):
    """The `config_class` dataclass stored as `model_dir/filename`.

    Raises:
      FileNotFoundError: naming the file and `missing_hint` (what writes it).
    """
    path = os.path.join(model_dir, filename)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: {missing_hint}")
    with tf.io.gfile.GFile(path) as f:
        return config_class(**json.load(f))


def store(model_dir, filename, config, extensible=()):
    """Writes `config` (a dataclass) as `model_dir/filename`; if one is stored already (a
    resume), first checks that the two agree on every field but those in `extensible`.

    Raises:
      ValueError: naming each differing field as (stored, given).
    """
    path = os.path.join(model_dir, filename)
    if tf.io.gfile.exists(path):
        stored = load(model_dir, filename, type(config), "")
        diff = {k: (v, getattr(config, k)) for k, v in dataclasses.asdict(stored).items()
                if getattr(config, k) != v and k not in extensible}
        if diff:
            raise ValueError(
                f"{model_dir!r} holds a run with other settings, (stored, given): {diff}. "
                "Resume with the stored settings or use a new model_dir.")
    tf.io.gfile.makedirs(model_dir)
    values = {k: list(v) if isinstance(v, tuple) else v
              for k, v in dataclasses.asdict(config).items()}
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(values, f, indent=2, sort_keys=True)
