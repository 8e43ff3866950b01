"""Small MobileNetV2 weights files for the backbone-weights tests, written by the test."""
import numpy as np
import tf_keras


def write_weights_file(path, alpha=0.35, include_top=False, seed=0):
    """Saves a stock MobileNetV2 (96 px) with seeded random values in every weight, batch-norm
    statistics included (a fresh model's are constants any model shares), as `path` (h5).

    Returns:
      dict layer name -> list of numpy arrays, the file's weights of each layer with weights.
    """
    stock = tf_keras.applications.MobileNetV2(include_top=include_top, weights=None,
                                              alpha=alpha, input_shape=(96, 96, 3))
    rng = np.random.default_rng(seed)
    for variable in stock.weights:
        # Positive values keep the moving variances valid.
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(np.float32))
    stock.save_weights(str(path))
    return {layer.name: layer.get_weights() for layer in stock.layers if layer.weights}
