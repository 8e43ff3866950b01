r"""Stage 2's replay memory at a flag file's scale: the buffer's bytes and the peak resident memory.

    python tools/replay_memory.py --flagfile=experiments/vid.flags --steps=20

For each way of storing the observation, side by side:

* `memory`: the old storage, each step's full memory of the observed cell [Hl, Wl, C] (the
  environment's observation before `pool_memory`);
* `pooled_memory`: the new one, each window's mean of it [num_actions, C], what the
  Q-network reads (`q_network.pool_observation`).

The tool runs itself once per storage in a fresh process, which allocates the tf-agents replay
buffer at the flag file's `--replay_capacity` x `--num_streams`, runs the stage-2 loop
(`trainer.collect_and_train`: `--initial_collect_steps` random steps per stream, then `--steps`
DDQN train steps of `--sample_batch_size` transitions, a checkpoint at the end) and reports:
the buffer's bytes (its variables), the checkpoint's bytes, the resident memory just before
the buffer is made (VmRSS) and the process's peak (VmHWM, /proc/self/status). The memory's
shape is that of the flag file's model (`--task`, `--frame_size`, `--depth_multiplier`, the
observed cell of `tasks.Task.observed_cell` or `--observed_cell`), built untrained in this process; the
environment is a stand-in that streams random memories of that shape (the twin and the data
are left out, so the numbers are those of the agent, buffer and loop). A storage whose buffer
would not fit in `--memory_limit_gb` (default: 3/4 of MemAvailable) is not run; its buffer's
bytes are then computed from the specs (marked "computed").
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from patchwork_tf import train

FLAGS = flags.FLAGS
MEMORY = "memory"
POOLED = "pooled_memory"
STORAGES = (MEMORY, POOLED)

_STEPS = flags.DEFINE_integer("steps", 20, "DDQN train steps of the stage-2 loop per storage.")
_STORAGE = flags.DEFINE_enum("storage", None, list(STORAGES),
                             "Measure this storage alone, in this process (as the tool runs "
                             "itself per storage).")
_MEMORY_SHAPE = flags.DEFINE_list("memory_shape", None,
                                  "Hl,Wl,C of the observed memory; default: the flag file's "
                                  "model's.")
_MEMORY_LIMIT_GB = flags.DEFINE_float("memory_limit_gb", None,
                                      "Run a storage only if its buffer takes at most this many "
                                      "GB; default: 3/4 of MemAvailable.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Also write the results here as JSON.")

GB = 1e9


def _status_bytes(field):
    """A `kB` field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}; the tool needs Linux.")


def _available_bytes():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable; the tool needs Linux.")


def model_memory_shape(config):
    """`(cell, (Hl, Wl, C))`: the observed cell of the flags' model and its memory's shape."""
    from patchwork_tf import tasks
    from patchwork_tf.core import grid as grid_lib
    from patchwork_tf.core import twin as twin_lib
    from patchwork_tf.training import stage1

    # The memory's shape depends on the architecture alone, not on the data's classes.
    stage1_config = stage1.Stage1Config(
        FLAGS.task, frame_size=(FLAGS.frame_size, FLAGS.frame_size), alpha=FLAGS.depth_multiplier,
        output_stride=FLAGS.output_stride)
    cell = config.observed_cell or tasks.get(stage1_config.task).observed_cell
    grid = grid_lib.WindowGrid(stage1_config.frame_size, config.m, config.n)
    twin = twin_lib.patchwork_model(stage1.build_model(stage1_config), grid,
                                    full_memory_cells=[cell])
    return cell, tuple(int(v) for v in twin.view_shape(cell))


