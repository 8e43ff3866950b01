"""FLOPs of the attention decision: the TF profiler's count of a function (Tab. 1's MFLOPs)."""
import tensorflow as tf
from tensorflow.python.profiler import model_analyzer
from tensorflow.python.profiler import option_builder


def function_flops(fn, *input_signature):
    """FLOPs of one call of a TF function on inputs of fixed shape, by the TF profiler.

    The profiler's `float_operation` count (2 per multiply-add of MatMul and Conv2D, 1 per
    element of element-wise arithmetic), on the graph traced for `input_signature`. Used for the
    attention network, whose cost the paper includes in Patchwork's MFLOPs (Tab. 1).

    Args:
      fn: a Python or `tf.function` callable of tensors.
      *input_signature: `tf.TensorSpec`s (or nests of them) with fully defined shapes.

    Returns:
      int FLOPs.
    """
    for spec in tf.nest.flatten(input_signature):
        if not spec.shape.is_fully_defined():
            raise ValueError(f"function_flops needs fully defined shapes, got {spec}.")
    graph = tf.function(fn).get_concrete_function(*input_signature).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


def decision_flops(observer, memory_shape, q_fn=None):
    """FLOPs of one attention decision at batch 1: the observer's change cue (analytic) plus,
    with a Q-function, its TF profiler count on the observation of a `memory_shape` memory."""
    if q_fn is None:
        return observer.flops()
    specs = {key: tf.TensorSpec((1,) + tuple(spec.shape), spec.dtype)
             for key, spec in observer.spec(memory_shape).items()}
    return observer.flops() + function_flops(q_fn, specs)
