"""core/keras_graph: the functional graph as plain data, and the only home of tf_keras internals."""
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf
from patchwork_tf.core import keras_graph

L = tf_keras.layers
PRIVATE_API = re.compile(r"tf_keras\.src|_inbound_nodes|_nodes_by_depth|_keras_history|"
                         r"_nested_outputs|_is_graph_network")


def test_no_other_module_touches_tf_keras_internals():
    package = pathlib.Path(patchwork_tf.__file__).parent
    offenders = sorted(
        str(path.relative_to(package)) for path in package.rglob("*.py")
        if PRIVATE_API.search(path.read_text()) and path.name != "keras_graph.py")
    assert offenders == []
    assert PRIVATE_API.search((package / "core" / "keras_graph.py").read_text())


def _branchy_model():
    inputs = L.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(4, 1, name="b")(inputs)
    c = L.Add(name="c")([a, b])
    d = L.ReLU(name="d")(c)
    pooled = L.GlobalAveragePooling2D(name="pooled")(d)
    return tf_keras.Model(inputs, {"map": d, "vector": pooled})


def test_ordered_nodes_run_in_order_reproduce_the_model():
    """Each node's inputs come from the model input or an earlier node, and calling the
    nodes in order with `GraphNode.call` gives the model's outputs in their structure."""
    model = _branchy_model()
    nodes = keras_graph.ordered_nodes(model)
    assert sorted(n.layer.name for n in nodes) == ["a", "b", "c", "d", "pooled"]
    frames = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    env = {keras_graph.tensor_id(model.inputs[0]): tf.constant(frames)}
    for node in nodes:
        assert all(i in env for i in node.input_ids), node.layer.name
        for i, y in zip(node.output_ids, tf.nest.flatten(node.call(env))):
            env[i] = y
    got = keras_graph.structured_outputs(model, env)
    want = model(frames)
    assert set(got) == {"map", "vector"}
    for key in got:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6)


def test_single_call_producer_and_tensor_kinds():
    inputs = L.Input((8, 8, 3))
    shared = L.Conv2D(3, 1, name="shared")
    once = L.ReLU(name="once")
    y = once(shared(shared(inputs)))
    model = tf_keras.Model(inputs, y)
    assert not keras_graph.single_call(shared) and keras_graph.single_call(once)
    assert keras_graph.producer(y) is once
    assert keras_graph.is_keras_tensor(y) and not keras_graph.is_keras_tensor(tf.ones(1))
    assert keras_graph.is_functional(model)
    assert not keras_graph.is_functional(tf_keras.Sequential())  # not yet a graph


@pytest.mark.parametrize("args", [(), (np.float32(2.0),)])
def test_graph_node_call_keeps_non_tensor_arguments(args):
    """A `TFOpLambda` call (`x * 2.0`) keeps its constant operand; `tf.identity(x)` none."""
    inputs = L.Input((4, 4, 1))
    outputs = inputs * args[0] if args else tf.identity(inputs)
    node, = keras_graph.ordered_nodes(tf_keras.Model(inputs, outputs))
    env = {keras_graph.tensor_id(inputs): tf.ones((1, 4, 4, 1))}
    np.testing.assert_array_equal(node.call(env), np.full((1, 4, 4, 1), 2.0 if args else 1.0))
