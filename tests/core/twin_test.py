"""The Patchwork twin against the stock Keras model (invariants A and B, docs/design.md section 4)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from tests.core import small_models

L = tf_keras.layers


def _mobilenet(size, alpha=0.35, include_top=False):
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, include_top=include_top, weights=None)
    return small_models.calibrate_batch_norm(model)


def _general_cnn(size=64):
    """A CNN with an SE block, 5x5 depthwise, separable, dilated conv, max and avg pooling."""
    tf_keras.utils.set_random_seed(1)
    inputs = L.Input((size, size, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    x = L.MaxPooling2D(3, strides=1, padding="same", name="max_same")(x)
    y = L.DepthwiseConv2D(5, padding="same", name="dw5")(x)
    squeeze = L.GlobalAveragePooling2D(keepdims=True, name="se_pool")(y)
    squeeze = L.Conv2D(4, 1, activation="relu", name="se_reduce")(squeeze)
    squeeze = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(squeeze)
    y = L.Multiply(name="se_gate")([y, squeeze])
    x = L.Add(name="residual")([x, y])
    x = L.SeparableConv2D(12, 3, strides=2, padding="same", name="sep")(x)
    x = L.Conv2D(12, 3, padding="same", dilation_rate=2, name="dilated")(x)
    z = L.AveragePooling2D(3, strides=1, padding="same", name="avg_same")(x)
    x = L.Concatenate(name="concat")([x, z])
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = L.Conv2D(16, 3, strides=2, padding="valid", name="down")(x)
    x = L.MaxPooling2D(2, name="pool2")(x)
    return small_models.calibrate_batch_norm(tf_keras.Model(inputs, x, name="general"))


def _assert_close(actual, expected, rtol=1e-4):
    for a, e in zip(tf.nest.flatten(actual), tf.nest.flatten(expected)):
        scale = max(float(np.max(np.abs(e))), 1e-6)
        np.testing.assert_allclose(a, e, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("alpha, size, include_top, fold", [
    (0.35, 64, False, False), (0.5, 96, True, False), (1.0, 64, False, False),
    (0.35, 100, True, False), (1.0, 64, False, True), (0.35, 100, True, True),
])
def test_invariant_a_full_frame_step_equals_stock(alpha, size, include_top, fold):
    model = _mobilenet(size, alpha, include_top)
    twin = pw.patchwork_model(model, pw.WindowGrid((size, size), 1, 1), fold_batch_norm=fold)
    frames = tf.random.stateless_uniform((2, size, size, 3), (1, 2), -1, 1)
    outputs, _ = twin.step_fn(frames, tf.constant([0, 0]), twin.initial_state(2))
    # Folded batch norm rounds differently: the tolerance of invariant B.
    _assert_close(outputs, model(frames), rtol=1e-4 if fold else 1e-5)


@pytest.mark.parametrize("size, m, n, write, fold, jit", [
    (128, 2, 1, "window", False, False), (128, 4, 2, "window", False, False),
    (128, 4, 1, "window", False, False), (96, 4, 2, "window", False, False),
    (128, 4, 2, "bands", False, False), (96, 4, 1, "bands", False, False),
    (128, 4, 2, "bands", True, False), (96, 4, 1, "window", True, False),
    (96, 4, 2, "bands", True, True),  # the XLA twin's cells (shifts, scattered ring), eager
])
def test_invariant_b_warm_start_every_window_exact(size, m, n, write, fold, jit):
    model = _mobilenet(size)
    grid = pw.WindowGrid((size, size), m, n)
    twin = pw.patchwork_model(model, grid, write=write, fold_batch_norm=fold, jit_compile=jit)
    frames = tf.random.stateless_uniform((2, size, size, 3), (3, 4), -1, 1)
    expected = model(frames)
    outputs, state = twin.warm_start_fn(frames)
    _assert_close(outputs, expected)
    for action in range(grid.num_actions):
        actions = tf.constant([action, grid.num_actions - 1 - action])  # different windows
        outputs, state = twin.step_fn(frames, actions, state)
        _assert_close(outputs, expected)


@pytest.mark.slow
@pytest.mark.parametrize("write", ["window", "bands"])
def test_invariant_b_from_zeros_after_scan_cycles(write):
    """Stale halos propagate through the layers: here the last window's output is exact
    after 5 raster scans from zero memories, every window's from the 6th (measured; after 4
    scans the error is still 3e-3 of the output's scale)."""
    size, grid = 128, pw.WindowGrid((128, 128), 4, 2)
    model = _mobilenet(size)
    twin = pw.patchwork_model(model, grid, write=write)
    frames = tf.random.stateless_uniform((1, size, size, 3), (5, 6), -1, 1)
    expected = model(frames)
    step = tf.function(twin.step_fn)
    state = twin.initial_state(1)
    for _ in range(5):
        for action in range(grid.num_actions):
            outputs, state = step(frames, tf.constant([action]), state)
    for action in range(grid.num_actions):
        outputs, state = step(frames, tf.constant([action]), state)
        _assert_close(outputs, expected)


