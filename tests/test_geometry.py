"""Tests for mhr_tf.geometry: each against a closed form, a hand-computed case or float64 numpy written here."""
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import geometry
from mhr_tf.geometry import Intrinsics, SURREAL_INTRINSICS


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation from the QR decomposition of a Gaussian matrix."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    """R = I + sin(a) K + (1 - cos(a)) K², written out for one vector."""
    angle = np.linalg.norm(axis_angle)
    kx, ky, kz = axis_angle / angle
    k = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * k @ k


def body_like_points(rng: np.random.Generator, n: int = 14) -> np.ndarray:
    """n points spread like a standing person: 1.7 m tall, 0.5 m wide, 0.3 m deep, centred at the origin."""
    return rng.uniform(-0.5, 0.5, size=(n, 3)) * np.array([0.5, 1.7, 0.3])


# --- projection -----------------------------------------------------------------------------------------------------

def test_project_surreal_point_by_hand():
    # u = 600 * 0.3 / 3 + 160 = 220, v = 600 * -0.6 / 3 + 120 = 0.
    points = np.array([[0.3, -0.6, 3.0], [0.0, 0.0, 5.0]])
    expected = np.array([[220.0, 0.0], [160.0, 120.0]])
    np.testing.assert_allclose(geometry.project(points, SURREAL_INTRINSICS), expected, atol=1e-12)
    projected_tf = geometry.project(tf.constant(points, tf.float32), SURREAL_INTRINSICS)
    np.testing.assert_allclose(projected_tf.numpy(), expected, atol=1e-4)


def test_project_matches_intrinsics_matrix_per_example_cameras():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(2, 5, 3)) + np.array([0.0, 0.0, 4.0])
    cameras = np.array([[500.0, 520.0, 100.0, 90.0], [800.0, 810.0, 112.0, 111.0]])
    expected = []
    for pts, cam in zip(points, cameras):
        homogeneous = pts @ geometry.intrinsics_matrix(Intrinsics(*cam)).T
        expected.append(homogeneous[:, :2] / homogeneous[:, 2:])
    np.testing.assert_allclose(geometry.project(points, cameras), np.stack(expected), atol=1e-9)


# --- HMR's weak perspective -----------------------------------------------------------------------------------------

def test_weak_perspective_by_hand_in_hmr_convention():
    # x = s (X[:2] + t) = 2 * ([1, 2] + [0.5, -1]) = [3, 2]; pixels of a 224 crop: (x + 1) * 112 = [448, 336].
    points = np.array([[[1.0, 2.0, 3.0]]])
    cam = np.array([[2.0, 0.5, -1.0]])
    normalized = geometry.weak_perspective_project(points, cam)
    np.testing.assert_allclose(normalized, [[[3.0, 2.0]]], atol=1e-12)
    np.testing.assert_allclose(geometry.normalized_to_crop_pixels(normalized, 224), [[[448.0, 336.0]]], atol=1e-9)
    np.testing.assert_allclose(geometry.crop_pixels_to_normalized([[[448.0, 336.0]]], 224), normalized, atol=1e-12)
    normalized_tf = geometry.weak_perspective_project(tf.constant(points, tf.float32), tf.constant(cam, tf.float32))
    np.testing.assert_allclose(normalized_tf.numpy(), normalized, atol=1e-6)


def test_weak_perspective_translation_by_hand():
    # tz = 2 f / (S s) = 2 * 5000 / (224 * 0.8) = 55.803571...
    translation = geometry.weak_perspective_to_translation(np.array([0.8, 0.1, -0.2]), 5000.0, 224)
    np.testing.assert_allclose(translation, [0.1, -0.2, 10000.0 / (224 * 0.8)], rtol=1e-12)
    np.testing.assert_allclose(geometry.translation_to_weak_perspective(translation, 5000.0, 224),
                               [0.8, 0.1, -0.2], rtol=1e-12)


def test_weak_and_full_perspective_agree_for_flat_body_exactly():
    rng = np.random.default_rng(1)
    body = body_like_points(rng) * np.array([1.0, 1.0, 0.0])  # all at the depth of the translation
    cams = np.array([[0.9, 0.05, 0.1], [1.2, -0.1, 0.02]])
    crop, focal = 224, 5000.0
    weak_px = geometry.normalized_to_crop_pixels(geometry.weak_perspective_project(body[None], cams), crop)
    translation = geometry.weak_perspective_to_translation(cams, focal, crop)
    full_px = geometry.project(body[None] + translation[:, None, :], geometry.crop_intrinsics(focal, crop))
    np.testing.assert_allclose(full_px, weak_px, atol=1e-9)


def test_weak_and_full_perspective_agree_for_distant_body():
    rng = np.random.default_rng(2)
    body = body_like_points(rng)
    cam = np.array([[1.0, 0.05, -0.1]])  # body ~ 190 px tall in a 224 crop
    crop = 224
    weak_px = geometry.normalized_to_crop_pixels(geometry.weak_perspective_project(body[None], cam), crop)
    # Relative depth extent 0.3 m / tz; at f = 1e5 px (tz ~ 900 m) the difference is ~ 190 px * 3e-4 < 0.1 px.
    for focal, tolerance in ((1e5, 0.1), (1e7, 1e-3)):
        translation = geometry.weak_perspective_to_translation(cam, focal, crop)
        full = geometry.project(tf.constant(body[None] + translation[:, None, :], tf.float64),
                                geometry.crop_intrinsics(focal, crop))
        np.testing.assert_allclose(full.numpy(), weak_px, atol=tolerance)
    # ... and a near camera (SPIN's f = 5000, tz ~ 45 m) is visibly different, so the check above has teeth.
    near = geometry.project(body[None] + geometry.weak_perspective_to_translation(cam, 5000.0, crop)[:, None, :],
                            geometry.crop_intrinsics(5000.0, crop))
    assert np.abs(near - weak_px).max() > 0.2


# --- crops ----------------------------------------------------------------------------------------------------------

def test_known_image_pixel_lands_on_known_crop_pixel():
    # Box centre (100, 50), side 40, crop 20: 2 image pixels per crop pixel.
    # Crop pixel 0 samples image c - size/2 + 0.5 * size/S = (81, 31); the box centre lands on (S - 1)/2 = 9.5;
    # the box's top-left edge (80, 30) on the crop's edge -0.5.
    centre, size, crop = np.array([100.0, 50.0]), 40.0, 20
    image_points = np.array([[81.0, 31.0], [100.0, 50.0], [80.0, 30.0], [119.0, 69.0]])
    expected = np.array([[0.0, 0.0], [9.5, 9.5], [-0.5, -0.5], [19.0, 19.0]])
    np.testing.assert_allclose(geometry.image_to_crop(image_points, centre, size, crop), expected, atol=1e-12)
    np.testing.assert_allclose(geometry.crop_to_image(expected, centre, size, crop), image_points, atol=1e-12)
    crop_tf = geometry.image_to_crop(tf.constant(image_points, tf.float32), centre, size, crop)
    np.testing.assert_allclose(crop_tf.numpy(), expected, atol=1e-4)


def test_crop_camera_equals_projecting_then_cropping():
    rng = np.random.default_rng(3)
    points = body_like_points(rng)[None] + np.array([[[0.2, 0.1, 5.0]], [[-0.3, 0.0, 7.0]]])  # [2, 14, 3]
    centres, sizes = np.array([[170.0, 110.0], [150.0, 125.0]]), np.array([160.0, 90.0])
    via_image = geometry.image_to_crop(geometry.project(points, SURREAL_INTRINSICS), centres, sizes, 224)
    via_camera = geometry.project(points, geometry.crop_camera(SURREAL_INTRINSICS, centres, sizes, 224))
    np.testing.assert_allclose(via_camera, via_image, atol=1e-9)


def _crop_single_bright_pixel(bright_xy, image_hw, centre, size, crop):
    image = np.zeros((1, *image_hw, 1), np.float32)
    image[0, bright_xy[1], bright_xy[0], 0] = 1.0
    boxes = geometry.crop_and_resize_boxes(np.asarray(centre)[None], np.asarray([size]), image_hw, crop)
    return tf.image.crop_and_resize(image, tf.constant(boxes, tf.float32), [0], [crop, crop]).numpy()[0, :, :, 0]


def test_crop_and_resize_puts_bright_pixel_where_transform_says_at_unit_scale():
    # Box side == crop side and centre at a half-integer: crop pixels sample image pixel centres exactly.
    bright, centre, size, crop = (37, 22), (30.5, 20.5), 16.0, 16
    cropped = _crop_single_bright_pixel(bright, (40, 60), centre, size, crop)
    expected = geometry.image_to_crop(np.array([bright], float), np.array(centre), size, crop)[0]
    np.testing.assert_allclose(expected, [14.0, 9.0])
    row, col = np.unravel_index(np.argmax(cropped), cropped.shape)
    assert (col, row) == (14, 9)
    assert cropped[row, col] == pytest.approx(1.0) and cropped.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("centre, size", [((33.3, 18.7), 9.0), ((31.4, 21.2), 6.5)])
def test_crop_and_resize_puts_bright_pixel_where_transform_says_zoomed(centre, size):
    # Zooming in (box smaller than the crop), bilinear sampling spreads the pixel into a tent whose intensity
    # centroid is where the transform puts the pixel centre (the tent lies wholly inside the crop here).
    bright, crop = (32, 20), 24
    cropped = _crop_single_bright_pixel(bright, (40, 60), centre, size, crop)
    rows, cols = np.mgrid[:crop, :crop]
    centroid = np.array([(cols * cropped).sum(), (rows * cropped).sum()]) / cropped.sum()
    expected = geometry.image_to_crop(np.array([bright], float), np.array(centre), size, crop)[0]
    # 0.1 px, tighter than the 0.5 px the pipeline needs: over 200 random boxes the centroid's error stays below
    # 0.05 px, while a half-pixel convention slip moves it by 0.1-0.5 px.
    np.testing.assert_allclose(centroid, expected, atol=0.1)
    row, col = np.unravel_index(np.argmax(cropped), cropped.shape)
    np.testing.assert_allclose([col, row], expected, atol=1.0)


def test_crop_and_resize_boxes_reject_degenerate_sizes():
    with pytest.raises(ValueError, match="crop_size 1"):
        geometry.crop_and_resize_boxes(np.zeros(2), 10.0, (240, 320), 1)


# --- Procrustes -----------------------------------------------------------------------------------------------------

def _random_similarity_batch(rng, batch=4, n=14):
    source = np.stack([body_like_points(rng, n) for _ in range(batch)])
    rotation = np.stack([random_rotation(rng) for _ in range(batch)])
    scale = rng.uniform(0.5, 2.0, size=batch)
    translation = rng.normal(size=(batch, 3))
    target = scale[:, None, None] * source @ np.swapaxes(rotation, 1, 2) + translation[:, None, :]
    return source, target, scale, rotation, translation


def test_procrustes_recovers_random_similarity_numpy():
    source, target, scale, rotation, translation = _random_similarity_batch(np.random.default_rng(4))
    fit = geometry.procrustes(source, target)
    np.testing.assert_allclose(fit.scale, scale, atol=1e-5)
    np.testing.assert_allclose(fit.rotation, rotation, atol=1e-5)
    np.testing.assert_allclose(fit.translation, translation, atol=1e-5)
    np.testing.assert_allclose(geometry.procrustes_align(source, target), target, atol=1e-5)


def test_procrustes_recovers_random_similarity_tf():
    source, target, scale, rotation, translation = _random_similarity_batch(np.random.default_rng(5))
    fit = geometry.procrustes(tf.constant(source, tf.float32), tf.constant(target, tf.float32))
    np.testing.assert_allclose(fit.scale.numpy(), scale, atol=1e-5, rtol=0)
    np.testing.assert_allclose(fit.rotation.numpy(), rotation, atol=1e-5)
    np.testing.assert_allclose(fit.translation.numpy(), translation, atol=1e-5)


def test_procrustes_ignores_zero_weight_outliers():
    rng = np.random.default_rng(6)
    source, target, scale, rotation, translation = _random_similarity_batch(rng, batch=2)
    target[:, 3] += np.array([0.4, -0.7, 0.3])  # a grossly wrong joint, masked out
    weights = np.ones(source.shape[:2])
    weights[:, 3] = 0.0
    for fit in (geometry.procrustes(source, target, weights),
                geometry.procrustes(tf.constant(source), tf.constant(target), tf.constant(weights))):
        np.testing.assert_allclose(np.asarray(fit.scale), scale, atol=1e-9)
        np.testing.assert_allclose(np.asarray(fit.rotation), rotation, atol=1e-9)
        np.testing.assert_allclose(np.asarray(fit.translation), translation, atol=1e-9)


def test_procrustes_weighted_matches_replicated_points():
    # An integer weight counts a point that many times: weight 3 == the point listed three times.
    rng = np.random.default_rng(7)
    source, target = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    weights = np.array([3.0, 1.0, 1.0, 2.0, 1.0, 1.0])
    repeat = weights.astype(int)
    expected = geometry.procrustes(np.repeat(source, repeat, 0), np.repeat(target, repeat, 0))
    fit = geometry.procrustes(source, target, weights)
    for got, want in zip(fit, expected):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_procrustes_does_not_align_a_mirrored_body_by_a_reflection():
    # An octahedron with half-axes 3, 2, 1 and its mirror image in x. The cross-covariance is diag(-18, 8, 2); the
    # best orthogonal map would be the mirror diag(-1, 1, 1) (zero error), but the best *rotation* flips the
    # smallest direction as well: R = diag(-1, 1, -1), s = (18 + 8 - 2) / (9+9+4+4+1+1) = 6/7, t = 0.
    source = np.array([[3, 0, 0], [-3, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 1], [0, 0, -1]], float)
    target = source * np.array([-1.0, 1.0, 1.0])
    for fit in (geometry.procrustes(source, target), geometry.procrustes(tf.constant(source), tf.constant(target))):
        np.testing.assert_allclose(np.asarray(fit.rotation), np.diag([-1.0, 1.0, -1.0]), atol=1e-12)
        assert np.linalg.det(np.asarray(fit.rotation)) == pytest.approx(1.0)
        assert float(fit.scale) == pytest.approx(6.0 / 7.0)
        np.testing.assert_allclose(np.asarray(fit.translation), 0.0, atol=1e-12)
    aligned = geometry.procrustes_align(source, target)
    # Residuals: |(-18/7) - (-3)| = 3/7 on x, |12/7 - 2| = 2/7 on y, |-6/7 - 1| = 13/7 on z.
    np.testing.assert_allclose(np.linalg.norm(aligned - target, axis=-1), np.array([3, 3, 2, 2, 13, 13]) / 7.0,
                               atol=1e-12)


def test_procrustes_tf_gradient_is_finite_and_matches_finite_difference():
    rng = np.random.default_rng(8)
    source = tf.constant(body_like_points(rng, 8))
    target = tf.constant(body_like_points(rng, 8))
    probe = tf.constant(rng.normal(size=(8, 3)))

    def loss(src):
        return tf.reduce_sum(geometry.procrustes_align(src, target) * probe)

    with tf.GradientTape() as tape:
        tape.watch(source)
        value = loss(source)
    gradient = tape.gradient(value, source).numpy()
    assert np.all(np.isfinite(gradient))
    eps = 1e-6
    numeric = np.zeros_like(gradient)
    base = source.numpy()
    for index in np.ndindex(*base.shape):
        step = np.zeros_like(base)
        step[index] = eps
        numeric[index] = (loss(tf.constant(base + step)) - loss(tf.constant(base - step))).numpy() / (2 * eps)
    np.testing.assert_allclose(gradient, numeric, atol=1e-6, rtol=1e-5)
    # float32 too, batched, with visibility masks, one of them empty (a frame with no visible joint): finite
    # everywhere, and the empty frame is sent to the origin.
    with tf.GradientTape() as tape:
        src32 = tf.cast(tf.stack([source, source * 1.1, source]), tf.float32)
        tape.watch(src32)
        weights = tf.constant([[1.0] * 7 + [0.0], [1.0] * 8, [0.0] * 8])
        aligned = geometry.procrustes_align(src32, tf.cast(tf.stack([target] * 3), tf.float32), weights)
        total = tf.reduce_sum(aligned * tf.cast(probe, tf.float32))
    assert np.all(np.isfinite(tape.gradient(total, src32).numpy()))
    np.testing.assert_array_equal(aligned[2].numpy(), 0.0)


def test_procrustes_rejects_bad_input():
    with pytest.raises(ValueError, match=r"source \(4, 3\) and target \(5, 3\)"):
        geometry.procrustes(np.zeros((4, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="weights"):
        geometry.procrustes(np.ones((4, 3)), np.ones((4, 3)), np.zeros(4))


# --- rotations ------------------------------------------------------------------------------------------------------

def test_axis_angle_to_matrix_matches_rodrigues_and_round_trips():
    rng = np.random.default_rng(9)
    axis_angle = rng.normal(size=(5, 3))
    axis_angle[0] = np.array([0.0, 0.0, np.pi - 1e-9])  # near pi, where naive inverses lose the axis
    matrices = geometry.axis_angle_to_matrix(axis_angle.reshape(5, 1, 3))
    assert matrices.shape == (5, 1, 3, 3)
    np.testing.assert_allclose(matrices[:, 0], np.stack([rodrigues(a) for a in axis_angle]), atol=1e-12)
    back = geometry.matrix_to_axis_angle(matrices)[:, 0]
    np.testing.assert_allclose(geometry.axis_angle_to_matrix(back), matrices[:, 0], atol=1e-9)
    assert np.all(np.linalg.norm(back, axis=-1) <= np.pi + 1e-9)
