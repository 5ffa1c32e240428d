"""HMR's iterative error feedback regressor (Kanazawa et al. 2018, §3.1; akanazawa/hmr `Encoder_fc3_dropout`).

Parameters theta = [pose 72 (SMPL axis-angle, camera-frame root), betas 10, camera 3 (s, tx, ty)]. Starting from the
mean theta, each of the iterations reads concat(features, theta) and adds the predicted update to theta.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mhr_tf.body import joints as joint_sets

POSE_DIM = 3 * len(joint_sets.SMPL_24)  # 72, axis-angle per SMPL joint
BETAS_DIM = 10                          # SMPL's shape coefficients
CAMERA_DIM = 3                          # HMR's weak-perspective (s, tx, ty)
PARAMS_DIM = POSE_DIM + BETAS_DIM + CAMERA_DIM

# HMR §3.1: "T = 3 iterations"; its regressor is two 1024-unit layers with dropout, then a linear layer to theta.
IEF_ITERATIONS = 3
IEF_HIDDEN_UNITS = 1024
IEF_DROPOUT = 0.5
# HMR initialises the update layer near zero (Xavier, factor 0.01) so training starts at the mean parameters.
IEF_UPDATE_INIT_SCALE = 0.01

# Mean root rotation: pi about x. SMPL's rest body stands along +y facing +z; the camera frame has y down and looks
# along +z. Rotating by pi about x sends y -> -y (head up in the image) and z -> -z (the body faces the camera).
MEAN_ROOT_AXIS_ANGLE = (np.pi, 0.0, 0.0)
# HMR's mean camera scale (its neutral_smpl_mean_params): a ~1.7 m body spans ~1.5 of the [-1, 1] crop, about the
# 150 of 224 px App. A's crops give it. Centred: tx = ty = 0.
MEAN_CAMERA = (0.9, 0.0, 0.0)


def mean_parameters(root_axis_angle=MEAN_ROOT_AXIS_ANGLE, camera=MEAN_CAMERA) -> np.ndarray:
    """The starting theta `[85]` float32: zero pose but the root facing the camera, mean shape (betas 0), `camera`."""
    theta = np.zeros(PARAMS_DIM, np.float32)
    theta[:3] = root_axis_angle
    theta[POSE_DIM + BETAS_DIM:] = camera
    return theta


def split_parameters(theta):
    """theta `[..., 85]` -> (pose `[..., 72]`, betas `[..., 10]`, camera `[..., 3]`)."""
    return (theta[..., :POSE_DIM], theta[..., POSE_DIM:POSE_DIM + BETAS_DIM], theta[..., POSE_DIM + BETAS_DIM:])


@keras.saving.register_keras_serializable(package="mhr_tf")
class IterativeRegressor(keras.layers.Layer):
    """features `[..., D]` -> theta `[..., 85]`, by `iterations` shared-weight updates from the mean theta.

    The mean theta is a non-trainable weight (it is part of the model, saved with it, never learned).
    """

    def __init__(self, hidden_units: int = IEF_HIDDEN_UNITS, iterations: int = IEF_ITERATIONS,
                 dropout: float = IEF_DROPOUT, mean_theta=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = int(hidden_units)
        self.iterations = int(iterations)
        self.dropout = float(dropout)
        mean_theta = mean_parameters() if mean_theta is None else np.asarray(mean_theta, np.float32)
        if mean_theta.shape != (PARAMS_DIM,):
            raise ValueError(f"IterativeRegressor: mean_theta has shape {mean_theta.shape}, expected ({PARAMS_DIM},)")
        self._mean_theta_value = mean_theta
        # Attributes, not a list: tf.train.Checkpoint does not save layers held in a Keras-tracked list.
        self.fc1 = keras.layers.Dense(self.hidden_units, activation="relu", name="fc1")
        self.fc2 = keras.layers.Dense(self.hidden_units, activation="relu", name="fc2")
        self.drop1 = keras.layers.Dropout(self.dropout)
        self.drop2 = keras.layers.Dropout(self.dropout)
        self.update = keras.layers.Dense(
            PARAMS_DIM, name="update",
            kernel_initializer=keras.initializers.VarianceScaling(IEF_UPDATE_INIT_SCALE, "fan_avg", "uniform"))

    def build(self, input_shape):
        self.mean_theta = self.add_weight(
            shape=(PARAMS_DIM,), initializer=keras.initializers.Constant(self._mean_theta_value), trainable=False,
            name="mean_theta")
        width = input_shape[-1] + PARAMS_DIM
        self.fc1.build((None, width))
        self.fc2.build((None, self.hidden_units))
        self.update.build((None, self.hidden_units))
        super().build(input_shape)

    def call(self, features, training=None):
        theta = ops.zeros_like(features[..., :1]) + ops.cast(self.mean_theta, features.dtype)  # [..., 85]
        for _ in range(self.iterations):
            x = ops.concatenate([features, theta], axis=-1)
            for dense, drop in ((self.fc1, self.drop1), (self.fc2, self.drop2)):
                x = drop(dense(x), training=training)
            theta = theta + self.update(x)
        return theta

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (PARAMS_DIM,)

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "iterations": self.iterations,
                "dropout": self.dropout, "mean_theta": [float(v) for v in self._mean_theta_value]}
