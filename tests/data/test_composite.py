"""Compositing (paper App. A: "hard binary masks derived from the ground-truth segmentation in SURREAL") and the
static-background switch of Table 2."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from mhr_tf.data import composite

T, H, W = 3, 6, 7


def in_dataset(step, example: dict) -> tuple[dict, dict]:
    """`step` (deterministic: no seed) run inside `Dataset.map`: (element_spec, the single element as numpy)."""
    ds = tf.data.Dataset.from_tensors(example).map(step)
    return ds.element_spec, next(iter(ds.as_numpy_iterator()))


def example(with_occluder: bool) -> dict:
    rng = np.random.default_rng(0)
    out = {"segm": rng.integers(0, 25, (T, H, W)).astype(np.uint8),
           "person_rgb": rng.integers(0, 256, (T, H, W, 3)).astype(np.uint8),
           "background": rng.integers(0, 256, (T, H, W, 3)).astype(np.uint8),
           "camera_shift": rng.normal(0, 3, (T, 2)).astype(np.float32),
           "superpixels": rng.integers(0, 5, (T, H, W)).astype(np.int32)}
    if with_occluder:
        out["occluder"] = rng.random((T, H, W)) < 0.3
    return out


def test_composite_shows_the_person_on_its_segmentation_and_the_background_elsewhere():
    ex = example(with_occluder=False)
    frames = composite.composite(ex)["frames"].numpy()
    assert frames.dtype == np.uint8
    expected = np.where((ex["segm"] > 0)[..., None], ex["person_rgb"], ex["background"])
    np.testing.assert_array_equal(frames, expected)


def test_the_occluder_removes_the_person_pixels_it_covers():
    ex = example(with_occluder=True)
    frames = composite.composite(ex)["frames"].numpy()
    shown = (ex["segm"] > 0) & ~ex["occluder"]
    for t, y, x in np.ndindex(T, H, W):  # hard mask: every pixel is exactly one source, never a blend
        source = ex["person_rgb"] if shown[t, y, x] else ex["background"]
        np.testing.assert_array_equal(frames[t, y, x], source[t, y, x])


def test_static_background_repeats_the_centre_frame_and_stops_the_camera():
    ex = example(with_occluder=False)
    out = composite.freeze_background(ex)
    for t in range(T):
        np.testing.assert_array_equal(out["background"][t], ex["background"][1])
        np.testing.assert_array_equal(out["superpixels"][t], ex["superpixels"][1])
    np.testing.assert_array_equal(out["camera_shift"], np.zeros((T, 2)))


def test_composite_steps_in_dataset_map_keep_dtypes_shapes_and_values():
    ex = example(with_occluder=True)
    for step, key in ((composite.composite, "frames"), (composite.freeze_background, "background")):
        spec, graph = in_dataset(step, ex)
        assert spec[key].dtype == tf.uint8 and spec[key].shape.as_list() == [T, H, W, 3]
        np.testing.assert_array_equal(graph[key], step(ex)[key].numpy())
