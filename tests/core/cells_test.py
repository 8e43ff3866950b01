"""The Patchwork Cells against the stock layers they stand in front of (Sec. 3.2)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from patchwork_tf.core import cells
from patchwork_tf.core.grid import Window

L = tf_keras.layers

LAYERS = {
    "conv3x3": lambda: L.Conv2D(5, 3, padding="same", activation="relu"),
    "conv3x3_stride2": lambda: L.Conv2D(5, 3, strides=2, padding="same"),
    "conv3x3_dilation2": lambda: L.Conv2D(5, 3, padding="same", dilation_rate=2),
    "depthwise5x5": lambda: L.DepthwiseConv2D(5, padding="same"),
    "depthwise3x3_stride2": lambda: L.DepthwiseConv2D(3, strides=2, padding="same"),
    "separable3x3": lambda: L.SeparableConv2D(6, 3, padding="same"),
    "maxpool3x3_same": lambda: L.MaxPooling2D(3, strides=1, padding="same"),
    "maxpool2x2": lambda: L.MaxPooling2D(2),
    "avgpool3x3_same": lambda: L.AveragePooling2D(3, strides=1, padding="same"),
    "conv1x1_stride2": lambda: L.Conv2D(5, 1, strides=2, padding="same"),
}


def _composite(base, window_source, offsets, size):
    """`base` with each stream's window replaced by `window_source`'s (numpy)."""
    out = base.copy()
    for b, (y0, x0) in enumerate(offsets):
        out[b, y0:y0 + size[0], x0:x0 + size[1]] = window_source[b, y0:y0 + size[0],
                                                                 x0:x0 + size[1]]
    return out


@pytest.mark.parametrize("write, ring_assembly, batch_known", [
    ("window", "concat", True), ("bands", "concat", True), ("bands", "scatter", True),
    ("bands", "concat", False)])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_halo_cell_equals_stock_layer_on_the_memory_frame(name, write, ring_assembly,
                                                          batch_known):
    """Memory from frame A, window from frame B: the cell's output is the stock layer on
    "A with the window replaced by B", restricted to the window; per stream windows. With
    `batch_known=False` the cell runs in a graph traced for any batch size."""
    rng = np.random.default_rng(0)
    layer = LAYERS[name]()
    frame_a = rng.normal(size=(2, 16, 16, 3)).astype(np.float32) - 0.5
    frame_b = rng.normal(size=(2, 16, 16, 3)).astype(np.float32) + 0.5
    layer.build(frame_a.shape)
    windows = [Window(y, x, 8, 8) for y in (0, 4, 8) for x in (0, 4, 8)]
    actions = np.array([5, 6], np.int32)  # corners (4, 8) and (8, 0)
    offsets = np.array([(windows[a].y0, windows[a].x0) for a in actions])
    size = (8, 8)
    cell = cells.HaloCell(layer, (16, 16), windows, write=write, ring_assembly=ring_assembly)
    memory = cell.pad_full_map(tf.constant(frame_a))
    window_b = tf.stack([frame_b[b, y:y + 8, x:x + 8] for b, (y, x) in enumerate(offsets)])
    if batch_known:
        outputs, new_memory = cell((window_b, tf.constant(actions), memory))
    else:
        run = tf.function(lambda w, a, m: cell((w, a, m)), input_signature=[
            tf.TensorSpec((None,) + window_b.shape[1:]), tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((None,) + memory.shape[1:])])
        outputs, new_memory = run(window_b, tf.constant(actions), memory)

    composite = _composite(frame_a, frame_b, offsets, size)
    expected_full = layer(composite).numpy()
    stride = cell.geometry.stride[0]
    for b, (y0, x0) in enumerate(offsets // stride):
        rows, cols = size[0] // stride, size[1] // stride
        np.testing.assert_allclose(outputs[b], expected_full[b, y0:y0 + rows, x0:x0 + cols],
                                   rtol=1e-5, atol=1e-5)
    if cell.write == "window":
        np.testing.assert_array_equal(cell.pad_full_map(tf.constant(composite)), new_memory)
    else:  # the bands other windows read are fresh
        padded = cell.pad_full_map(tf.constant(composite)).numpy()
        (top, _), (left, _) = cell.geometry.pad
        for b, a in enumerate(actions):
            for y, x in cell._band_tables[a]:
                y1, x1 = windows[a].y0 + y + top, windows[a].x0 + x + left
                np.testing.assert_array_equal(new_memory[b, y1, x1], padded[b, y1, x1])


@pytest.mark.parametrize("name", ["avgpool3x3_same", "maxpool3x3_same", "conv3x3_stride2"])
def test_zero_context_cell_is_the_stock_layer_on_the_plain_window(name):
    """Tab. 2 ablation: with context 'zeros' the window is processed as if it were the whole
    image (SAME average pooling then counts only the window's own cells)."""
    layer = LAYERS[name]()
    frame = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype(np.float32)
    layer.build(frame.shape)
    windows = [Window(y, x, 8, 8) for y in (0, 4, 8) for x in (0, 4, 8)]
    actions = np.array([4, 8], np.int32)
    cell = cells.HaloCell(layer, (16, 16), windows, context="zeros")
    window = tf.stack([frame[b, windows[a].y0:windows[a].y0 + 8, windows[a].x0:windows[a].x0 + 8]
                       for b, a in enumerate(actions)])
    outputs, _ = cell((window, tf.constant(actions), None))
    np.testing.assert_allclose(outputs, layer(window), rtol=1e-5, atol=1e-6)


def test_band_writes_cover_every_halo_read_hand_worked():
    """3x3 conv on a 16-wide map, windows of 8 at 0, 4, 8: halos are the row / col just
    outside each window, -1, 3, 7 above / left and 8, 12, 16 below / right. Inside the
    window at (4, 4) that is global 7 and 8, local 3 and 4."""
    windows = [Window(y, x, 8, 8) for y in (0, 4, 8) for x in (0, 4, 8)]
    cell = cells.HaloCell(L.Conv2D(1, 3, padding="same"), (16, 16), windows, write="bands")
    band = {tuple(p) for p in cell._band_tables[4]}  # window at (4, 4): local rows/cols 0..7
    read = {3, 4}
    assert band == {(y, x) for y in range(8) for x in range(8) if y in read or x in read}


@pytest.mark.parametrize("context", ["memory", "zeros"])
def test_deferred_window_writes_return_the_window_and_the_same_outputs(context):
    """Under `deferred_window_writes` a cell crops the memory as given with the fresh window
    laid over it: the outputs of the in-graph write, the window in place of the memory; a
    cell named in `in_graph` still writes."""
    rng = np.random.default_rng(3)
    windows = [Window(y, x, 8, 8) for y in (0, 4, 8) for x in (0, 4, 8)]
    layer = L.DepthwiseConv2D(3, padding="same", name="dw")
    cell = cells.HaloCell(layer, (16, 16), windows, context=context)
    memory = tf.constant(rng.normal(size=(2, 18, 18, 3)), tf.float32)
    window = tf.constant(rng.normal(size=(2, 8, 8, 3)), tf.float32)
    actions = tf.constant([4, 2])
    want_out, want_memory = cell((window, actions, memory))
    with cells.deferred_window_writes():
        out, written = cell((window, actions, memory))
    np.testing.assert_allclose(out, want_out, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(written, window)
    with cells.deferred_window_writes(in_graph=["dw"]):
        _, kept = cell((window, actions, memory))
    np.testing.assert_array_equal(kept, want_memory)

def test_halo_cell_zero_padding_valid_pattern():
    """Keras MobileNetV2's stride-2 blocks: ZeroPadding2D((0, 1), (0, 1)) + VALID depthwise."""
    rng = np.random.default_rng(1)
    pad = ((0, 1), (0, 1))
    layer = L.DepthwiseConv2D(3, strides=2, padding="valid")
    frame = rng.normal(size=(1, 16, 16, 4)).astype(np.float32)
    expected = layer(L.ZeroPadding2D(pad)(frame)).numpy()
    windows = [Window(y, x, 8, 8) for y in (0, 8) for x in (0, 8)]
    cell = cells.HaloCell(layer, (16, 16), windows, pad)
    memory = cell.pad_full_map(tf.zeros_like(frame))
    for action, win in enumerate(windows):
        out, memory = cell((frame[:, win.y0:win.y0 + 8, win.x0:win.x0 + 8],
                            tf.constant([action]), memory))
    # After the scan, the last window's output is exact and so is the memory.
    np.testing.assert_allclose(out[0], expected[0, 4:8, 4:8], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(memory, cell.pad_full_map(tf.constant(frame)))


def test_global_cell_writes_only_the_window():
    cell = cells.GlobalCell((6, 6), [Window(0, 0, 2, 3), Window(4, 3, 2, 3)])
    memory = cell.initial_memory(2, 1)
    window = tf.ones((2, 2, 3, 1))
    memory = cell((window, tf.constant([0, 1]), memory)).numpy()
    expected = np.zeros((2, 6, 6, 1), np.float32)
    expected[0, 0:2, 0:3] = 1
    expected[1, 4:6, 3:6] = 1
    np.testing.assert_array_equal(memory, expected)


def test_initial_memory_border_is_the_padding_value():
    cell = cells.HaloCell(L.MaxPooling2D(3, strides=1, padding="same"), (4, 4),
                          [Window(0, 0, 4, 4)])
    memory = cell.initial_memory(1, 2).numpy()
    assert memory.shape == (1, 6, 6, 2)
    assert np.all(memory[:, 1:5, 1:5] == 0) and np.all(memory[:, 0] == -np.inf)


def test_config_round_trip():
    layer = L.Conv2D(3, 3, strides=2, padding="valid")
    windows = [Window(0, 0, 4, 4), Window(4, 4, 4, 4)]
    cell = cells.HaloCell(layer, (8, 8), windows, ((0, 1), (0, 1)), write="bands", name="c")
    clone = cells.HaloCell.from_config(cell.get_config())
    assert clone.geometry == cell.geometry and clone.memory_size == (9, 9)
    assert clone.windows == cell.windows and clone.write == "bands"
    global_cell = cells.GlobalCell((3, 4), [Window(0, 0, 3, 4)])
    assert cells.GlobalCell.from_config(global_cell.get_config()).map_size == (3, 4)


@pytest.mark.parametrize("batch", [1, 3, None])
def test_stream_indices_follow_each_streams_action(batch):
    """Per-action tables gathered by action equal the indices built from each stream's
    corner, with static batch sizes 1 and 3 and a batch size known only at run time."""
    corners = [(0, 0), (2, 5), (4, 1)]
    table = np.array([[[(0, y0 + i, x0 + j) for j in range(3)] for i in range(2)]
                      for y0, x0 in corners], np.int32)
    actions = tf.constant([2, 0, 1], tf.int32)[:batch or 3]
    trace = tf.function(lambda a: cells.stream_indices(table, a),
                        input_signature=[tf.TensorSpec([batch], tf.int32)])
    indices = trace(actions).numpy()
    for b, a in enumerate(actions.numpy()):
        y0, x0 = corners[a]
        expected = [[(b, y0 + i, x0 + j) for j in range(3)] for i in range(2)]
        np.testing.assert_array_equal(indices[b], expected)
    shared = np.array([[0, 1, 2], [0, 3, 4]], np.int32)  # the same points for every stream
    trace = tf.function(lambda a: cells.with_batch_index(shared, a),
                        input_signature=[tf.TensorSpec([batch], tf.int32)])
    indices = trace(actions).numpy()
    np.testing.assert_array_equal(
        indices, [[(b, 1, 2), (b, 3, 4)] for b in range(len(actions))])


@pytest.mark.parametrize("name", ["conv3x3", "conv3x3_stride2", "maxpool3x3_same",
                                  "depthwise5x5"])
def test_crop_from_map_equals_the_crop_of_the_padded_map(name):
    """Slicing the in-map part and padding only that equals cropping the padded map, for
    every action (the frame's border windows included) and per stream."""
    layer = LAYERS[name]()
    layer.build((None, 16, 16, 3))
    windows = [Window(y, x, 8, 8) for y in (0, 4, 8) for x in (0, 4, 8)]
    cell = cells.HaloCell(layer, (16, 16), windows)
    full_map = tf.random.stateless_uniform((2, 16, 16, 3), (5, 6))
    for action in range(len(windows)):
        actions = tf.constant([action, len(windows) - 1 - action])
        np.testing.assert_array_equal(cell.crop_from_map(full_map, actions),
                                      cell.crop_from(cell.pad_full_map(full_map), actions))


@pytest.mark.parametrize("cell_type", [cells.HaloCell, cells.GlobalCell])
def test_cells_are_registered_keras_serializable(cell_type):
    assert tf_keras.saving.get_registered_name(cell_type) == f"patchwork_tf>{cell_type.__name__}"
    windows = [Window(0, 0, 4, 4), Window(4, 4, 4, 4)]
    cell = (cells.HaloCell(L.MaxPooling2D(3, strides=2, padding="same"), (8, 8), windows,
                           write=cells.Write.BANDS, context="zeros", name="c")
            if cell_type is cells.HaloCell else cells.GlobalCell((8, 8), windows, name="c"))
    # No custom_objects: the registration alone finds the class.
    clone = tf_keras.saving.deserialize_keras_object(
        tf_keras.saving.serialize_keras_object(cell))
    assert type(clone) is cell_type and clone.get_config() == cell.get_config()


def test_model_with_cells_saves_and_loads_with_the_same_outputs(tmp_path):
    """A functional model of a halo cell (the stock conv's weights inside) and a global cell,
    saved as .keras and loaded without custom_objects, gives the same outputs and memories."""
    windows = [Window(y, x, 4, 4) for y in (0, 4) for x in (0, 4)]
    window, actions = L.Input((4, 4, 3), batch_size=2), L.Input((), 2, dtype=tf.int32)
    memory, full_map = L.Input((10, 10, 3), batch_size=2), L.Input((8, 8, 3), batch_size=2)
    halo = cells.HaloCell(L.Conv2D(5, 3, padding="same"), (8, 8), windows, write="bands",
                          name="halo")
    outputs, new_memory = halo((window, actions, memory))
    assembled = cells.GlobalCell((8, 8), windows, name="assemble")((window, actions, full_map))
    model = tf_keras.Model([window, actions, memory, full_map],
                           [outputs, new_memory, assembled])
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(2, 4, 4, 3)).astype(np.float32), np.array([1, 2], np.int32),
              rng.normal(size=(2, 10, 10, 3)).astype(np.float32),
              rng.normal(size=(2, 8, 8, 3)).astype(np.float32)]
    model.save(tmp_path / "cells.keras")
    loaded = tf_keras.models.load_model(tmp_path / "cells.keras")
    assert isinstance(loaded.get_layer("halo"), cells.HaloCell)
    np.testing.assert_array_equal(loaded.get_layer("halo").op_layer.kernel, halo.op_layer.kernel)
    for got, want in zip(loaded(inputs), model(inputs)):
        np.testing.assert_array_equal(got, want)


def test_option_strings_and_enums_are_the_same_and_bad_values_are_named():
    layer = L.Conv2D(2, 3, padding="same")
    windows = [Window(0, 0, 4, 4), Window(0, 4, 4, 4)]
    by_string = cells.HaloCell(layer, (4, 8), windows, write="bands", context="zeros")
    by_enum = cells.HaloCell(layer, (4, 8), windows, write=cells.Write.BANDS,
                             context=cells.Context.ZEROS)
    assert by_string.write is by_enum.write is cells.Write.BANDS
    assert by_string.context is by_enum.context is cells.Context.ZEROS
    assert by_string.get_config()["write"] == "bands"  # plain strings in the config
    with pytest.raises(ValueError, match=r"write must be one of \['window', 'bands'\].*'band'"):
        cells.HaloCell(layer, (4, 8), windows, write="band")
    with pytest.raises(ValueError, match=r"context must be one of \['memory', 'zeros'\]"):
        cells.HaloCell(layer, (4, 8), windows, context=None)


def test_traffic_hand_worked():
    """3x3 conv on a 16 x 16 map, 8 x 8 windows at 0, 4, 8, 4 channels: a window write moves
    8 * 8 * 4 elements and the crop (8 + 2)^2 * 4; band writes move the rows and columns
    other halos read (see test_band_writes_cover_every_halo_read_hand_worked): the window
    at (4, 4) has 2 such rows and columns, 8 * 8 - 6 * 6 = 28 pixels, the most of any."""
    windows = [Window(y, x, 8, 8) for y in (0, 4, 8) for x in (0, 4, 8)]
    layer = L.Conv2D(1, 3, padding="same")
    window_cell = cells.HaloCell(layer, (16, 16), windows)
    assert window_cell.traffic((1, 8, 8, 4)) == (8 * 8 * 4, 10 * 10 * 4)
    band_cell = cells.HaloCell(layer, (16, 16), windows, write="bands")
    assert band_cell.traffic((1, 8, 8, 4)) == (28 * 4, 10 * 10 * 4)
