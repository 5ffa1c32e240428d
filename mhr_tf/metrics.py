"""Evaluation metrics in millimetres with per-frame masks: MPJPE, PA-MPJPE, PVE and acceleration error; 3DPW's PCK,
AUC, MPJAE and PA-MPJAE; a user's joint regressor; pooling of per-frame errors over tracks and sequences.

numpy (float64) for evaluation: `*_per_frame` give one error per frame, the plain names the mean over valid frames.
TF for training summaries: `*_tf` give the masked mean as a scalar tensor. Inputs are in metres, camera frame.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from scipy.spatial.transform import Rotation

from mhr_tf import geometry
from mhr_tf.body.joints import LSP_14, SMPL_24, SMPL_PARENTS

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
# 3DPW's official metrics beyond MPJPE (aymenmir1/3dpw-eval, evaluate.py): PCK, AUC, MPJAE, PA-MPJAE
#
# The official code scores SMPL's 24 joints centred on the pelvis (joint 0). PCK counts, of 12 joints (hips, knees,
# ankles, shoulders, elbows, wrists: SMPL_MAJOR_JOINTS), those within 50 mm — after that root alignment, not after
# Procrustes. AUC integrates the PCK curve over thresholds 0, 1, ..., 199 mm (np.arange(0, 200)) divided by the
# largest, with linear interpolation between thresholds (scipy's quad of np.interp, i.e. the trapezoid rule). MPJAE
# is the mean geodesic angle (degrees) between predicted and true global joint rotations (camera frame), over 9 joints
# (SMPL_OR_JOINTS: root, hips, knees, shoulders, elbows); PA-MPJAE first turns the predicted rotations by the rotation
# of the per-frame Procrustes alignment of the predicted joints onto the true ones.

PCK_JOINTS = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_shoulder",
              "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
MPJAE_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_shoulder", "right_shoulder",
                "left_elbow", "right_elbow")
PCK_THRESHOLD_MM = 50.0
AUC_THRESHOLDS_MM = np.arange(0.0, 200.0)  # 0, 1, ..., 199 mm, as the official code's np.arange(0, 200)
PCK_ALIGNMENTS = ("root", "procrustes", "none")
OFFICIAL_ROOT = ("pelvis",)


def _aligned_joint_errors(pred, gt, joint_names, subset, alignment, root) -> np.ndarray:
    """Per-joint errors `[..., len(subset)]` in mm after `alignment` (see PCK_ALIGNMENTS)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    _check_pair(pred, gt, "pck", joint_names)
    if alignment == "root":
        pred, gt = centre_on_pelvis(pred, joint_names, root), centre_on_pelvis(gt, joint_names, root)
    elif alignment == "procrustes":
        pred = geometry.procrustes_align(pred, gt)
    elif alignment != "none":
        raise ValueError(f"alignment {alignment!r} is not one of {PCK_ALIGNMENTS}")
    index = [joint_names.index(name) for name in subset]
    return np.linalg.norm(pred[..., index, :] - gt[..., index, :], axis=-1) * M_TO_MM


def pck_per_frame(pred, gt, threshold_mm: float = PCK_THRESHOLD_MM, joint_names: tuple[str, ...] = SMPL_24,
                  subset: tuple[str, ...] = PCK_JOINTS, alignment: str = "root",
                  root: tuple[str, ...] = OFFICIAL_ROOT) -> np.ndarray:
    """Fraction `[...]` of the `subset` joints of `[..., J, 3]` (metres) within `threshold_mm` (inclusive) of the
    truth after `alignment`: "root" (3DPW's official: both centred on `root`), "procrustes" or "none". The official
    printout reports 100 x the mean."""
    errors = _aligned_joint_errors(pred, gt, joint_names, subset, alignment, root)
    return (errors <= threshold_mm).mean(axis=-1)


def pck_auc_per_frame(pred, gt, thresholds_mm=AUC_THRESHOLDS_MM, joint_names: tuple[str, ...] = SMPL_24,
                      subset: tuple[str, ...] = PCK_JOINTS, alignment: str = "root",
                      root: tuple[str, ...] = OFFICIAL_ROOT) -> np.ndarray:
    """Area `[...]` (0..1) under each frame's PCK curve over `thresholds_mm` divided by the largest, trapezoid rule.
    The mean over frames is the area under the mean curve, 3DPW's AUC."""
    errors = _aligned_joint_errors(pred, gt, joint_names, subset, alignment, root)
    thresholds = np.asarray(thresholds_mm, np.float64)
    curve = (errors[..., None, :] <= thresholds[:, None]).mean(axis=-1)  # [..., num_thresholds]
    x = thresholds / thresholds.max()
    return np.sum((curve[..., 1:] + curve[..., :-1]) / 2.0 * np.diff(x), axis=-1)


