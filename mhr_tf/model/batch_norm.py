"""BatchNormalization through TensorFlow's fused kernel, for the ResNet trunk's speed on CPU.

Keras 3's TensorFlow backend computes BatchNormalization from primitives (`tf.nn.moments`, then
`tf.nn.batch_normalization`): forward and backward, each of the trunk's 53 BN layers makes about ten elementwise passes
over its activation. `FusedBatchNormV3` (oneDNN's kernel on x86) does the statistics and the normalization in one
op, and its gradient in one `FusedBatchNormGradV3`. On this project's 2-core CPU that is ~20% of a full-size training
step's CPU time in float32 and ~30% in mixed bfloat16 (`scripts/benchmark_model.py`, `benchmarks/model.json`).

`FusedBatchNormalization` is a drop-in subclass: same weights (names, shapes, checkpoints), same statistics, same
moving-average update as `keras.layers.BatchNormalization`; it falls back to Keras' own computation wherever the
fused op does not apply (not 4D channels-last, a mask, renorm, synchronized statistics, no scale/center, another
backend, an epsilon below the op's minimum).
"""
from __future__ import annotations

import keras
import tensorflow as tf

# tf.compat.v1.nn.fused_batch_norm raises smaller epsilons to this; below it, Keras' own path keeps the exact value.
FUSED_MIN_EPSILON = 1.001e-5
# FusedBatchNormV3 takes activations in these dtypes (statistics, scale and offset stay float32).
_FUSED_DTYPES = (tf.float32, tf.bfloat16, tf.float16)


@keras.saving.register_keras_serializable(package="mhr_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by one FusedBatchNormV3 op for 4D channels-last inputs."""

    def _fusable(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and len(inputs.shape) == 4
                and self.axis in (-1, 3) and not self.renorm and not self.synchronized and self.scale
                and self.center and self.epsilon >= FUSED_MIN_EPSILON
                and tf.as_dtype(inputs.dtype) in _FUSED_DTYPES)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True)
            # The op returns the unbiased (N - 1) batch variance for running averages; Keras averages the biased one
            # it normalizes with, N = batch x height x width values per channel.
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
            variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
            self.moving_mean.assign(self.moving_mean * self.momentum
                                    + tf.cast(mean, self.moving_mean.dtype) * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum
                                        + tf.cast(variance, self.moving_variance.dtype) * (1.0 - self.momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, is_training=False)
        return tf.cast(outputs, self.compute_dtype)


def fuse_batch_norms(model: keras.Model) -> keras.Model:
    """A copy of the functional `model` whose `keras.layers.BatchNormalization` layers are `FusedBatchNormalization`,
    with the same layer names and the same weight values."""
    def clone(layer):
        if type(layer) is keras.layers.BatchNormalization:
            return FusedBatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    fused = keras.models.clone_model(model, clone_function=clone)
    fused.set_weights(model.get_weights())
    return fused
