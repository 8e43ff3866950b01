"""The stock tf_keras layer types the Patchwork converter accepts (the brief's list)."""
import tf_keras

CONVERTIBLE_LAYER_TYPES = (
    tf_keras.layers.InputLayer, tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D,
    tf_keras.layers.SeparableConv2D, tf_keras.layers.BatchNormalization, tf_keras.layers.ReLU,
    tf_keras.layers.Activation, tf_keras.layers.Add, tf_keras.layers.Multiply,
    tf_keras.layers.Concatenate, tf_keras.layers.Dropout, tf_keras.layers.ZeroPadding2D,
    tf_keras.layers.MaxPooling2D, tf_keras.layers.AveragePooling2D,
    tf_keras.layers.GlobalAveragePooling2D, tf_keras.layers.Reshape, tf_keras.layers.Dense,
    tf_keras.layers.UpSampling2D, tf_keras.layers.Resizing)


def non_stock_layers(model):
    """Names and types of the layers of `model` outside the convertible list (exact types)."""
    return [(layer.name, type(layer).__name__) for layer in model.layers
            if type(layer) not in CONVERTIBLE_LAYER_TYPES]
