"""Batch norm folded into the conv before it: an inference-only rewrite of a tf_keras CNN.

`BatchNormalization(conv(x))` with a linear conv is one conv with a bias
(`spatial_ops.fold_batch_norm`). The Patchwork twin folds this way inside its window step
(`patchwork_model(..., fold_batch_norm=True)`); `fold_batch_norm_model` does the same to a
stock model, so that the single-frame baseline runs and is counted the same way.
"""
import collections

import tf_keras

from patchwork_tf.core import keras_graph
from patchwork_tf.core import spatial_ops

L = tf_keras.layers


def foldable_batch_norms(keras_model):
    """`{batch norm name: conv layer}` for each BatchNormalization over the last axis whose
    input is the only use of a linear `Conv2D` / `DepthwiseConv2D`'s output."""
    nodes = keras_graph.ordered_nodes(keras_model)
    uses = collections.Counter(keras_graph.tensor_id(t) for t in keras_model.outputs)
    for node in nodes:
        uses.update(node.input_ids)
    pairs = {}
    for node in nodes:
        layer = node.layer
        if not (isinstance(layer, L.BatchNormalization) and list(layer.axis) in ([3], [-1])
                and keras_graph.single_call(layer) and len(node.inputs) == 1):
            continue
        conv = keras_graph.producer(node.inputs[0])
        if (type(conv) in (L.Conv2D, L.DepthwiseConv2D)
                and conv.activation is tf_keras.activations.linear
                and keras_graph.single_call(conv) and uses[node.input_ids[0]] == 1):
            pairs[layer.name] = conv
    return pairs


def fold_batch_norm_model(keras_model):
    """A functional clone of `keras_model` with every foldable batch norm folded into its conv.

    The conv gets a bias holding the folded shift and the batch norm becomes an `Identity`
    layer of the same name; every other layer keeps its config and a copy of its weights.
    The weights are a snapshot: fold again after training. Inference only.

    Returns:
      A new tf_keras functional model with the same inputs, outputs and output names.
    """
    pairs = foldable_batch_norms(keras_model)
    folded = {conv.name: spatial_ops.fold_batch_norm(conv, keras_model.get_layer(bn))
              for bn, conv in pairs.items()}

    def clone(layer):
        if layer.name in pairs:
            return L.Identity(name=layer.name)
        config = layer.get_config()
        if layer.name in folded:
            config["use_bias"] = True
        return type(layer).from_config(config)

    model = tf_keras.models.clone_model(keras_model, clone_function=clone)
    for layer in keras_model.layers:
        target = model.get_layer(layer.name)
        if layer.name in folded:
            target.set_weights([w.numpy() for w in folded[layer.name]])
        elif layer.name not in pairs:
            target.set_weights(layer.get_weights())
    return model
