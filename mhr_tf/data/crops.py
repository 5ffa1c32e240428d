"""Person crops (paper App. A and B): HMR-style boxes from keypoints, and 'paired boxes' for flow.

App. A: "Bounding boxes are cropped at a 224x224 resolution, following the procedure from HMR which uses the
keypoints to ensure that the person is centered and roughly 150 pixels tall." HMR's OpenPose path takes the centre
of the keypoints' bounding box and scales the box's diagonal to 150 px. App. B: box t is applied to frames t and t+1
("paired boxes"), so a clip of T frames gives T-1 pairs.
"""
from __future__ import annotations

import tensorflow as tf

from mhr_tf import geometry
from mhr_tf.data.preprocessing import HEATMAP_REFERENCE_CROP, BoxRule


def hmr_boxes(keypoints: tf.Tensor, valid: tf.Tensor, person_px: float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One square box per frame around the valid keypoints.

    keypoints: [T, K, 2] (x, y) image pixels; valid: [T, K] bool.
    Returns `centre [T, 2]`, `size [T]` (box side in image pixels, chosen so that the keypoints' bounding-box
    diagonal spans `person_px` of a 224-pixel crop, whatever the crop size) and `ok [T]` bool (at least two valid
    keypoints).
    """
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    valid = tf.convert_to_tensor(valid, tf.bool)
    big = tf.constant(1e9, tf.float32)
    lo = tf.reduce_min(tf.where(valid[..., None], keypoints, big), axis=1)
    hi = tf.reduce_max(tf.where(valid[..., None], keypoints, -big), axis=1)
    ok = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1) >= 2
    diagonal = tf.norm(hi - lo, axis=-1)
    ok &= diagonal > 1.0
    centre = tf.where(ok[:, None], (lo + hi) / 2.0, tf.zeros_like(lo))
    size = tf.where(ok, diagonal * (HEATMAP_REFERENCE_CROP / person_px), tf.ones_like(diagonal))
    return centre, size, ok


def person_boxes(joints14: tf.Tensor, valid14: tf.Tensor, rule: BoxRule,
                 image_hw: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """The contract's box for every frame of a clip: `rule` applied to LSP-14 points `[T, 14, 2]` (image pixels)
    with `valid14 [T, 14]` bool, frames without a box filled from their neighbours in time.

    Training passes the in-frame ground-truth joints, test the confident detections: the same function, the same
    joints (`rule.joints`). A clip with no box at all (no frame has two valid joints) gets the whole image when
    `image_hw` is given, else an error at run time.
    """
    index = list(rule.lsp_indices)
    points = tf.gather(tf.convert_to_tensor(joints14, tf.float32), index, axis=1)
    valid = tf.gather(tf.convert_to_tensor(valid14, tf.bool), index, axis=1)
    centre, size, ok = hmr_boxes(points, valid, rule.person_px)
    if image_hw is None:
        tf.debugging.assert_equal(tf.reduce_any(ok), True, message="person_boxes: no frame of the clip has a box")
        return fill_missing_boxes(centre, size, ok)
    hw = tf.cast(image_hw, tf.float32)
    return tf.cond(tf.reduce_any(ok), lambda: fill_missing_boxes(centre, size, ok),
                   lambda: (tf.broadcast_to((hw[::-1] - 1.0) / 2.0, tf.shape(centre)),  # pixel centres at integers
                            tf.broadcast_to(tf.reduce_min(hw), tf.shape(size))))


def fill_missing_boxes(centre: tf.Tensor, size: tf.Tensor, ok: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Frames without a box take the nearest earlier box (or the first later one), as a tracker holding its last
    detection would. Requires at least one `ok` frame."""
    ok = tf.convert_to_tensor(ok, tf.bool)
    t = tf.shape(ok)[0]
    index = tf.range(t)
    # For every frame i at once (a [T, T] table, no loop over frames): the last ok frame j <= i (-1 if none), and
    # the first ok frame j >= i (T if none).
    before = ok[None, :] & (index[None, :] <= index[:, None])
    after = ok[None, :] & (index[None, :] >= index[:, None])
    earlier = tf.reduce_max(tf.where(before, index[None, :], -1), axis=1)
    later = tf.reduce_min(tf.where(after, index[None, :], t), axis=1)
    source = tf.where(earlier >= 0, earlier, later)
    source = tf.clip_by_value(source, 0, t - 1)
    return tf.gather(centre, source), tf.gather(size, source)


def paired_crops(images: tf.Tensor, centre: tf.Tensor, size: tf.Tensor, crop_size: int,
                 method: str = "bilinear") -> tf.Tensor:
    """Crops `[T-1, 2, S, S, C]` float32: box t applied to frames t and t+1 (App. B's paired boxes).

    images: [T, H, W, C]; centre [T, 2]; size [T] (only the first T-1 boxes are used). Outside the image is 0.
    """
    images = tf.convert_to_tensor(images)
    channels = images.shape[-1]
    if channels is None:
        raise ValueError(f"paired_crops: images need a static channel count [T, H, W, C], got {images.shape}")
    shape = tf.shape(images)
    t = shape[0]
    # Static frame sizes where known (SURREAL), the decoded size otherwise (3DPW's JPEGs, a user's video).
    height = images.shape[1] if images.shape[1] is not None else shape[1]
    width = images.shape[2] if images.shape[2] is not None else shape[2]
    centre = tf.convert_to_tensor(centre, tf.float32)
    size = tf.convert_to_tensor(size, tf.float32)
    boxes = geometry.crop_and_resize_boxes(centre[:-1], size[:-1], (height, width), crop_size)
    boxes = tf.repeat(tf.cast(boxes, tf.float32), 2, axis=0)  # [2(T-1), 4]: box t, box t, box t+1, box t+1, ...
    frame_index = tf.reshape(tf.stack([tf.range(t - 1), tf.range(1, t)], axis=1), [-1])
    crops = tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, frame_index, [crop_size, crop_size],
                                     method=method)
    return tf.reshape(crops, [t - 1, 2, crop_size, crop_size, channels])


