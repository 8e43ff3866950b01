"""Tests for pretrained backbone weights: a local file reaches every backbone layer of the
stage-1 SSDLite and DeepLab models and no head layer; ImageNet offline, other alphas and other
models are refused clearly."""
import os

import numpy as np
import pytest
import tf_keras

from patchwork_tf.models import backbone_weights
from patchwork_tf.training import stage1
from tests.models import backbone_files

# The frame of the stage-1 models under test; the file is written at 96 px (the weights do
# not depend on the frame size).
FRAME = (64, 64)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """(path, dict layer name -> weights) of a seeded alpha-0.35 MobileNetV2 weights file."""
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_0.35_no_top.h5"
    return str(path), backbone_files.write_weights_file(path, alpha=0.35, seed=7)


def _build(task, weights, output_stride=16):
    """The stage-1 model of `task` with `weights`, initialised with seed 0."""
    config = stage1.Stage1Config(task=task, frame_size=FRAME, alpha=0.35,
                                 output_stride=output_stride, backbone_weights=weights)
    pretrained = stage1.pretrained_backbone(config)  # Its construction draws random numbers.
    tf_keras.utils.set_random_seed(0)
    return stage1.build_model(config, pretrained=pretrained)


def _all_close(a, b):
    return len(a) == len(b) and all(np.allclose(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("task,output_stride,want_backbone_layers", [
    ("detection", 16, 104),      # SSDLite: the whole stock backbone.
    ("segmentation", 16, 102),   # DeepLab: the backbone but its last 1x1 conv (Conv_1).
    ("segmentation", 8, 102),
])
def test_the_file_reaches_every_backbone_layer_and_no_head_layer(
        weights_file, task, output_stride, want_backbone_layers):
    path, file_weights = weights_file
    model = _build(task, path, output_stride)
    scratch = _build(task, backbone_weights.NONE, output_stride)
    backbone = [layer for layer in model.layers if layer.name in file_weights]
    head = [layer for layer in model.layers if layer.weights and layer.name not in file_weights]
    assert len(backbone) == want_backbone_layers and head
    for layer in backbone:
        for got, want in zip(layer.get_weights(), file_weights[layer.name], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
        # From scratch every backbone layer differs from the file.
        assert not _all_close(scratch.get_layer(layer.name).get_weights(),
                              file_weights[layer.name]), layer.name
    # The head is the fresh initialisation of a model from scratch with the same seed.
    for layer in head:
        for got, want in zip(layer.get_weights(), scratch.get_layer(layer.name).get_weights(),
                             strict=True):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)


def test_imagenet_offline_names_the_file_to_pass(monkeypatch, tmp_path):
    calls = []

    def offline_get_file(fname, origin, cache_subdir):
        calls.append((fname, origin, cache_subdir))
        # What tf_keras' get_file raises on a machine without a network.
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service "
                        "not known")

    monkeypatch.setattr(tf_keras.utils, "get_file", offline_get_file)
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    with pytest.raises(OSError, match="Name or service not known") as error:
        _build("detection", backbone_weights.IMAGENET)
    message = str(error.value)
    assert f"--backbone_weights=/path/to/{name}" in message
    assert "~/.keras/models/" in message
    assert calls == [(name, backbone_weights.IMAGENET_URL + name, "models")]

    # train_stage1 refuses before it stores a config, so a rerun may pass a file instead.
    model_dir = str(tmp_path / "run")
    with pytest.raises(OSError, match="--backbone_weights="):
        stage1.train_stage1(model_dir, stage1.Stage1Config(
            "detection", frame_size=FRAME, backbone_weights=backbone_weights.IMAGENET),
            verbose=0)
    assert not os.path.exists(os.path.join(model_dir, stage1.CONFIG_FILE))


def test_imagenet_weights_in_the_keras_cache_load_without_a_network(monkeypatch, tmp_path,
                                                                    weights_file):
    path, file_weights = weights_file
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = tmp_path / ".keras" / "models"
    cache.mkdir(parents=True)
    name = backbone_weights.imagenet_file_name(0.35, (96, 96, 3))
    with open(path, "rb") as source, open(cache / name, "wb") as target:
        target.write(source.read())
    backbone = backbone_weights.stock_backbone(backbone_weights.IMAGENET, 0.35, (96, 96, 3))
    np.testing.assert_array_equal(backbone.get_layer("Conv1").get_weights()[0],
                                  file_weights["Conv1"][0])


@pytest.mark.parametrize("alpha,input_shape,want", [
    (0.35, (96, 96, 3), "0.35_96"),
    (0.5, (128, 128, 3), "0.5_128"),
    (1.0, (384, 384, 3), "1.0_224"),   # no weights of its own: Keras loads the 224 ones
    (1.4, (128, 96, 3), "1.4_224"),    # non-square
])
def test_imagenet_file_names_follow_keras(alpha, input_shape, want):
    assert backbone_weights.imagenet_file_name(alpha, input_shape) == (
        f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{want}_no_top.h5")


def test_imagenet_for_an_alpha_without_weights_is_refused():
    with pytest.raises(ValueError, match=r"ImageNet weights for alpha in .*not alpha=0.6"):
        stage1.Stage1Config(task="detection", alpha=0.6, backbone_weights="imagenet")
    with pytest.raises(ValueError, match="backbone_weights must be"):
        stage1.Stage1Config(task="detection", backbone_weights="")


@pytest.mark.parametrize("alpha,include_top", [(0.5, False), (0.35, True)])
def test_a_file_of_another_model_is_refused(tmp_path, alpha, include_top):
    path = tmp_path / "other.h5"
    backbone_files.write_weights_file(path, alpha=alpha, include_top=include_top)
    with pytest.raises(ValueError, match=r"does not hold the weights of the stock MobileNetV2 "
                                         r"with include_top=False and alpha=0.35"):
        _build("segmentation", str(path))


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        _build("detection", str(tmp_path / "missing.h5"))


def test_copy_refuses_models_without_the_stock_layers(weights_file):
    path, _ = weights_file
    stock = backbone_weights.stock_backbone(path, 0.35, FRAME + (3,))
    inputs = tf_keras.Input(FRAME + (3,))
    other_names = tf_keras.Model(inputs, tf_keras.layers.Conv2D(8, 3, name="stem")(inputs))
    with pytest.raises(ValueError, match="Only 0 of the 104 layers"):
        backbone_weights.copy_weights(stock, other_names)
    other_shapes = tf_keras.Model(inputs, tf_keras.layers.Conv2D(8, 3, name="Conv1")(inputs))
    with pytest.raises(ValueError, match="other weight shapes.*Conv1"):
        backbone_weights.copy_weights(stock, other_shapes)
