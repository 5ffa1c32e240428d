"""Optical flow on the paired boxes (paper §3.2, App. B), with pluggable backends.

Backends:
- "dis": OpenCV's DIS flow (fast; the default for training on CPUs).
- "tvl1": OpenCV contrib's TV-L1 (the classical method the paper uses for camera motion; ~0.25 s per 224-px pair).
- "tf_tvl1": `mhr_tf.data.tf_flow`'s TV-L1 in TensorFlow ops (XLA-compiled): no Python, so it runs on tf.data
  service workers and inside the model on an accelerator.
- "saved_model:<dir>": a user's converted FlowNet/RAFT SavedModel, called as `f(image1, image2)` on
  `[N, H, W, 3]` float32 RGB in [0, 255], returning `[N, H, W, 2]` (x, y) pixels. Runs in the TF graph.
The OpenCV backends are Python steps (tf.numpy_function); the SavedModel backend keeps the graph Python-free.
"""
from __future__ import annotations

import functools
import threading

import numpy as np
import tensorflow as tf

from mhr_tf.data.preprocessing import FlowSettings

# App. B: "we expand 2 channels to 3 by adding an extra channel which is the flow magnitude".
FLOW_CHANNELS = 3
OPENCV_METHODS = ("dis", "tvl1")
SAVED_MODEL_PREFIX = "saved_model:"
TF_TVL1 = "tf_tvl1"  # mhr_tf.data.tf_flow.BACKEND_NAME (not imported here: it pulls in Keras)

# One estimator per thread and method: OpenCV releases the GIL inside `calc`, and an estimator keeps per-call
# buffers, so tf.data's parallel map must never run one instance from two threads at once.
_ESTIMATORS = threading.local()


def opencv_estimator(method: str):
    """This thread's OpenCV dense-flow estimator for `method` ('dis' or 'tvl1'), created once per thread."""
    if method not in OPENCV_METHODS:
        raise ValueError(f"unknown flow backend {method!r}: expected 'dis', 'tvl1', '{TF_TVL1}' or "
                         f"'{SAVED_MODEL_PREFIX}<dir>'")
    cache = _ESTIMATORS.__dict__
    if method not in cache:
        import cv2  # OpenCV is only needed by the Python flow steps
        cache[method] = (cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method == "dis"
                         else cv2.optflow.DualTVL1OpticalFlow_create())
    return cache[method]


def gray_flow(first: np.ndarray, second: np.ndarray, method: str) -> np.ndarray:
    """Flow `[H, W, 2]` float32 (x, y) pixels from `first` to `second`, both `[H, W]` uint8 grey."""
    return opencv_estimator(method).calc(first, second, None)


def opencv_flow(pairs: np.ndarray, method: str) -> np.ndarray:
    """pairs: [N, 2, H, W, 3] RGB (float or uint8, 0..255) -> flow [N, H, W, 2] float32 (x, y) pixels, 1st -> 2nd."""
    import cv2
    opencv_estimator(method)  # an unknown method fails before any work
    pairs = np.asarray(pairs)
    if pairs.dtype != np.uint8:
        pairs = np.clip(np.rint(pairs.astype(np.float32, copy=False)), 0, 255).astype(np.uint8)
    out = np.empty(pairs.shape[:1] + pairs.shape[2:4] + (2,), np.float32)
    for i, (first, second) in enumerate(pairs):
        out[i] = gray_flow(cv2.cvtColor(first, cv2.COLOR_RGB2GRAY), cv2.cvtColor(second, cv2.COLOR_RGB2GRAY), method)
    return out