def current_crops(images: tf.Tensor, centre: tf.Tensor, size: tf.Tensor, crop_size: int,
                  method: str = "bilinear") -> tf.Tensor:
    """Crops `[T-1, S, S, C]` float32: box t applied to frame t only, `paired_crops(...)[:, 0]` at half the work
    (what the RGB group needs when no flow is computed from the pair). Same arguments as `paired_crops`."""
    images = tf.convert_to_tensor(images)
    channels = images.shape[-1]
    if channels is None:
        raise ValueError(f"current_crops: images need a static channel count [T, H, W, C], got {images.shape}")
    shape = tf.shape(images)
    height = images.shape[1] if images.shape[1] is not None else shape[1]
    width = images.shape[2] if images.shape[2] is not None else shape[2]
    boxes = geometry.crop_and_resize_boxes(tf.convert_to_tensor(centre, tf.float32)[:-1],
                                           tf.convert_to_tensor(size, tf.float32)[:-1], (height, width), crop_size)
    return tf.image.crop_and_resize(tf.cast(images, tf.float32), tf.cast(boxes, tf.float32), tf.range(shape[0] - 1),
                                    [crop_size, crop_size], method=method)


def keypoints_in_pair_boxes(points: tf.Tensor, centre: tf.Tensor, size: tf.Tensor,
                            crop_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Keypoints `[T, K, 2]` (image pixels) in the crop pixels of the paired boxes.

    Returns `(current, future)`, each `[T-1, K, 2]`: frame t and frame t+1, both in box t.
    """
    points = tf.convert_to_tensor(points, tf.float32)
    centre = tf.convert_to_tensor(centre, tf.float32)
    size = tf.convert_to_tensor(size, tf.float32)
    current = geometry.image_to_crop(points[:-1], centre[:-1], size[:-1], crop_size)
    future = geometry.image_to_crop(points[1:], centre[:-1], size[:-1], crop_size)
    return current, future
