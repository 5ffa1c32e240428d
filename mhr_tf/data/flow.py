"""Optical flow on the paired boxes (paper §3.2, App. B), with pluggable backends.

Backends:
- "dis": OpenCV's DIS flow (fast; the default for training on CPUs).
- "tvl1": OpenCV contrib's TV-L1 (the classical method the paper uses for camera motion; ~0.25 s per 224-px pair).
- "saved_model:<dir>": a user's converted FlowNet/RAFT SavedModel, called as `f(image1, image2)` on
  `[N, H, W, 3]` float32 RGB in [0, 255], returning `[N, H, W, 2]` (x, y) pixels. Runs in the TF graph.
The OpenCV backends are Python steps (tf.numpy_function); the SavedModel backend keeps the graph Python-free.
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

# App. B: "Optical flow estimates are divided by 20 to put them in the same range as RGB pixels (roughly -1 to 1)"
# and "we expand 2 channels to 3 by adding an extra channel which is the flow magnitude".
FLOW_DIVISOR = 20.0
FLOW_CHANNELS = 3


@functools.lru_cache(maxsize=None)
def _opencv_estimator(method: str):
    import cv2
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if method == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create()
    raise ValueError(f"unknown flow backend {method!r}: expected 'dis', 'tvl1' or 'saved_model:<dir>'")


def opencv_flow(pairs: np.ndarray, method: str) -> np.ndarray:
    """pairs: [N, 2, H, W, 3] RGB (float or uint8, 0..255) -> flow [N, H, W, 2] float32 (x, y) pixels, 1st -> 2nd."""
    import cv2
    estimator = _opencv_estimator(method)
    pairs = np.clip(np.asarray(pairs), 0, 255).astype(np.uint8)
    out = np.empty(pairs.shape[:1] + pairs.shape[2:4] + (2,), np.float32)
    for i, (first, second) in enumerate(pairs):
        out[i] = estimator.calc(cv2.cvtColor(first, cv2.COLOR_RGB2GRAY), cv2.cvtColor(second, cv2.COLOR_RGB2GRAY),
                                None)
    return out


@functools.lru_cache(maxsize=4)
def _load_saved_model(path: str):
    model = tf.saved_model.load(path)
    fn = model.signatures.get("serving_default") if hasattr(model, "signatures") else None
    return model, fn


def compute_flow(pairs: tf.Tensor, backend: str = "dis") -> tf.Tensor:
    """pairs: [N, 2, H, W, 3] float32 RGB 0..255 -> flow [N, H, W, 2] float32 (x, y) pixels."""
    pairs = tf.convert_to_tensor(pairs, tf.float32)
    if backend.startswith("saved_model:"):
        model, _ = _load_saved_model(backend.split(":", 1)[1])
        flow = model(pairs[:, 0], pairs[:, 1])
        return tf.ensure_shape(tf.cast(flow, tf.float32), pairs.shape[:1].concatenate(pairs.shape[2:4]) + [2])
    _opencv_estimator(backend)  # fail early, at graph construction, on an unknown backend name
    flow = tf.numpy_function(lambda p: opencv_flow(p, backend), [pairs], tf.float32, stateful=False)
    return tf.ensure_shape(flow, pairs.shape[:1].concatenate(pairs.shape[2:4]).concatenate([2]))


def flow_channels(flow: tf.Tensor) -> tf.Tensor:
    """[..., 2] flow in pixels -> [..., 3] network channels: flow / 20 and its magnitude (App. B)."""
    scaled = flow / FLOW_DIVISOR
    return tf.concat([scaled, tf.norm(scaled, axis=-1, keepdims=True)], axis=-1)