@functools.lru_cache(maxsize=4)
def _load_saved_model(path: str):
    # Loaded outside any graph being traced (tf.data traces its map functions), so the model's variables are
    # created once, eagerly, and captured by every trace.
    with tf.init_scope():
        try:
            model = tf.saved_model.load(path)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: flow backend '{SAVED_MODEL_PREFIX}{path}' is not a readable SavedModel "
                             f"({error})") from None
    if not callable(model):
        raise ValueError(f"{path}: the SavedModel has no __call__; expected a tf.Module whose __call__(image1, "
                         f"image2) takes [N, H, W, 3] float32 RGB 0..255 and returns [N, H, W, 2] flow in pixels")
    return model


@functools.lru_cache(maxsize=4)
def tf_tvl1(overrides: tuple[tuple[str, float], ...] = ()):
    """The TF TV-L1 estimator with `TVL1Params` overrides, built once per setting."""
    from mhr_tf.data import tf_flow  # imported on use: the OpenCV backends never need it
    return tf_flow.TVL1Flow(**dict(overrides))


def compute_flow(pairs: tf.Tensor, settings: FlowSettings) -> tf.Tensor:
    """pairs: [N, 2, H, W, 3] float32 RGB 0..255 -> flow [N, H, W, 2] float32 (x, y) pixels, by the contract's
    backend (`settings.backend`, with `settings.tvl1` for "tf_tvl1")."""
    backend = settings.backend
    pairs = tf.convert_to_tensor(pairs, tf.float32)
    if backend == TF_TVL1 or backend.startswith(SAVED_MODEL_PREFIX):
        return pair_flow(pairs[:, 0], pairs[:, 1], settings)
    out_shape = pairs.shape[:1].concatenate(pairs.shape[2:4]).concatenate([2])
    opencv_estimator(backend)  # fail early, at graph construction, on an unknown backend name
    # OpenCV takes uint8: rounding in the graph (half to even, as np.rint) hands Python a quarter of the bytes.
    pixels = tf.cast(tf.clip_by_value(tf.round(pairs), 0.0, 255.0), tf.uint8)
    flow = tf.numpy_function(lambda p: opencv_flow(p, backend), [pixels], tf.float32, stateful=False)
    return tf.ensure_shape(flow, out_shape)


def pair_flow(first: tf.Tensor, second: tf.Tensor, settings: FlowSettings) -> tf.Tensor:
    """first, second: [N, H, W, 3] float32 RGB 0..255 -> flow [N, H, W, 2] float32 (x, y) pixels from first to second,
    by a TF backend of the contract ("tf_tvl1" with `settings.tvl1`, or "saved_model:<dir>"): TF ops only, so it runs
    in tf.data and as the model's first layer alike (`mhr_tf.model.flow_input`)."""
    backend = settings.backend
    first = tf.convert_to_tensor(first, tf.float32)
    second = tf.convert_to_tensor(second, tf.float32)
    out_shape = first.shape[:3].concatenate([2])
    if backend == TF_TVL1:
        return tf.ensure_shape(tf_tvl1(settings.tvl1)(first, second), out_shape)
    if backend.startswith(SAVED_MODEL_PREFIX):
        model = saved_model(backend)
        return tf.ensure_shape(tf.cast(model(first, second), tf.float32), out_shape)
    raise ValueError(f"flow backend {backend!r} is a Python (OpenCV) step; pair_flow runs the TF backends only "
                     f"('{TF_TVL1}', '{SAVED_MODEL_PREFIX}<dir>')")


def saved_model(backend: str):
    """The loaded SavedModel of a "saved_model:<dir>" backend (loaded once per directory)."""
    return _load_saved_model(backend[len(SAVED_MODEL_PREFIX):])


def flow_channels(flow: tf.Tensor, divisor: float) -> tf.Tensor:
    """[..., 2] flow in pixels -> [..., 3] network channels: flow / `divisor` (App. B: 20, "to put them in the same
    range as RGB pixels") and the magnitude of that (App. B: "an extra channel which is the flow magnitude")."""
    scaled = tf.convert_to_tensor(flow, tf.float32) / divisor
    return tf.concat([scaled, tf.norm(scaled, axis=-1, keepdims=True)], axis=-1)