def global_rotations(pose, parents=None) -> np.ndarray:
    """Each joint's rotation in the frame of the root's parent (the camera frame for a camera-frame root):
    `[..., 24, 3, 3]` from SMPL's local axis-angle `pose [..., 72]` or `[..., 24, 3]` (or local matrices
    `[..., 24, 3, 3]`), composed down the kinematic tree."""
    parents = SMPL_PARENTS if parents is None else np.asarray(parents)
    pose, num = np.asarray(pose, np.float64), len(parents)
    if pose.ndim >= 3 and pose.shape[-3:] == (num, 3, 3):
        local = pose
    elif pose.ndim >= 1 and pose.shape[-1] == 3 * num:
        local = geometry.axis_angle_to_matrix(pose.reshape(pose.shape[:-1] + (num, 3)))
    elif pose.ndim >= 2 and pose.shape[-2:] == (num, 3):
        local = geometry.axis_angle_to_matrix(pose)
    else:
        raise ValueError(f"global_rotations: pose {pose.shape} — expected [..., {3 * num}], [..., {num}, 3] or "
                         f"[..., {num}, 3, 3]")
    out = np.empty_like(local)
    for j, parent in enumerate(parents):
        out[..., j, :, :] = local[..., j, :, :] if parent < 0 else out[..., parent, :, :] @ local[..., j, :, :]
    return out


def _rotation_angles_deg(pred_rotations, gt_rotations) -> np.ndarray:
    relative = np.asarray(pred_rotations, np.float64) @ np.swapaxes(np.asarray(gt_rotations, np.float64), -1, -2)
    flat = relative.reshape(-1, 3, 3)
    angles = Rotation.from_matrix(flat).magnitude() if len(flat) else np.zeros(0)
    return np.degrees(angles).reshape(relative.shape[:-2])


def mpjae_per_frame(pred_rotations, gt_rotations, joint_names: tuple[str, ...] = SMPL_24,
                    subset: tuple[str, ...] = MPJAE_JOINTS) -> np.ndarray:
    """Mean angle `[...]` in degrees of `R_pred R_gt^T` over the `subset` joints of global rotations
    `[..., J, 3, 3]` (`global_rotations`), both in one frame (e.g. the camera's)."""
    index = [joint_names.index(name) for name in subset]
    return _rotation_angles_deg(np.asarray(pred_rotations)[..., index, :, :],
                                np.asarray(gt_rotations)[..., index, :, :]).mean(axis=-1)


def pa_mpjae_per_frame(pred_rotations, gt_rotations, pred_joints, gt_joints,
                       joint_names: tuple[str, ...] = SMPL_24, subset: tuple[str, ...] = MPJAE_JOINTS) -> np.ndarray:
    """MPJAE `[...]` in degrees after turning the predicted rotations by the rotation of the Procrustes alignment of
    `pred_joints` onto `gt_joints` (`[..., J', 3]`, 3DPW: the 24 SMPL joints)."""
    alignment = geometry.procrustes(np.asarray(pred_joints, np.float64), np.asarray(gt_joints, np.float64))
    turned = np.asarray(alignment.rotation)[..., None, :, :] @ np.asarray(pred_rotations, np.float64)
    return mpjae_per_frame(turned, gt_rotations, joint_names, subset)


def official_3dpw_per_frame(pred_pose, pred_joints, gt_pose, gt_joints) -> dict[str, np.ndarray]:
    """3DPW's PCK (fraction), AUC (0..1), MPJAE and PA-MPJAE (degrees) per frame `[N]` of one track, from SMPL poses
    `[N, 72]` with the root in the camera frame (the prediction's `pose`, the track's `pose_cam`) and SMPL-24 joints
    `[N, 24, 3]` metres (`smpl_joints3d`, `joints3d_cam`)."""
    pred_rotations, gt_rotations = global_rotations(pred_pose), global_rotations(gt_pose)
    return {"pck": pck_per_frame(pred_joints, gt_joints), "auc": pck_auc_per_frame(pred_joints, gt_joints),
            "mpjae": mpjae_per_frame(pred_rotations, gt_rotations),
            "pa_mpjae": pa_mpjae_per_frame(pred_rotations, gt_rotations, pred_joints, gt_joints)}


