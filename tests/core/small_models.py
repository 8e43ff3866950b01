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
    return calibrate_batch_norm(tf_keras.Model(inputs, x))


def calibrate_batch_norm(model, seed=0):
    """Batch norms as after training, so that a deep random model's output depends on its
    input: a random affine (gamma in [0.5, 1.5], beta in [-0.2, 0.2]), then the moving
    statistics measured on random frames. With made-up statistics, inference batch norm
    does not renormalize, the input's signal fades layer by layer, and the output of a
    random MobileNetV2 is all but constant: an exactness test on it would test nothing."""
    rng = np.random.default_rng(seed)
    batch_norms = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    momenta = [layer.momentum for layer in batch_norms]
    for layer in batch_norms:
        layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
        layer.beta.assign(rng.uniform(-0.2, 0.2, layer.beta.shape))
        layer.momentum = 0.0
    frames = rng.uniform(-1, 1, (4,) + tuple(model.input_shape[1:])).astype(np.float32)
    model(frames, training=True)
    for layer, momentum in zip(batch_norms, momenta):
        layer.momentum = momentum
    return model
