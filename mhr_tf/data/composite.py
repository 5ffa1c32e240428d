"""Compositing the SURREAL person onto the background video (paper App. A: "hard binary masks derived from the
ground-truth segmentation in SURREAL")."""
from __future__ import annotations

import tensorflow as tf


def person_mask(example: dict) -> tf.Tensor:
    """[T, H, W] bool: the person's pixels that are shown (segmentation minus the applied occluder)."""
    mask = tf.convert_to_tensor(example["segm"]) > 0
    if "occluder" in example:
        mask &= ~example["occluder"]
    return mask


def composite(example: dict) -> dict:
    """Pipeline step: `frames [T, H, W, 3] uint8` = the person where shown, the background elsewhere."""
    out = dict(example)
    out["frames"] = tf.where(person_mask(example)[..., None], example["person_rgb"], example["background"])
    return out


def freeze_background(example: dict) -> dict:
    """Pipeline step for Table 2's "static background": one background frame (the centre one) for the whole clip,
    as SURREAL itself composites; the camera does not move, so nothing is tracked."""
    out = dict(example)
    background = tf.convert_to_tensor(example["background"])
    centre = tf.shape(background)[0] // 2
    out["background"] = tf.broadcast_to(background[centre], tf.shape(background))
    out["camera_shift"] = tf.zeros_like(example["camera_shift"])
    out["superpixels"] = tf.broadcast_to(example["superpixels"][centre], tf.shape(example["superpixels"]))
    return out
