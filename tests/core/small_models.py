"""Small tf_keras models shared by the core tests."""
import numpy as np
import tf_keras

L = tf_keras.layers


def conv_bn_model():
    """8x8x3 -> 3x3 conv (4 ch) -> BN -> ReLU6 -> 1x1 conv with bias (2 ch) -> BN."""
    tf_keras.utils.set_random_seed(0)
    inputs = L.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = L.BatchNormalization(name="conv_bn")(x)
    x = L.ReLU(6.0, name="relu")(x)
    x = L.Conv2D(2, 1, name="head")(x)
    x = L.BatchNormalization(name="head_bn")(x)
    return randomize_batch_norm(tf_keras.Model(inputs, x))


def randomize_batch_norm(model):
    """Non-trivial batch-norm weights and statistics, uniform in [0.5, 1.5]."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            for weight in layer.weights:
                weight.assign(rng.uniform(0.5, 1.5, weight.shape))
    return model
