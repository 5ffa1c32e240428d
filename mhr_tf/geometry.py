"""Cameras, projection, crops and Procrustes alignment, in numpy (float64, for evaluation) and TF (training).

Camera frame everywhere: x right, y down, z forward (OpenCV), metres; pixel (u, v) with pixel centres at integers,
so pixel (0, 0) covers [-0.5, 0.5]² and an image of width W spans [-0.5, W - 0.5].

Every function below takes numpy arrays or TF tensors, chosen by its first array argument: numpy inputs are computed
and returned in float64; TF tensors are computed in their own dtype and are differentiable. TensorFlow is imported only
when a tensor arrives, so decoders and simulator workers can use this module without loading TensorFlow.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation


class Intrinsics(NamedTuple):
    """A pinhole camera: focal lengths and principal point, in pixels."""
    fx: float
    fy: float
    cx: float
    cy: float


# SURREAL's Blender camera (Varol et al. 2017): f = 600 px, principal point at the centre of 320x240 frames.
SURREAL_INTRINSICS = Intrinsics(600.0, 600.0, 160.0, 120.0)
SURREAL_IMAGE_HW = (240, 320)


# --------------------------------------------------------------------------------------------------------------------
# numpy / TF dispatch

def _is_tf(x) -> bool:
    tf = sys.modules.get("tensorflow")
    return tf is not None and tf.is_tensor(x)


def _numpy_svd(a):
    u, d, vh = np.linalg.svd(a)
    return u, d, np.swapaxes(vh, -1, -2)


_NUMPY = SimpleNamespace(
    sum=np.sum, einsum=np.einsum, stack=np.stack, where=np.where, det=np.linalg.det, svd=_numpy_svd,
    divide=np.divide, transpose=lambda a: np.swapaxes(a, -1, -2), stop_gradient=lambda a: a, ones=np.ones_like)


def _tf_ops() -> SimpleNamespace:
    import tensorflow as tf  # only reached when a tensor was passed, so TensorFlow is already loaded

    def svd(a):
        d, u, v = tf.linalg.svd(a)  # a = u diag(d) v^T
        return u, d, v

    return SimpleNamespace(
        sum=tf.reduce_sum, einsum=tf.einsum, stack=tf.stack, where=tf.where, det=tf.linalg.det, svd=svd,
        # Zero total weight (a frame with no visible joint) gives zeros instead of NaN, so a masked-out frame cannot
        # poison a training step's gradients.
        divide=tf.math.divide_no_nan, transpose=tf.linalg.matrix_transpose, stop_gradient=tf.stop_gradient,
        ones=tf.ones_like)


def _ops(x) -> SimpleNamespace:
    return _tf_ops() if _is_tf(x) else _NUMPY


def _array(x):
    """`x` itself if it is a TF tensor, else `x` as a float64 numpy array."""
    return x if _is_tf(x) else np.asarray(x, dtype=np.float64)


def _like(x, ref):
    """`x` in `ref`'s backend and dtype (python floats and numpy arrays are cast to a tensor's dtype)."""
    if _is_tf(ref):
        import tensorflow as tf
        return tf.cast(x, ref.dtype)
    return np.asarray(x, dtype=np.float64)


def shapes_compatible(a, b) -> bool:
    """Equal shapes, where an unknown (None) dimension of a traced tensor matches anything."""
    a, b = tuple(a), tuple(b)
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _intrinsics_vector(intrinsics, ref):
    """`Intrinsics` or an array `[..., 4]` (fx, fy, cx, cy) as a `[..., 4]` array in `ref`'s backend."""
    return _like(tuple(intrinsics) if isinstance(intrinsics, Intrinsics) else intrinsics, ref)


# --------------------------------------------------------------------------------------------------------------------
# Perspective projection

def intrinsics_matrix(intrinsics: Intrinsics) -> np.ndarray:
    """K `[3, 3]` float64: `[u, v, 1]^T ~ K [x, y, z]^T`."""
    fx, fy, cx, cy = intrinsics
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def project(points_cam, intrinsics):
    """Pinhole projection of camera-frame points `[..., N, 3]` (metres, z > 0) to pixels `[..., N, 2]`.

    `intrinsics` is an `Intrinsics` or an array `[..., 4]` of (fx, fy, cx, cy), one camera per leading index (crops
    give every example its own camera; see `crop_camera`).
    """
    points_cam = _array(points_cam)
    k = _intrinsics_vector(intrinsics, points_cam)
    ops = _ops(points_cam)
    xy = points_cam[..., :2] / points_cam[..., 2:3]
    return ops.stack([k[..., 0, None] * xy[..., 0] + k[..., 2, None],
                      k[..., 1, None] * xy[..., 1] + k[..., 3, None]], axis=-1)


