"""Occlusions (paper §3.1, App. A): 4-D SLIC superpixel occluders and 'total occlusions'.

SLIC runs on the background video (numpy/skimage, offline or at the pipeline's source); choosing one superpixel,
the discard rule and the masking are TF ops in the online graph.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from mhr_tf.data import keypoints
from mhr_tf.data.preprocessing import MIN_VISIBLE_JOINTS

# App. A: "between 10 and 30 superpixels per image", "compactness for the SLIC computation (0.01)", "the
# concatenated (x,y) coordinates are multiplied by a random scalar between 4e-4 and 6e-4".
SUPERPIXELS_PER_FRAME = (10, 30)
SLIC_COMPACTNESS = 0.01
SLIC_XY_SCALE = (4e-4, 6e-4)
# The paper's scale is for 240x320 pixel coordinates; at another resolution the coordinates are rescaled (by the
# frame height, so pixels stay square) so the colour/position balance stays the paper's.
SLIC_REFERENCE_HW = (240, 320)


def _slic_features(frames: np.ndarray, rows: np.ndarray, cols: np.ndarray, camera_shift: np.ndarray,
                   xy_scale: float, full_hw: tuple[int, int]) -> np.ndarray:
    """[T, h, w, 5] float32: colour in [0, 1] and camera-compensated (x, y) in 240-row pixels times `xy_scale`.

    frames [T, h, w, 3] are the samples at full-resolution pixel `rows [h]` x `cols [w]` of frames of size `full_hw`;
    camera_shift [T, 2] is in full-resolution pixels.
    App. A: SLIC clusters colour and position, with "the (x,y) pixel coordinates which have been modified to account
    for camera motion" (integrated median flow subtracted), "multiplied by a random scalar between 4e-4 and 6e-4".
    Colour is taken in [0, 1]: with 0..255 colour that scale would leave position without any weight. Positions are
    expressed in pixels of a 240-row frame (the paper's 240x320; a wider frame keeps square pixels) whatever the
    resolution, so the colour/position balance stays the paper's.
    """
    full_h, _ = full_hw
    zoom = SLIC_REFERENCE_HW[0] / full_h
    shift = np.asarray(camera_shift, np.float64)
    x = (cols[None, None, :] - shift[:, 0, None, None]) * zoom  # [T, 1, w]
    y = (rows[None, :, None] - shift[:, 1, None, None]) * zoom  # [T, h, 1]
    x, y = np.broadcast_arrays(x, y)
    colour = np.asarray(frames).astype(np.float32) / 255.0
    return np.concatenate([colour, (np.stack([x, y], -1) * xy_scale).astype(np.float32)], axis=-1)


def slic_4d(frames: np.ndarray, camera_shift: np.ndarray, superpixels_per_frame: int, xy_scale: float,
            downsample: int = 1) -> np.ndarray:
    """SLIC superpixels of a video clip as one 4-D volume whose positions follow the camera (App. A).

    frames: [T, H, W, 3] uint8 RGB (the paper's 240x320). camera_shift: [T, 2] (x, y) shift of each frame relative to
    the centre frame, in pixels of `frames` (`camera_motion.integrate_relative_to_centre`).
    Returns labels [T, H, W] int32, 0..n-1.

    `downsample=1` is the paper's setting: skimage's SLIC on the whole [T, H, W] volume with `n_segments` =
    superpixels per frame (at 240x320xT the seed grid has one cell in time, so each superpixel spans the clip and
    follows the camera). It costs 2.0-2.4 s of CPU per 31-frame clip, so `downsample=d` runs the same SLIC on every
    d-th pixel of every frame (the pixel at the centre of each d x d block, positions still in full-resolution units)
    and gives each label to its whole block: 0.4-0.6 s at d=2, 0.2 s at d=3. `tests/data/test_occlusion.py` measures
    how well the two agree (area-weighted best-match IoU 0.5-0.76 at d=2, where the paper's settings score 0.6-0.95
    against themselves on the same clip moved by one pixel: low-compactness SLIC is that unstable).
    """
    from skimage.segmentation import slic
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"slic_4d: frames must be [T, H, W, 3] RGB, got shape {frames.shape}")
    t, h, w = frames.shape[:3]
    if np.shape(camera_shift) != (t, 2):
        raise ValueError(f"slic_4d: camera_shift must be [T, 2] = [{t}, 2], got shape {np.shape(camera_shift)}")
    d = int(downsample)
    if d < 1:
        raise ValueError(f"slic_4d: downsample must be a positive integer, got {downsample}")
    rows, cols = np.arange(d // 2, h, d), np.arange(d // 2, w, d)
    small = frames[:, rows][:, :, cols]
    labels = slic(_slic_features(small, rows, cols, camera_shift, xy_scale, full_hw=(h, w)),
                  n_segments=superpixels_per_frame, compactness=SLIC_COMPACTNESS, channel_axis=-1, start_label=0,
                  convert2lab=False)
    labels = _relabel(labels)
    if d > 1:
        # Each full-resolution pixel takes the label of its block's sample (the last block may be partial).
        labels = np.repeat(np.repeat(labels, _block_sizes(h, d), axis=1), _block_sizes(w, d), axis=2)
    return labels


def _block_sizes(full: int, d: int) -> np.ndarray:
    """Pixels per block along an axis of `full` pixels cut into blocks of `d` (the last one takes what is left):
    the repeat counts that give every pixel its block's label."""
    count = len(range(d // 2, full, d))
    sizes = np.full(count, d)
    sizes[-1] = full - d * (count - 1)
    return sizes


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive ids 0..n-1 in the order of the original ids (SLIC can leave gaps). A lookup table, not np.unique:
    sorting millions of labels cost more than SLIC itself."""
    present = np.bincount(labels.ravel()) > 0
    lookup = (np.cumsum(present) - 1).astype(np.int32)
    return lookup[labels]


def sample_slic_parameters(rng: np.random.Generator) -> tuple[int, float]:
    """Random superpixels-per-frame and xy scale within the paper's ranges."""
    low, high = SUPERPIXELS_PER_FRAME
    return int(rng.integers(low, high + 1)), float(rng.uniform(*SLIC_XY_SCALE))


def visible_joint_count(joints2d: tf.Tensor, hidden_mask: tf.Tensor) -> tf.Tensor:
    """Joints per frame that lie inside the image and are not covered by `hidden_mask`.

    joints2d: [T, J, 2] (x, y) pixels; hidden_mask: [T, H, W] bool. Returns [T] float32.
    """
    covered, inside = keypoints.pixel_lookup(hidden_mask, joints2d)
    return tf.reduce_sum(tf.cast(inside & ~covered, tf.float32), axis=1)


def slic_occluder(example: dict, seed: tf.Tensor, *, enabled: bool = True,
                  min_visible_joints: float = MIN_VISIBLE_JOINTS) -> dict:
    """Pipeline step: one random superpixel removes the person's pixels it covers (App. A).

    Reads `superpixels [T, H, W]` int32 (the background window's labels, cropped: some ids may be absent),
    `segm [T, H, W]` (0 = background), `joints14_2d [T, 14, 2]`. The superpixel is drawn uniformly among those present
    in the clip, and discarded (no masking) when it does not touch the person, or when fewer than
    `min_visible_joints` of the 14 evaluation joints per frame stay visible on average.
    Writes `occluder [T, H, W]` bool (the applied mask, all False when discarded) and `occluded_by_slic` scalar bool.
    """
    out = dict(example)
    labels = tf.convert_to_tensor(example["superpixels"], tf.int32)
    if not enabled:
        out["occluder"] = tf.zeros_like(labels, tf.bool)
        out["occluded_by_slic"] = tf.constant(False)
        return out
    present = tf.where(tf.math.bincount(tf.reshape(labels, [-1]), dtype=tf.int32) > 0)[:, 0]
    pick = tf.random.stateless_uniform([], seed, minval=0, maxval=tf.shape(present)[0], dtype=tf.int32)
    candidate = tf.equal(labels, tf.cast(present[pick], tf.int32))
    person = tf.convert_to_tensor(example["segm"]) > 0
    touches = tf.reduce_any(candidate & person)
    visible = visible_joint_count(example["joints14_2d"], candidate)
    keep = touches & (tf.reduce_mean(visible) >= min_visible_joints)
    out["occluder"] = candidate & keep
    out["occluded_by_slic"] = keep
    return out


def total_occlusion(example: dict, seed: tf.Tensor, *, probability: float, max_frames: int) -> dict:
    """Pipeline step: in some clips, a run of 1..`max_frames` frames where the person is totally occluded (App. A).

    Writes `occluded [T]` float32: 1 on those frames (the input channels are zeroed there and the indicator channel
    carries the 1), 0 elsewhere. Reads the clip length from `joints2d`.
    """
    num_frames = tf.shape(example["joints2d"])[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    apply = tf.random.stateless_uniform([], seeds[0]) < probability
    length = tf.random.stateless_uniform([], seeds[1], minval=1, maxval=max_frames + 1, dtype=tf.int32)
    length = tf.minimum(length, num_frames)
    start = tf.random.stateless_uniform([], seeds[2], minval=0, maxval=num_frames - length + 1, dtype=tf.int32)
    frames = tf.range(num_frames)
    run = (frames >= start) & (frames < start + length) & apply
    out = dict(example)
    out["occluded"] = tf.cast(run, tf.float32)
    return out
