"""Small tf_keras models shared by the core tests."""
import numpy as np
import tensorflow as tf
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


def calibrate_batch_norm(model, seed=0, value_range=(-1.0, 1.0)):
    """Batch norms as after training, so that a deep random model's output depends on its
    input: a random affine (gamma in [0.5, 1.5], beta in [-0.2, 0.2]), then the moving
    statistics measured on random frames with pixels in `value_range` (the model's input
    scaling: [0, 255] for models that rescale their input themselves, e.g. MobileNetV3).
    With made-up statistics, inference batch norm does not renormalize, the input's signal
    fades layer by layer, and the output of a random MobileNetV2 is all but constant: an
    exactness test on it would test nothing."""
    rng = np.random.default_rng(seed)
    batch_norms = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    momenta = [layer.momentum for layer in batch_norms]
    for layer in batch_norms:
        layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
        layer.beta.assign(rng.uniform(-0.2, 0.2, layer.beta.shape))
        layer.momentum = 0.0
    frames = rng.uniform(*value_range, (4,) + tuple(model.input_shape[1:])).astype(np.float32)
    model(frames, training=True)
    for layer, momentum in zip(batch_norms, momenta):
        layer.momentum = momentum
    return model


def dilated_model(size=64):
    """A CNN of dilated SAME convs (halo `dilation * (kernel - 1) / 2`) in DeepLab's pattern
    (a stride removed, the depthwise convs after it dilated), with halos wider than a window
    of an M = 4 grid and an anisotropic dilation:
    size x size x 3 -> stride-2 conv -> depthwise d2 -> stride-2 depthwise -> 1x1 expand ->
    depthwise d4 -> residual add -> 5x5 depthwise d(2, 3) -> 3x3 conv d2 -> BN -> ReLU6."""
    tf_keras.utils.set_random_seed(2)
    inputs = L.Input((size, size, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    x = L.DepthwiseConv2D(3, dilation_rate=2, padding="same", name="dw_d2")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", name="dw_s2")(x)
    x = L.Conv2D(16, 1, name="expand")(x)
    x = L.BatchNormalization(name="expand_bn")(x)
    y = L.DepthwiseConv2D(3, dilation_rate=4, padding="same", use_bias=False, name="dw_d4")(x)
    y = L.BatchNormalization(name="dw_d4_bn")(y)
    x = L.Add(name="residual")([x, y])
    x = L.DepthwiseConv2D(5, dilation_rate=(2, 3), padding="same", name="dw5_d23")(x)
    x = L.Conv2D(8, 3, dilation_rate=2, padding="same", name="conv_d2")(x)
    x = L.BatchNormalization(name="conv_d2_bn")(x)
    x = L.ReLU(6.0, name="out")(x)
    return calibrate_batch_norm(tf_keras.Model(inputs, x, name="dilated"))


def elementwise_ops_model(size=32):
    """Elementwise TensorFlow ops (`TFOpLambda` layers) on windows, on the frame's
    preprocessing and on a squeeze-and-excite broadcast:
    size x size x 3 in [0, 255] -> `x / 127.5 - 1` -> 3x3 conv -> hard-swish `x * relu6(x + 3)
    / 6` -> `tf.clip_by_value` -> SE gate `x * sigmoid(pool)` -> `maximum(x, y=0.1)` ->
    `2 - x` -> 3x3 stride-2 conv -> BN -> `tf.nn.silu`."""
    tf_keras.utils.set_random_seed(3)
    inputs = L.Input((size, size, 3))
    x = inputs / 127.5 - 1.0
    x = L.Conv2D(8, 3, padding="same", name="conv")(x)
    x = x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)
    x = tf.clip_by_value(x, -1.0, 4.0)
    gate = tf.math.sigmoid(L.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x))
    x = x * gate
    x = 2.0 - tf.math.maximum(x, y=0.1)
    x = L.Conv2D(8, 3, strides=2, padding="same", name="down")(x)
    x = L.BatchNormalization(name="down_bn")(x)
    x = tf.nn.silu(x)
    return calibrate_batch_norm(tf_keras.Model(inputs, x, name="elementwise"),
                                value_range=(0.0, 255.0))
