"""Batch norm folding (core/folding.py): the folded clone against the stock model, its FLOPs,
and the batch norms the rule must leave alone."""
import numpy as np
import tf_keras

from patchwork_tf.core import flops
from patchwork_tf.core import folding
from tests.core import small_models

L = tf_keras.layers


def test_folded_model_counts_each_batch_norm_as_its_conv_bias():
    # conv_bn becomes the 3x3 conv's bias (1 FLOP per element, not 2); head_bn folds into
    # the head's existing bias (the head is linear), so it costs nothing more.
    model = small_models.conv_bn_model()
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
