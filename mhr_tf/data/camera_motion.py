"""Camera motion of a background video, and the person following it (paper §3.1 and App. A).

Offline (`scripts/preprocess_backgrounds.py`): TV-L1 flow between consecutive frames, reduced to the per-frame median
x/y flow. Online: the median flow of the sampled clip is integrated relative to the centre frame and the SURREAL
person is translated by it, so the composited person moves with the camera as a filmed person would.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from mhr_tf.data import flow as flow_backends
from mhr_tf.data.surreal import DEPTH_BACKGROUND

# App. A: "we compute optical flow of the Kinetics data using TVL1 [...] computed offline". DIS is the fast option.
FLOW_METHODS = flow_backends.OPENCV_METHODS


def median_flow(frames: np.ndarray, method: str = "tvl1", scale: float = 1.0) -> np.ndarray:
    """Per-frame median optical flow of a video (App. A: "the median x and y flow for each frame").

    frames: [N, H, W, 3] uint8 RGB.
    Returns `median [N-1, 2]` float32, pixels of the input frames: the median (x, y) flow from frame i to i+1.
    `scale` < 1 computes the flow on downscaled frames (faster) and rescales the result to input pixels.
    """
    import cv2
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 2:
        raise ValueError(f"median_flow needs frames [N>=2, H, W, 3], got shape {frames.shape}")
    flow_backends.opencv_estimator(method)  # an unknown method fails before any work
    gray = [cv2.cvtColor(np.ascontiguousarray(f, np.uint8), cv2.COLOR_RGB2GRAY) for f in frames]
    if scale != 1.0:
        gray = [cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for g in gray]
    # The resized size is rounded to whole pixels, so the true zoom differs slightly from `scale` per axis.
    zoom = np.array([gray[0].shape[1] / frames.shape[2], gray[0].shape[0] / frames.shape[1]], np.float64)
    out = np.empty((len(gray) - 1, 2), np.float32)
    for i in range(len(gray) - 1):
        step = flow_backends.gray_flow(gray[i], gray[i + 1], method)  # [h, w, 2] (x, y)
        out[i] = np.median(step.reshape(-1, 2), axis=0) / zoom
    return out


def clip_median_flow(median: np.ndarray, start: int, num_frames: int, zoom: float = 1.0) -> np.ndarray:
    """The steps `[num_frames - 1, 2]` of a clip cut from a video whose cached `median [N-1, 2]` is in video pixels.

    The clip starts at video frame `start`; `zoom` is the clip's resize factor (clip pixels per video pixel, App. A's
    crop/resize to 240x320), which scales the flow; the crop offset does not change it.
    """
    median = np.asarray(median, np.float32)
    if start < 0 or start + num_frames - 1 > len(median):
        raise ValueError(f"clip_median_flow: frames {start}..{start + num_frames - 1} need steps {start}.."
                         f"{start + num_frames - 2}, but the cache has {len(median)} steps ({len(median) + 1} frames)")
    return median[start:start + num_frames - 1] * np.float32(zoom)


def integrate_relative_to_centre(median: np.ndarray) -> np.ndarray:
    """Camera shift of every frame of a clip relative to its centre frame.

    median: [T-1, 2] per-step median flow (frame t -> t+1) of the clip, in clip pixels.
    Returns `shift [T, 2]` float32: where a scene point at the centre frame's pixel p appears at frame t is p + shift[t]
    (App. A: "translate the person according to the median flow at each frame, using the center frame as reference").
    """
    median = np.asarray(median, np.float32)
    cumulative = np.concatenate([np.zeros((1, 2), np.float32), np.cumsum(median, axis=0)], axis=0)
    return cumulative - cumulative[len(cumulative) // 2]


def integrate_relative_to_centre_tf(median: tf.Tensor) -> tf.Tensor:
    """TF twin of `integrate_relative_to_centre` for the online graph: [T-1, 2] -> [T, 2]."""
    median = tf.convert_to_tensor(median, tf.float32)
    cumulative = tf.concat([tf.zeros([1, 2]), tf.cumsum(median, axis=0)], axis=0)
    return cumulative - cumulative[tf.shape(cumulative)[0] // 2]


def translate_frames(images: tf.Tensor, shift: tf.Tensor, fill_value: float = 0.0) -> tf.Tensor:
    """Translate each frame by a whole number of pixels (the shift rounded), filling uncovered pixels.

    images: [T, H, W, C]; shift: [T, 2] (x, y) pixels. Nearest-pixel translation keeps segmentation ids and depth
    exact (no blending of part labels or depth across the silhouette).
    """
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    shift = tf.cast(tf.round(tf.convert_to_tensor(shift, tf.float32)), tf.int32)
    # Shifts beyond the frame uncover all of it; clipping keeps the slice bounds valid.
    dx = tf.clip_by_value(shift[:, 0], -width, width)
    dy = tf.clip_by_value(shift[:, 1], -height, height)
    fill = tf.cast(fill_value, images.dtype)

    # A whole-pixel translation is a slice of the part that stays in view, padded with the fill: contiguous row copies
    # in the images' own dtype, the same pixels as a nearest-neighbour warp at a seventh of its cost.
    def translate_one(args):
        frame, x, y = args
        kept = frame[tf.maximum(0, -y):height - tf.maximum(0, y), tf.maximum(0, -x):width - tf.maximum(0, x)]
        padding = [[tf.maximum(0, y), tf.maximum(0, -y)], [tf.maximum(0, x), tf.maximum(0, -x)], [0, 0]]
        return tf.pad(kept, padding, constant_values=fill)

    out = tf.map_fn(translate_one, (images, dx, dy), fn_output_signature=tf.TensorSpec(images.shape[1:], images.dtype))
    return tf.ensure_shape(out, images.shape)


def follow_camera(example: dict, *, track: bool = True) -> dict:
    """Pipeline step: translate the person (pixels, segmentation, depth, 2D joints) by the camera shift.

    Reads `camera_shift [T, 2]`; with `track=False` (Table 2, "no background tracking") the person is not moved.
    """
    if not track:
        return dict(example)
    shift = tf.round(tf.convert_to_tensor(example["camera_shift"], tf.float32))
    out = dict(example)
    out["person_rgb"] = translate_frames(example["person_rgb"], shift)
    out["segm"] = translate_frames(tf.convert_to_tensor(example["segm"])[..., None], shift)[..., 0]
    # Depth outside the rendered person is SURREAL's background value, so uncovered pixels get it too.
    out["depth"] = translate_frames(tf.convert_to_tensor(example["depth"])[..., None], shift,
                                    fill_value=DEPTH_BACKGROUND)[..., 0]
    for key in ("joints2d", "joints14_2d"):
        out[key] = tf.convert_to_tensor(example[key], tf.float32) + shift[:, None, :]
    return out


# --------------------------------------------------------------------------------------------------------------------
# The offline cache beside each background video: `<video>.motion.npz`.

CACHE_SUFFIX = ".motion.npz"
CACHE_VERSION = 1


def cache_path(video_path) -> Path:
    video_path = Path(video_path)
    return video_path.with_name(video_path.name + CACHE_SUFFIX)


def preprocess_video(video_path, method: str = "tvl1", scale: float = 0.5, overwrite: bool = False, *,
                     reader=None) -> Path:
    """Computes the per-frame median flow of a background video and caches it beside the video.

    Resumable: an existing valid cache is kept unless `overwrite`. Written atomically (temp file, then rename).
    `reader(path) -> frames [N, H, W, 3] uint8 RGB` decodes the video (default `videos.read_video`).
    Returns the cache path.
    """
    if reader is None:
        from mhr_tf.data import videos
        reader = videos.read_video
    target = cache_path(video_path)
    if target.exists() and not overwrite:
        try:
            with np.load(target) as cached:
                if int(cached["version"]) == CACHE_VERSION:
                    return target
        except Exception:  # a broken cache from an interrupted run is recomputed
            pass
    frames = reader(video_path)
    median = median_flow(frames, method=method, scale=scale)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, version=np.int64(CACHE_VERSION), median_flow=median, method=np.str_(method),
             scale=np.float64(scale), num_frames=np.int64(len(frames)), video_hw=np.array(frames.shape[1:3]))
    os.replace(tmp, target)
    return target


def load_median_flow(video_path) -> np.ndarray:
    """The cached `median_flow [N-1, 2]` of a video, in the video's own pixels. Names the script to run if absent."""
    target = cache_path(video_path)
    if not target.exists():
        raise FileNotFoundError(
            f"{target}: no camera-motion cache for background video {video_path}; run "
            f"`python scripts/preprocess_backgrounds.py --root <background root>` first")
    try:
        with np.load(target) as cached:
            median = np.asarray(cached["median_flow"], np.float32)
    except Exception as error:  # zip, pickle or key errors from a truncated or foreign file
        raise ValueError(f"{target}: unreadable camera-motion cache, field 'median_flow' ({type(error).__name__}: "
                         f"{error}); rerun scripts/preprocess_backgrounds.py with --overwrite") from None
    if median.ndim != 2 or median.shape[1] != 2:
        raise ValueError(f"{target}: field 'median_flow' has shape {median.shape}, expected [N-1, 2] (x, y) pixels; "
                         f"rerun scripts/preprocess_backgrounds.py with --overwrite")
    return median
