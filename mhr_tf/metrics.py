"""Evaluation metrics in millimetres with per-frame masks: MPJPE, PA-MPJPE, PVE and acceleration error.

numpy (float64) for evaluation: `*_per_frame` give one error per frame, the plain names the mean over valid frames.
TF for training summaries: `*_tf` give the masked mean as a scalar tensor. Inputs are in metres, camera frame.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from mhr_tf import geometry
from mhr_tf.body.joints import LSP_14

M_TO_MM = 1000.0
# HMMR / VIBE's 3DPW protocol: the 14 LSP joints, centred on the midpoint of the hips ("pelvis") before MPJPE and
# the acceleration error.
PELVIS_HIP_MIDPOINT = ("left_hip", "right_hip")


def _pelvis_indices(joint_names: tuple[str, ...], pelvis: tuple[str, ...]) -> list[int]:
    missing = [name for name in pelvis if name not in joint_names]
    if missing or not pelvis:
        raise ValueError(f"pelvis joints {pelvis} must be non-empty and among the joint names {joint_names}; "
                         f"missing {missing}")
    return [joint_names.index(name) for name in pelvis]


def _check_pair(pred, gt, what: str, joint_names: tuple[str, ...] | None = None) -> None:
    if not geometry.shapes_compatible(pred.shape, gt.shape) or pred.shape[-1] != 3:
        raise ValueError(f"{what}: prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} must both be "
                         f"[..., N, 3]")
    if joint_names is not None and pred.shape[-2] != len(joint_names):
        raise ValueError(f"{what}: joint axis has {pred.shape[-2]} entries, joint_names has {len(joint_names)}")


# --------------------------------------------------------------------------------------------------------------------
# numpy, for evaluation

def centre_on_pelvis(joints, joint_names: tuple[str, ...] = LSP_14,
                     pelvis: tuple[str, ...] = PELVIS_HIP_MIDPOINT) -> np.ndarray:
    """`joints [..., J, 3]` minus the mean of the `pelvis` joints (named in `joint_names`), float64."""
    joints = np.asarray(joints, dtype=np.float64)
    return joints - joints[..., _pelvis_indices(joint_names, pelvis), :].mean(axis=-2, keepdims=True)


def _maybe_centre(pred, gt, joint_names, pelvis, what):
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    _check_pair(pred, gt, what, joint_names if pelvis is not None else None)
    if pelvis is None:
        return pred, gt
    return centre_on_pelvis(pred, joint_names, pelvis), centre_on_pelvis(gt, joint_names, pelvis)


def masked_mean(values, mask=None) -> float:
    """Mean of `values [...]` where `mask [...]` is true (all when None); NaN when no entry is valid."""
    values = np.asarray(values, dtype=np.float64)
    if mask is None:
        return float(values.mean()) if values.size else float("nan")
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != values.shape:
        raise ValueError(f"mask {mask.shape} must match the per-frame errors {values.shape}")
    return float(values[mask].mean()) if mask.any() else float("nan")


def mpjpe_per_frame(pred, gt, joint_names: tuple[str, ...] = LSP_14,
                    pelvis: tuple[str, ...] | None = None) -> np.ndarray:
    """Mean per-joint position error `[...]` in mm of joints `[..., J, 3]` (metres); root-relative when `pelvis`
    names the joints whose mean is the root (e.g. `PELVIS_HIP_MIDPOINT`)."""
    pred, gt = _maybe_centre(pred, gt, joint_names, pelvis, "mpjpe")
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1) * M_TO_MM


def pa_mpjpe_per_frame(pred, gt) -> np.ndarray:
    """MPJPE `[...]` in mm after aligning each frame's prediction to its ground truth by a similarity (Procrustes)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    _check_pair(pred, gt, "pa_mpjpe")
    return mpjpe_per_frame(geometry.procrustes_align(pred, gt), gt)


def pve_per_frame(pred_vertices, gt_vertices) -> np.ndarray:
    """Per-vertex error `[...]` in mm of vertices `[..., V, 3]` given in one frame (e.g. both root-centred)."""
    pred, gt = np.asarray(pred_vertices, dtype=np.float64), np.asarray(gt_vertices, dtype=np.float64)
    _check_pair(pred, gt, "pve")
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1) * M_TO_MM


def accel_error_per_frame(pred, gt, joint_names: tuple[str, ...] = LSP_14,
                          pelvis: tuple[str, ...] | None = None) -> np.ndarray:
    """Acceleration error `[..., T - 2]` in mm/frame² of joint sequences `[..., T, J, 3]` (VIBE, Kocabas et al. 2020,
    `compute_error_accel`): the second difference x[t] - 2 x[t+1] + x[t+2] of prediction and ground truth, the norm
    of their difference, averaged over joints. Entry t is centred on frame t + 1."""
    pred, gt = _maybe_centre(pred, gt, joint_names, pelvis, "accel_error")
    if pred.ndim < 3 or pred.shape[-3] < 3:
        raise ValueError(f"accel_error: expected [..., T, J, 3] with T >= 3, got {pred.shape}")
    diff = pred - gt
    accel = diff[..., :-2, :, :] - 2.0 * diff[..., 1:-1, :, :] + diff[..., 2:, :, :]
    return np.linalg.norm(accel, axis=-1).mean(axis=-1) * M_TO_MM