@pytest.mark.parametrize("m, n, write, fold", [
    (1, 1, "window", False), (2, 1, "window", False), (4, 2, "window", False),
    (4, 2, "bands", False), (4, 2, "bands", True)])
def test_general_cnn_twin_is_exact(m, n, write, fold):
    model = _general_cnn(64)
    grid = pw.WindowGrid((64, 64), m, n)
    twin = pw.patchwork_model(model, grid, write=write, fold_batch_norm=fold)
    assert {"stem", "max_same", "dw5", "sep", "dilated", "avg_same", "down"} <= set(
        twin.halo_cells)
    assert "dw5_global" in twin.global_cells  # the SE block's global pooling
    frames = tf.random.stateless_uniform((2, 64, 64, 3), (7, 8), -1, 1)
    expected = model(frames)
    _, state = twin.warm_start_fn(frames)
    for action in range(grid.num_actions):
        outputs, state = twin.step_fn(frames, tf.constant([action, 0]), state)
        _assert_close(outputs, expected)


@pytest.mark.parametrize("m, n, write, fold, jit", [
    (1, 1, "window", False, False), (2, 1, "window", False, False),
    (4, 1, "bands", False, False), (4, 2, "bands", True, True)])
def test_dilated_cnn_twin_is_exact(m, n, write, fold, jit):
    """Invariants A (M = N = 1, from zero memories) and B (every window after a warm start)
    for dilated SAME convs, whose halo is `dilation * (kernel - 1) / 2`: at M = 4 the d4
    depthwise conv's halo (4 cells) is wider than a window (2 cells)."""
    model = small_models.dilated_model(64)
    grid = pw.WindowGrid((64, 64), m, n)
    twin = pw.patchwork_model(model, grid, write=write, fold_batch_norm=fold, jit_compile=jit)
    assert {"dw_d2", "dw_d4", "dw5_d23", "conv_d2"} <= set(twin.halo_cells)
    assert twin.halo_cells["dw_d4"].geometry.crop_size((2, 2)) == (10, 10)
    assert twin.halo_cells["dw5_d23"].geometry.crop_size((2, 2)) == (10, 14)
    frames = tf.random.stateless_uniform((2, 64, 64, 3), (7, 9), -1, 1)
    expected = model(frames)
    if m == 1:
        outputs, _ = twin.step_fn(frames, tf.constant([0, 0]), twin.initial_state(2))
        _assert_close(outputs, expected, rtol=1e-5)
        return
    _, state = twin.warm_start_fn(frames)
    for action in range(grid.num_actions):
        actions = tf.constant([action, grid.num_actions - 1 - action])
        outputs, state = twin.step_fn(frames, actions, state)
        _assert_close(outputs, expected)


def _check_invariants(model, size, m, n, write="window", frame_range=(-1.0, 1.0)):
    """Invariant A (M = N = 1, from zero memories) and B (every window of an M, N grid after
    a warm start, two streams on different windows)."""
    frames = tf.random.stateless_uniform((2, size, size, 3), (7, 9), *frame_range)
    expected = model(frames)
    twin = pw.patchwork_model(model, pw.WindowGrid((size, size), 1, 1))
    outputs, _ = twin.step_fn(frames, tf.constant([0, 0]), twin.initial_state(2))
    _assert_close(outputs, expected, rtol=1e-5)
    grid = pw.WindowGrid((size, size), m, n)
    twin = pw.patchwork_model(model, grid, write=write)
    _, state = twin.warm_start_fn(frames)
    for action in range(grid.num_actions):
        actions = tf.constant([action, grid.num_actions - 1 - action])
        outputs, state = twin.step_fn(frames, actions, state)
        _assert_close(outputs, expected)
    return twin


