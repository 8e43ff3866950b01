"""FLOPs counts (core/flops.py) on hand-worked layers, and batch norm folding (core/folding.py)
against the stock model."""
import numpy as np
import pytest
import tf_keras

import patchwork_tf as pw
from patchwork_tf.core import flops
from patchwork_tf.core import folding

L = tf_keras.layers


def _conv_bn_model():
    """8x8x3 -> 3x3 conv (4 ch) -> BN -> ReLU6 -> 1x1 conv with bias (2 ch) -> BN."""
    tf_keras.utils.set_random_seed(0)
    inputs = L.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = L.BatchNormalization(name="conv_bn")(x)
    x = L.ReLU(6.0, name="relu")(x)
    x = L.Conv2D(2, 1, name="head")(x)
    x = L.BatchNormalization(name="head_bn")(x)
    return _randomize_batch_norm(tf_keras.Model(inputs, x))


def _randomize_batch_norm(model):
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            for weight in layer.weights:
                weight.assign(rng.uniform(0.5, 1.5, weight.shape))
    return model


def test_model_flops_by_hand():
    # conv 2*64*4*9*3 = 13824; BN 2*256; ReLU6 256; head 2*64*2*4 + 128 bias = 1152;
    # head BN 2*128.
    report = flops.model_flops(_conv_bn_model())
    assert report.flops == 13824 + 512 + 256 + 1152 + 256
    assert report.conv_flops == 13824 + 1152


def test_folded_model_counts_each_batch_norm_as_its_conv_bias():
    # conv_bn becomes the 3x3 conv's bias (1 FLOP per element, not 2); head_bn folds into
    # the head's existing bias (the head is linear), so it costs nothing more.
    model = _conv_bn_model()
    folded = folding.fold_batch_norm_model(model)
    assert sorted(folding.foldable_batch_norms(model)) == ["conv_bn", "head_bn"]
    assert flops.model_flops(folded).flops == 13824 + 256 + 256 + 1152
    frames = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(folded(frames), model(frames, training=False), atol=1e-5)


def test_batch_norm_after_an_activation_or_a_shared_conv_is_not_folded():
    inputs = L.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="activated")(inputs)
    x = L.BatchNormalization(name="after_relu")(x)
    shared = L.Conv2D(4, 1, name="shared")(x)
    y = L.BatchNormalization(name="bn_of_shared")(shared)
    model = tf_keras.Model(inputs, L.Add()([y, shared]))
    assert folding.foldable_batch_norms(model) == {}
    assert flops.model_flops(folding.fold_batch_norm_model(model)) == flops.model_flops(model)


@pytest.mark.parametrize("fold", [False, True])
def test_single_window_step_counts_what_the_model_counts(fold):
    """An M = N = 1 twin runs every layer once on the whole frame, so its step FLOPs are the
    stock model's, or with folding the folded model's; folding saves one FLOP per batch-norm
    output element, and the folded model computes the stock model's outputs."""
    tf_keras.utils.set_random_seed(0)
    model = _randomize_batch_norm(tf_keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None))
    folded = folding.fold_batch_norm_model(model)
    twin = pw.patchwork_model(model, pw.WindowGrid((64, 64), 1, 1), fold_batch_norm=fold)
    assert flops.step_flops(twin).flops == flops.model_flops(folded if fold else model).flops
    batch_norm_elements = sum(int(np.prod(layer.output_shape[1:])) for layer in model.layers
                              if isinstance(layer, L.BatchNormalization))
    assert flops.model_flops(model).flops - flops.model_flops(folded).flops == (
        batch_norm_elements)
    frames = np.random.default_rng(1).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    expected = model(frames, training=False).numpy()
    np.testing.assert_allclose(folded(frames), expected, atol=1e-4 * np.abs(expected).max())
