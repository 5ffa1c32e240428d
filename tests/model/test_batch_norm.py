"""FusedBatchNormalization: Keras' BatchNormalization semantics, computed by the fused op."""
import keras
import numpy as np
import tensorflow as tf

from mhr_tf.model import batch_norm

MOMENTUM = 0.9
EPSILON = 1.001e-5  # keras.applications' ResNets


def _layer(channels: int, rng) -> batch_norm.FusedBatchNormalization:
    layer = batch_norm.FusedBatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    layer.build((None, 5, 6, channels))
    layer.set_weights([rng.normal(1.0, 0.2, channels), rng.normal(0.0, 0.5, channels),  # gamma, beta
                       rng.normal(0.0, 0.5, channels), rng.uniform(0.5, 2.0, channels)])  # moving mean, variance
    return layer


def test_training_normalizes_by_batch_statistics_and_updates_moving_averages_like_keras():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (4, 5, 6, 3))
    layer = _layer(3, rng)
    gamma, beta, moving_mean, moving_variance = (w.astype(np.float64) for w in layer.get_weights())
    outputs = layer(tf.constant(x, tf.float32), training=True).numpy()
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # biased, as Keras normalizes and averages
    np.testing.assert_allclose(outputs, gamma * (x - mean) / np.sqrt(variance + EPSILON) + beta, atol=2e-5)
    new_mean, new_variance = layer.get_weights()[2:]
    np.testing.assert_allclose(new_mean, MOMENTUM * moving_mean + (1 - MOMENTUM) * mean, rtol=1e-5)
    np.testing.assert_allclose(new_variance, MOMENTUM * moving_variance + (1 - MOMENTUM) * variance, rtol=1e-5)


def test_inference_normalizes_by_moving_statistics():
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 2.0, (2, 5, 6, 4))
    layer = _layer(4, rng)
    gamma, beta, moving_mean, moving_variance = (w.astype(np.float64) for w in layer.get_weights())
    outputs = layer(tf.constant(x, tf.float32), training=False).numpy()
    expected = gamma * (x - moving_mean) / np.sqrt(moving_variance + EPSILON) + beta
    np.testing.assert_allclose(outputs, expected, atol=2e-5)
    np.testing.assert_allclose(layer.get_weights()[2:], [moving_mean, moving_variance], rtol=0)  # untouched


def test_gradients_equal_keras_batch_normalization():
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(0.0, 1.0, (3, 5, 6, 2)), tf.float32)
    upstream = tf.constant(rng.normal(0.0, 1.0, (3, 5, 6, 2)), tf.float32)
    fused = _layer(2, rng)
    plain = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    plain.build(x.shape)
    plain.set_weights(fused.get_weights())
    gradients = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        gradients.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
    for fused_gradient, plain_gradient in zip(*gradients):
        np.testing.assert_allclose(fused_gradient.numpy(), plain_gradient.numpy(), atol=1e-4)


def test_non_image_inputs_fall_back_to_keras():
    rng = np.random.default_rng(3)
    layer = batch_norm.FusedBatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    x = rng.normal(1.0, 2.0, (8, 3))
    outputs = layer(tf.constant(x, tf.float32), training=True).numpy()
    np.testing.assert_allclose(outputs, (x - x.mean(0)) / np.sqrt(x.var(0) + EPSILON), atol=2e-5)


def test_fuse_batch_norms_keeps_names_weights_and_outputs():
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    outputs = keras.layers.ReLU(name="relu")(keras.layers.BatchNormalization(epsilon=EPSILON, name="bn")(hidden))
    model = keras.Model(inputs, outputs, name="small")
    fused = batch_norm.fuse_batch_norms(model)
    assert type(fused.get_layer("bn")) is batch_norm.FusedBatchNormalization
    assert [layer.name for layer in fused.layers[1:]] == [layer.name for layer in model.layers[1:]]  # after inputs
    x = np.random.default_rng(4).normal(size=(2, 8, 8, 3)).astype(np.float32)
    for training in (False, True):
        np.testing.assert_allclose(fused(x, training=training).numpy(), model(x, training=training).numpy(),
                                   atol=1e-5)


def test_fused_trunk_computes_the_keras_trunk():
    from mhr_tf.model import trunk
    crops = np.random.default_rng(5).normal(size=(2, 3, 32, 32, 4)).astype(np.float32)  # [B, P, S, S, C]
    plain = trunk.PairTrunk(32, ("rgb", "occlusion"), "resnet_tiny")
    fused = trunk.PairTrunk.from_config({**plain.get_config(), "fused_batch_norm": True})
    plain(crops), fused(crops)
    fused.set_weights(plain.get_weights())
    assert sum(isinstance(layer, batch_norm.FusedBatchNormalization) for layer in fused.backbone.layers) >= 3
    for training in (False, True):
        np.testing.assert_allclose(fused(crops, training=training).numpy(), plain(crops, training=training).numpy(),
                                   rtol=1e-4, atol=1e-4)
