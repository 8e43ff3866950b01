"""Tests for the attention Q-network (Sec. 3.1, Fig. 3)."""
import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tf_agents.specs import tensor_spec

from patchwork_tf.core.grid import WindowGrid
from patchwork_tf.policy import q_network
from tests.policy import reference_q_network

# A 4x4 memory with C=3 and the M=4, N=2 geometry at this resolution: 9 windows of 2x2 at
# offsets 0, 1, 2.
_WINDOWS = [(i, j, 2, 2) for i in range(3) for j in range(3)]
_ACTION_SPEC = tensor_spec.BoundedTensorSpec((), tf.int32, 0, 8)


def _network(seed=0):
    tf_keras.utils.set_random_seed(seed)
    spec = q_network.observation_spec((4, 4, 3), 9)
    net = q_network.AttentionQNetwork(spec, _ACTION_SPEC, _WINDOWS, projection_units=5,
                                      fc_layer_params=(7,))
    net.create_variables()
    return net


def _observation(batch=2, seed=1):
    rng = np.random.default_rng(seed)
    return {
        "memory": tf.constant(rng.normal(size=(batch, 4, 4, 3)), tf.float32),
        "history": tf.constant(rng.uniform(size=(batch, 9)), tf.float32),
    }


def _cue_network():
    """The network of `_network` with the change cue."""
    tf_keras.utils.set_random_seed(0)
    spec = q_network.observation_spec((4, 4, 3), 9, change_cue=True)
    net = q_network.AttentionQNetwork(spec, _ACTION_SPEC, _WINDOWS, projection_units=5,
                                      fc_layer_params=(7,))
    net.create_variables()
    return net


def _randomize(net, seed=5):
    """Random values in every weight (the scorer starts at zero), so each layer counts."""
    rng = np.random.default_rng(seed)
    for variable in net.variables:
        variable.assign(rng.normal(scale=0.5, size=variable.shape).astype(np.float32))


def _randomized_cue_network():
    net = _cue_network()
    _randomize(net)
    return net


def _variant_twin():
    # M=4, N=2 on 64 pixels; an 8x8x5 memory at stride 8.
    return types.SimpleNamespace(grid=WindowGrid((64, 64), 4, 2),
                                 view_shape=lambda cell: (8, 8, 5))


# Pooling the memory over the windows.