# --------------------------------------------------------------------------------------------------------------------
# HMR's weak-perspective camera
#
# HMR (Kanazawa et al. 2018, akanazawa/hmr src/tf_smpl/projection.py `batch_orth_proj_idrot`) predicts cam = (s, tx, ty)
# and projects x = s * (X[:, :2] + [tx, ty]) into normalized crop coordinates, where [-1, 1] maps to the pixels of an
# S-pixel crop by u = (x + 1) * S / 2 (HMR's data_loader normalizes keypoints as 2 * u / S - 1). With our pixel-centre
# convention the normalized origin is crop pixel S / 2, half a pixel right of / below the crop's centre (S - 1) / 2;
# we keep HMR's formula so HMR-convention cameras and keypoints carry over unchanged.

def weak_perspective_project(points, cam):
    """HMR's projection of points `[..., N, 3]` (metres, camera axes) with cam `[..., 3]` = (s, tx, ty).

    Returns normalized crop coordinates `[..., N, 2]` in HMR's [-1, 1] convention (y down, like crop rows).
    """
    points = _array(points)
    cam = _like(cam, points)
    return cam[..., 0, None, None] * (points[..., :2] + cam[..., None, 1:3])


def normalized_to_crop_pixels(xy, crop_size: int):
    """HMR's normalized crop coordinates `[..., 2]` -> pixels of a `crop_size` crop: u = (x + 1) * S / 2."""
    xy = _array(xy)
    return (xy + 1.0) * (crop_size / 2.0)


def crop_pixels_to_normalized(uv, crop_size: int):
    """Pixels of a `crop_size` crop `[..., 2]` -> HMR's normalized coordinates: x = 2 u / S - 1."""
    uv = _array(uv)
    return uv * (2.0 / crop_size) - 1.0


def crop_intrinsics(focal_px: float, crop_size: int) -> Intrinsics:
    """The perspective camera that `weak_perspective_to_translation` pairs with: principal point at HMR's
    normalized origin (S / 2, S / 2), focal length `focal_px` in crop pixels."""
    return Intrinsics(focal_px, focal_px, crop_size / 2.0, crop_size / 2.0)


def weak_perspective_to_translation(cam, focal_px: float, crop_size: int):
    """Camera-frame translation `[..., 3]` that makes perspective projection match HMR's cam `[..., 3]`.

    t = [tx, ty, 2 f / (S s)]: projecting X + t with `crop_intrinsics(f, S)` gives
    u = f (X + tx) / tz + S / 2 = (S s / 2)(X + tx) + S / 2 = (s (X + tx) + 1) S / 2, HMR's pixels, exactly for a body
    flat at depth tz and up to relative error (depth extent / tz) otherwise. The same formula SPIN uses (f = 5000 px
    with S = 224 there).
    """
    cam = _array(cam)
    ops = _ops(cam)
    depth = ops.divide(_like(2.0 * focal_px / crop_size, cam), cam[..., 0])
    return ops.stack([cam[..., 1], cam[..., 2], depth], axis=-1)


def translation_to_weak_perspective(translation, focal_px: float, crop_size: int):
    """Inverse of `weak_perspective_to_translation`: translation `[..., 3]` -> cam `[..., 3]`
    = (2 f / (S tz), tx, ty)."""
    translation = _array(translation)
    ops = _ops(translation)
    scale = ops.divide(_like(2.0 * focal_px / crop_size, translation), translation[..., 2])
    return ops.stack([scale, translation[..., 0], translation[..., 1]], axis=-1)


# --------------------------------------------------------------------------------------------------------------------
# Square crops around a box
#
# A box is a centre (cx, cy) and a side length `size`, in image pixels; its crop is `crop_size` pixels square. The box
# covers the continuous image region [c - size/2, c + size/2]², and the crop's pixels tile it edge to edge: crop pixel
# q (centre) sits at image position c - size/2 + (q + 0.5) * size / S. So the box centre lands on the crop's centre
# (S - 1) / 2, and the box's edges on the crop's edges -0.5 and S - 0.5.

