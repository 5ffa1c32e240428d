"""The per-pair trunk: channel layout, pair folding, config round trip, and conv1 widening from RGB weights."""
import logging

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf.model import trunk

CROP = 32  # the smallest crop keras.applications' ResNets accept
ALL_CHANNELS = ("rgb", "flow", "heatmaps", "occlusion")


def test_channel_layout_follows_the_batch_contract_order():
    assert trunk.channel_layout(ALL_CHANNELS) == {
        "rgb": slice(0, 3), "flow": slice(3, 6), "heatmaps": slice(6, 18), "occlusion": slice(18, 19)}
    assert trunk.channel_layout(("flow", "heatmaps")) == {"flow": slice(0, 3), "heatmaps": slice(3, 15)}
    assert trunk.num_channels(("heatmaps", "occlusion")) == 13


@pytest.mark.parametrize("channels", [("flow", "rgb"), ("rgb", "depth"), ()])
def test_channel_layout_rejects_unknown_or_reordered_groups(channels):
    with pytest.raises(ValueError, match="channels"):
        trunk.channel_layout(channels)


def test_resnet50_feature_width_is_2048():
    assert trunk.feature_dim("resnet50") == 2048


def test_pairs_are_folded_into_the_batch():
    layer = trunk.PairTrunk(CROP, ("rgb", "occlusion"), "resnet_tiny")
    crops = np.random.default_rng(0).normal(size=(2, 3, CROP, CROP, 4)).astype(np.float32)
    features = layer(crops, training=False).numpy()  # [2, 3, 64]
    assert features.shape == (2, 3, trunk.feature_dim("resnet_tiny"))
    for b in range(2):
        for p in range(3):
            alone = layer.backbone(crops[b:b + 1, p], training=False).numpy()[0]
            np.testing.assert_allclose(features[b, p], alone, rtol=1e-5, atol=1e-6)


def test_pair_trunk_round_trips_its_config():
    layer = trunk.PairTrunk(CROP, ("flow", "heatmaps"), "resnet_tiny", name="trunk")
    crops = np.random.default_rng(1).normal(size=(1, 2, CROP, CROP, 15)).astype(np.float32)
    expected = layer(crops, training=False).numpy()
    clone = trunk.PairTrunk.from_config(layer.get_config())
    clone(crops)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_allclose(clone(crops, training=False).numpy(), expected, rtol=1e-6)


def test_wrong_input_shape_names_the_expected_one():
    layer = trunk.PairTrunk(CROP, ("rgb",), "resnet_tiny")
    with pytest.raises(ValueError, match=r"expected \[B, P, 32, 32, 3\]"):
        layer(np.zeros((1, 2, CROP, CROP, 4), np.float32))


def _fake_pretrained_rgb_net(seed: int) -> keras.Model:
    """NOT ImageNet weights: a tiny 3-channel trunk with random weights, standing in for a pretrained file."""
    keras.utils.set_random_seed(seed)
    net = trunk.build_backbone("resnet_tiny", (CROP, CROP, 3))
    # Random BN statistics too, so that copying them is visible.
    net.set_weights([w + np.random.default_rng(seed).uniform(0.1, 1.0, w.shape).astype(np.float32)
                     for w in net.get_weights()])
    return net


@pytest.fixture(name="fake_pretrained")
def fixture_fake_pretrained(tmp_path):
    net = _fake_pretrained_rgb_net(seed=7)
    path = tmp_path / "FAKE_pretrained_resnet_tiny_rgb.weights.h5"
    net.save_weights(path)
    return net, path


def test_widened_conv1_copies_rgb_filters_into_rgb_and_flow_and_keeps_extra_channels_random(fake_pretrained):
    net, path = fake_pretrained
    layer = trunk.PairTrunk(CROP, ALL_CHANNELS, "resnet_tiny")
    random_kernel = layer.backbone.get_layer(trunk.CONV1_NAME).get_weights()[0].copy()
    assert trunk.load_pretrained(layer, path, caffe_input=False)

    kernel, bias = layer.backbone.get_layer(trunk.CONV1_NAME).get_weights()  # [7, 7, 19, 64]
    source_kernel, source_bias = net.get_layer(trunk.CONV1_NAME).get_weights()  # [7, 7, 3, 64]
    np.testing.assert_array_equal(kernel[:, :, 0:3], source_kernel)   # rgb
    np.testing.assert_array_equal(kernel[:, :, 3:6], source_kernel)   # flow x, y, magnitude
    np.testing.assert_array_equal(kernel[:, :, 6:19], random_kernel[:, :, 6:19])  # heatmaps, indicator
    assert not np.allclose(kernel[:, :, 6:19], 0.0)
    np.testing.assert_array_equal(bias, source_bias)
    for name in ("conv1_bn", "conv2_block1_1_conv", "conv3_block1_3_bn"):
        for got, want in zip(layer.backbone.get_layer(name).get_weights(), net.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)


