"""DANN baseline (Ganin et al. 2016; paper §4, App. B): a domain adversary on the per-pair trunk features.

The adversary learns to tell synthetic (domain 0) from target (domain 1) features with its ordinary loss; the
gradient reversal layer between the trunk and the adversary hands the trunk that loss's gradient times `-weight`, so
the trunk learns features the adversary cannot separate. `weight` is Ganin's lambda, the paper's "DANN loss weight"
(swept over 0.2-5, App. B); the domain loss itself enters the total with weight 1 (`mhr_tf.losses.domain_loss`).
"""
from __future__ import annotations

import keras
import tensorflow as tf

# App. B: "a 2-layer (1024 hidden units) adversary on the ConvNet output (right before the LSTM)".
ADVERSARY_UNITS = 1024
ADVERSARY_LAYERS = 2


def reverse_gradient(x: tf.Tensor, weight: float) -> tf.Tensor:
    """Identity forward; backward multiplies the incoming gradient by `-weight`."""
    @tf.custom_gradient
    def _reverse(value):
        def grad(upstream):
            return tf.cast(-weight, upstream.dtype) * upstream
        return tf.identity(value), grad
    return _reverse(x)


@keras.saving.register_keras_serializable(package="mhr_tf")
class GradientReversal(keras.layers.Layer):
    """`reverse_gradient` as a layer (no weights)."""

    def __init__(self, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)

    def call(self, inputs):
        return reverse_gradient(inputs, self.weight)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="mhr_tf")
class DomainAdversary(keras.layers.Layer):
    """Trunk features `[..., D]` -> domain logits `[...]` (positive = target domain), behind gradient reversal."""

    def __init__(self, weight: float = 1.0, units: int = ADVERSARY_UNITS, num_layers: int = ADVERSARY_LAYERS,
                 **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.reversal = GradientReversal(self.weight, name="reversal")
        # Attributes, not a list: tf.train.Checkpoint does not save layers held in a Keras-tracked list.
        for i in range(self.num_layers):
            setattr(self, f"fc{i + 1}", keras.layers.Dense(self.units, activation="relu", name=f"fc{i + 1}"))
        self.logit = keras.layers.Dense(1, name="logit")

    @property
    def hidden(self) -> list:
        return [getattr(self, f"fc{i + 1}") for i in range(self.num_layers)]

    def build(self, input_shape):
        width = input_shape[-1]
        for dense in self.hidden:
            dense.build((None, width))
            width = self.units
        self.logit.build((None, width))
        super().build(input_shape)

    def call(self, features):
        x = self.reversal(features)
        for dense in self.hidden:
            x = dense(x)
        return self.logit(x)[..., 0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "units": self.units, "num_layers": self.num_layers}