def accel_mask(mask) -> np.ndarray:
    """VIBE's validity of each acceleration entry `[..., T - 2]` from a frame mask `[..., T]`: entry t needs frames
    t, t+1 and t+2 all valid (one invalid frame removes the three second differences that touch it)."""
    mask = np.asarray(mask, dtype=bool)
    return mask[..., :-2] & mask[..., 1:-1] & mask[..., 2:]


def mpjpe(pred, gt, mask=None, joint_names: tuple[str, ...] = LSP_14,
          pelvis: tuple[str, ...] | None = None) -> float:
    """Mean of `mpjpe_per_frame` over frames where `mask [...]` is true, mm."""
    return masked_mean(mpjpe_per_frame(pred, gt, joint_names, pelvis), mask)


def pa_mpjpe(pred, gt, mask=None) -> float:
    """Mean of `pa_mpjpe_per_frame` over frames where `mask [...]` is true, mm."""
    return masked_mean(pa_mpjpe_per_frame(pred, gt), mask)


def pve(pred_vertices, gt_vertices, mask=None) -> float:
    """Mean of `pve_per_frame` over frames where `mask [...]` is true, mm."""
    return masked_mean(pve_per_frame(pred_vertices, gt_vertices), mask)


def accel_error(pred, gt, mask=None, joint_names: tuple[str, ...] = LSP_14,
                pelvis: tuple[str, ...] | None = None) -> float:
    """Mean acceleration error in mm/frame² over the entries VIBE keeps for the frame mask `[..., T]`."""
    per_frame = accel_error_per_frame(pred, gt, joint_names, pelvis)
    return masked_mean(per_frame, None if mask is None else accel_mask(mask))


# --------------------------------------------------------------------------------------------------------------------
# TF, for training summaries: same definitions, masked means as scalar tensors (0 when nothing is valid)

def _masked_mean_tf(values: tf.Tensor, mask) -> tf.Tensor:
    if mask is None:
        return tf.reduce_mean(values)
    weights = tf.cast(mask, values.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(values * weights), tf.reduce_sum(weights))


def _centre_tf(joints: tf.Tensor, joint_names, pelvis) -> tf.Tensor:
    if pelvis is None:
        return joints
    root = tf.reduce_mean(tf.gather(joints, _pelvis_indices(joint_names, pelvis), axis=-2), axis=-2, keepdims=True)
    return joints - root


def _mean_norm_mm_tf(offsets: tf.Tensor) -> tf.Tensor:
    """Mean length over axis -2 of `offsets [..., N, 3]` (metres), in mm. The square root is floored at 1e-20 m²
    (0.1 nm) so that an exact match has a zero gradient instead of tf.norm's NaN."""
    squared = tf.reduce_sum(tf.square(offsets), axis=-1)
    return tf.reduce_mean(tf.sqrt(tf.maximum(squared, tf.cast(1e-20, squared.dtype))), axis=-1) * M_TO_MM


def mpjpe_tf(pred, gt, mask=None, joint_names: tuple[str, ...] = LSP_14,
             pelvis: tuple[str, ...] | None = None) -> tf.Tensor:
    """MPJPE in mm of joints `[..., J, 3]`, mean over frames where `mask [...]` is true."""
    pred, gt = tf.convert_to_tensor(pred), tf.convert_to_tensor(gt)
    _check_pair(pred, gt, "mpjpe_tf", joint_names if pelvis is not None else None)
    pred, gt = _centre_tf(pred, joint_names, pelvis), _centre_tf(gt, joint_names, pelvis)
    return _masked_mean_tf(_mean_norm_mm_tf(pred - gt), mask)


def pa_mpjpe_tf(pred, gt, mask=None) -> tf.Tensor:
    """PA-MPJPE in mm of joints `[..., J, 3]` (differentiable Procrustes), mean over frames where `mask` is true."""
    pred, gt = tf.convert_to_tensor(pred), tf.convert_to_tensor(gt)
    _check_pair(pred, gt, "pa_mpjpe_tf")
    return _masked_mean_tf(_mean_norm_mm_tf(geometry.procrustes_align(pred, gt) - gt), mask)


def pve_tf(pred_vertices, gt_vertices, mask=None) -> tf.Tensor:
    """PVE in mm of vertices `[..., V, 3]`, mean over frames where `mask [...]` is true."""
    pred, gt = tf.convert_to_tensor(pred_vertices), tf.convert_to_tensor(gt_vertices)
    _check_pair(pred, gt, "pve_tf")
    return _masked_mean_tf(_mean_norm_mm_tf(pred - gt), mask)


def accel_error_tf(pred, gt, mask=None, joint_names: tuple[str, ...] = LSP_14,
                   pelvis: tuple[str, ...] | None = None) -> tf.Tensor:
    """VIBE's acceleration error in mm/frame² of sequences `[..., T, J, 3]`, frame mask `[..., T]`."""
    pred, gt = tf.convert_to_tensor(pred), tf.convert_to_tensor(gt)
    _check_pair(pred, gt, "accel_error_tf", joint_names if pelvis is not None else None)
    diff = _centre_tf(pred, joint_names, pelvis) - _centre_tf(gt, joint_names, pelvis)
    accel = diff[..., :-2, :, :] - 2.0 * diff[..., 1:-1, :, :] + diff[..., 2:, :, :]
    per_frame = _mean_norm_mm_tf(accel)
    if mask is not None:
        mask = tf.convert_to_tensor(mask, tf.bool)
        mask = mask[..., :-2] & mask[..., 1:-1] & mask[..., 2:]
    return _masked_mean_tf(per_frame, mask)