def image_to_crop(points_img, centre, size, crop_size: int):
    """Image pixels `[..., N, 2]` -> crop pixels `[..., N, 2]` for boxes `centre [..., 2]`, `size [...]`."""
    points_img = _array(points_img)
    centre, size = _like(centre, points_img), _like(size, points_img)
    zoom = crop_size / size[..., None, None]
    return (points_img - centre[..., None, :] + size[..., None, None] / 2.0) * zoom - 0.5


def crop_to_image(points_crop, centre, size, crop_size: int):
    """Crop pixels `[..., N, 2]` -> image pixels `[..., N, 2]`; inverse of `image_to_crop`."""
    points_crop = _array(points_crop)
    centre, size = _like(centre, points_crop), _like(size, points_crop)
    step = size[..., None, None] / crop_size
    return (points_crop + 0.5) * step + centre[..., None, :] - size[..., None, None] / 2.0


def crop_camera(intrinsics, centre, size, crop_size: int):
    """Intrinsics `[..., 4]` (fx, fy, cx, cy) of the crop: `project(X, crop_camera(...))` equals
    `image_to_crop(project(X, intrinsics), ...)`, because a crop is a scale and a shift of the image plane."""
    centre = _array(centre)
    k = _intrinsics_vector(intrinsics, centre)
    size = _like(size, centre)
    ops = _ops(centre)
    zoom = crop_size / size * ops.ones(centre[..., 0])  # broadcast to the boxes' batch shape, for the stack below
    principal = image_to_crop(ops.stack([k[..., 2], k[..., 3]], axis=-1)[..., None, :], centre, size, crop_size)
    return ops.stack([k[..., 0] * zoom, k[..., 1] * zoom, principal[..., 0, 0], principal[..., 0, 1]], axis=-1)


def crop_and_resize_boxes(centre, size, image_hw: tuple[int, int], crop_size: int):
    """`boxes [..., 4]` for `tf.image.crop_and_resize` on H x W images that sample exactly the `image_to_crop` crop.

    crop_and_resize maps a normalized coordinate y to image row y * (H - 1) (pixel centres at integers, like ours)
    and puts the box's corners on the centres of the first and last output pixels; so the box's corners are the
    image positions of crop pixels 0 and S - 1, divided by (H - 1) and (W - 1). Samples outside the image take
    crop_and_resize's `extrapolation_value`.
    """
    height, width = image_hw
    static = [d for d in (height, width, crop_size) if isinstance(d, (int, np.integer))]
    if any(d < 2 for d in static):
        raise ValueError(f"crop_and_resize_boxes: image_hw {image_hw} and crop_size {crop_size} must all be >= 2")
    centre = _array(centre)
    ops = _ops(centre)
    # `image_hw` may hold tensors (frames whose size is only known when decoded, e.g. 3DPW's JPEGs).
    last_row, last_col = _like(height, centre) - 1.0, _like(width, centre) - 1.0
    corners_crop = _like([[0.0, 0.0], [crop_size - 1.0, crop_size - 1.0]], centre)  # [2, 2] (u, v)
    corners = crop_to_image(corners_crop, centre, size, crop_size)  # [..., 2, 2]
    return ops.stack([corners[..., 0, 1] / last_row, corners[..., 0, 0] / last_col,
                      corners[..., 1, 1] / last_row, corners[..., 1, 0] / last_col], axis=-1)


# --------------------------------------------------------------------------------------------------------------------
# Procrustes

class Similarity(NamedTuple):
    """x -> scale * rotation @ x + translation, one per leading index."""
    scale: object        # [...]
    rotation: object     # [..., 3, 3], det +1
    translation: object  # [..., 3]


