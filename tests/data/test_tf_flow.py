"""TV-L1 flow in TensorFlow: exact motions of a closed-form texture (translation, rotation + zoom, none),
the building blocks against float64 numpy/scipy, tf.data graph mode, agreement with OpenCV's TV-L1, the Keras layer.

All flows run on 64x64 images with a 3-level pyramid (64/32/16 px), through one shared XLA-compiled function."""
from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from mhr_tf.data import tf_flow

SIZE = 64
PARAMS = tf_flow.TVL1Params(nscales=3)
FLOW = tf_flow.TVL1Flow(PARAMS)  # compiled once for [1, SIZE, SIZE] and shared by the tests
# Pixels this close to the border may move out of view (no data term there): left out of the accuracy checks.
BORDER_PX = 6


def texture(points: np.ndarray, seed: int = 0, waves: int = 16) -> np.ndarray:
    """A closed-form texture, grey 0..255 float64, at any real (x, y) `points [..., 2]`: a sum of random plane
    waves (periods 6-30 px), so a moved copy is exact, with no resampling."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, waves)
    frequency = 2 * np.pi / rng.uniform(6, 30, waves)
    k = frequency[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # [waves, 2] rad/px
    amplitude = rng.uniform(0.5, 1.0, waves)
    phase = rng.uniform(0, 2 * np.pi, waves)
    value = np.sin(points @ k.T + phase) @ amplitude
    return 128 + 100 * value / amplitude.sum()


def pixel_grid(size: int = SIZE) -> np.ndarray:
    """[size, size, 2] float64 (x, y)."""
    return np.stack(np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64)), axis=-1)


def moved_pair(motion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`motion`: a function frame-1 points -> frame-2 points. Returns (image1 [1, S, S], image2 [1, S, S],
    true flow [S, S, 2]) with image2(motion(p)) = image1(p), the inverse map found by fixed-point iteration."""
    grid = pixel_grid()
    source = grid.copy()  # solve motion(source) = grid
    for _ in range(50):
        source = source + (grid - motion(source))
    return texture(grid)[None], texture(source)[None], motion(grid) - grid


def interior(field: np.ndarray) -> np.ndarray:
    return field[BORDER_PX:-BORDER_PX, BORDER_PX:-BORDER_PX]


def test_subpixel_translation_gives_the_shift_within_0_1_px():
    shift = np.array([1.3, -0.7])
    image1, image2, _ = moved_pair(lambda p: p + shift)
    flow = FLOW(image1, image2).numpy()[0]
    assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(flow.reshape(-1, 2).mean(axis=0), shift, atol=0.1)
    np.testing.assert_allclose(interior(flow).reshape(-1, 2).mean(axis=0), shift, atol=0.05)


def test_rotation_and_zoom_flow_matches_the_analytic_field():
    centre = np.array([SIZE / 2 - 0.3, SIZE / 2 + 0.6])
    angle, scale = np.radians(4.0), 1.05
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    image1, image2, truth = moved_pair(lambda p: (p - centre) @ linear.T + centre + np.array([0.8, 0.4]))
    flow = FLOW(image1, image2).numpy()[0]
    epe = np.linalg.norm(flow - truth, axis=-1)
    assert np.abs(truth).max() > 2.5  # a real field: up to ~3 px at the corners, varying across the image
    assert interior(epe).mean() < 0.1, interior(epe).mean()
    assert epe.mean() < 0.2, epe.mean()


def test_zero_motion_gives_zero_flow_on_texture_and_on_a_flat_image():
    image1, _, _ = moved_pair(lambda p: p)
    np.testing.assert_allclose(FLOW(image1, image1).numpy(), 0.0, atol=1e-4)
    flat = np.full((1, SIZE, SIZE), 77.0)  # no gradient anywhere: nothing to divide by, still no NaN
    np.testing.assert_allclose(FLOW(flat, flat).numpy(), 0.0, atol=1e-6)


def test_runs_inside_dataset_map_in_graph_mode_with_static_shapes_and_the_eager_values():
    """Plain `tvl1_flow` in the map function (TF's graph executor, no XLA) gives the XLA-compiled eager flow."""
    shift = np.array([-0.6, 1.1])
    image1, image2, _ = moved_pair(lambda p: p + shift)
    dataset = tf.data.Dataset.from_tensors((image1.astype(np.float32), image2.astype(np.float32))).repeat(2)
    mapped = dataset.map(lambda a, b: tf_flow.tvl1_flow(a, b, PARAMS), num_parallel_calls=2)
    assert mapped.element_spec == tf.TensorSpec([1, SIZE, SIZE, 2], tf.float32)
    eager = FLOW(image1, image2).numpy()
    for flow in mapped.as_numpy_iterator():
        np.testing.assert_allclose(flow, eager, atol=1e-3)