def test_caffe_conv1_reads_our_rgb_like_the_file_reads_caffe_pixels(fake_pretrained):
    net, path = fake_pretrained
    layer = trunk.PairTrunk(CROP, ("rgb", "heatmaps"), "resnet_tiny")
    assert trunk.load_pretrained(layer, path, caffe_input=True)
    kernel, bias = layer.backbone.get_layer(trunk.CONV1_NAME).get_weights()
    source_kernel, source_bias = (w.astype(np.float64) for w in net.get_layer(trunk.CONV1_NAME).get_weights())
    np.testing.assert_allclose(kernel[:, :, 0:3], 127.5 * source_kernel[:, :, ::-1], rtol=1e-6)

    # Keras' Caffe preprocessing: BGR, [0, 255], minus the ImageNet mean (keras.applications.resnet50).
    rng = np.random.default_rng(3)
    rgb = rng.uniform(-1.0, 1.0, size=(1, CROP, CROP, 3))
    pixels_rgb = 127.5 * (rgb + 1.0)
    caffe = pixels_rgb[..., ::-1] - np.array([103.939, 116.779, 123.68])
    # conv1 at the centre output pixel (7x7, stride 2, 3 px padding) away from the zero-padded border.
    row = col = CROP // 4
    window = slice(2 * row - 3, 2 * row + 4)
    file_response = np.einsum("hwc,hwcf->f", caffe[0, window, window], source_kernel) + source_bias
    our_input = np.concatenate([rgb, np.zeros((1, CROP, CROP, 12))], axis=-1)
    our_response = np.einsum("hwc,hwcf->f", our_input[0, window, window], kernel.astype(np.float64)) + bias
    np.testing.assert_allclose(our_response, file_response, rtol=1e-4, atol=1e-3 * np.abs(file_response).max())


def test_keras_legacy_hdf5_layout_loads(tmp_path):
    """Keras' ImageNet file is a legacy HDF5 weights file; a FAKE one written in that layout loads the same way."""
    from keras.src.legacy.saving import legacy_h5_format
    net = _fake_pretrained_rgb_net(seed=11)
    path = tmp_path / "FAKE_resnet_tiny_notop_legacy_layout.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, net)
    layer = trunk.PairTrunk(CROP, ("flow",), "resnet_tiny")
    assert trunk.load_pretrained(layer, path, caffe_input=False)
    np.testing.assert_array_equal(layer.backbone.get_layer(trunk.CONV1_NAME).get_weights()[0],
                                  net.get_layer(trunk.CONV1_NAME).get_weights()[0])


def test_missing_weights_file_logs_and_trains_from_scratch(tmp_path, caplog):
    layer = trunk.PairTrunk(CROP, ("rgb",), "resnet_tiny")
    before = [w.copy() for w in layer.get_weights()]
    with caplog.at_level(logging.WARNING, logger="mhr_tf.model.trunk"):
        assert not trunk.load_pretrained(layer, tmp_path / "absent.h5")
    assert "starts from scratch" in caplog.text
    for got, want in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Keras warns about every group it cannot match first
def test_weights_of_another_architecture_raise_naming_the_file(tmp_path):
    keras.utils.set_random_seed(0)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path / "not_a_resnet.weights.h5"
    other.save_weights(path)
    layer = trunk.PairTrunk(CROP, ("rgb",), "resnet_tiny")
    with pytest.raises(ValueError, match="not_a_resnet.weights.h5"):
        trunk.load_pretrained(layer, path)


def test_trunk_gradients_reach_conv1():
    layer = trunk.PairTrunk(CROP, ("rgb",), "resnet_tiny")
    crops = tf.random.normal((1, 2, CROP, CROP, 3), seed=0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(crops, training=True)))
    grad = tape.gradient(loss, layer.backbone.get_layer(trunk.CONV1_NAME).kernel)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
