"""The leg solver of the procedural motions: a two-bone leg IK that turns world ankle targets into hip, knee, ankle
and toe angles, and the pelvis-height limit that keeps every loaded foot within reach.

Feet are planted exactly for the reference skeleton `skeleton.REST_JOINTS`; a body with other leg lengths slides by
the difference.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mhr_tf.sim.curves import softmin, softplus
from mhr_tf.sim.skeleton import (ANKLE_HEIGHT, EULER_ORDERS, HEEL_LENGTH, JOINT_INDEX, REST_JOINTS, ROOT_ORDER,
                                 TOE_LENGTH, angle_slot)

_REACH_SOFTNESS = 0.002  # m: a foot on the floor meets a target within 0.2% of full reach to 1 mm
_SWING_REACH_SOFTNESS = 0.03  # m, added for a foot in the air: out of reach, its knee straightens gently
_UNLOADED_SLACK_M = 0.5  # m, how far above its reach limit a foot in the air lets the pelvis go
_VALLEY_ROUNDING_S = 0.035  # s, half-width of the rounding of the pelvis path under a landing


def root_matrices(angles: np.ndarray) -> np.ndarray:
    return Rotation.from_euler(ROOT_ORDER, angles[:, 0]).as_matrix()


def _leg_geometry(side: str):
    hip, knee, ankle = (REST_JOINTS[JOINT_INDEX[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
    thigh, shank = knee - hip, ankle - knee
    rest_reach = np.linalg.norm(ankle - hip)
    # Forward angle of a bone hanging down: its tilt towards +z in the sagittal plane.
    thigh_fwd = np.arctan2(thigh[2], -thigh[1])
    shank_fwd = np.arctan2(shank[2], -shank[1])
    return np.linalg.norm(thigh), np.linalg.norm(shank), rest_reach, thigh_fwd, shank_fwd


def pelvis_height_limit(pelvis_xz: np.ndarray, root_rot: np.ndarray, ankle: np.ndarray, side: str,
                        slack: float = 0.998) -> np.ndarray:
    """Highest pelvis y [T] for which the `side` leg still reaches its ankle target [T, 3] (knee not past straight)."""
    *_, rest_reach, _, _ = _leg_geometry(side)
    hip_rest = REST_JOINTS[JOINT_INDEX[f"{side}_hip"]] - REST_JOINTS[JOINT_INDEX["pelvis"]]
    hip_offset = np.einsum("tij,j->ti", root_rot, hip_rest)
    dx = ankle[:, 0] - pelvis_xz[:, 0] - hip_offset[:, 0]
    dz = ankle[:, 2] - pelvis_xz[:, 1] - hip_offset[:, 2]
    reach = slack * rest_reach
    vertical = np.sqrt(np.maximum(reach ** 2 - dx ** 2 - dz ** 2, (0.3 * reach) ** 2))
    return ankle[:, 1] + vertical - hip_offset[:, 1]


def limit_pelvis_height(height: np.ndarray, pelvis_xz: np.ndarray, root_rot: np.ndarray, ankles: np.ndarray,
                        load: np.ndarray, fps: float) -> np.ndarray:
    """Lower the desired pelvis height [T] wherever a loaded foot could not reach its target (smoothly, never above).

    ankles: [T, 2, 3] targets (left, right); load: [T, 2] in [0, 1], 1 for a foot on the floor, rising smoothly
    before a foot lands so the pelvis lowers in time for a far footprint, as a walker's does.
    """
    limits = [height]
    for f, side in enumerate(("left", "right")):
        limit = pelvis_height_limit(pelvis_xz, root_rot, ankles[:, f], side)
        limits.append(limit + (1.0 - load[:, f]) * _UNLOADED_SLACK_M)
    hard = softmin(np.stack(limits, axis=1), axis=1, tau=0.005)
    # The limit has sharp valleys where a foot lands; pass under them along a rounded path (erode, then blur).
    half = max(1, int(round(_VALLEY_ROUNDING_S * fps)))
    rounded = ndimage.gaussian_filter1d(ndimage.minimum_filter1d(hard, 2 * half + 1, mode="nearest"), half,
                                        mode="nearest")
    return softmin(np.stack([rounded, hard], axis=1), axis=1, tau=0.002)


def solve_legs(angles: np.ndarray, pelvis: np.ndarray, ankles: np.ndarray, foot_yaw: np.ndarray,
               foot_pitch: np.ndarray, load: np.ndarray | None = None) -> None:
    """Fill hips, knees, ankles and toes of `angles` [T, 24, 3] (in place) so the ankles reach their targets.

    pelvis: [T, 3] world; ankles: [T, 2, 3] world ankle targets (left, right); foot_yaw: [T, 2] world heading of each
    foot (rad, about +y); foot_pitch: [T, 2] world pitch of each foot (rad, + = toes down); load: [T, 2] in [0, 1]
    (default 1), how firmly each foot must meet its target: a foot in the air straightens its knee gently when its
    target is out of reach, a foot on the floor meets it to a millimetre.
    The hip is R_y(yaw) R_z(abduction) R_x(flexion) (its limit order "YZX"): yaw turns the leg's plane towards the
    foot, abduction tilts the plane sideways to the target, and a planar two-bone IK sets hip and knee flexion.
    """
    root_rot = root_matrices(angles)
    root_yaw = angles[:, 0, 0]
    root_pitch = angles[:, 0, 1]
    load = np.ones((len(angles), 2)) if load is None else load
    for f, side in enumerate(("left", "right")):
        thigh_len, shank_len, rest_reach, thigh_fwd0, shank_fwd0 = _leg_geometry(side)
        hip_rest = REST_JOINTS[JOINT_INDEX[f"{side}_hip"]] - REST_JOINTS[JOINT_INDEX["pelvis"]]
        hip_world = pelvis + np.einsum("tij,j->ti", root_rot, hip_rest)
        d = np.einsum("tji,tj->ti", root_rot, ankles[:, f] - hip_world)  # target in the pelvis frame
        yaw = foot_yaw[:, f] - root_yaw
        c, s = np.cos(yaw), np.sin(yaw)
        # Undo the hip's yaw: d' = R_y(-yaw) d.
        dx = c * d[:, 0] - s * d[:, 2]
        dz = s * d[:, 0] + c * d[:, 2]
        dy = d[:, 1]
        abduction = np.arctan2(dx, -dy)
        down = np.hypot(dx, dy)
        # Saturate smoothly: an out-of-reach swing target straightens the knee gradually, without a kink.
        softness = _REACH_SOFTNESS + _SWING_REACH_SOFTNESS * (1.0 - load[:, f])
        reach = rest_reach - softplus(rest_reach - np.hypot(down, dz), softness)
        reach = np.maximum(reach, 0.35 * rest_reach)
        line_fwd = np.arctan2(dz, down)
        hip_inner = np.arccos(np.clip((thigh_len ** 2 + reach ** 2 - shank_len ** 2) / (2 * thigh_len * reach),
                                      -1.0, 1.0))
        knee_inner = np.arccos(np.clip((thigh_len ** 2 + shank_len ** 2 - reach ** 2) / (2 * thigh_len * shank_len),
                                       -1.0, 1.0))
        thigh_fwd = line_fwd + hip_inner
        shank_fwd = thigh_fwd - (np.pi - knee_inner)
        # A rotation +a about x tilts a hanging bone backwards by a.
        hip_flex = -(thigh_fwd - thigh_fwd0)
        knee_flex = (thigh_fwd - thigh_fwd0) - (shank_fwd - shank_fwd0)
        j, k = angle_slot(f"{side}_hip", "Y")
        angles[:, j, k] = yaw
        angles[:, j, EULER_ORDERS[j].index("Z")] = abduction
        angles[:, j, EULER_ORDERS[j].index("X")] = hip_flex
        j, k = angle_slot(f"{side}_knee", "X")
        angles[:, j, k] = knee_flex
        # The foot's world pitch is the sum of the x-rotations down the chain.
        j, k = angle_slot(f"{side}_ankle", "X")
        angles[:, j, k] = foot_pitch[:, f] - (root_pitch + hip_flex + knee_flex)
        j, k = angle_slot(f"{side}_foot", "X")
        angles[:, j, k] = -0.6 * np.maximum(foot_pitch[:, f], 0.0)  # toes stay flatter than the lifted heel


def pivot_offset(pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """[T, 3] ankle displacement when a foot pitches about its ball (pitch > 0, heel up) or heel (pitch < 0)."""
    ankle_from_pivot = np.where(pitch[:, None] >= 0, [0.0, ANKLE_HEIGHT, -TOE_LENGTH],
                                [0.0, ANKLE_HEIGHT, HEEL_LENGTH])
    c, s = np.cos(pitch), np.sin(pitch)
    y = c * ankle_from_pivot[:, 1] - s * ankle_from_pivot[:, 2]
    z = s * ankle_from_pivot[:, 1] + c * ankle_from_pivot[:, 2]
    dy, dz = y - ankle_from_pivot[:, 1], z - ankle_from_pivot[:, 2]
    return np.stack([dz * np.sin(yaw), dy, dz * np.cos(yaw)], axis=1)