def test_epsilon_stops_a_converged_example_early_whatever_else_is_in_its_batch():
    """OpenCV's epsilon test, per example: an easy pair stops early (its flow differs from the fixed-count flow),
    and a hard pair iterating beside it in the same batch does not change it."""
    size = 32
    grid = pixel_grid(size)
    easy = np.stack([texture(grid), texture(grid - np.array([0.8, -0.4]))])[:, None]  # [2, 1, S, S]
    noise = np.random.default_rng(6).uniform(0, 255, (2, 1, size, size))              # never converges
    early = tf_flow.TVL1Flow(nscales=2, epsilon=0.05, median_filtering=1, jit_compile=False)
    fixed = tf_flow.TVL1Flow(early.params, epsilon=0.0, jit_compile=False)
    alone = early(easy[0], easy[1]).numpy()
    beside_noise = early(np.concatenate([easy[0], noise[0]]), np.concatenate([easy[1], noise[1]])).numpy()[:1]
    np.testing.assert_allclose(beside_noise, alone, atol=1e-6)
    assert np.abs(alone - fixed(easy[0], easy[1]).numpy()).max() > 1e-3  # it did stop early
    np.testing.assert_allclose(alone[0, 4:-4, 4:-4].reshape(-1, 2).mean(axis=0), [0.8, -0.4], atol=0.1)


def test_the_graph_holds_tensorflow_ops_only():
    """tf.data service workers cannot run Python: no PyFunc op anywhere, nested functions included."""
    concrete = tf.function(lambda a, b: tf_flow.tvl1_flow(a, b, PARAMS)).get_concrete_function(
        tf.TensorSpec([None, 32, 32, 3], tf.float32), tf.TensorSpec([None, 32, 32, 3], tf.float32))
    graph_def = concrete.graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    assert "While" in ops or "StatelessWhile" in ops
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}, ops


def test_agrees_with_opencv_tvl1_within_0_1_px():
    """OpenCV's DualTVL1 with the same settings on the same pair. The stated tolerance (mean EPE between the two
    flows < 0.1 px) covers the documented differences: bilinear vs bicubic warping, edge handling."""
    centre = np.array([SIZE / 2, SIZE / 2])
    angle = np.radians(-3.0)
    linear = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    image1, image2, truth = moved_pair(lambda p: (p - centre) @ linear.T + centre + np.array([1.7, -1.2]))
    opencv = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=PARAMS.tau, lambda_=PARAMS.lambda_, theta=PARAMS.theta, nscales=PARAMS.nscales, warps=PARAMS.warps,
        epsilon=PARAMS.epsilon, innnerIterations=PARAMS.inner_iterations, outerIterations=PARAMS.outer_iterations,
        scaleStep=PARAMS.scale_step, gamma=0.0, medianFiltering=PARAMS.median_filtering, useInitialFlow=False)
    # Float input is taken as 0..1 and scaled by 255, which keeps the texture's sub-level precision.
    expected = opencv.calc((image1[0] / 255).astype(np.float32), (image2[0] / 255).astype(np.float32), None)
    flow = FLOW(image1, image2).numpy()[0]
    between = np.linalg.norm(flow - expected, axis=-1)
    assert interior(between).mean() < 0.1, interior(between).mean()
    # and both are near the truth, so the agreement is not a shared failure
    assert interior(np.linalg.norm(expected - truth, axis=-1)).mean() < 0.15
    assert interior(np.linalg.norm(flow - truth, axis=-1)).mean() < 0.15


def test_rgb_input_is_converted_with_opencv_grey_weights():
    rng = np.random.default_rng(3)
    rgb = rng.uniform(0, 255, (2, 8, 8, 3))
    expected = cv2.cvtColor(rgb.astype(np.float32)[0], cv2.COLOR_RGB2GRAY)
    np.testing.assert_allclose(tf_flow.to_gray(rgb).numpy()[0], expected, atol=1e-3)
    np.testing.assert_array_equal(tf_flow.to_gray(rgb[..., :1]).numpy(), rgb[..., 0].astype(np.float32))


def test_median_filter_matches_scipy_with_ties_and_replicated_edges():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, (2, 9, 11, 2)).astype(np.float64)  # few levels: many ties
    for size in (3, 5):
        expected = scipy.ndimage.median_filter(values, size=(1, size, size, 1), mode="nearest")
        got = tf_flow.median_filter(tf.constant(values, tf.float32), size).numpy()
        np.testing.assert_array_equal(got, expected)


def test_divergence_is_minus_the_adjoint_of_the_forward_gradient():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(2, 7, 9, 2))
    p = rng.normal(size=(2, 7, 9, 2, 2))
    # The dual field lives where the forward gradient does: its x part is 0 on the last column, its y part on the
    # last row (the iterations keep it so, starting from 0).
    p[:, :, -1, :, 0] = 0
    p[:, -1, :, :, 1] = 0
    grad_u = tf_flow.forward_gradient(tf.constant(u)).numpy()
    div_p = tf_flow.divergence(tf.constant(p)).numpy()
    # float64 reference of the forward gradient: differences to the next pixel, 0 on the last column/row
    expected = np.zeros_like(grad_u)
    expected[:, :, :-1, :, 0] = u[:, :, 1:] - u[:, :, :-1]
    expected[:, :-1, :, :, 1] = u[:, 1:] - u[:, :-1]
    np.testing.assert_allclose(grad_u, expected, atol=1e-12)
    np.testing.assert_allclose(np.sum(grad_u * p), -np.sum(u * div_p), rtol=1e-10)