# --------------------------------------------------------------------------------------------------------------------
# A user's joint regressor, and how per-frame errors are pooled

def load_joint_regressor(path, num_vertices: int | None = None) -> np.ndarray:
    """A joint regressor `[J, V]` float64: a `.npy` array (VIBE/SPIN's J_regressor_h36m.npy, J_regressor_extra.npy),
    an `.npz` (its 'J_regressor' or its only array) or HMR's `neutral_smpl_with_cocoplus_reg.pkl` (key
    'cocoplus_regressor', 19 joints, the first 14 in LSP order). A `[V, J]` file is transposed."""
    from pathlib import Path
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such joint regressor file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        regressor = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            key = "J_regressor" if "J_regressor" in npz.files else (npz.files[0] if len(npz.files) == 1 else None)
            if key is None:
                raise ValueError(f"{path}: keys {npz.files} — expected 'J_regressor' or a single array")
            regressor = npz[key]
    elif suffix == ".pkl":
        from mhr_tf.body import smpl  # its unpickler reads HMR's chumpy / scipy-sparse pickles safely
        content = smpl.read_pickle(path)
        if not isinstance(content, dict) or smpl.COCOPLUS_REGRESSOR_KEY not in content:
            raise ValueError(f"{path}: no key '{smpl.COCOPLUS_REGRESSOR_KEY}' — expected HMR's cocoplus pickle")
        regressor = smpl.as_array(content[smpl.COCOPLUS_REGRESSOR_KEY], path, smpl.COCOPLUS_REGRESSOR_KEY)
    else:
        raise ValueError(f"{path}: unknown suffix {suffix!r} — expected a .npy, .npz or HMR's .pkl regressor")
    regressor = np.asarray(regressor, np.float64)
    if regressor.ndim != 2:
        raise ValueError(f"{path}: regressor has shape {regressor.shape} — expected [J, V]")
    if num_vertices is not None and regressor.shape[1] != num_vertices and regressor.shape[0] == num_vertices:
        regressor = regressor.T
    if num_vertices is not None and regressor.shape[1] != num_vertices:
        raise ValueError(f"{path}: regressor has shape {regressor.shape} — expected [J, {num_vertices}] for a "
                         f"body with {num_vertices} vertices")
    return regressor


def regress_joints(regressor, vertices) -> np.ndarray:
    """Joints `[..., J, 3]` = `regressor [J, V]` @ `vertices [..., V, 3]`, float64."""
    regressor, vertices = np.asarray(regressor, np.float64), np.asarray(vertices, np.float64)
    if regressor.ndim != 2 or vertices.shape[-1:] != (3,) or vertices.shape[-2] != regressor.shape[1]:
        raise ValueError(f"regress_joints: regressor {regressor.shape} and vertices {vertices.shape} — expected "
                         "[J, V] and [..., V, 3]")
    return np.einsum("jv,...vc->...jc", regressor, vertices)


POOLINGS = ("frame", "track", "sequence")


def pooled_mean(per_frame, masks, sequences, pooling: str = "frame") -> float:
    """One number from per-frame errors of several person-tracks: `per_frame` and `masks` are lists with one `[N_i]`
    array per track, `sequences` the sequence each track belongs to. Pooling:
    - "frame": the mean over every valid frame of every track (3DPW's official evaluation);
    - "track": the mean of each track's mean, over tracks (the paper protocol's person-sequence average);
    - "sequence": the frames of all people of a sequence pooled into one mean per sequence, then the mean over
      sequences (HMMR-style).
    Tracks without a valid frame are left out; NaN when nothing is valid."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
    if not len(per_frame) == len(masks) == len(sequences):
        raise ValueError(f"pooled_mean: {len(per_frame)} error arrays, {len(masks)} masks, {len(sequences)} "
                         "sequence names — expected one of each per track")
    pairs = [(np.asarray(v, np.float64), np.asarray(m, bool), s) for v, m, s in zip(per_frame, masks, sequences)]
    pairs = [(v, m, s) for v, m, s in pairs if m.any()]
    if not pairs:
        return float("nan")
    if pooling == "frame":
        return float(np.concatenate([v[m] for v, m, _ in pairs]).mean())
    if pooling == "track":
        return float(np.mean([v[m].mean() for v, m, _ in pairs]))
    names = list(dict.fromkeys(s for _, _, s in pairs))
    return float(np.mean([np.concatenate([v[m] for v, m, s in pairs if s == name]).mean() for name in names]))


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