def _setting(config, memory_shape, storage):
    """The stand-in environment, the DDQN agent and the observer of `storage`."""
    import tensorflow as tf
    from tf_agents.environments import tf_environment
    from tf_agents.trajectories import time_step as ts

    from patchwork_tf.core import grid as grid_lib
    from patchwork_tf.policy import agent as agent_lib
    from patchwork_tf.policy import observation as observation_lib
    from patchwork_tf.policy import q_network

    grid = grid_lib.WindowGrid((FLAGS.frame_size, FLAGS.frame_size), config.m, config.n)
    observer = observation_lib.AttentionObservation(
        grid, config.history_alpha, config.change_cue, pool_memory=storage == POOLED)

    class RandomMemoryStreams(tf_environment.TFEnvironment):
        """`num_streams` clips of `clip_length` steps whose observations are built by the
        stage-2 observer from random memories [B, Hl, Wl, C], history and change; random
        rewards."""

        def __init__(self):
            super().__init__(ts.time_step_spec(observer.spec(memory_shape)),
                             q_network.window_action_spec(grid.num_actions),
                             config.num_streams)
            self._index = tf.Variable(0, trainable=False)
            self._random = tf.random.Generator.from_seed(config.seed)

        def _current_time_step(self):
            batch = [config.num_streams]
            index = self._index.value()
            step_type = tf.where(
                tf.equal(index, 0), ts.StepType.FIRST,
                tf.where(tf.equal(index, config.clip_length - 1), ts.StepType.LAST,
                         ts.StepType.MID))
            state = {key: self._random.uniform(batch + [grid.num_actions])
                     for key in (observation_lib.HISTORY, observation_lib.CHANGE)}
            memory = self._random.normal(batch + list(memory_shape))
            return ts.TimeStep(tf.fill(batch, tf.cast(step_type, tf.int32)),
                               self._random.uniform(batch), tf.ones(batch),
                               observer.observation(memory, state))

        def _reset(self):
            self._index.assign(0)
            return self._current_time_step()

        def _step(self, action):
            del action
            self._index.assign((self._index + 1) % config.clip_length)
            return self._current_time_step()

    env = RandomMemoryStreams()
    network = q_network.AttentionQNetwork(
        q_network.observation_spec(memory_shape, grid.num_actions, config.change_cue),
        env.action_spec(), q_network.windows_in_memory(grid, memory_shape),
        fc_layer_params=q_network.Q_NETWORKS[config.q_network],
        per_window=config.q_network in q_network.PER_WINDOW)
    agent = agent_lib.ddqn_agent(
        env.time_step_spec(), env.action_spec(), network, learning_rate=config.learning_rate,
        gamma=config.gamma, target_update_period=config.target_update_period)
    return env, agent


def buffer_bytes_from_specs(config, memory_shape, storage):
    """The bytes `TFUniformReplayBuffer` allocates for the agent's collect data spec:
    `num_streams * replay_capacity` steps, plus its int64 id per step and last id."""
    import tensorflow as tf

    _, agent = _setting(config, memory_shape, storage)
    step = sum(spec.shape.num_elements() * spec.dtype.size
               for spec in tf.nest.flatten(agent.collect_data_spec))
    steps = config.num_streams * config.replay_capacity
    return steps * (step + 8) + 8


def measure(config, memory_shape, storage, steps):
    """Runs the stage-2 loop with `storage` in this process; returns its numbers as a dict."""
    from patchwork_tf.policy import agent as agent_lib
    from patchwork_tf.policy import trainer

    env, agent = _setting(config, memory_shape, storage)
    baseline = _status_bytes("VmRSS")
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, config.num_streams,
                                     config.replay_capacity)
    buffer_bytes = sum(v.shape.num_elements() * v.dtype.size for v in buffer.variables())
    start = time.time()
    with tempfile.TemporaryDirectory() as root:
        result = trainer.collect_and_train(
            root, env, agent, buffer, steps, initial_collect_steps=config.initial_collect_steps,
            sample_batch_size=config.sample_batch_size, checkpoint_interval=max(steps, 1),
            summary_interval=max(steps, 1))
        checkpoints = os.path.join(root, "checkpoints")
        checkpoint_bytes = sum(os.path.getsize(os.path.join(checkpoints, name))
                               for name in os.listdir(checkpoints))
    return {"storage": storage, "run": True, "buffer_bytes": buffer_bytes,
            "checkpoint_bytes": checkpoint_bytes, "baseline_rss": baseline,
            "peak_rss": _status_bytes("VmHWM"), "train_steps": result["train_step"],
            "seconds": time.time() - start}


