"""The one module that reads tf_keras internals: a functional model's graph as plain data.

The Patchwork converter (`core.plan`), the batch-norm fold (`core.folding`) and the FLOPs
counter (`core.flops`) walk a tf_keras functional graph. tf_keras has no public API for its
nodes, so everything they need is read here, and a tf_keras upgrade touches only this file:

* `ordered_nodes(model)`: the layer calls of the model in topological order, as `GraphNode`s
  whose tensors are named by `tensor_id`;
* `single_call(layer)`, `producer(tensor)`, `is_keras_tensor(value)`, `is_functional(model)`;
* `structured_outputs(model, env)`: the model's outputs, in their structure, from an
  environment `{tensor id: value}`.
"""
import dataclasses

import tensorflow as tf
from tf_keras.src.engine import keras_tensor as _keras_tensor


def tensor_id(tensor):
    """The key of a symbolic tensor in an environment `{tensor id: value}`."""
    return id(tensor)


def is_keras_tensor(value):
    """Whether `value` is a symbolic tensor of a functional graph (a layer call's input)."""
    return isinstance(value, _keras_tensor.KerasTensor)


def is_functional(model):
    """Whether `model` is a tf_keras functional model (a graph of layer calls)."""
    return bool(getattr(model, "_is_graph_network", False))


@dataclasses.dataclass(frozen=True, eq=False)
class GraphNode:
    """One layer call of a functional graph.

    `inputs` / `outputs`: the call's symbolic input / (flattened) output tensors, and
    `input_ids` / `output_ids` their `tensor_id`s; `call_args` / `call_kwargs`: the call's
    arguments as written, symbolic tensors in place.
    """

    layer: object
    inputs: tuple
    outputs: tuple
    call_args: tuple
    call_kwargs: dict

    @property
    def input_ids(self):
        return [tensor_id(t) for t in self.inputs]

    @property
    def output_ids(self):
        return [tensor_id(t) for t in self.outputs]

    def call(self, env):
        """Calls the layer with each symbolic argument replaced by `env[tensor_id(arg)]`;
        returns the layer's outputs (as the layer returns them)."""
        def lookup(value):
            return env[tensor_id(value)] if is_keras_tensor(value) else value
        args = tf.nest.map_structure(lookup, self.call_args)
        kwargs = tf.nest.map_structure(lookup, self.call_kwargs)
        return self.layer(*args, **kwargs)


def _graph_node(node):
    return GraphNode(node.layer, tuple(node.keras_inputs), tuple(tf.nest.flatten(node.outputs)),
                     tuple(node.call_args), dict(node.call_kwargs))


def ordered_nodes(model):
    """The layer calls of a functional `model`, inputs first (each after its inputs'
    producers), input layers left out: a list of `GraphNode`s."""
    nodes = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        nodes.extend(_graph_node(node) for node in model._nodes_by_depth[depth]
                     if not node.is_input)
    return nodes


def single_call(layer):
    """Whether `layer` has been called once (on one input, in one graph)."""
    return len(layer._inbound_nodes) == 1


def producer(tensor):
    """The layer whose call output the symbolic `tensor`."""
    return tensor._keras_history.layer


def structured_outputs(model, env):
    """`model`'s outputs in their structure (a tensor, list or dict), each output looked
    up as `env[tensor_id(output)]`."""
    return tf.nest.map_structure(lambda t: env[tensor_id(t)], model._nested_outputs)
