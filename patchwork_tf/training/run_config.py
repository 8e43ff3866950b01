"""A run's settings as JSON in its directory: written once, checked on every resume."""
import dataclasses
import json
import os

import tensorflow as tf


def load_values(model_dir, filename, missing_hint):
    """The dict stored as `model_dir/filename`.

    Raises:
      FileNotFoundError: naming the file and `missing_hint` (what writes it).
    """
    path = os.path.join(model_dir, filename)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: {missing_hint}")
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def load(model_dir, filename, config_class, missing_hint):
    """The `config_class` dataclass stored as `model_dir/filename` (see `load_values`)."""
    return config_class(**load_values(model_dir, filename, missing_hint))


def _json_values(config):
    values = config if isinstance(config, dict) else dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def store(model_dir, filename, config, extensible=(), load_stored=None):
    """Writes `config` as `model_dir/filename`; if one is stored already (a resume), first
    checks that the two agree on every field but those in `extensible`.

    Args:
      config: a dataclass, or a dict of its JSON values.
      load_stored: `model_dir -> ` the stored config, as `config` is given (with the defaults
        of fields the file lacks); None loads a dataclass of `type(config)`.

    Raises:
      ValueError: naming each differing field as (stored, given).
    """
    path = os.path.join(model_dir, filename)
    values = _json_values(config)
    if tf.io.gfile.exists(path):
        stored = _json_values(load_stored(model_dir) if load_stored
                              else load(model_dir, filename, type(config), ""))
        diff = {k: (v, values.get(k)) for k, v in stored.items()
                if values.get(k) != v and k not in extensible}
        if diff:
            raise ValueError(
                f"{model_dir!r} holds a run with other settings, (stored, given): {diff}. "
                "Resume with the stored settings or use a new model_dir.")
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(values, f, indent=2, sort_keys=True)