def test_pool_memory_matches_numpy_means_for_any_outer_dims():
    memory = np.random.default_rng(0).normal(size=(2, 3, 4, 4, 3)).astype(np.float32)
    want = np.stack([memory[..., y:y + h, x:x + w, :].mean(axis=(-3, -2))
                     for y, x, h, w in _WINDOWS], axis=-2)
    assert want.shape == (2, 3, 9, 3)
    np.testing.assert_allclose(q_network.pool_memory(memory, _WINDOWS), want,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(q_network.pool_memory(memory[0, 0], _WINDOWS), want[0, 0],
                               rtol=1e-6, atol=1e-6)


# The attention Q-network.


def test_output_shape_for_one_and_two_outer_dims():
    net = _network()
    q_values, state = net(_observation(batch=2))
    assert q_values.shape == (2, 9)
    assert state == ()
    obs = tf.nest.map_structure(lambda t: tf.reshape(t, [1, 2] + t.shape[1:].as_list()),
                                _observation(batch=2))
    q_time, _ = net(obs)
    assert q_time.shape == (1, 2, 9)
    np.testing.assert_allclose(q_time[0], q_values, rtol=1e-6, atol=1e-6)


def test_q_values_depend_on_memory_and_on_history():
    net = _network()
    obs = _observation()
    base, _ = net(obs)
    changed_memory = dict(obs, memory=obs["memory"] + tf.one_hot(0, 4)[:, None, None] * 3.0)
    changed_history = dict(obs, history=1.0 - obs["history"])
    q_memory, _ = net(changed_memory)
    q_history, _ = net(changed_history)
    assert float(tf.reduce_max(tf.abs(q_memory - base))) > 1e-6
    assert float(tf.reduce_max(tf.abs(q_history - base))) > 1e-6


def test_memory_outside_every_window_has_no_effect():
    # Windows that only cover the top-left 3x3 corner ignore row 3 and column 3.
    tf_keras.utils.set_random_seed(0)
    windows = [(0, 0, 2, 2), (1, 1, 2, 2)]
    net = q_network.AttentionQNetwork(
        q_network.observation_spec((4, 4, 3), 2),
        tensor_spec.BoundedTensorSpec((), tf.int32, 0, 1), windows)
    obs = {"memory": tf.random.stateless_normal([1, 4, 4, 3], seed=[2, 3]),
           "history": tf.zeros([1, 2])}
    border = tf.pad(tf.zeros([1, 3, 3, 3]), [[0, 0], [0, 1], [0, 1], [0, 0]],
                    constant_values=5.0)
    np.testing.assert_allclose(net(obs)[0], net(dict(obs, memory=obs["memory"] + border))[0],
                               rtol=1e-6, atol=1e-6)


def test_same_under_tf_function():
    net = _network()
    obs = _observation()
    eager, _ = net(obs)
    graph_fn = tf.function(lambda o: net(o)[0])
    np.testing.assert_allclose(graph_fn(obs), eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(graph_fn(_observation(seed=3)), net(_observation(seed=3))[0],
                               rtol=1e-6, atol=1e-6)
    assert graph_fn.experimental_get_tracing_count() == 1


def test_bad_windows_and_specs_are_refused():
    spec = q_network.observation_spec((4, 4, 3), 9)
    with pytest.raises(ValueError, match="outside the 4x4 memory"):
        q_network.AttentionQNetwork(spec, _ACTION_SPEC, _WINDOWS[:-1] + [(3, 3, 2, 2)])
    with pytest.raises(ValueError, match="must agree"):
        q_network.AttentionQNetwork(spec, _ACTION_SPEC, _WINDOWS[:4])
    with pytest.raises(ValueError, match="input_tensor_spec"):
        q_network.AttentionQNetwork(spec["memory"], _ACTION_SPEC, _WINDOWS)
    with pytest.raises(ValueError, match="h, w > 0"):
        q_network.AttentionQNetwork(spec, _ACTION_SPEC, _WINDOWS[:-1] + [(0, 0, 0, 2)])


def test_windows_in_memory_at_the_memory_stride():
    grid = WindowGrid((64, 64), 4, 2)
    # Stride 8: slices of 16 pixels are 2 cells, windows of 32 pixels are 4 cells.
    assert q_network.windows_in_memory(grid, (8, 8, 5)) == [
        (2 * i, 2 * j, 4, 4) for i in range(3) for j in range(3)]
    with pytest.raises(ValueError, match="whole cells"):
        q_network.windows_in_memory(grid, (2, 2))
    with pytest.raises(ValueError, match="integer stride"):
        q_network.windows_in_memory(grid, (8, 6))


# The change cue.


def test_change_enters_the_q_values_and_the_per_window_scorer():
    net = _cue_network()
    obs = dict(_observation(), change=tf.zeros([2, 9]))
    base, _ = net(obs)
    assert base.shape == (2, 9)
    q_change, _ = net(dict(obs, change=tf.one_hot([4, 4], 9)))
    assert float(tf.reduce_max(tf.abs(q_change - base))) > 1e-6
    # The shared scorer weighs window a's own change alike for every window: with a
    # positive weight on it, raising one window's change raises that window's Q the most.
    scorer = net._window_scorer
    kernel = np.zeros(scorer.kernel.shape, np.float32)
    kernel[5] = 10.0                      # inputs: 5 projected features, change, history
    scorer.kernel.assign(kernel)
    for window in (0, 4, 8):
        q_values, _ = net(dict(obs, change=tf.one_hot([window, window], 9)))
        gain = (q_values - net(obs)[0]).numpy()
        np.testing.assert_array_equal(np.argmax(gain, axis=-1), [window, window])


def test_change_is_read_on_a_log_scale():
    change = np.array([0.0, 1e-3, 0.01, 1.0], np.float32)
    np.testing.assert_allclose(q_network.change_feature(change), np.log(1 + change / 1e-3),
                               rtol=1e-6, atol=1e-6)


def test_change_of_the_wrong_size_is_refused():
    spec = dict(q_network.observation_spec((4, 4, 3), 9),
                change=tensor_spec.TensorSpec((8,), tf.float32))
    with pytest.raises(ValueError, match="change spec"):
        q_network.AttentionQNetwork(spec, _ACTION_SPEC, _WINDOWS)


# Pooled observations: the pooling runs before the replay buffer; same weights, same Q-values.


def test_full_and_pooled_observations_give_the_old_q_values():
    net = _randomized_cue_network()
    rng = np.random.default_rng(4)
    full = dict(_observation(batch=6, seed=2),
                change=tf.constant(rng.uniform(0, 0.05, size=(6, 9)), tf.float32))
    want = reference_q_network.q_values(net, full)
    pooled = q_network.pool_observation(full, _WINDOWS)
    assert set(pooled) == {"pooled_memory", "history", "change"}
    assert pooled["pooled_memory"].shape == (6, 9, 3)
    np.testing.assert_allclose(net(full)[0], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net(pooled)[0], net(full)[0], rtol=1e-6, atol=1e-6)
    # Outer dims [2, 3] (a sampled pair of steps) pool alike.
    paired = tf.nest.map_structure(lambda t: tf.reshape(t, [2, 3] + t.shape[1:]), full)
    np.testing.assert_allclose(net(q_network.pool_observation(paired, _WINDOWS))[0],
                               tf.reshape(want, [2, 3, 9]), rtol=1e-5, atol=1e-5)
    graph_fn = tf.function(lambda o: net(o)[0])
    np.testing.assert_allclose(graph_fn(full), want, rtol=1e-5, atol=1e-5)


def test_specs_of_the_two_forms():
    net = _randomized_cue_network()
    assert net.observation_spec == q_network.observation_spec((4, 4, 3), 9, change_cue=True)
    assert net.input_tensor_spec == q_network.observation_spec((4, 4, 3), 9, change_cue=True,
                                                               pooled=True)
    assert net.input_tensor_spec["pooled_memory"].shape == (9, 3)
    # The target network tf-agents makes by copy() reads both forms too.
    copy = net.copy()
    copy.create_variables()
    for source, target in zip(net.variables, copy.variables):
        target.assign(source)
    obs = dict(_observation(), change=tf.zeros([2, 9]))
    np.testing.assert_allclose(copy(obs)[0], net(q_network.pool_observation(obs, _WINDOWS))[0],
                               rtol=1e-6, atol=1e-6)


def test_checkpoint_keys_are_those_of_earlier_runs(tmp_path):
    # Saved by the network before pooling moved out of it (change cue, one hidden layer):
    # old stage-2/3 checkpoints restore into the new network.
    old_keys = {
        "agent/_q_network/_fc_layers/0/bias/.ATTRIBUTES/VARIABLE_VALUE": [7],
        "agent/_q_network/_fc_layers/0/kernel/.ATTRIBUTES/VARIABLE_VALUE": [63, 7],
        "agent/_q_network/_projection/bias/.ATTRIBUTES/VARIABLE_VALUE": [5],
        "agent/_q_network/_projection/kernel/.ATTRIBUTES/VARIABLE_VALUE": [3, 5],
        "agent/_q_network/_q_value_layer/bias/.ATTRIBUTES/VARIABLE_VALUE": [9],
        "agent/_q_network/_q_value_layer/kernel/.ATTRIBUTES/VARIABLE_VALUE": [7, 9],
        "agent/_q_network/_window_scorer/bias/.ATTRIBUTES/VARIABLE_VALUE": [1],
        "agent/_q_network/_window_scorer/kernel/.ATTRIBUTES/VARIABLE_VALUE": [7, 1],
    }
    net = _randomized_cue_network()
    path = tf.train.Checkpoint(agent=tf.train.Checkpoint(_q_network=net)).save(
        str(tmp_path / "ckpt"))
    keys = {name: shape for name, shape in tf.train.list_variables(path)
            if name.startswith("agent/")}
    assert keys == old_keys


# The heads: the paper's (Sec. 3.1: one final fully connected layer), ours (one more) and the
# per-window one.


def test_paper_head_is_one_dense_layer_on_the_concatenation():
    tf_keras.utils.set_random_seed(0)
    net = q_network.for_twin(_variant_twin(), "cell", variant="paper")
    assert net.fc_layer_params == ()
    assert [v.shape.as_list() for v in net.trainable_variables] == [
        [5, 16], [16], [9 * 16 + 9, 9], [9]]
    _randomize(net)
    rng = np.random.default_rng(0)
    obs = {"memory": rng.normal(size=(3, 8, 8, 5)).astype(np.float32),
           "history": rng.uniform(size=(3, 9)).astype(np.float32)}
    pooled = np.stack([obs["memory"][:, y:y + h, x:x + w].mean(axis=(1, 2))
                       for y, x, h, w in net.windows], axis=1)
    features = np.maximum(pooled @ net._projection.kernel.numpy()
                          + net._projection.bias.numpy(), 0.0)
    concat = np.concatenate([features.reshape(3, -1), obs["history"]], axis=-1)
    want = concat @ net._q_value_layer.kernel.numpy() + net._q_value_layer.bias.numpy()
    np.testing.assert_allclose(net(obs)[0], want, rtol=1e-5, atol=1e-5)


def test_ours_adds_a_hidden_layer_of_64():
    net = q_network.for_twin(_variant_twin(), "cell")
    assert net.fc_layer_params == (64,)
    assert net._fc_layers[0].kernel.shape == (9 * 16 + 9, 64)
    assert net._q_value_layer.kernel.shape == (64, 9)
    with pytest.raises(ValueError, match="variant must be one of"):
        q_network.for_twin(_variant_twin(), "cell", variant="deeper")


def test_window_head_scores_each_window_from_its_own_features():
    tf_keras.utils.set_random_seed(0)
    net = q_network.for_twin(_variant_twin(), "cell", change_cue=True, variant="window")
    assert [v.shape.as_list() for v in net.trainable_variables] == [
        [5, 16], [16], [16 + 2, 16], [16], [16, 1], [1]]
    _randomize(net)
    rng = np.random.default_rng(0)
    obs = {"pooled_memory": rng.normal(size=(3, 9, 5)).astype(np.float32),
           "history": rng.uniform(size=(3, 9)).astype(np.float32),
           "change": rng.uniform(0, 0.05, size=(3, 9)).astype(np.float32)}
    projection, hidden, out = net._projection, net._fc_layers[0], net._q_value_layer
    features = np.maximum(obs["pooled_memory"] @ projection.kernel.numpy()
                          + projection.bias.numpy(), 0.0)
    features = np.concatenate([features, obs["history"][..., None],
                               np.log1p(obs["change"] / 1e-3)[..., None]], -1)
    features = np.maximum(features @ hidden.kernel.numpy() + hidden.bias.numpy(), 0.0)
    want = (features @ out.kernel.numpy() + out.bias.numpy())[..., 0]
    q_values = net(obs)[0]
    np.testing.assert_allclose(q_values, want, rtol=1e-5, atol=1e-5)
    # No layer across windows: permuting the windows' features permutes the Q-values.
    order = rng.permutation(9)
    permuted = {key: value[:, order] for key, value in obs.items()}
    np.testing.assert_allclose(net(permuted)[0], tf.gather(q_values, order, axis=1),
                               rtol=1e-6, atol=1e-5)
