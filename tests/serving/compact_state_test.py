"""The compact serving state: it keeps what later steps read, and the outputs do not change."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf import runs
from patchwork_tf.serving import compact_state
from patchwork_tf.serving import exportable
from patchwork_tf import tasks
from tests.core import small_models

L = tf_keras.layers


def _pooling_cnn(size=32):
    """Convs, SAME max pooling (memory padded with -inf), a padded VALID stride-2 conv and
    SAME average pooling: halo cells of every padding kind."""
    tf_keras.utils.set_random_seed(2)
    inputs = L.Input((size, size, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem")(inputs)
    x = L.MaxPooling2D(3, strides=1, padding="same", name="max_same")(x)
    x = L.DepthwiseConv2D(5, padding="same", name="dw5")(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = L.Conv2D(8, 3, strides=2, padding="valid", name="down")(x)
    x = L.AveragePooling2D(3, strides=1, padding="same", name="avg_same")(x)
    return small_models.calibrate_batch_norm(tf_keras.Model(inputs, x, name="pooling"))


def _mobilenet(size=64):
    tf_keras.utils.set_random_seed(0)
    return small_models.calibrate_batch_norm(tf_keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=0.35, include_top=False, weights=None))


def _random_memory(cell, channels, seed):
    """A memory as a warm start leaves it: random inside the frame, the op's padding around."""
    inside = tf.random.stateless_uniform((2,) + cell.input_size + (channels,), (seed, 1), -1, 1)
    return cell.pad_full_map(inside)


@pytest.mark.parametrize("build, size, m, n", [
    (_pooling_cnn, 32, 4, 2), pytest.param(_mobilenet, 64, 2, 1, marks=pytest.mark.slow)])
@pytest.mark.parametrize("write", ["bands", "window"])
def test_unpacked_memories_give_every_action_the_crop_of_the_original(build, size, m, n, write):
    twin = pw.patchwork_model(build(size), pw.WindowGrid((size, size), m, n), write=write)
    codec = compact_state.StateCodec(twin)
    assert codec.compact_cells == [c for c in twin.halo_cells if c in twin.state_spec()]
    fills = set()
    for seed, cell_name in enumerate(codec.compact_cells):
        cell = twin.halo_cells[cell_name]
        fills.add(float(cell.fill_value))
        channels = twin.memory_shape(cell_name)[-1]
        memory = _random_memory(cell, channels, seed)
        packed = codec.pack({cell_name: memory})[cell_name]
        points = codec.points(cell_name)
        assert packed.shape == (2, len(points), channels)
        unpacked = codec.unpack({cell_name: packed})[cell_name]
        assert unpacked.shape == memory.shape
        if cell.write == "bands":
            # The step's own ring tables: every in-frame pixel any action reads from memory.
            (top, _), (left, _) = cell.geometry.pad
            ring = {(y, x) for table in cell._ring_in_memory for _, y, x in table
                    if top <= y < top + cell.input_size[0]
                    and left <= x < left + cell.input_size[1]}
            assert {tuple(p) for p in points} == ring, cell_name
        # What each action's step reads and computes: the same from both memories.
        window = tf.random.stateless_uniform(
            (2,) + cell.window_size + (channels,), (seed, 2), -1, 1)
        for action in range(twin.grid.num_actions):
            actions = tf.constant([action, (action + 1) % twin.grid.num_actions])
            expected, _ = cell((window, actions, memory))
            got, _ = cell((window, actions, unpacked))
            np.testing.assert_array_equal(got, expected, err_msg=f"{cell_name} {action}")
    if build is _pooling_cnn:
        assert fills == {0.0, -np.inf}


def test_full_cells_stay_whole_and_unknown_cells_are_refused():
    twin = pw.patchwork_model(_pooling_cnn(), pw.WindowGrid((32, 32), 4, 2), write="bands",
                              full_memory_cells=["dw5"])
    codec = compact_state.StateCodec(twin, full_cells=["dw5"])
    assert "dw5" in codec.full_cells and "dw5" not in codec.compact_cells
    spec = codec.spec(3)
    assert spec["dw5"].shape == (3,) + twin.memory_shape("dw5")
    initial = codec.initial_state(3)
    expected = codec.pack(twin.initial_state(3))
    for cell in spec:
        assert initial[cell].shape == spec[cell].shape
        np.testing.assert_array_equal(initial[cell], expected[cell])
    with pytest.raises(ValueError, match=r"full_cells \['nope'\] are not cells with memories"):
        compact_state.StateCodec(twin, full_cells=["nope"])


class _HistoryQ(tf.Module):
    """Q = mean of the observed memory per channel @ W - 5 * history, W ~ N(0, 1 / channels):
    it reads the memory and moves on from windows it processed lately."""

    def __init__(self, channels, num_actions):
        super().__init__(name="history_q")
        rng = np.random.default_rng(1)
        self.kernel = tf.Variable(rng.normal(0, channels**-0.5, (channels, num_actions))
                                  .astype(np.float32))

    def __call__(self, observation):
        mean = tf.reduce_mean(observation["memory"], axis=[1, 2])
        return mean @ self.kernel - 5.0 * observation["history"]


@pytest.mark.slow
@pytest.mark.parametrize("task, size, m, n, with_policy", [
    ("detection", 128, 4, 2, False), ("segmentation", 64, 2, 1, True)])
def test_compact_state_streams_equal_whole_memory_streams(task, size, m, n, with_policy):
    model, postprocess = runs.build_model(task, size, 0.35)
    model = small_models.calibrate_batch_norm(model)
    grid = pw.WindowGrid((size, size), m, n)
    observed = tasks.get(task).observed_cell
    twin = pw.patchwork_model(model, grid, write="bands",
                              full_memory_cells=[observed] if with_policy else [])
    kwargs = dict(postprocess=postprocess)
    if with_policy:
        channels = twin.memory_shape(observed)[-1]
        kwargs.update(policy=_HistoryQ(channels, grid.num_actions), policy_cell=observed)
    else:
        # Scanning starts at 0; stream 1 starts elsewhere (below).
        kwargs.update(scan_order=list(range(grid.num_actions))[::-1])
    modules = {compact: exportable.ExportableModule(twin, compact_state=compact, **kwargs)
               for compact in (True, False)}
    compact_keys = [k for k in modules[True].state_keys if k.startswith("halo_")]
    assert compact_keys and modules[True].state_bytes() < 0.5 * modules[False].state_bytes()

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (grid.num_actions + 4, 2, size, size, 3), np.uint8)
    states = {compact: module.initial_state(tf.constant(2))
              for compact, module in modules.items()}
    for state in states.values():
        state["next_action"] = tf.constant([0, grid.num_actions // 2], tf.int32)
    taken = set()
    for t in range(frames.shape[0]):
        results = {}
        for compact, module in modules.items():
            if t == 1:
                results[compact] = module.warm_start(frames[t])
            else:
                results[compact] = module.step(
                    frames[t], {k: states[compact][k] for k in module.state_keys})
        compact, full = results[True], results[False]
        for key in modules[True].prediction_keys + ["action", "next_action"]:
            np.testing.assert_array_equal(compact[key], full[key], err_msg=f"{key} at {t}")
        for key in compact_keys:
            cell = key[len("halo_"):]
            points = compact_state.halo_points(twin.halo_cells[cell])
            whole = full["memory_" + cell].numpy()
            np.testing.assert_array_equal(compact[key], whole[:, points[:, 0], points[:, 1]])
        taken.update(compact["action"].numpy().tolist())
        states = {True: compact, False: full}
    assert taken - {-1} == set(range(grid.num_actions)), "the stream should visit every window"