def test_elementwise_tf_ops_run_on_windows():
    """`TFOpLambda` ops with scalars, same-shape tensors or a [B, 1, 1, C] broadcast are
    pointwise; the frame's preprocessing (`x / 127.5 - 1`) runs on the whole frame, so the
    first conv still crops its halo from the current frame and keeps no memory."""
    model = small_models.elementwise_ops_model(32)
    twin = _check_invariants(model, 32, 2, 1, "bands", (0.0, 255.0))
    kinds = {node.layer.name: node.kind for node in twin._nodes}
    assert [kinds[l.name] for l in model.layers[1:3]] == ["frame", "frame"]
    assert kinds["tf.math.multiply_1"] == "pointwise"  # the SE gate, a broadcast
    assert "conv" in twin.halo_cells and "conv" not in twin.initial_state(1)
    one, other = (model(tf.random.stateless_uniform((1, 32, 32, 3), (seed, 0), 0, 255))
                  for seed in (1, 2))
    assert float(tf.reduce_max(tf.abs(one - other))) > 0.1 * float(tf.reduce_max(tf.abs(one)))


@pytest.mark.parametrize("op, message", [
    (lambda x: tf.reduce_mean(x, axis=-1, keepdims=True), r"TFOpLambda \(math.reduce_mean\)"),
    (lambda x: x * np.arange(32, dtype=np.float32)[:, None], r"TFOpLambda \(math.multiply\)"),
    (lambda x: x + L.Cropping2D(((0, 0), (0, 31)))(x), r"TFOpLambda \(__operators__.add\)"),
])
def test_refuses_tf_ops_not_verifiably_elementwise(op, message):
    """A reduction, a constant that varies along a map axis, a broadcast along rows: each
    reads other cells or depends on the position, so it is refused with its name and op."""
    inputs = L.Input((32, 32, 3))
    x = L.Conv2D(4, 3, padding="same")(inputs)
    model = tf_keras.Model(inputs, L.Conv2D(4, 3, padding="same")(op(x)))
    with pytest.raises(ValueError, match="'tf.*' of type " + message):
        pw.patchwork_model(model, pw.WindowGrid((32, 32), 2, 1))