def procrustes(source, target, weights=None) -> Similarity:
    """The similarity (scale, rotation, translation) that best maps `source` onto `target`, both `[..., N, 3]`.

    Weighted least squares (Umeyama 1991), minimising sum_i w_i |s R x_i + t - y_i|² with `weights [..., N]`
    (visibility masks or confidences; None = all ones). The rotation is proper: when the SVD's best orthogonal matrix
    is a reflection, the sign of the smallest singular direction is flipped, so a mirrored body is never "aligned"
    by mirroring. Needs three non-collinear weighted points; the TF gradient is undefined where singular values of
    the cross-covariance coincide (symmetric point sets), which generic bodies avoid.

    numpy: float64, and a batch element whose weights sum to zero or whose weighted source points coincide raises.
    TF: differentiable; an element with zero total weight gives scale 0 and translation 0 (all points aligned to
    the origin) and finite gradients instead of NaN, so a frame with no visible joint can sit in a training batch.
    """
    source = _array(source)
    target, ops = _like(target, source), _ops(source)
    if not shapes_compatible(source.shape, target.shape) or source.shape[-1] != 3:
        raise ValueError(f"procrustes: source {tuple(source.shape)} and target {tuple(target.shape)} must both be "
                         f"[..., N, 3]")
    weights = ops.ones(source[..., 0]) if weights is None else _like(weights, source)
    if not shapes_compatible(weights.shape, source.shape[:-1]):
        raise ValueError(f"procrustes: weights {tuple(weights.shape)} must be {tuple(source.shape[:-1])} "
                         f"(one per point)")
    total = ops.sum(weights, axis=-1)
    if ops is _NUMPY and np.any(total <= 0):
        raise ValueError("procrustes: weights sum to zero for some batch element; expected a positive total weight")
    weights = ops.divide(weights, total[..., None])

    mean_source = ops.einsum("...n,...nd->...d", weights, source)
    mean_target = ops.einsum("...n,...nd->...d", weights, target)
    source0 = source - mean_source[..., None, :]
    target0 = target - mean_target[..., None, :]
    covariance = ops.einsum("...n,...ni,...nj->...ij", weights, target0, source0)  # [..., 3, 3] target x source
    variance = ops.einsum("...n,...nd,...nd->...", weights, source0, source0)
    if ops is _NUMPY and np.any(variance <= 0):
        raise ValueError("procrustes: weighted source points coincide for some batch element; cannot fit a scale")

    u, singular, v = ops.svd(covariance)
    # Reflection fix: det(u v^T) = -1 means the best orthogonal map mirrors; flip the least significant direction.
    mirrored = ops.stop_gradient(ops.det(u) * ops.det(v)) < 0
    last = ops.where(mirrored, -ops.ones(singular[..., 0]), ops.ones(singular[..., 0]))
    signs = ops.stack([ops.ones(last), ops.ones(last), last], axis=-1)  # [..., 3]
    rotation = (u * signs[..., None, :]) @ ops.transpose(v)
    scale = ops.divide(ops.sum(singular * signs, axis=-1), variance)
    translation = mean_target - scale[..., None] * ops.einsum("...ij,...j->...i", rotation, mean_source)
    return Similarity(scale, rotation, translation)


def apply_similarity(points, similarity: Similarity):
    """scale * R x + t for points `[..., N, 3]`."""
    points = _array(points)
    scale, rotation, translation = (_like(x, points) for x in similarity)
    ops = _ops(points)
    return scale[..., None, None] * (points @ ops.transpose(rotation)) + translation[..., None, :]


def procrustes_align(source, target, weights=None):
    """`source [..., N, 3]` moved by its best similarity onto `target` (see `procrustes`)."""
    return apply_similarity(source, procrustes(source, target, weights))


# --------------------------------------------------------------------------------------------------------------------
# Rotations (numpy, float64; the TF body layer uses tensorflow-graphics)

def axis_angle_to_matrix(axis_angle) -> np.ndarray:
    """Axis-angle `[..., 3]` (radians, SMPL's pose convention) -> rotation matrices `[..., 3, 3]` float64."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    if axis_angle.shape[-1:] != (3,):
        raise ValueError(f"axis_angle_to_matrix: expected [..., 3], got {axis_angle.shape}")
    flat = Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix()
    return flat.reshape(axis_angle.shape + (3,))


def matrix_to_axis_angle(matrix) -> np.ndarray:
    """Rotation matrices `[..., 3, 3]` -> axis-angle `[..., 3]` float64, angle in [0, pi]."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_axis_angle: expected [..., 3, 3], got {matrix.shape}")
    flat = Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_rotvec()
    return flat.reshape(matrix.shape[:-1])
