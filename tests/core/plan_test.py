"""core/plan: the twin's plan of node classes and its options."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.core import plan as plan_lib

L = tf_keras.layers


def _model(size=32):
    """Frame preprocessing, a 1x1 conv on the frame, a fused ZeroPadding2D + VALID conv,
    batch norm after a linear conv, a global pooling and a dense layer after it."""
    tf_keras.utils.set_random_seed(3)
    inputs = L.Input((size, size, 3))
    x = L.Rescaling(1 / 127.5, -1, name="scale")(inputs)
    x = L.Conv2D(4, 1, name="project")(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = L.Conv2D(8, 3, strides=2, name="down")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return tf_keras.Model(inputs, L.Dense(2, name="logits")(x))


def test_each_layer_gets_its_node_class():
    plan = plan_lib.plan(_model(), pw.WindowGrid((32, 32), 2, 1),
                         plan_lib.Options(fold_batch_norm=True))
    classes = {node.layer.name: type(node) for node in plan.nodes}
    assert classes == {
        "scale": plan_lib.FrameNode, "project": plan_lib.PointwiseNode,
        "down": plan_lib.HaloNode, "bn": plan_lib.FoldedBatchNormNode,
        "relu": plan_lib.PointwiseNode, "pool": plan_lib.GlobalNode,
        "logits": plan_lib.FullNode}
    down = plan.nodes[2]
    assert down.padding_layer.name == "pad" and down.folded is plan.folded["down"]
    assert plan.nodes[1].frame_inputs == (plan.nodes[0].output_ids[0],)  # cropped to windows
    assert plan.state_cells() == ["down", "relu_global"]


def test_strings_and_enums_give_the_same_twin_and_bad_values_are_named():
    model, grid = _model(), pw.WindowGrid((32, 32), 2, 1)
    by_enum = pw.patchwork_model(model, grid, write=plan_lib.Write.BANDS,
                                 context=plan_lib.Context.ZEROS)
    by_string = pw.patchwork_model(model, grid, write="bands", context="zeros")
    assert by_enum.options == by_string.options
    assert type(by_enum.options["write"]) is str and by_enum.options["context"] == "zeros"
    assert by_enum.halo_cells["down"].write is plan_lib.Write.BANDS
    assert pw.patchwork_model(model, grid, inference=True, write=plan_lib.Write.BANDS
                              ).options["inference"]
    with pytest.raises(ValueError, match=r"context must be one of \['memory', 'zeros'\]"):
        pw.patchwork_model(model, grid, context="zero")


def test_padding_before_a_pointwise_valid_conv_runs_on_full_maps():
    """A ZeroPadding2D is fused only into a VALID op with context; before a 1x1 VALID conv
    it is a global layer, and the step still equals the stock model on a static frame."""
    inputs = L.Input((32, 32, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = L.ZeroPadding2D(1, name="pad")(x)
    model = tf_keras.Model(inputs, L.Conv2D(2, 1, name="head")(x))
    twin = pw.patchwork_model(model, pw.WindowGrid((32, 32), 2, 1))
    assert {n.layer.name: n.kind for n in twin._nodes} == {
        "conv": "halo", "pad": "global", "head": "full"}
    frames = tf.random.stateless_uniform((2, 32, 32, 3), (4, 5))
    _, state = twin.warm_start_fn(frames)
    outputs, _ = twin.step_fn(frames, tf.constant([1, 3]), state)
    np.testing.assert_allclose(outputs, model(frames), atol=1e-5)