def _run_child(storage, memory_shape):
    command = [sys.executable, os.path.abspath(__file__), f"--storage={storage}",
               f"--memory_shape={','.join(str(v) for v in memory_shape)}",
               f"--steps={_STEPS.value}"] + [
                   arg for arg in sys.argv[1:] if not arg.startswith(
                       ("--storage", "--memory_shape", "--steps", "--output_json"))]
    # The child imports the same patchwork_tf as this process.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(train.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    process = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{process.stderr[-4000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def _gb(value):
    return f"{value / GB:.3f} GB"


def table(rows, header):
    """The results as aligned text, one row per storage."""
    lines = [header, f"{'storage':<30} {'per step':>10} {'buffer':>14} {'checkpoint':>12} "
                     f"{'RSS before':>12} {'peak RSS':>12} {'peak - before':>14} {'seconds':>8}"]
    for row in rows:
        start = (f"{row['storage'] + ' ' + str(list(row['shape'])):<30} "
                 f"{row['step_bytes'] / 1e3:>7.1f} kB {_gb(row['buffer_bytes']):>14}")
        if row["run"]:
            lines.append(
                f"{start} {row['checkpoint_bytes'] / 1e6:>9.2f} MB {_gb(row['baseline_rss']):>12} "
                f"{_gb(row['peak_rss']):>12} {_gb(row['peak_rss'] - row['baseline_rss']):>14} "
                f"{row['seconds']:>8.1f}")
        else:
            lines.append(f"{start} (computed; not run: {row['reason']})")
    return "\n".join(lines)


def main(argv):
    del argv
    _, config, _ = train.configs_from_flags()
    if _STORAGE.value is not None:
        print(json.dumps(measure(config, tuple(int(v) for v in _MEMORY_SHAPE.value),
                                 _STORAGE.value, _STEPS.value)))
        return
    if _MEMORY_SHAPE.value:
        cell, memory_shape = config.observed_cell, tuple(int(v) for v in _MEMORY_SHAPE.value)
    else:
        cell, memory_shape = model_memory_shape(config)
    limit = (_MEMORY_LIMIT_GB.value * GB if _MEMORY_LIMIT_GB.value is not None
             else 0.75 * _available_bytes())
    num_actions = (config.m - config.n + 1) ** 2
    rows = []
    for storage in STORAGES:
        shape = memory_shape if storage == MEMORY else (num_actions, memory_shape[-1])
        estimate = buffer_bytes_from_specs(config, memory_shape, storage)
        step_bytes = estimate / (config.num_streams * config.replay_capacity)
        row = {"storage": storage, "shape": shape, "step_bytes": step_bytes}
        if estimate > limit:
            row.update(run=False, buffer_bytes=estimate,
                       reason=f"needs {_gb(estimate)}, limit {_gb(limit)}")
        else:
            row.update(_run_child(storage, memory_shape))
        rows.append(row)
    header = (f"Stage-2 replay memory, {config.num_streams} streams x {config.replay_capacity} "
              f"steps, memory of {cell} {list(memory_shape)}, {num_actions} windows, "
              f"{config.initial_collect_steps} random steps per stream + {_STEPS.value} "
              f"train steps of {config.sample_batch_size}")
    print(table(rows, header))
    if _OUTPUT_JSON.value:
        with open(_OUTPUT_JSON.value, "w") as output:
            json.dump({"memory_shape": list(memory_shape), "cell": cell, "rows": rows}, output,
                      indent=2)


if __name__ == "__main__":
    app.run(main)