def test_centered_gradient_halves_one_sided_differences_at_the_border():
    rng = np.random.default_rng(2)
    image = rng.normal(size=(1, 5, 6))
    padded = np.pad(image, [(0, 0), (1, 1), (1, 1)], mode="edge")
    expected_dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    expected_dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    got = tf_flow.centered_gradient(tf.constant(image)).numpy()
    np.testing.assert_allclose(got[..., 0], expected_dx, atol=1e-12)
    np.testing.assert_allclose(got[..., 1], expected_dy, atol=1e-12)
    np.testing.assert_allclose(got[0, 0, 0, 0], 0.5 * (image[0, 0, 1] - image[0, 0, 0]), atol=1e-12)


def test_bilinear_sample_matches_scipy_and_flags_points_off_the_image():
    rng = np.random.default_rng(4)
    image = rng.normal(size=(1, 6, 7, 1))
    points = rng.uniform(-1.5, 7.5, size=(1, 6, 7, 2))
    sampled, inside = tf_flow.bilinear_sample(tf.constant(image, tf.float32), tf.constant(points, tf.float32))
    x, y = points[0, ..., 0], points[0, ..., 1]
    expected = scipy.ndimage.map_coordinates(image[0, ..., 0], [np.clip(y, 0, 5), np.clip(x, 0, 6)], order=1)
    np.testing.assert_allclose(sampled.numpy()[0, ..., 0], expected, atol=1e-5)
    np.testing.assert_array_equal(inside.numpy()[0], (x >= 0) & (x <= 6) & (y >= 0) & (y <= 5))


def test_pyramid_levels_follow_opencv_sizes_and_stop_below_16_px():
    assert tf_flow.TVL1Params().level_sizes(224, 224) == [(224, 224), (112, 112), (56, 56), (28, 28)]
    assert tf_flow.TVL1Params(scale_step=0.8, nscales=5).level_sizes(64, 80) == [
        (64, 80), (51, 64), (41, 51), (33, 41), (26, 33)]
    assert tf_flow.TVL1Params(nscales=6).level_sizes(70, 200) == [(70, 200), (35, 100), (18, 50)]


def test_keras_layer_is_frozen_flattens_leading_dims_and_round_trips_its_config():
    layer = tf_flow.TVL1FlowLayer(nscales=3, jit_compile=False, name="flow")  # graph mode: no second compile
    pairs = [moved_pair(lambda p, s=shift: p + s) for shift in ([1.0, 0.5], [-0.5, 2.0])]
    frames = tf.constant(np.stack([pair[0] for pair in pairs], axis=1)[..., None], tf.float32)  # [1, 2, H, W, 1]
    moved = tf.constant(np.stack([pair[1] for pair in pairs], axis=1)[..., None], tf.float32)
    out = layer([frames, moved])
    assert out.shape == (1, 2, SIZE, SIZE, 2)
    assert layer.weights == [] and not layer.trainable
    for k, shift in enumerate(([1.0, 0.5], [-0.5, 2.0])):  # each pair keeps its own flow
        np.testing.assert_allclose(interior(out[0, k].numpy()).reshape(-1, 2).mean(axis=0), shift, atol=0.05)
    rebuilt = tf_flow.TVL1FlowLayer.from_config(layer.get_config())
    assert rebuilt.flow.params == PARAMS and not rebuilt.flow.jit_compile and not rebuilt.trainable
    inputs = [keras.Input((SIZE, SIZE, 1)), keras.Input((SIZE, SIZE, 1))]
    model = keras.Model(inputs, rebuilt(inputs))
    assert model.output_shape == (None, SIZE, SIZE, 2) and not model.trainable_weights


def test_bad_settings_and_inputs_raise_naming_the_field():
    with pytest.raises(ValueError, match="tau"):
        tf_flow.TVL1Params(tau=0.5)
    with pytest.raises(ValueError, match="median_filtering"):
        tf_flow.TVL1Params(median_filtering=4)
    with pytest.raises(ValueError, match=r"image1 has shape \(1, 8, 8, 2\)"):
        tf_flow.tvl1_flow(np.zeros((1, 8, 8, 2)), np.zeros((1, 8, 8, 2)))
    with pytest.raises(ValueError, match="static H and W"):
        tf.function(lambda a: tf_flow.tvl1_flow(a, a)).get_concrete_function(
            tf.TensorSpec([1, None, None], tf.float32))
