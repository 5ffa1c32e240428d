"""Keypoint inputs (paper §3.2, App. B): the visibility rules in the paper's order, the 20 cm depth rule on SURREAL's
ray depth, the probability rules measured with fixed seeds, and Gaussian heatmaps measured by their moments."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mhr_tf.body import joints as joint_sets
from mhr_tf.data import keypoints
from mhr_tf.data.preprocessing import Augmentation, Preprocessing

T, H, W = 3, 30, 40
FOCAL, CX, CY = 30.0, 19.0, 14.0  # a small pinhole camera for these frames
IS_LEG_12 = np.array([name in joint_sets.LEG_JOINTS for name in joint_sets.HEATMAP_12])
NO_RANDOMNESS = Augmentation(leg_unhide_probability=0.0, flip_probability=0.0)


def in_dataset(step, example: dict, seed) -> tuple[dict, dict]:
    """`step` run inside `Dataset.map`: (element_spec, the single element as numpy)."""
    ds = tf.data.Dataset.from_tensors(example).map(lambda ex: step(ex, tf.constant(seed, tf.int64)))
    return ds.element_spec, next(iter(ds.as_numpy_iterator()))


def project(points_cam: np.ndarray) -> np.ndarray:
    return FOCAL * points_cam[..., :2] / points_cam[..., 2:] + np.array([CX, CY])


def clear_view(num_frames: int = T) -> dict:
    """14 joints 5 m away on distinct pixels of the frame, nothing in front of them (background depth)."""
    offsets = np.stack(np.meshgrid(np.arange(-3, 4), [-1.0, 1.0]), -1).reshape(14, 2) * [4.0, 6.0]  # pixels
    joints_cam = np.concatenate([offsets / FOCAL * 5.0, np.full((14, 1), 5.0)], -1)
    joints_cam = np.tile(joints_cam, (num_frames, 1, 1)).astype(np.float32)
    return {"joints14_cam": joints_cam, "joints14_2d": project(joints_cam).astype(np.float32),
            "depth": np.full((num_frames, H, W), 1e10, np.float32)}


def visibility(example: dict, rules: Augmentation, seed=(0, 0)) -> np.ndarray:
    return keypoints.keypoint_visibility(example, tf.constant(seed, tf.int64), rules)["keypoints_visible"].numpy()


def test_keypoints_outside_the_frame_are_hidden():
    example = clear_view()
    points = example["joints14_2d"]
    points[0, 0] = [-0.6, 10.0]      # left of pixel 0's edge at -0.5
    points[0, 1] = [-0.4, 10.0]      # on pixel 0
    points[1, 0] = [W - 0.4, 10.0]   # right of the last pixel
    points[1, 1] = [W - 0.6, H - 0.6]  # on the last pixel
    points[2, 2] = [10.0, H + 3.0]   # below the frame
    visible = visibility(example, NO_RANDOMNESS)
    expected = np.ones((T, 12), bool)
    expected[0, 0] = expected[1, 0] = expected[2, 2] = False
    np.testing.assert_array_equal(visible, expected)


def test_keypoints_under_the_occluder_and_on_totally_occluded_frames_are_hidden():
    example = clear_view()
    occluder = np.zeros((T, H, W), bool)
    x, y = np.round(example["joints14_2d"][0, 3]).astype(int)
    occluder[0, y, x] = True  # exactly joint 3's pixel on frame 0
    example.update(occluder=occluder, occluded=np.array([0.0, 1.0, 0.0], np.float32))
    expected = np.ones((T, 12), bool)
    expected[0, 3] = False
    expected[1] = False
    np.testing.assert_array_equal(visibility(example, NO_RANDOMNESS), expected)


def off_axis_joint_behind_the_surface(behind_m: list[float]) -> dict:
    """clear_view with joint 0 off-axis (|X| = 5.59 m, z = 5 m) on pixel (31, 23) and the ray depth there set so the
    joint is `behind_m[t]` metres behind the surface along its ray on frame t (negative: in front)."""
    example = clear_view()
    joint = np.array([2.0, 1.5, 5.0], np.float32)
    example["joints14_cam"][:, 0] = joint
    example["joints14_2d"][:, 0] = project(joint)
    x, y = project(joint).astype(int)
    assert (x, y) == (31, 23) and np.allclose(project(joint), (31, 23))
    distance = float(np.linalg.norm(joint.astype(np.float64)))
    example["depth"][:, y, x] = distance - np.asarray(behind_m)
    return example


def test_depth_rule_hides_a_joint_21cm_behind_the_ray_depth_and_keeps_one_19cm_behind():
    """SURREAL's depth is the distance along each pixel's ray (data/surreal.py), so the joint's distance from the
    camera centre is what is compared. The joint is off-axis (|X| = 5.59 m, z = 5 m), where planar z would be wrong:
    5.0 is not 20 cm behind a ray depth of 5.38 m, yet the joint is 21 cm behind the surface along its ray."""
    assert NO_RANDOMNESS.depth_margin_m == 0.20  # App. B: "at least 20cm behind the depth map"
    example = off_axis_joint_behind_the_surface([0.19, 0.21, -0.5])  # behind, behind, in front
    visible = visibility(example, NO_RANDOMNESS)
    np.testing.assert_array_equal(visible[:, 0], [True, False, True])
    assert visible[:, 1:].all()


def test_depth_rule_uses_the_margin_of_the_rules():
    example = off_axis_joint_behind_the_surface([0.29, 0.31, 0.21])
    visible = visibility(example, Augmentation(depth_margin_m=0.30, leg_unhide_probability=0.0, flip_probability=0.0))
    np.testing.assert_array_equal(visible[:, 0], [True, False, True])
    assert visible[:, 1:].all()


def many_visibilities(example: dict, num_seeds: int, **probabilities) -> np.ndarray:
    rules = Augmentation(**probabilities)
    step = tf.function(lambda seed: keypoints.keypoint_visibility(example, seed, rules)["keypoints_visible"])
    return np.stack([step(tf.constant([s, 3], tf.int64)).numpy() for s in range(num_seeds)])  # [seeds, T, 12]


def all_hidden(num_frames: int) -> dict:
    example = clear_view(num_frames)
    example["occluded"] = np.ones(num_frames, np.float32)  # every frame totally occluded: every keypoint hidden
    return example


def test_all_leg_keypoints_of_a_clip_are_unhidden_together_half_the_time():
    draws = many_visibilities(all_hidden(5), 400, leg_unhide_probability=0.5, flip_probability=0.0)
    legs_shown = draws[:, :, IS_LEG_12].all(axis=(1, 2))
    assert (draws[:, :, IS_LEG_12].any(axis=(1, 2)) == legs_shown).all()  # all leg keypoints of all frames, or none
    assert not draws[:, :, ~IS_LEG_12].any()  # only legs
    assert abs(legs_shown.mean() - 0.5) < 4.5 * np.sqrt(0.25 / 400), legs_shown.mean()


def test_each_keypoint_flips_with_probability_5_percent_both_ways():
    for example, start in ((clear_view(31), True), (all_hidden(31), False)):
        draws = many_visibilities(example, 200, leg_unhide_probability=0.0, flip_probability=0.05)
        flipped = draws != start  # [200, 31, 12]
        n = flipped.size
        assert abs(flipped.mean() - 0.05) < 4.5 * np.sqrt(0.05 * 0.95 / n), (start, flipped.mean())
        per_keypoint = flipped.mean(axis=(0, 1))
        assert np.abs(per_keypoint - 0.05).max() < 4.5 * np.sqrt(0.05 * 0.95 / (n / 12)), per_keypoint


def test_leg_unhiding_comes_before_the_flips():
    draws = many_visibilities(all_hidden(31), 100, leg_unhide_probability=1.0, flip_probability=0.05)
    n = draws[:, :, IS_LEG_12].size
    assert abs(draws[:, :, IS_LEG_12].mean() - 0.95) < 4.5 * np.sqrt(0.05 * 0.95 / n)
    assert abs(draws[:, :, ~IS_LEG_12].mean() - 0.05) < 4.5 * np.sqrt(0.05 * 0.95 / (draws.size - n))


def test_keypoint_visibility_in_dataset_map_keeps_dtypes_shapes_and_values():
    example = all_hidden(T)
    example["occluded"][1] = 0.0
    example["occluder"] = np.zeros((T, H, W), bool)
    for seed in ([0, 1], [5, 1]):
        eager = visibility(example, Augmentation(), seed)
        spec, graph = in_dataset(lambda ex, s: keypoints.keypoint_visibility(ex, s, Augmentation()), example, seed)
        assert spec["keypoints_visible"].dtype == tf.bool and spec["keypoints_visible"].shape.as_list() == [T, 12]
        np.testing.assert_array_equal(graph["keypoints_visible"], eager)


def heatmap_moments(heatmap: np.ndarray) -> tuple[float, float, float, float]:
    """(mean x, mean y, std x, std y) of a heatmap [S, S] taken as a distribution, float64."""
    heatmap = heatmap.astype(np.float64)
    yy, xx = np.mgrid[:heatmap.shape[0], :heatmap.shape[1]]
    total = heatmap.sum()
    mx, my = (heatmap * xx).sum() / total, (heatmap * yy).sum() / total
    sx = np.sqrt((heatmap * (xx - mx) ** 2).sum() / total)
    sy = np.sqrt((heatmap * (yy - my) ** 2).sum() / total)
    return mx, my, sx, sy


def test_heatmap_peak_position_and_sigma_measured_from_the_rendered_map():
    size = 224
    sigma = Preprocessing(crop_size=size).sigma_px
    assert sigma == 10.0  # §3.2: "a standard deviation of 10 pixels" in the 224-pixel crop
    points = np.array([[[100.3, 120.6], [60.0, 150.0], [30.0, 40.0]]], np.float32)
    maps = keypoints.gaussian_heatmaps(points, np.array([[True, True, False]]), size, sigma).numpy()
    assert maps.shape == (1, size, size, 3) and maps.dtype == np.float32
    mx, my, sx, sy = heatmap_moments(maps[0, :, :, 0])
    np.testing.assert_allclose([mx, my, sx, sy], [100.3, 120.6, 10.0, 10.0], atol=1e-3)
    # Peak 1 at the keypoint: exactly 1 on a whole-pixel keypoint, and the Gaussian's value at the nearest pixel
    # for a fractional one.
    assert maps[0, 150, 60, 1] == pytest.approx(1.0, abs=1e-6) and maps[0, :, :, 1].max() == maps[0, 150, 60, 1]
    assert maps[0, :, :, 0].max() == pytest.approx(np.exp(-(0.3 ** 2 + 0.4 ** 2) / 200.0), abs=1e-6)
    assert np.unravel_index(maps[0, :, :, 0].argmax(), (size, size)) == (121, 100)
    assert not maps[0, :, :, 2].any()  # a hidden keypoint's channel is zero


def test_heatmap_sigma_scales_with_the_crop():
    assert Preprocessing(crop_size=112).sigma_px == pytest.approx(5.0)
    maps = keypoints.gaussian_heatmaps(np.array([[[32.0, 30.5]]]), np.array([[True]]), 64,
                                       Preprocessing(crop_size=64).sigma_px).numpy()
    _, _, sx, sy = heatmap_moments(maps[0, :, :, 0])
    np.testing.assert_allclose([sx, sy], [10.0 * 64 / 224] * 2, atol=1e-3)


def test_heatmaps_in_dataset_map_keep_dtypes_shapes_and_values():
    points = np.random.default_rng(0).uniform(0, 64, (4, 12, 2)).astype(np.float32)
    visible = np.random.default_rng(1).random((4, 12)) < 0.5
    sigma = Preprocessing(crop_size=64).sigma_px
    ds = tf.data.Dataset.from_tensors((points, visible)).map(
        lambda p, v: keypoints.gaussian_heatmaps(p, v, 64, sigma))
    assert ds.element_spec.shape.as_list() == [4, 64, 64, 12] and ds.element_spec.dtype == tf.float32
    np.testing.assert_array_equal(next(iter(ds)).numpy(), keypoints.gaussian_heatmaps(
        points, visible, 64, sigma).numpy())


def test_heatmaps_are_the_outer_product_of_their_profiles():
    points = np.random.default_rng(2).uniform(0, 32, (3, 12, 2)).astype(np.float32)
    visible = np.random.default_rng(3).random((3, 12)) < 0.6
    gx, gy = keypoints.gaussian_profiles(points, visible, 32, 3.0)
    assert gx.shape == gy.shape == (3, 32, 12)
    maps = keypoints.gaussian_heatmaps(points, visible, 32, 3.0).numpy()
    np.testing.assert_array_equal(maps, np.einsum("nyk,nxk->nyxk", gy.numpy(), gx.numpy()))
    # float64 reference: exp(-((x - px)^2 + (y - py)^2) / (2 sigma^2)) on visible keypoints, 0 on hidden ones
    grid = np.arange(32, dtype=np.float64)
    p = points.astype(np.float64)
    reference = np.exp(-((grid[None, None, :, None] - p[:, None, None, :, 0]) ** 2
                         + (grid[None, :, None, None] - p[:, None, None, :, 1]) ** 2) / 18.0) * visible[:, None, None]
    np.testing.assert_allclose(maps, reference, atol=1e-6)
