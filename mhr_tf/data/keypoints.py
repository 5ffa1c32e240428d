"""2D keypoint inputs (paper §3.2, App. B): which keypoints are visible, and their Gaussian heatmaps.

At training time keypoints come from the simulator; App. B's domain randomization hides and unhides them so that
they look like a detector's output on real video.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from mhr_tf.body import joints as joint_sets
from mhr_tf.data.preprocessing import Augmentation

# The heatmap joints are the first 12 of LSP-14, so heatmap joint k is `joints14[..., k, :]`.
assert joint_sets.HEATMAP_12 == joint_sets.LSP_14[:12]
NUM_HEATMAPS = len(joint_sets.HEATMAP_12)
IS_LEG = np.array([name in joint_sets.LEG_JOINTS for name in joint_sets.HEATMAP_12])  # [12] bool: hips, knees, ankles


def pixel_lookup(image: tf.Tensor, points: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Value of `image [T, H, W]` at the nearest pixel of each of `points [T, K, 2]` (x, y), and whether that pixel is
    inside the image (`[T, K]` each; outside points read the nearest border pixel)."""
    image = tf.convert_to_tensor(image)
    points = tf.convert_to_tensor(points, tf.float32)
    shape = tf.shape(image)
    height, width = shape[1], shape[2]
    pixel = tf.cast(tf.round(points), tf.int32)
    inside = (pixel[..., 0] >= 0) & (pixel[..., 0] < width) & (pixel[..., 1] >= 0) & (pixel[..., 1] < height)
    index = tf.stack([tf.clip_by_value(pixel[..., 1], 0, height - 1),
                      tf.clip_by_value(pixel[..., 0], 0, width - 1)], axis=-1)
    return tf.gather_nd(image, index, batch_dims=1), inside


def keypoint_visibility(example: dict, seed: tf.Tensor, rules: Augmentation) -> dict:
    """Pipeline step: App. B's visibility rules, in the paper's order, for the 12 heatmap joints of every frame.

    1. outside the background frame -> hidden; 2. covered by the SLIC occluder -> hidden; 3. on a totally occluded
    frame -> hidden; 4. at least `rules.depth_margin_m` (20 cm) behind the rendered depth -> hidden (a limb behind the
    body); then 5. with probability `rules.leg_unhide_probability` (0.5) all leg keypoints of the clip are unhidden;
    6. each keypoint flips (hidden <-> visible) with probability `rules.flip_probability` (0.05).
    Reads `joints14_2d [T,14,2]` (frame pixels), `joints14_cam [T,14,3]` (metres, camera frame), `depth [T,H,W]`
    (metres along each pixel's ray, SURREAL's convention), optional `occluder [T,H,W]` bool and `occluded [T]`.
    Writes `keypoints_visible [T, 12]` bool.
    """
    points = tf.convert_to_tensor(example["joints14_2d"], tf.float32)[:, :NUM_HEATMAPS]
    depth_at, inside = pixel_lookup(tf.cast(example["depth"], tf.float32), points)
    visible = inside
    if "occluder" in example:
        covered, _ = pixel_lookup(example["occluder"], points)
        visible &= ~covered
    if "occluded" in example:
        visible &= ~tf.cast(example["occluded"], tf.bool)[:, None]
    # Rule 4 compares like with like: the joint's distance along its own ray with the ray depth at its pixel.
    ray_distance = tf.norm(tf.convert_to_tensor(example["joints14_cam"], tf.float32)[:, :NUM_HEATMAPS], axis=-1)
    visible &= ~(ray_distance >= depth_at + rules.depth_margin_m)

    seeds = tf.random.experimental.stateless_split(seed, 2)
    unhide_legs = tf.random.stateless_uniform([], seeds[0]) < rules.leg_unhide_probability
    visible |= tf.logical_and(unhide_legs, IS_LEG[None, :])
    flip = tf.random.stateless_uniform(tf.shape(visible), seeds[1]) < rules.flip_probability
    out = dict(example)
    out["keypoints_visible"] = tf.math.logical_xor(visible, flip)
    return out


def gaussian_heatmaps(points: tf.Tensor, visible: tf.Tensor, size: int, sigma: float) -> tf.Tensor:
    """Heatmaps `[N, size, size, K]` float32 with a Gaussian of std `sigma` px and peak 1 at each visible point.

    points: [N, K, 2] (x, y) in crop pixels (pixel centres at integers); visible: [N, K] bool (hidden -> all zero).
    """
    gx, gy = gaussian_profiles(points, visible, size, sigma)
    return heatmaps_from_profiles(gx, gy)


def gaussian_profiles(points: tf.Tensor, visible: tf.Tensor, size: int, sigma: float) -> tuple[tf.Tensor, tf.Tensor]:
    """The separable factors of `gaussian_heatmaps`: `gx [N, size, K]` (along x, 0 for a hidden keypoint) and
    `gy [N, size, K]` (along y); the heatmaps are their outer product (`heatmaps_from_profiles`)."""
    points = tf.convert_to_tensor(points, tf.float32)
    coords = tf.range(size, dtype=tf.float32)
    dx = coords[None, :, None] - points[:, None, :, 0]  # [N, W, K]
    dy = coords[None, :, None] - points[:, None, :, 1]  # [N, H, K]
    # A hidden keypoint's 0 multiplies the 1-D profile rather than the whole map: the same values, one pass fewer.
    gx = tf.exp(-0.5 * tf.square(dx / sigma)) * tf.cast(visible, tf.float32)[:, None, :]
    gy = tf.exp(-0.5 * tf.square(dy / sigma))
    return gx, gy


def heatmaps_from_profiles(gx: tf.Tensor, gy: tf.Tensor) -> tf.Tensor:
    """`[N, H, W, K]` = gy[n, y, k] * gx[n, x, k]: one multiply per value (also inside an XLA fusion)."""
    return gy[:, :, None, :] * gx[:, None, :, :]