def test_normalization_over_a_map_axis_runs_on_full_maps():
    inputs = L.Input((32, 32, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = L.Normalization(axis=(2, 3), mean=np.zeros((32, 4)), variance=np.ones((32, 4)),
                        name="norm_wc")(x)
    model = tf_keras.Model(inputs, L.Conv2D(4, 3, padding="same", name="head")(x))
    twin = pw.patchwork_model(model, pw.WindowGrid((32, 32), 2, 1))
    assert {n.layer.name: n.kind for n in twin._nodes} == {
        "conv": "halo", "norm_wc": "global", "head": "full"}


def _keras_application(name, size):
    """A stock tf_keras application at `size` px with calibrated batch norms. They rescale
    their [0, 255] input themselves (`Rescaling`, EfficientNet's `Normalization` too)."""
    tf_keras.utils.set_random_seed(0)
    kwargs = dict(input_shape=(size, size, 3), include_top=False, weights=None)
    if name.startswith("MobileNetV3"):
        kwargs.update(alpha=0.35, minimalistic=False)
    model = getattr(tf_keras.applications, name)(**kwargs)
    return small_models.calibrate_batch_norm(model, value_range=(0.0, 255.0))


@pytest.mark.parametrize("name, stem, write", [
    ("MobileNetV3Small", "Conv", "window"), ("MobileNetV3Large", "Conv", "bands"),
    ("EfficientNetB0", "stem_conv", "bands")])
def test_mobilenet_v3_and_efficientnet_twins_are_exact(name, stem, write):
    """Hard-swish (`TFOpLambda` add and multiply), squeeze-and-excite (global pooling, a
    GlobalCell, feeding a broadcast multiply on the window), 5x5 stride-2 depthwise convs
    behind `ZeroPadding2D`, and the models' own input scaling."""
    size = 64
    model = _keras_application(name, size)
    twin = _check_invariants(model, size, 2, 1, write, (0.0, 255.0))
    assert stem in twin.halo_cells and stem not in twin.initial_state(1)
    assert len(twin.global_cells) > 5  # the squeeze-and-excite poolings
    one, other = (model(tf.random.stateless_uniform((1, size, size, 3), (seed, 0), 0, 255))
                  for seed in (1, 2))
    assert float(tf.reduce_max(tf.abs(one - other))) > 0.5 * float(tf.reduce_max(tf.abs(one)))


def test_window_is_fresh_and_context_is_memory():
    """After a warm start on frame A, a step on frame B equals the stock model on A with the
    window's pixels replaced by B's, in the window and far from it (1-layer model)."""
    inputs = L.Input((32, 32, 3))
    conv = L.Conv2D(4, 3, padding="same", name="conv")
    x = L.Conv2D(4, 1, name="pointwise")(inputs)
    model = tf_keras.Model(inputs, conv(x))
    grid = pw.WindowGrid((32, 32), 2, 1)
    twin = pw.patchwork_model(model, grid)
    frame_a = tf.random.stateless_uniform((1, 32, 32, 3), (1, 1))
    frame_b = tf.random.stateless_uniform((1, 32, 32, 3), (2, 2))
    _, state = twin.warm_start_fn(frame_a)
    outputs, _ = twin.step_fn(frame_b, tf.constant([3]), state)
    composite = frame_a.numpy()
    composite[:, 16:, 16:] = frame_b.numpy()[:, 16:, 16:]
    expected = model(composite).numpy()
    np.testing.assert_allclose(outputs[:, 16:, 16:], expected[:, 16:, 16:], atol=1e-5)
    np.testing.assert_allclose(outputs[:, :15, :15], model(frame_a)[:, :15, :15], atol=1e-5)


@pytest.mark.parametrize("write, jit_compile, fold", [
    ("window", False, False), ("bands", False, False), ("bands", True, False)])
@pytest.mark.slow
def test_stateful_api_matches_functional_api(write, jit_compile, fold):
    """The stateful step scatters into its variables in place (or, under XLA, updates them
    through aliasing); either way it must follow the functional step exactly."""
    size, grid = 64, pw.WindowGrid((64, 64), 2, 1)
    model = _mobilenet(size)
    name = "block_3_depthwise"
    twin = pw.patchwork_model(model, grid, write=write, jit_compile=jit_compile,
                              full_memory_cells=[name], fold_batch_norm=fold)
    frames = tf.random.stateless_uniform((2, size, size, 3), (9, 9), -1, 1)
    twin.reset_states(2)
    _assert_close(twin.warm_start(frames), model(frames))
    functional_out, state = twin.warm_start_fn(frames)
    moved = tf.reverse(frames, axis=[2])
    for action in (0, 3, 1):
        stateful = twin.step(moved, tf.constant([action, 2]))
        functional_out, state = twin.step_fn(moved, tf.constant([action, 2]), state)
        # The stateful step runs as a graph (fused conv kernels), the functional one
        # eagerly: they round differently.
        _assert_close(stateful, functional_out)
    np.testing.assert_allclose(twin.memory(name), twin.memory_view(state, name), atol=1e-5)
    memory = twin.memory(name)
    assert memory.shape[0] == 2 and memory.shape[-1] == twin.memory_shape(name)[-1]
    twin.reset_states(2)
    assert float(tf.reduce_max(tf.abs(twin.memory(name)))) == 0.0


@pytest.mark.slow
def test_xla_step_compiles_once_for_every_action():
    """No op of the XLA step may need the action as a compile-time constant (a slice start,
    say): XLA would then compile the step anew for each action. Its HLO must not depend on
    the action's value."""
    twin = pw.patchwork_model(_mobilenet(64), pw.WindowGrid((64, 64), 2, 1), jit_compile=True,
                              write="bands")
    twin.reset_states(1)
    frames = tf.zeros((1, 64, 64, 3))
    hlo = [twin._step_tf.experimental_get_compiler_ir(frames, tf.constant([a]))(stage="hlo")
           for a in (0, 3)]
    assert hlo[0] == hlo[1]


@pytest.mark.slow
def test_inference_preset_sets_the_fastest_options_and_matches_the_default_twin():
    """`inference=True` is the preset (XLA, band writes, folded batch norm); over a stream of
    changing frames from zero memories that visits every window twice, its stateful step
    gives the default twin's outputs (and observed memory) within the rounding of folded
    batch norm."""
    size, grid, name = 64, pw.WindowGrid((64, 64), 2, 1), "block_3_depthwise"
    model = _mobilenet(size)
    default = pw.patchwork_model(model, grid)
    fast = pw.patchwork_model(model, grid, inference=True, full_memory_cells=[name])
    assert default.options == dict(jit_compile=False, write="window", fold_batch_norm=False,
                                   context="memory", full_memory_cells=[], inference=False)
    assert fast.options == dict(jit_compile=True, write="bands", fold_batch_norm=True,
                                context="memory", full_memory_cells=[name], inference=True)
    assert {n for n, cell in fast.halo_cells.items() if cell.write == "window"} == {name}
    assert fast.folded_variables
    default.reset_states(1)
    fast.reset_states(1)
    for t, action in enumerate(list(range(grid.num_actions)) * 2):
        frames = tf.random.stateless_uniform((1, size, size, 3), (5, t), -1, 1)
        _assert_close(fast.step(frames, tf.constant([action])),
                      default.step(frames, tf.constant([action])))
    _assert_close(fast.memory(name), default.memory(name))


def test_inference_preset_refuses_contradicting_options_and_gradients():
    model = small_models.conv_bn_model()
    grid = pw.WindowGrid((8, 8), 2, 1)
    for option in (dict(jit_compile=False), dict(write="window"), dict(fold_batch_norm=False)):
        with pytest.raises(ValueError, match="contradicts.*inference preset|inference preset"):
            pw.patchwork_model(model, grid, inference=True, **option)
    # The preset's own values, and the options it does not set, are fine.
    twin = pw.patchwork_model(model, grid, inference=True, write="bands", context="zeros")
    assert twin.options["inference"] and twin.options["context"] == "zeros"
    # A folded step is a snapshot of the weights: differentiating through it is refused.
    frames = tf.random.stateless_uniform((1, 8, 8, 3), (1, 1), -1, 1)
    with tf.GradientTape() as tape:
        tape.watch(frames)
        outputs, _ = twin.step_fn(frames, tf.constant([0]), twin.initial_state(1))
    with pytest.raises(LookupError, match="not differentiable.*patchwork_model"):
        tape.gradient(outputs, frames)
    # The default twin is the differentiable one.
    default = pw.patchwork_model(model, grid)
    with tf.GradientTape() as tape:
        tape.watch(frames)
        outputs, _ = default.step_fn(frames, tf.constant([0]), default.initial_state(1))
    assert tape.gradient(outputs, frames) is not None


def test_twin_shares_the_stock_weights():
    model = _mobilenet(64)
    twin = pw.patchwork_model(model, pw.WindowGrid((64, 64), 1, 1))
    frames = tf.random.stateless_uniform((1, 64, 64, 3), (1, 3), -1, 1)
    before, _ = twin.step_fn(frames, tf.constant([0]), twin.initial_state(1))
    kernel = model.get_layer("Conv1").kernel
    kernel.assign(kernel * 2.0)
    after, _ = twin.step_fn(frames, tf.constant([0]), twin.initial_state(1))
    _assert_close(after, model(frames), rtol=1e-5)
    assert not np.allclose(before, after)


def test_refuses_unsupported_layer_with_name_and_type():
    inputs = L.Input((32, 32, 3))
    x = L.Conv2D(4, 3, padding="same")(inputs)
    x = L.Lambda(lambda t: t * 2.0, name="doubler")(x)
    model = tf_keras.Model(inputs, x)
    with pytest.raises(ValueError, match="'doubler' of type Lambda"):
        pw.patchwork_model(model, pw.WindowGrid((32, 32), 2, 1))


def test_bad_inputs_get_clear_errors():
    model = _mobilenet(64)
    with pytest.raises(ValueError, match="64x64 frames but the grid is for 128x128"):
        pw.patchwork_model(model, pw.WindowGrid((128, 128), 2, 1))
    twin = pw.patchwork_model(model, pw.WindowGrid((64, 64), 2, 1))
    with pytest.raises(RuntimeError, match="reset_states"):
        twin.step(tf.zeros((1, 64, 64, 3)), tf.constant([0]))
    twin.reset_states(1)
    with pytest.raises(ValueError, match=r"frames must be \[batch, 64, 64, 3\]"):
        twin.step(tf.zeros((1, 32, 32, 3)), tf.constant([0]))
    with pytest.raises(ValueError, match="must be float"):
        twin.step(tf.zeros((1, 64, 64, 3), tf.uint8), tf.constant([0]))
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        twin.step(tf.zeros((1, 64, 64, 3)), tf.constant([4]))
    with pytest.raises(ValueError, match="reset_states\\(2\\)"):
        twin.step(tf.zeros((2, 64, 64, 3)), tf.constant([0, 1]))


def test_band_twin_observes_only_full_memory_cells():
    model = _mobilenet(64)
    grid = pw.WindowGrid((64, 64), 2, 1)
    twin = pw.patchwork_model(model, grid, write="bands",
                              full_memory_cells=["block_13_depthwise"])
    twin.reset_states(1)
    frames = tf.random.stateless_uniform((1, 64, 64, 3), (4, 4), -1, 1)
    twin.step(frames, tf.constant([1]))
    memory = twin.memory("block_13_depthwise").numpy()
    assert np.any(memory[0, :2, 2:] != 0) and np.all(memory[0, 2:, :] == 0)
    with pytest.raises(ValueError, match="full_memory_cells"):
        twin.memory("block_1_depthwise")
    with pytest.raises(ValueError, match="not halo cells"):
        pw.patchwork_model(model, grid, full_memory_cells=["nonexistent"])


def test_zero_context_ablation_is_the_stock_model_on_the_plain_crop():
    """Tab. 2 without Patchwork Cells: the window's output is the stock model on the crop."""
    model = _mobilenet(128)
    crop_model = tf_keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)
    crop_model.set_weights(model.get_weights())
    grid = pw.WindowGrid((128, 128), 2, 1)
    twin = pw.patchwork_model(model, grid, context="zeros")
    assert set(twin.initial_state(1)) == set(twin.global_cells)  # no halo memories
    frames = tf.random.stateless_uniform((2, 128, 128, 3), (2, 5), -1, 1)
    outputs, _ = twin.step_fn(frames, tf.constant([1, 2]), twin.initial_state(2))
    # Action 1 is the top-right window, action 2 the bottom-left; the output stride is 32.
    expected_1 = crop_model(frames[:1, :64, 64:])
    expected_2 = crop_model(frames[1:, 64:, :64])
    _assert_close(outputs[:1, :2, 2:], expected_1, rtol=1e-5)
    _assert_close(outputs[1:, 2:, :2], expected_2, rtol=1e-5)
    assert float(tf.reduce_max(tf.abs(outputs[:1, 2:]))) == 0.0  # never seen: still zero


def test_fold_batch_norm_folds_only_a_batch_norm_right_after_a_linear_conv():
    """In MobileNetV2 every batch norm follows a linear conv; in the general CNN only the
    stem's does (its other convs have no batch norm). The fold rule's refusals are tested
    in flops_test.py (`folding.foldable_batch_norms`)."""
    model = _mobilenet(64)
    twin = pw.patchwork_model(model, pw.WindowGrid((64, 64), 2, 1), fold_batch_norm=True)
    batch_norms = [l.name for l in model.layers if isinstance(l, L.BatchNormalization)]
    assert sorted(n.layer.name for n in twin._nodes if n.kind == "folded_bn") == sorted(
        batch_norms)
    general = pw.patchwork_model(_general_cnn(64), pw.WindowGrid((64, 64), 2, 1),
                                 fold_batch_norm=True)
    assert list(general._folded) == ["stem"]


@pytest.mark.parametrize("alpha, size, include_top", [(0.35, 128, False), (1.0, 64, False),
                                                      (0.5, 96, True)])
def test_the_test_models_outputs_depend_on_their_input(alpha, size, include_top):
    """The exactness tests above compare against these models; were their outputs nearly
    constant (a random MobileNetV2 with made-up batch-norm statistics), a twin that got the
    halo wrong would pass them."""
    model = _mobilenet(size, alpha, include_top)
    one, other = (model(tf.random.stateless_uniform((1, size, size, 3), (seed, 0), -1, 1))
                  for seed in (1, 2))
    assert float(tf.reduce_max(tf.abs(one - other))) > 0.5 * float(tf.reduce_max(tf.abs(one)))


def test_the_dilated_test_model_depends_on_its_input():
    model = small_models.dilated_model(64)
    one, other = (model(tf.random.stateless_uniform((1, 64, 64, 3), (seed, 0), -1, 1))
                  for seed in (1, 2))
    assert float(tf.reduce_max(tf.abs(one - other))) > 0.5 * float(tf.reduce_max(tf.abs(one)))
