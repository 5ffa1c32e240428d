"""Human motion for the simulator: procedural 30 fps pose sequences for SMPL's 24-joint skeleton, and BVH import.

Conventions (SMPL's rest T-pose): y up, the body faces +z, the person's left is +x, metres; arms horizontal in the
rest pose. Every joint's local frame is parallel to the world's in the rest pose, so a local rotation about x is a
flexion in the sagittal plane (knee flexion is +x, hip flexion is -x, trunk flexion is +x), and a rotation about z
lowers or raises an arm in the frontal plane (the left arm hangs at z = -75 deg, the right arm at z = +75 deg).

Every procedural kind is built the same way: a pelvis trajectory, world targets for both ankles (footprints that
stay put while a foot is on the ground), and upper-body angles; a two-bone leg IK turns the ankle targets into hip,
knee and ankle angles; all angles are then kept inside `JOINT_LIMITS_DEG`. Feet are planted exactly for the
reference skeleton `REST_JOINTS`; a body with other leg lengths slides by the difference.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mhr_tf.body.joints import SMPL_24, SMPL_PARENTS, mirror_name as _mirror_name

FPS = 30  # issue 4 "Motion": the simulator's frame rate (SURREAL's clips are 30 fps too)
GRAVITY = 9.81  # m/s², for the flight phase of jumps
KINDS = ("walk", "run", "jump", "wave", "squat", "turn")

_J = {name: i for i, name in enumerate(SMPL_24)}




# ---- the reference skeleton ------------------------------------------------------------------------------------

# SMPL-like rest joint positions [24, 3] (metres, rest T-pose), our own numbers for a 1.67 m person; the left side
# is given and the right side mirrored (x -> -x). Legs hang straight under the hips (hip, knee and ankle share x),
# which keeps the leg IK in one plane.
_LEFT_AND_CENTRE_REST = {
    "pelvis": (0.0, -0.22, 0.02), "left_hip": (0.08, -0.31, 0.01), "spine1": (0.0, -0.11, 0.0),
    "left_knee": (0.08, -0.69, 0.015), "spine2": (0.0, 0.02, 0.0), "left_ankle": (0.08, -1.07, -0.02),
    "spine3": (0.0, 0.07, 0.025), "left_foot": (0.10, -1.13, 0.10), "neck": (0.0, 0.29, -0.015),
    "left_collar": (0.075, 0.195, -0.01), "head": (0.0, 0.36, 0.04), "left_shoulder": (0.17, 0.23, -0.02),
    "left_elbow": (0.43, 0.215, -0.035), "left_wrist": (0.69, 0.22, -0.04), "left_hand": (0.78, 0.21, -0.05),
}


def _rest_joints() -> np.ndarray:
    rest = np.zeros((len(SMPL_24), 3))
    for name in SMPL_24:
        if name in _LEFT_AND_CENTRE_REST:
            rest[_J[name]] = _LEFT_AND_CENTRE_REST[name]
        else:
            rest[_J[name]] = np.array(_LEFT_AND_CENTRE_REST[_mirror_name(name)]) * (-1.0, 1.0, 1.0)
    return rest


REST_JOINTS = _rest_joints()  # [24, 3] float64, metres, rest T-pose
ANKLE_HEIGHT = 0.07  # m, ankle joint above the sole of a flat foot
GROUND_Y_REST = REST_JOINTS[_J["left_ankle"], 1] - ANKLE_HEIGHT  # the soles' height in the rest pose
STANDING_PELVIS_HEIGHT = REST_JOINTS[_J["pelvis"], 1] - GROUND_Y_REST  # m above the floor, straight legs
_TOE_LENGTH = REST_JOINTS[_J["left_foot"], 2] - REST_JOINTS[_J["left_ankle"], 2]  # ankle -> ball of the foot, along z
_HEEL_LENGTH = 0.05  # m, heel behind the ankle


# ---- joint limits ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class JointLimit:
    """Box limits on a joint's local rotation, as intrinsic Euler angles in degrees.

    `order` is scipy's intrinsic order: "YZX" means R = R_y(a0) @ R_z(a1) @ R_x(a2), with a_i in [lo[i], hi[i]].
    Orders put the joint's large rotation first or last so the middle angle stays well inside (-90, 90) and the
    decomposition is unique.
    """
    order: str
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


def _mirrored(limit: JointLimit) -> JointLimit:
    """The right-side twin of a left-side limit: mirroring x -> -x keeps angles about x and negates those about y, z."""
    sign = [1.0 if axis == "X" else -1.0 for axis in limit.order]
    lo = tuple(lo if s > 0 else -hi for s, lo, hi in zip(sign, limit.lo, limit.hi))
    hi = tuple(hi if s > 0 else -lo for s, lo, hi in zip(sign, limit.lo, limit.hi))
    return JointLimit(limit.order, lo, hi)


# Anatomical ranges (degrees), left side and spine; the right side is mirrored. The pelvis carries the global
# orientation and has no limit.
_LEFT_AND_CENTRE_LIMITS = {
    # y: internal/external rotation, z: abduction (+ moves the left foot outwards), x: flexion (-) / extension (+)
    "left_hip": JointLimit("YZX", (-40.0, -25.0, -130.0), (40.0, 50.0, 30.0)),
    # the knee flexes one way only: x >= 0 moves the ankle backwards
    "left_knee": JointLimit("XYZ", (0.0, -10.0, -5.0), (150.0, 10.0, 5.0)),
    # x: plantarflexion (+, toes down) / dorsiflexion (-); y: toe in/out; z: inversion/eversion
    "left_ankle": JointLimit("XYZ", (-40.0, -20.0, -25.0), (50.0, 20.0, 25.0)),
    "left_foot": JointLimit("XYZ", (-45.0, -5.0, -5.0), (20.0, 5.0, 5.0)),  # toes: x < 0 bends them up
    # x: flexion forward (+); y: twist; z: side bend
    "spine1": JointLimit("XYZ", (-20.0, -25.0, -20.0), (40.0, 25.0, 20.0)),
    "spine2": JointLimit("XYZ", (-20.0, -25.0, -20.0), (40.0, 25.0, 20.0)),
    "spine3": JointLimit("XYZ", (-20.0, -25.0, -20.0), (40.0, 25.0, 20.0)),
    "neck": JointLimit("XYZ", (-30.0, -50.0, -30.0), (40.0, 50.0, 30.0)),
    "head": JointLimit("XYZ", (-30.0, -40.0, -20.0), (30.0, 40.0, 20.0)),
    "left_collar": JointLimit("XYZ", (-15.0, -20.0, -15.0), (15.0, 20.0, 25.0)),  # z > 0 shrugs the left shoulder
    # x: swing of a hanging arm (- forward) and, with the arm horizontal, its twist; y: horizontal flexion (- forward);
    # z: - lowers the left arm from the T-pose (about -75 when standing), + raises it
    "left_shoulder": JointLimit("XYZ", (-120.0, -70.0, -95.0), (60.0, 40.0, 70.0)),
    # the elbow flexes one way only: y <= 0 brings the left forearm forwards; x: forearm twist
    "left_elbow": JointLimit("XZY", (-30.0, -10.0, -150.0), (30.0, 10.0, 0.0)),
    "left_wrist": JointLimit("XYZ", (-40.0, -30.0, -70.0), (40.0, 30.0, 70.0)),
    "left_hand": JointLimit("XYZ", (-20.0, -20.0, -20.0), (20.0, 20.0, 20.0)),
}
JOINT_LIMITS_DEG: dict[str, JointLimit] = {
    name: (_LEFT_AND_CENTRE_LIMITS[name] if name in _LEFT_AND_CENTRE_LIMITS
           else _mirrored(_LEFT_AND_CENTRE_LIMITS[_mirror_name(name)]))
    for name in SMPL_24 if name != "pelvis"}

# Internal angle layout: angles[T, 24, 3] in radians, joint j in _ORDERS[j]. The root row is (yaw, pitch, roll) in
# "YXZ", so the heading is its own angle and can be unwrapped and blended.
_ROOT_ORDER = "YXZ"
_ORDERS = [_ROOT_ORDER] + [JOINT_LIMITS_DEG[name].order for name in SMPL_24[1:]]
_LO = np.radians(np.array([(-np.inf,) * 3] + [JOINT_LIMITS_DEG[n].lo for n in SMPL_24[1:]]))
_HI = np.radians(np.array([(np.inf,) * 3] + [JOINT_LIMITS_DEG[n].hi for n in SMPL_24[1:]]))
_LIMIT_MARGIN = np.radians(3.0)  # angles this close to a limit are eased into it instead of cut


def _axis(name: str, axis: str) -> tuple[int, int]:
    """(joint index, position of `axis` in that joint's Euler order): where a named rotation lives in `angles`."""
    j = _J[name]
    return j, _ORDERS[j].upper().index(axis)


def _soft_limits(angles: np.ndarray) -> np.ndarray:
    """Keep every angle inside its limits, easing the last `_LIMIT_MARGIN` smoothly (C2) so clipping never jerks."""
    lo, hi = _LO, _HI
    margin = np.minimum(_LIMIT_MARGIN, 0.2 * (hi - lo))
    with np.errstate(invalid="ignore"):  # the root's infinite limits give NaNs that np.where never picks
        eased_hi = hi - margin + margin * np.tanh((angles - (hi - margin)) / margin)
        eased_lo = lo + margin + margin * np.tanh((angles - (lo + margin)) / margin)
    return np.where(angles > hi - margin, eased_hi, np.where(angles < lo + margin, eased_lo, angles))


def _pose_from_angles(angles: np.ndarray) -> np.ndarray:
    """[T, 24, 3] Euler angles (radians, per-joint orders) -> [T, 72] axis-angle."""
    num_frames = angles.shape[0]
    pose = np.zeros((num_frames, len(SMPL_24), 3))
    for order in sorted(set(_ORDERS)):
        idx = [j for j, o in enumerate(_ORDERS) if o == order]
        rot = Rotation.from_euler(order, angles[:, idx].reshape(-1, 3))
        pose[:, idx] = rot.as_rotvec().reshape(num_frames, len(idx), 3)
    return pose.reshape(num_frames, -1)


# ---- the Motion record and forward kinematics -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Motion:
    """A pose sequence for SMPL's 24 joints."""
    pose: np.ndarray   # [T, 72] float32, axis-angle: SMPL local joint rotations, joint 0 = root in the y-up world
    trans: np.ndarray  # [T, 3] float32, metres, y-up world: SMPL's `trans` (pelvis = rest pelvis + trans);
    #                    procedural motions put REST_JOINTS' soles on the floor y = 0, BVH motions keep the file's
    fps: float
    kind: np.ndarray   # [T] str, what each frame shows: one of KINDS, or "bvh"

    def __post_init__(self):
        num_frames = len(self.pose)
        if self.pose.shape != (num_frames, 72) or self.trans.shape != (num_frames, 3) or \
                self.kind.shape != (num_frames,):
            raise ValueError(f"Motion: pose {self.pose.shape}, trans {self.trans.shape}, kind {self.kind.shape} — "
                             f"expected [T, 72], [T, 3], [T]")

    @property
    def num_frames(self) -> int:
        return len(self.pose)

    def joints(self, rest_joints: np.ndarray = REST_JOINTS) -> np.ndarray:
        """[T, 24, 3] float64 world joint positions of a skeleton with `rest_joints` driven by this motion."""
        return forward_kinematics(self.pose, rest_joints, SMPL_PARENTS, self.trans)


def forward_kinematics(pose: np.ndarray, rest_joints: np.ndarray, parents: np.ndarray = SMPL_PARENTS,
                       trans: np.ndarray | None = None) -> np.ndarray:
    """Joint positions of a posed skeleton, as SMPL computes them (the root stays at its rest position + trans).

    pose: [T, 3J] or [T, J, 3] axis-angle local rotations; rest_joints: [J, 3]; parents: [J], -1 for the root, every
    parent listed before its children; trans: [T, 3] or None. Returns [T, J, 3] float64.
    """
    rest = np.asarray(rest_joints, np.float64)
    num_joints = len(rest)
    pose = np.asarray(pose, np.float64).reshape(-1, num_joints, 3)
    num_frames = len(pose)
    local = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(num_frames, num_joints, 3, 3)
    glob = np.empty_like(local)
    joints = np.empty((num_frames, num_joints, 3))
    for j, p in enumerate(np.asarray(parents)):
        if p < 0:
            glob[:, j] = local[:, j]
            joints[:, j] = rest[j]
        else:
            if p >= j:
                raise ValueError(f"parents[{j}] = {p}: parents must come before their children")
            glob[:, j] = glob[:, p] @ local[:, j]
            joints[:, j] = joints[:, p] + glob[:, p] @ (rest[j] - rest[p])
    if trans is not None:
        joints = joints + np.asarray(trans, np.float64)[:, None, :]
    return joints


# ---- small smooth building blocks --------------------------------------------------------------------------------

def _smootherstep(u: np.ndarray) -> np.ndarray:
    """0 -> 1 with zero velocity and acceleration at both ends (C2)."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (u * (6.0 * u - 15.0) + 10.0)


def _softmin(values: np.ndarray, axis: int, tau: float) -> np.ndarray:
    """A smooth minimum that never exceeds the true minimum (log-sum-exp)."""
    m = np.min(values, axis=axis, keepdims=True)
    return np.squeeze(m - tau * np.log(np.sum(np.exp(-(values - m) / tau), axis=axis, keepdims=True)), axis)


def _softplus(x: np.ndarray, scale: float) -> np.ndarray:
    return scale * np.logaddexp(0.0, x / scale)


def _quintic_spline(knot_t: np.ndarray, pos: np.ndarray, vel: np.ndarray, acc: np.ndarray,
                    t: np.ndarray) -> np.ndarray:
    """C2 piecewise-quintic Hermite curve through knots (time [K], pos/vel/acc [K, D]) sampled at t [T] -> [T, D];
    before the first and after the last knot it moves on at that knot's velocity."""
    knot_t = np.asarray(knot_t, np.float64)
    pos, vel, acc = (np.asarray(a, np.float64).reshape(len(knot_t), -1) for a in (pos, vel, acc))
    if len(knot_t) == 1:
        return np.broadcast_to(pos[0], (len(t), pos.shape[1])) + (np.asarray(t) - knot_t[0])[:, None] * vel[0]
    tq = np.clip(t, knot_t[0], knot_t[-1])
    seg = np.clip(np.searchsorted(knot_t, tq, side="right") - 1, 0, len(knot_t) - 2)
    h = (knot_t[seg + 1] - knot_t[seg])[:, None]
    s = ((tq - knot_t[seg]) / h[:, 0])[:, None]
    s2, s3 = s * s, s * s * s
    s4, s5 = s3 * s, s3 * s2
    basis = (1 - 10 * s3 + 15 * s4 - 6 * s5, s - 6 * s3 + 8 * s4 - 3 * s5, 0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5,
             0.5 * s3 - s4 + 0.5 * s5, -4 * s3 + 7 * s4 - 3 * s5, 10 * s3 - 15 * s4 + 6 * s5)
    out = (basis[0] * pos[seg] + basis[1] * h * vel[seg] + basis[2] * h * h * acc[seg]
           + basis[3] * h * h * acc[seg + 1] + basis[4] * h * vel[seg + 1] + basis[5] * pos[seg + 1])
    # Outside the knots, continue with the end velocity (a moving end keeps moving, a still one stays).
    out = out + (np.minimum(t - knot_t[0], 0.0)[:, None] * vel[0] + np.maximum(t - knot_t[-1], 0.0)[:, None] * vel[-1])
    return out


class _Keys:
    """Keyframed channels for the keyframe-driven kinds (jump, squat, wave): every channel is a C2 quintic spline."""

    def __init__(self):
        self.times: list[float] = []
        self.values: list[dict[str, float]] = []
        self.velocities: list[dict[str, float]] = []
        self.accelerations: list[dict[str, float]] = []

    def add(self, time: float, vel: dict[str, float] | None = None, acc: dict[str, float] | None = None,
            **values: float):
        """A knot at `time`; channels not given keep their previous value; velocity and acceleration default to 0."""
        previous = dict(self.values[-1]) if self.values else {}
        previous.update(values)
        self.times.append(time)
        self.values.append(previous)
        self.velocities.append(vel or {})
        self.accelerations.append(acc or {})

    def sample(self, t: np.ndarray) -> dict[str, np.ndarray]:
        names = sorted(self.values[-1])
        pos = np.array([[v[n] for n in names] for v in self._filled()])
        vel = np.array([[v.get(n, 0.0) for n in names] for v in self.velocities])
        acc = np.array([[a.get(n, 0.0) for n in names] for a in self.accelerations])
        curves = _quintic_spline(np.array(self.times), pos, vel, acc, t)
        return {n: curves[:, i] for i, n in enumerate(names)}

    def _filled(self) -> list[dict[str, float]]:
        """Knot values with channels first set late back-filled from their first value."""
        first: dict[str, float] = {}
        for v in self.values:
            for n, x in v.items():
                first.setdefault(n, x)
        return [{**first, **v} for v in self.values]


# ---- the leg solver -----------------------------------------------------------------------------------------------

_REACH_SOFTNESS = 0.002  # m: a foot on the floor meets a target within 0.2% of full reach to 1 mm
_SWING_REACH_SOFTNESS = 0.03  # m, added for a foot in the air: out of reach, its knee straightens gently
_UNLOADED_SLACK_M = 0.5  # m, how far above its reach limit a foot in the air lets the pelvis go
_VALLEY_ROUNDING_S = 0.035  # s, half-width of the rounding of the pelvis path under a landing

def _root_matrices(angles: np.ndarray) -> np.ndarray:
    return Rotation.from_euler(_ROOT_ORDER, angles[:, 0]).as_matrix()


def _leg_geometry(side: str):
    hip, knee, ankle = (REST_JOINTS[_J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
    thigh, shank = knee - hip, ankle - knee
    rest_reach = np.linalg.norm(ankle - hip)
    # Forward angle of a bone hanging down: its tilt towards +z in the sagittal plane.
    thigh_fwd = np.arctan2(thigh[2], -thigh[1])
    shank_fwd = np.arctan2(shank[2], -shank[1])
    return np.linalg.norm(thigh), np.linalg.norm(shank), rest_reach, thigh_fwd, shank_fwd


def _pelvis_height_limit(pelvis_xz: np.ndarray, root_rot: np.ndarray, ankle: np.ndarray, side: str,
                         slack: float = 0.998) -> np.ndarray:
    """Highest pelvis y [T] for which the `side` leg still reaches its ankle target [T, 3] (knee not past straight)."""
    *_, rest_reach, _, _ = _leg_geometry(side)
    hip_offset = np.einsum("tij,j->ti", root_rot, REST_JOINTS[_J[f"{side}_hip"]] - REST_JOINTS[_J["pelvis"]])
    dx = ankle[:, 0] - pelvis_xz[:, 0] - hip_offset[:, 0]
    dz = ankle[:, 2] - pelvis_xz[:, 1] - hip_offset[:, 2]
    reach = slack * rest_reach
    vertical = np.sqrt(np.maximum(reach ** 2 - dx ** 2 - dz ** 2, (0.3 * reach) ** 2))
    return ankle[:, 1] + vertical - hip_offset[:, 1]


def _limit_pelvis_height(height: np.ndarray, pelvis_xz: np.ndarray, root_rot: np.ndarray, ankles: np.ndarray,
                         load: np.ndarray, fps: float) -> np.ndarray:
    """Lower the desired pelvis height [T] wherever a loaded foot could not reach its target (smoothly, never above).

    ankles: [T, 2, 3] targets (left, right); load: [T, 2] in [0, 1], 1 for a foot on the floor, rising smoothly
    before a foot lands so the pelvis lowers in time for a far footprint, as a walker's does.
    """
    limits = [height]
    for f, side in enumerate(("left", "right")):
        limit = _pelvis_height_limit(pelvis_xz, root_rot, ankles[:, f], side)
        limits.append(limit + (1.0 - load[:, f]) * _UNLOADED_SLACK_M)
    hard = _softmin(np.stack(limits, axis=1), axis=1, tau=0.005)
    # The limit has sharp valleys where a foot lands; pass under them along a rounded path (erode, then blur).
    half = max(1, int(round(_VALLEY_ROUNDING_S * fps)))
    rounded = ndimage.gaussian_filter1d(ndimage.minimum_filter1d(hard, 2 * half + 1, mode="nearest"), half,
                                        mode="nearest")
    return _softmin(np.stack([rounded, hard], axis=1), axis=1, tau=0.002)


def _solve_legs(angles: np.ndarray, pelvis: np.ndarray, ankles: np.ndarray, foot_yaw: np.ndarray,
                foot_pitch: np.ndarray, load: np.ndarray | None = None) -> None:
    """Fill hips, knees, ankles and toes of `angles` [T, 24, 3] (in place) so the ankles reach their targets.

    pelvis: [T, 3] world; ankles: [T, 2, 3] world ankle targets (left, right); foot_yaw: [T, 2] world heading of each
    foot (rad, about +y); foot_pitch: [T, 2] world pitch of each foot (rad, + = toes down); load: [T, 2] in [0, 1]
    (default 1), how firmly each foot must meet its target: a foot in the air straightens its knee gently when its
    target is out of reach, a foot on the floor meets it to a millimetre.
    The hip is R_y(yaw) R_z(abduction) R_x(flexion) (its limit order "YZX"): yaw turns the leg's plane towards the
    foot, abduction tilts the plane sideways to the target, and a planar two-bone IK sets hip and knee flexion.
    """
    root_rot = _root_matrices(angles)
    root_yaw = angles[:, 0, 0]
    root_pitch = angles[:, 0, 1]
    load = np.ones((len(angles), 2)) if load is None else load
    for f, side in enumerate(("left", "right")):
        thigh_len, shank_len, rest_reach, thigh_fwd0, shank_fwd0 = _leg_geometry(side)
        hip_rest = REST_JOINTS[_J[f"{side}_hip"]] - REST_JOINTS[_J["pelvis"]]
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
        reach = rest_reach - _softplus(rest_reach - np.hypot(down, dz), softness)
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
        j, k = _axis(f"{side}_hip", "Y")
        angles[:, j, k] = yaw
        angles[:, j, _ORDERS[j].index("Z")] = abduction
        angles[:, j, _ORDERS[j].index("X")] = hip_flex
        j, k = _axis(f"{side}_knee", "X")
        angles[:, j, k] = knee_flex
        # The foot's world pitch is the sum of the x-rotations down the chain.
        j, k = _axis(f"{side}_ankle", "X")
        angles[:, j, k] = foot_pitch[:, f] - (root_pitch + hip_flex + knee_flex)
        j, k = _axis(f"{side}_foot", "X")
        angles[:, j, k] = -0.6 * np.maximum(foot_pitch[:, f], 0.0)  # toes stay flatter than the lifted heel


def _pivot_offset(pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """[T, 3] ankle displacement when a foot pitches about its ball (pitch > 0, heel up) or heel (pitch < 0)."""
    ankle_from_pivot = np.where(pitch[:, None] >= 0, [0.0, ANKLE_HEIGHT, -_TOE_LENGTH],
                                [0.0, ANKLE_HEIGHT, _HEEL_LENGTH])
    c, s = np.cos(pitch), np.sin(pitch)
    y = c * ankle_from_pivot[:, 1] - s * ankle_from_pivot[:, 2]
    z = s * ankle_from_pivot[:, 1] + c * ankle_from_pivot[:, 2]
    dy, dz = y - ankle_from_pivot[:, 1], z - ankle_from_pivot[:, 2]
    return np.stack([dz * np.sin(yaw), dy, dz * np.cos(yaw)], axis=1)


# ---- tracks: what every kind produces before it becomes a Motion --------------------------------------------------

@dataclasses.dataclass
class _Track:
    angles: np.ndarray  # [T, 24, 3] radians, per-joint Euler orders; root row = (yaw, pitch, roll)
    pelvis: np.ndarray  # [T, 3] metres, world pelvis position (floor at y = 0)
    kind: np.ndarray    # [T] str


def _to_motion(track: _Track, fps: float) -> Motion:
    pose = _pose_from_angles(track.angles)
    trans = track.pelvis - REST_JOINTS[_J["pelvis"]]  # the floor is y = 0 in the world
    return Motion(pose.astype(np.float32), trans.astype(np.float32), float(fps), track.kind)


def _set(angles: np.ndarray, name: str, axis: str, values) -> None:
    j, k = _axis(name, axis)
    angles[:, j, k] = values


def _arms_down(angles: np.ndarray, lower: float, elbow: float) -> None:
    """Natural hanging arms: the T-pose arms lowered by `lower` rad (left about -z, right about +z), elbows bent."""
    for side, sign in (("left", 1.0), ("right", -1.0)):
        _set(angles, f"{side}_shoulder", "Z", -sign * lower)
        _set(angles, f"{side}_elbow", "Y", -sign * elbow)


def _finish(angles: np.ndarray, pelvis: np.ndarray, ankles: np.ndarray, foot_yaw: np.ndarray,
            foot_pitch: np.ndarray, kind: str, load: np.ndarray | None = None) -> _Track:
    _solve_legs(angles, pelvis, ankles, foot_yaw, foot_pitch, load)
    angles = _soft_limits(angles)
    return _Track(angles, pelvis, np.full(len(angles), kind))


def _planted_feet(num_frames: int, heading: float, half_width: float, toe_out: float):
    """Both feet flat on the floor either side of the origin: (ankles [T, 2, 3], yaw [T, 2], pitch [T, 2])."""
    left = np.array([np.cos(heading), 0.0, -np.sin(heading)])
    ankles = np.stack([left * half_width, -left * half_width]) + (0.0, ANKLE_HEIGHT, 0.0)
    ankles = np.broadcast_to(ankles, (num_frames, 2, 3)).copy()
    yaw = np.broadcast_to([heading + toe_out, heading - toe_out], (num_frames, 2)).copy()
    return ankles, yaw, np.zeros((num_frames, 2))


def _neck_compensation(angles: np.ndarray, trunk_pitch: np.ndarray, trunk_yaw: np.ndarray) -> None:
    """Keep the gaze roughly level and ahead: the neck and head undo part of the trunk's pitch and yaw."""
    _set(angles, "neck", "X", -0.6 * trunk_pitch)
    _set(angles, "head", "X", -0.2 * trunk_pitch)
    _set(angles, "neck", "Y", -0.6 * trunk_yaw)
    _set(angles, "head", "Y", -0.3 * trunk_yaw)


# ---- locomotion: walk, run, turn ----------------------------------------------------------------------------------

@dataclasses.dataclass
class _Gait:
    speed: Callable[[np.ndarray], np.ndarray]    # m/s along the heading, as a function of time (s)
    heading: Callable[[np.ndarray], np.ndarray]  # rad about +y (0 faces +z), as a function of time (s)
    cadence: float        # steps per second (two steps per gait cycle)
    stance: float         # fraction of the cycle each foot is on the floor (> 0.5 walking, < 0.5 running)
    lift: float           # m, swing-foot clearance for a full stride
    swing_peak: float     # where in the swing the clearance peaks (0..1)
    step_offset: float    # m, footprint ahead (+) or behind (-) the pelvis at mid-stance
    half_width: float     # m, footprint distance from the path's centre line
    toe_out: float        # rad, feet turned outwards
    toe_off: float        # rad, foot pitch (toes down) when it leaves the floor
    heel_strike: float    # rad, toes-up pitch when it lands
    crouch: float         # m, pelvis below standing height on average
    bob: float            # m, vertical pelvis oscillation; > 0 highest at mid-stance (walk), < 0 lowest (run)
    sway: float           # m, side-to-side pelvis shift towards the stance foot
    lean: float           # rad, forward lean of the pelvis (trunk leans twice as much)
    pelvis_yaw: float     # rad, pelvis rotation with the stepping leg
    pelvis_roll: float    # rad, pelvic drop on the swing side
    arm_lower: float      # rad, arms lowered from the T-pose
    arm_swing: float      # rad, arm swing amplitude about the shoulder's x axis
    elbow: float          # rad, elbow flexion with the arm back
    elbow_swing: float    # rad, extra elbow flexion with the arm forward


def _swing_bump(u: np.ndarray, peak: float) -> np.ndarray:
    """Clearance profile over the swing, 0 at both ends with zero slope, maximum 1 at u = peak."""
    a = 2.0  # zero vertical velocity at both ends, finite acceleration
    b = a * (1.0 - peak) / peak
    u = np.clip(u, 0.0, 1.0)
    return (u ** a * (1.0 - u) ** b) / (peak ** a * (1.0 - peak) ** b)


def _locomotion(rng: np.random.Generator, num_frames: int, fps: float, gait: _Gait, kind: str) -> _Track:
    t = np.arange(num_frames) / fps
    cycle_hz = gait.cadence / 2.0
    phase0 = rng.uniform()
    phase = phase0 + cycle_hz * t  # gait cycles; the left foot lands at integer phases, the right at half-integers

    # The pelvis path on a fine grid wide enough for every footprint we may need (one beyond each end).
    t_grid = np.arange(-3.0 / cycle_hz, t[-1] + 3.0 / cycle_hz, 0.25 / fps)
    heading_grid = gait.heading(t_grid)
    velocity = gait.speed(t_grid)[:, None] * np.stack([np.sin(heading_grid), np.cos(heading_grid)], axis=1)
    path_grid = np.concatenate([[[0.0, 0.0]], np.cumsum(0.5 * (velocity[1:] + velocity[:-1]) * 0.25 / fps, axis=0)])
    path_grid -= [np.interp(0.0, t_grid, path_grid[:, i]) for i in range(2)]

    def path(tq):
        return np.stack([np.interp(tq, t_grid, path_grid[:, i]) for i in range(2)], axis=-1)

    ankles = np.zeros((num_frames, 2, 3))
    foot_yaw = np.zeros((num_frames, 2))
    foot_pitch = np.zeros((num_frames, 2))
    load = np.zeros((num_frames, 2))
    beta = gait.stance
    for f, side_sign in enumerate((1.0, -1.0)):  # left (+x), right
        q = phase - 0.5 * f
        step = np.floor(q)
        p = q - step  # 0 = this foot lands, beta = it leaves the floor

        def footprint(k):
            t_mid = (k + 0.5 * f + 0.5 * beta - phase0) / cycle_hz
            psi = gait.heading(t_mid)
            centre = path(t_mid)
            xz = centre + side_sign * gait.half_width * np.stack([np.cos(psi), -np.sin(psi)], axis=-1) \
                + gait.step_offset * np.stack([np.sin(psi), np.cos(psi)], axis=-1)
            return xz, psi + side_sign * gait.toe_out

        xz0, yaw0 = footprint(step)
        xz1, yaw1 = footprint(step + 1)
        in_stance = p < beta
        u = np.clip((p - beta) / (1.0 - beta), 0.0, 1.0)
        # The swing foot leaves with zero velocity but at once accelerating (a cubic, not quintic, ease).
        blend = np.where(in_stance, 0.0, u * u * (3.0 - 2.0 * u))
        xz = xz0 + (xz1 - xz0) * blend[:, None]
        distance = np.linalg.norm(xz1 - xz0, axis=1)
        turned = np.abs(yaw1 - yaw0)
        # Short steps (turning on the spot, standing) lift the foot less; no step, no lift.
        clearance = gait.lift * np.minimum(1.0, distance / 0.5 + turned / 0.6)
        height = np.where(in_stance, 0.0, clearance * _swing_bump(u, gait.swing_peak))

        # Foot pitch over the cycle: the heel rocker rolls the foot flat over the first fifth of the stance; the heel
        # rises over the last 30% and keeps rising just past toe-off, so the foot leaves the floor moving forwards;
        # then the swing brings the toes up for the next heel strike.
        heel_end = 0.2 * beta
        heel_off = 0.7 * beta
        pitch_peak = beta + 0.1 * (1.0 - beta)
        pitch = (-gait.heel_strike * (1.0 - _smootherstep(p / heel_end))
                 + gait.toe_off * _smootherstep((p - heel_off) / (pitch_peak - heel_off))
                 + (-gait.heel_strike - gait.toe_off) * np.where(in_stance, 0.0, _smootherstep((u - 0.1) / 0.7)))
        # Feet that barely step (standing, small turns) stay flat.
        pitch = pitch * np.minimum(1.0, distance / 0.3)
        yaw = yaw0 + (yaw1 - yaw0) * blend

        ankles[:, f, [0, 2]] = xz
        ankles[:, f, 1] = ANKLE_HEIGHT + height
        ankles[:, f] += _pivot_offset(pitch, yaw)
        foot_yaw[:, f], foot_pitch[:, f] = yaw, pitch
        # The leg must reach its target on the floor, just after toe-off and, increasingly, late in the swing.
        swing_load = np.maximum(1.0 - _smootherstep(u / 0.25), _smootherstep((u - 0.5) / 0.5))
        load[:, f] = np.where(in_stance, 1.0, swing_load)

    # Root orientation: heading, with the pelvis turning towards the forward leg and dropping on the swing side.
    mid_stance = phase - 0.5 * beta
    angles = np.zeros((num_frames, len(SMPL_24), 3))
    yaw_osc = -gait.pelvis_yaw * np.cos(2 * np.pi * phase)  # left leg forward at integer phases
    angles[:, 0, 0] = gait.heading(t) + yaw_osc
    angles[:, 0, 1] = gait.lean
    angles[:, 0, 2] = gait.pelvis_roll * np.cos(2 * np.pi * mid_stance)

    psi = gait.heading(t)
    centre = path(t)
    sway = gait.sway * np.cos(2 * np.pi * mid_stance)  # towards the left foot at its mid-stance
    pelvis = np.zeros((num_frames, 3))
    pelvis[:, 0] = centre[:, 0] + sway * np.cos(psi)
    pelvis[:, 2] = centre[:, 1] - sway * np.sin(psi)
    desired = STANDING_PELVIS_HEIGHT - gait.crouch + gait.bob * np.cos(4 * np.pi * mid_stance)
    pelvis[:, 1] = _limit_pelvis_height(desired, pelvis[:, [0, 2]], _root_matrices(angles), ankles, load, fps)

    # Trunk: leans forward, counter-rotates against the pelvis, stays upright against its roll.
    for name in ("spine1", "spine2", "spine3"):
        _set(angles, name, "X", gait.lean / 3.0)
        _set(angles, name, "Y", -1.5 * yaw_osc / 3.0)
        _set(angles, name, "Z", -angles[:, 0, 2] / 3.0)
    _neck_compensation(angles, 2.0 * gait.lean, -0.5 * yaw_osc)

    # Arms swing against the legs: the left arm is forward when the right leg is (half-integer phases).
    swing = gait.arm_swing * np.cos(2 * np.pi * (phase - 0.05))
    _arms_down(angles, gait.arm_lower, gait.elbow)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        forward = -sign * np.cos(2 * np.pi * (phase - 0.05))  # +1 when this arm is fully forward
        _set(angles, f"{side}_shoulder", "X", sign * swing)
        _set(angles, f"{side}_elbow", "Y", -sign * (gait.elbow + gait.elbow_swing * 0.5 * (1.0 + forward)))
    return _finish(angles, pelvis, ankles, foot_yaw, foot_pitch, kind, load)


def _check_length(where: str, num_frames: int, fps: float) -> None:
    if int(num_frames) < 1 or not fps > 0:
        raise ValueError(f"{where}: num_frames={num_frames}, fps={fps} — expected at least 1 frame and fps > 0")


def _constant(value: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda tq: np.full(np.shape(tq), float(value))


def walk(rng: np.random.Generator, num_frames: int, fps: float = FPS, speed: float | None = None,
         heading: float = 0.0) -> Motion:
    """Walking straight along `heading` (rad about +y; 0 faces +z) at `speed` m/s (random 0.8-1.6 if None)."""
    _check_length("walk", num_frames, fps)
    return _to_motion(_walk_track(rng, num_frames, fps, speed, heading), fps)


def _walk_track(rng, num_frames, fps, speed=None, heading=0.0) -> _Track:
    speed = rng.uniform(0.8, 1.6) if speed is None else float(speed)
    gait = _Gait(
        speed=_constant(speed), heading=_constant(heading),
        # Faster walkers take quicker steps and spend less of the cycle on each foot (1.85 steps/s, 0.7 m steps,
        # 60% stance at 1.3 m/s), which keeps every footprint within reach of the hip.
        cadence=(1.2 + 0.5 * speed) * rng.uniform(0.96, 1.04),
        stance=0.62 - 0.05 * (speed - 0.8) + rng.uniform(-0.01, 0.01),
        lift=rng.uniform(0.08, 0.12), swing_peak=0.3, step_offset=-rng.uniform(0.03, 0.07),
        half_width=rng.uniform(0.05, 0.09), toe_out=np.radians(rng.uniform(0.0, 10.0)),
        toe_off=np.radians(rng.uniform(45.0, 60.0)), heel_strike=np.radians(rng.uniform(8.0, 15.0)),
        crouch=rng.uniform(0.0, 0.02), bob=rng.uniform(0.01, 0.025), sway=rng.uniform(0.01, 0.03),
        lean=np.radians(rng.uniform(0.0, 5.0)), pelvis_yaw=np.radians(rng.uniform(2.0, 6.0)) * min(speed, 1.5),
        pelvis_roll=np.radians(rng.uniform(1.0, 4.0)), arm_lower=np.radians(rng.uniform(70.0, 80.0)),
        arm_swing=np.radians(rng.uniform(8.0, 18.0)) * min(speed, 1.5), elbow=np.radians(rng.uniform(5.0, 20.0)),
        elbow_swing=np.radians(rng.uniform(5.0, 20.0)))
    return _locomotion(rng, num_frames, fps, gait, "walk")


def run(rng: np.random.Generator, num_frames: int, fps: float = FPS, speed: float | None = None,
        heading: float = 0.0) -> Motion:
    """Running straight along `heading` at `speed` m/s (random 2.2-4.0 if None), with a flight phase each step."""
    _check_length("run", num_frames, fps)
    return _to_motion(_run_track(rng, num_frames, fps, speed, heading), fps)


def _run_track(rng, num_frames, fps, speed=None, heading=0.0) -> _Track:
    speed = rng.uniform(2.2, 4.0) if speed is None else float(speed)
    gait = _Gait(
        speed=_constant(speed), heading=_constant(heading),
        # Contact shortens and steps quicken with speed, so each footprint stays within about 0.9 m of travel.
        cadence=(2.4 + 0.15 * speed) * rng.uniform(0.96, 1.04),
        stance=0.36 - 0.025 * (speed - 2.2) + rng.uniform(-0.01, 0.01),
        lift=rng.uniform(0.25, 0.4), swing_peak=0.4, step_offset=-rng.uniform(0.08, 0.12),
        half_width=rng.uniform(0.02, 0.05), toe_out=np.radians(rng.uniform(0.0, 8.0)),
        toe_off=np.radians(rng.uniform(35.0, 50.0)), heel_strike=np.radians(rng.uniform(0.0, 8.0)),
        crouch=rng.uniform(0.03, 0.06), bob=-rng.uniform(0.03, 0.05), sway=rng.uniform(0.0, 0.015),
        lean=np.radians(rng.uniform(4.0, 10.0)), pelvis_yaw=np.radians(rng.uniform(4.0, 8.0)),
        pelvis_roll=np.radians(rng.uniform(2.0, 5.0)), arm_lower=np.radians(rng.uniform(65.0, 75.0)),
        arm_swing=np.radians(rng.uniform(30.0, 45.0)), elbow=np.radians(rng.uniform(70.0, 90.0)),
        elbow_swing=np.radians(rng.uniform(0.0, 20.0)))
    return _locomotion(rng, num_frames, fps, gait, "run")


TURN_RATE_DEG_S = (45.0, 110.0)  # how fast people turn on the spot


def turn(rng: np.random.Generator, num_frames: int, fps: float = FPS, angle: float | None = None,
         heading: float = 0.0, speed: float | None = None) -> Motion:
    """Turning by `angle` rad from `heading`, stepping on the spot or slowly forwards (`speed` m/s, random 0-0.3).

    angle: random ±45-180 deg if None, as far as the clip allows at 45-110 deg/s; a given angle too large for the clip
    at 110 deg/s is still being turned when the clip ends."""
    _check_length("turn", num_frames, fps)
    return _to_motion(_turn_track(rng, num_frames, fps, angle, heading, speed), fps)


def _turn_track(rng, num_frames, fps, angle=None, heading=0.0, speed=None) -> _Track:
    duration = num_frames / fps
    rate = np.radians(rng.uniform(*TURN_RATE_DEG_S))
    if angle is None:
        # As much of a 45-180 deg turn as fits in 80% of the clip at this rate.
        largest = min(np.pi, 0.8 * duration * rate)
        angle = rng.choice([-1.0, 1.0]) * rng.uniform(min(np.radians(45.0), largest), largest)
    speed = rng.uniform(0.0, 0.3) if speed is None else float(speed)
    # A turn never outpaces the fastest rate; one too large for the clip is still under way at its end.
    turn_time = max(min(abs(angle) / rate, 0.8 * duration), abs(angle) / np.radians(TURN_RATE_DEG_S[1]), 1e-3)
    start = rng.uniform(0.0, 0.9 * duration - turn_time) if 0.9 * duration > turn_time else 0.0

    def heading_fn(tq):
        return heading + angle * _smootherstep((np.asarray(tq) - start) / turn_time)

    gait = _Gait(
        speed=_constant(speed), heading=heading_fn, cadence=rng.uniform(1.8, 2.3), stance=rng.uniform(0.6, 0.66),
        lift=rng.uniform(0.05, 0.08), swing_peak=0.5, step_offset=0.0, half_width=rng.uniform(0.07, 0.11),
        toe_out=np.radians(rng.uniform(0.0, 10.0)), toe_off=np.radians(rng.uniform(10.0, 20.0)),
        heel_strike=np.radians(rng.uniform(0.0, 5.0)), crouch=rng.uniform(0.01, 0.03), bob=0.005,
        sway=rng.uniform(0.01, 0.025), lean=np.radians(rng.uniform(0.0, 3.0)), pelvis_yaw=0.0,
        pelvis_roll=np.radians(rng.uniform(1.0, 3.0)), arm_lower=np.radians(rng.uniform(70.0, 80.0)),
        arm_swing=np.radians(rng.uniform(0.0, 8.0)), elbow=np.radians(rng.uniform(5.0, 20.0)),
        elbow_swing=np.radians(rng.uniform(0.0, 10.0)))
    return _locomotion(rng, num_frames, fps, gait, "turn")


# ---- keyframed kinds: jump, squat, wave ------------------------------------------------------------------------

def _idle_angles(rng: np.random.Generator, num_frames: int, heading: float) -> np.ndarray:
    angles = np.zeros((num_frames, len(SMPL_24), 3))
    angles[:, 0, 0] = heading
    _arms_down(angles, np.radians(rng.uniform(70.0, 80.0)), np.radians(rng.uniform(5.0, 20.0)))
    return angles


def _forward(heading: float) -> np.ndarray:
    return np.array([np.sin(heading), 0.0, np.cos(heading)])


def jump(rng: np.random.Generator, num_frames: int, fps: float = FPS, height: float | None = None,
         heading: float = 0.0) -> Motion:
    """Repeated two-footed jumps: crouch, push off, a ballistic flight `height` m high (random 0.08-0.35 if None),
    land, recover; each may hop up to 0.4 m forwards."""
    _check_length("jump", num_frames, fps)
    return _to_motion(_jump_track(rng, num_frames, fps, height, heading), fps)


def _jump_track(rng, num_frames, fps, height=None, heading=0.0) -> _Track:
    t = np.arange(num_frames) / fps
    duration = t[-1] + 1.0 / fps
    stand = STANDING_PELVIS_HEIGHT - 0.01
    keys, arm_keys = _Keys(), _Keys()  # the arms swing on their own, slower schedule
    now = rng.uniform(0.0, 0.5)
    keys.add(now, y=stand, fwd=0.0, lean=0.0)
    arm_keys.add(now, arm=0.0)
    hops: list[tuple[float, float, float]] = []  # (takeoff time, landing time, distance along the heading)
    feet = 0.0  # where the feet stand along the heading
    while now < duration:
        flight_height = rng.uniform(0.08, 0.35) if height is None else float(height)
        v0 = np.sqrt(2.0 * GRAVITY * flight_height)  # take-off speed for that apex
        flight = 2.0 * v0 / GRAVITY
        low = stand - rng.uniform(0.12, 0.3)
        takeoff_y = stand + 0.05  # legs straight, heels up
        land_y = stand - rng.uniform(0.08, 0.2)
        hop = rng.uniform(0.0, 0.4)
        # The pelvis leaves ahead of the feet and lands behind them; in between it flies at constant speed.
        lead = 0.15 * hop
        t_crouch = now + rng.uniform(0.35, 0.6)
        # Push-off and landing last 1.7x as long as covering their height at half the take-off speed would: the
        # quintic path then accelerates without overshooting.
        t_takeoff = t_crouch + 1.7 * (takeoff_y - low) / v0
        t_land = t_takeoff + flight
        t_landed = t_land + 1.7 * (takeoff_y - land_y) / v0
        drift = (hop - 2 * lead) / flight
        keys.add(t_crouch, y=low, lean=np.radians(rng.uniform(20.0, 35.0)))
        keys.add(t_takeoff, vel={"y": v0, "fwd": drift}, acc={"y": -GRAVITY}, y=takeoff_y, fwd=feet + lead,
                 lean=np.radians(5.0))
        keys.add(t_land, vel={"y": -v0, "fwd": drift}, acc={"y": -GRAVITY}, y=takeoff_y, fwd=feet + hop - lead)
        keys.add(t_landed, y=land_y, fwd=feet + hop, lean=np.radians(rng.uniform(10.0, 25.0)))
        # Arms: back during the crouch, forwards and up through take-off, down again after landing.
        arm_keys.add(t_crouch, arm=np.radians(rng.uniform(20.0, 45.0)))
        arm_keys.add(0.5 * (t_takeoff + t_land), arm=-np.radians(rng.uniform(60.0, 110.0)))
        arm_keys.add(t_landed + 0.2, arm=-np.radians(rng.uniform(0.0, 30.0)))
        now = t_landed + rng.uniform(0.3, 0.6)
        keys.add(now, y=stand, lean=0.0)
        now += rng.uniform(0.1, 0.8)
        keys.add(now)
        arm_keys.add(max(now, t_landed + 0.5), arm=0.0)
        hops.append((t_takeoff, t_land, hop))
        feet += hop
    curves = {**keys.sample(t), **arm_keys.sample(t)}

    angles = _idle_angles(rng, num_frames, heading)
    half_width, toe_out = rng.uniform(0.08, 0.13), np.radians(rng.uniform(0.0, 12.0))
    ankles, foot_yaw, foot_pitch = _planted_feet(num_frames, heading, half_width, toe_out)
    # Feet stay put except in flight, where they follow the hop (starting and ending at rest).
    feet_fwd = np.zeros(num_frames)
    tuck = np.zeros(num_frames)
    for t_takeoff, t_land, hop in hops:
        u = (t - t_takeoff) / (t_land - t_takeoff)
        feet_fwd += hop * _smootherstep(u)
        tuck += rng.uniform(0.05, 0.2) * _swing_bump(u, 0.5)  # knees pull up in flight
    ankles += feet_fwd[:, None, None] * _forward(heading)
    pelvis = curves["fwd"][:, None] * _forward(heading)
    pelvis[:, 1] = curves["y"]
    angles[:, 0, 1] = 0.5 * curves["lean"]
    root_rot = _root_matrices(angles)
    # Heels rise (toes down) whenever the pelvis is higher than flat feet allow.
    rise = np.zeros((num_frames, 2))
    for f, side in enumerate(("left", "right")):
        limit = _pelvis_height_limit(pelvis[:, [0, 2]], root_rot, ankles[:, f], side, slack=0.97)
        rise[:, f] = _softplus(pelvis[:, 1] - limit, 0.01)
    ankles[:, :, 1] += rise + tuck[:, None]
    foot_pitch = np.radians(40.0) * np.tanh(rise / 0.06)
    for name in ("spine1", "spine2", "spine3"):
        _set(angles, name, "X", 0.5 * curves["lean"] / 3.0)
    _neck_compensation(angles, curves["lean"], np.zeros(num_frames))
    for side in ("left", "right"):
        _set(angles, f"{side}_shoulder", "X", curves["arm"])
    return _finish(angles, pelvis, ankles, foot_yaw, foot_pitch, "jump")


def squat(rng: np.random.Generator, num_frames: int, fps: float = FPS, depth: float | None = None,
          heading: float = 0.0) -> Motion:
    """Repeated squats: the pelvis lowers by `depth` m (random 0.2-0.45 if None) with the hips back, the trunk
    leaning and the arms reaching forward, then rises; feet stay planted."""
    _check_length("squat", num_frames, fps)
    return _to_motion(_squat_track(rng, num_frames, fps, depth, heading), fps)


def _squat_track(rng, num_frames, fps, depth=None, heading=0.0) -> _Track:
    t = np.arange(num_frames) / fps
    duration = t[-1] + 1.0 / fps
    stand = STANDING_PELVIS_HEIGHT - 0.01
    keys = _Keys()
    now = rng.uniform(0.0, 0.4)
    keys.add(now, y=stand, back=0.0, tilt=0.0, trunk=0.0, arm=0.0)
    arms_forward = rng.uniform() < 0.7
    while now < duration:
        d = rng.uniform(0.2, 0.45) if depth is None else float(depth)
        now += rng.uniform(0.6, 1.2)
        keys.add(now, y=stand - d, back=-rng.uniform(0.25, 0.45) * d,
                 tilt=np.radians(rng.uniform(40.0, 70.0)) * d, trunk=np.radians(rng.uniform(10.0, 25.0)),
                 arm=-np.radians(rng.uniform(60.0, 85.0)) if arms_forward else -np.radians(rng.uniform(0.0, 20.0)))
        now += rng.uniform(0.1, 0.5)
        keys.add(now)
        now += rng.uniform(0.6, 1.2)
        keys.add(now, y=stand, back=0.0, tilt=0.0, trunk=0.0, arm=0.0)
        now += rng.uniform(0.1, 0.6)
        keys.add(now)
    curves = keys.sample(t)
    angles = _idle_angles(rng, num_frames, heading)
    half_width, toe_out = rng.uniform(0.1, 0.17), np.radians(rng.uniform(5.0, 20.0))
    ankles, foot_yaw, foot_pitch = _planted_feet(num_frames, heading, half_width, toe_out)
    pelvis = curves["back"][:, None] * _forward(heading)
    pelvis[:, 1] = curves["y"]
    angles[:, 0, 1] = curves["tilt"]
    for name in ("spine1", "spine2", "spine3"):
        _set(angles, name, "X", curves["trunk"] / 3.0)
    _neck_compensation(angles, curves["tilt"] + curves["trunk"], np.zeros(num_frames))
    for side in ("left", "right"):
        _set(angles, f"{side}_shoulder", "X", curves["arm"])
    return _finish(angles, pelvis, ankles, foot_yaw, foot_pitch, "squat")


def wave(rng: np.random.Generator, num_frames: int, fps: float = FPS, side: str | None = None,
         frequency: float | None = None, heading: float = 0.0) -> Motion:
    """Standing and waving one hand (`side` "left"/"right", random if None) at `frequency` Hz (random 1.5-3):
    the upper arm out to the side, the forearm up, the hand swinging side to side by flexing the elbow."""
    _check_length("wave", num_frames, fps)
    return _to_motion(_wave_track(rng, num_frames, fps, side, frequency, heading), fps)


def _wave_track(rng, num_frames, fps, side=None, frequency=None, heading=0.0) -> _Track:
    side = side or str(rng.choice(["left", "right"]))
    if side not in ("left", "right"):
        raise ValueError(f"wave: side={side!r} — expected 'left' or 'right'")
    sign = 1.0 if side == "left" else -1.0
    frequency = rng.uniform(1.5, 3.0) if frequency is None else float(frequency)
    t = np.arange(num_frames) / fps
    duration = t[-1] + 1.0 / fps
    keys = _Keys()
    now = rng.uniform(0.0, 0.3)
    down = {"sx": 0.0, "sy": 0.0, "sz": -np.radians(75.0), "el": np.radians(10.0), "amp": 0.0}
    keys.add(now, **down)
    while now < duration:
        now += rng.uniform(0.4, 0.7)
        # Upper arm out to the side and a little raised, twisted so that the bent elbow points the forearm up.
        keys.add(now, sx=-np.radians(rng.uniform(80.0, 95.0)), sy=-np.radians(rng.uniform(10.0, 30.0)),
                 sz=-np.radians(rng.uniform(0.0, 20.0)), el=np.radians(rng.uniform(70.0, 90.0)), amp=0.0)
        now += 0.3
        keys.add(now, amp=np.radians(rng.uniform(20.0, 35.0)))
        now += rng.uniform(1.5, 4.0)
        keys.add(now)
        now += 0.3
        keys.add(now, amp=0.0)
        now += rng.uniform(0.4, 0.7)
        keys.add(now, **down)
        now += rng.uniform(0.3, 1.5)
        keys.add(now)
    curves = keys.sample(t)
    angles = _idle_angles(rng, num_frames, heading)
    oscillation = curves["amp"] * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
    _set(angles, f"{side}_shoulder", "X", curves["sx"])
    _set(angles, f"{side}_shoulder", "Y", sign * curves["sy"])
    _set(angles, f"{side}_shoulder", "Z", sign * curves["sz"])
    _set(angles, f"{side}_elbow", "Y", -sign * (curves["el"] + oscillation))
    _set(angles, f"{side}_wrist", "Z", 0.3 * sign * oscillation)
    _set(angles, f"{side}_collar", "Z", sign * 0.15 * (curves["sz"] + np.radians(75.0)))
    half_width, toe_out = rng.uniform(0.07, 0.12), np.radians(rng.uniform(0.0, 12.0))
    ankles, foot_yaw, foot_pitch = _planted_feet(num_frames, heading, half_width, toe_out)
    # Idle standing: a slow weight shift from foot to foot.
    shift = rng.uniform(0.005, 0.02) * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
    pelvis = np.zeros((num_frames, 3))
    pelvis[:, 0], pelvis[:, 2] = shift * np.cos(heading), -shift * np.sin(heading)
    pelvis[:, 1] = STANDING_PELVIS_HEIGHT - rng.uniform(0.01, 0.02)
    angles[:, 0, 2] = -2.0 * shift  # hips tilt a little with the shift
    return _finish(angles, pelvis, ankles, foot_yaw, foot_pitch, "wave")


# ---- combinations --------------------------------------------------------------------------------------------

_TRACKS = {"walk": _walk_track, "run": _run_track, "jump": _jump_track, "wave": _wave_track,
           "squat": _squat_track, "turn": _turn_track}
MIN_SEGMENT_S = 1.0  # s, shortest stretch of one kind inside a combination
TRANSITION_S = 0.5   # s, cross-fade between two kinds


def _join(first: _Track, second: _Track, start: int) -> _Track:
    """`second` takes over from `first` at frame `start`, cross-fading where both exist.

    `second` is turned and moved so it starts where and how `first` is at `start`. Joint angles and pelvis height are
    blended; horizontal pelvis velocity is blended and integrated, so the root never jumps or runs backwards.
    """
    second_angles = second.angles.copy()
    yaw_shift = first.angles[start, 0, 0] - second_angles[0, 0, 0]
    second_angles[:, 0, 0] += yaw_shift
    c, s = np.cos(yaw_shift), np.sin(yaw_shift)
    rel = second.pelvis[:, [0, 2]] - second.pelvis[0, [0, 2]]
    second_xz = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], axis=1)

    total = start + len(second_angles)
    overlap = len(first.angles) - start
    w = np.ones(len(second_angles))
    w[:overlap] = _smootherstep((np.arange(overlap) + 1.0) / (overlap + 1.0))
    first_part = slice(start, start + overlap)

    angles = np.concatenate([first.angles[:start], second_angles])
    angles[first_part] = (1 - w[:overlap, None, None]) * first.angles[start:] + w[:overlap, None, None] * \
        second_angles[:overlap]
    pelvis = np.zeros((total, 3))
    pelvis[:start] = first.pelvis[:start]
    pelvis[start:, 1] = second.pelvis[:, 1]
    pelvis[first_part, 1] = (1 - w[:overlap]) * first.pelvis[start:, 1] + w[:overlap] * second.pelvis[:overlap, 1]
    velocity = np.diff(second_xz, axis=0)
    first_velocity = np.diff(first.pelvis[start:, [0, 2]], axis=0)
    n = min(len(first_velocity), len(velocity))
    velocity[:n] = (1 - w[1:n + 1, None]) * first_velocity[:n] + w[1:n + 1, None] * velocity[:n]
    pelvis[start:, [0, 2]] = first.pelvis[start, [0, 2]] + np.concatenate([[[0.0, 0.0]], np.cumsum(velocity, 0)])
    kind = np.concatenate([first.kind[:start], second.kind])
    kind[first_part] = np.where(w[:overlap] < 0.5, first.kind[start:], second.kind[:overlap])
    return _Track(angles, pelvis, kind)


def sample_motion(rng: np.random.Generator, num_frames: int, fps: float = FPS,
                  kinds: Sequence[str] | None = None) -> Motion:
    """A random motion: one kind, or (when there is room) two or three kinds joined by cross-fades.

    kinds: the kinds to draw from (default all of KINDS). The heading and every kind's speed, phase and amplitudes
    are random; the same generator state gives the same motion.
    """
    _check_length("sample_motion", num_frames, fps)
    kinds = tuple(KINDS if kinds is None else kinds)
    unknown = [k for k in kinds if k not in _TRACKS]
    if unknown or not kinds:
        raise ValueError(f"sample_motion: kinds={kinds} — expected a non-empty subset of {KINDS}")
    min_segment = max(1, int(round(MIN_SEGMENT_S * fps)))
    overlap = max(1, int(round(TRANSITION_S * fps)))
    max_segments = min(3, num_frames // (min_segment + overlap))
    num_segments = 1 if max_segments < 2 or rng.uniform() < 0.4 else int(rng.integers(2, max_segments + 1))
    # Split points, each segment at least `min_segment` long.
    spare = num_frames - num_segments * min_segment
    cuts = np.sort(rng.integers(0, spare + 1, size=num_segments - 1))
    lengths = np.diff(np.concatenate([[0], cuts, [spare]])) + min_segment
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    heading = rng.uniform(-np.pi, np.pi)
    track = None
    for i, (begin, length) in enumerate(zip(starts, lengths)):
        kind = str(rng.choice(kinds))
        # Each segment reaches half an overlap into its neighbours, where the cross-fade happens.
        lead = overlap // 2 if i > 0 else 0
        tail = overlap - overlap // 2 if i < num_segments - 1 else 0
        segment = _TRACKS[kind](rng, int(length + lead + tail), fps, heading=heading)
        track = segment if track is None else _join(track, segment, int(begin - lead))
    return _to_motion(track, fps)


# ---- BVH import/export ----------------------------------------------------------------------------------------

# The CMU mocap BVH conversions (cgspeed's, 31 joints: Hips, LHipJoint, LeftUpLeg, ..., LThumb; y up, facing +z,
# left +x, "Zrotation Yrotation Xrotation"): SMPL joint -> the BVH joint whose rotation drives it and at whose
# position it sits. LHipJoint, Neck1, LeftHandIndex1 and LThumb have no SMPL twin.
CMU_BVH_TO_SMPL = {
    "pelvis": "Hips", "left_hip": "LeftUpLeg", "right_hip": "RightUpLeg", "spine1": "LowerBack",
    "left_knee": "LeftLeg", "right_knee": "RightLeg", "spine2": "Spine", "left_ankle": "LeftFoot",
    "right_ankle": "RightFoot", "spine3": "Spine1", "left_foot": "LeftToeBase", "right_foot": "RightToeBase",
    "neck": "Neck", "left_collar": "LeftShoulder", "right_collar": "RightShoulder", "head": "Head",
    "left_shoulder": "LeftArm", "right_shoulder": "RightArm", "left_elbow": "LeftForeArm",
    "right_elbow": "RightForeArm", "left_wrist": "LeftHand", "right_wrist": "RightHand",
    "left_hand": "LeftFingerBase", "right_hand": "RightFingerBase",
}
SMPL_BVH_TO_SMPL = {name: name for name in SMPL_24}  # the skeleton `write_bvh` writes
CMU_UNIT_M = 0.0254 / 0.45  # metres per CMU BVH unit (the ASF files' "length 0.45": 1 unit = 1/0.45 inch)
# Candidate BVH length units, told apart by the leg length (hip to ankle) they imply.
_BVH_UNITS_M = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": CMU_UNIT_M}
_TYPICAL_LEG_M = 0.8


@dataclasses.dataclass
class BvhSkeleton:
    """A BVH HIERARCHY: joints in file order (parents first) plus the MOTION block."""
    names: list[str]
    parents: np.ndarray            # [B] int, -1 for the root
    offsets: np.ndarray            # [B, 3] file units
    channels: list[list[str]]      # per joint, e.g. ["Zrotation", "Yrotation", "Xrotation"]
    end_sites: dict[int, np.ndarray]  # joint index -> End Site offset
    frame_time: float              # s
    values: np.ndarray             # [F, sum(channels)] the MOTION rows


_CHANNEL_NAMES = {"Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation"}


def read_bvh(path: str | Path) -> BvhSkeleton:
    """Parse a BVH file's HIERARCHY and MOTION blocks; errors name the file and what was expected."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise ValueError(f"{path}: cannot read BVH file ({e})") from e
    marker = re.search(r"^\s*MOTION\s*$", text, flags=re.M)
    if marker is None:
        raise ValueError(f"{path}: no MOTION section — expected a BVH file (HIERARCHY ... MOTION ...)")
    head, motion = text[:marker.start()], text[marker.end():]
    tokens = head.split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise ValueError(f"{path}: starts with {tokens[:1]} — expected 'HIERARCHY'")
    names, parents, offsets, channels, end_sites = [], [], [], [], {}
    stack: list[int] = []
    i = 1
    pending: tuple[str, int] | None = None  # ("joint", index) or ("end", parent) awaiting its '{'

    def expect(cond, what):
        if not cond:
            raise ValueError(f"{path}: HIERARCHY near token {i} ({' '.join(tokens[max(0, i - 2):i + 3])!r}) — "
                             f"expected {what}")

    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            expect(i + 1 < len(tokens), "a joint name")
            expect((tok == "ROOT") == (not names), "one ROOT first, then JOINTs inside it")
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            offsets.append(np.zeros(3))
            channels.append([])
            pending = ("joint", len(names) - 1)
            i += 2
        elif tok == "End":
            expect(i + 1 < len(tokens) and tokens[i + 1] == "Site" and stack, "'End Site' inside a joint")
            pending = ("end", stack[-1])
            i += 2
        elif tok == "{":
            expect(pending is not None, "'{' after ROOT/JOINT/End Site")
            stack.append(pending[1] if pending[0] == "joint" else -2 - pending[1])
            pending = None
            i += 1
        elif tok == "}":
            expect(bool(stack), "balanced braces")
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            expect(bool(stack), "OFFSET inside a joint")
            try:
                value = np.array([float(x) for x in tokens[i + 1:i + 4]])
            except ValueError:
                value = np.zeros(0)
            expect(value.shape == (3,), "OFFSET followed by 3 numbers")
            if stack[-1] >= 0:
                offsets[stack[-1]] = value
            else:
                end_sites[-2 - stack[-1]] = value
            i += 4
        elif tok == "CHANNELS":
            expect(bool(stack) and stack[-1] >= 0, "CHANNELS inside a joint")
            try:
                count = int(tokens[i + 1])
            except (ValueError, IndexError):
                count = -1
            expect(count >= 0, "CHANNELS followed by a count")
            names_ = tokens[i + 2:i + 2 + count]
            expect(len(names_) == count and all(c in _CHANNEL_NAMES for c in names_),
                   f"{count} channel names from {sorted(_CHANNEL_NAMES)}")
            channels[stack[-1]] = names_
            i += 2 + count
        else:
            expect(False, "ROOT, JOINT, End Site, OFFSET, CHANNELS or braces")
    if not names or stack:
        raise ValueError(f"{path}: HIERARCHY has {len(names)} joints and {len(stack)} unclosed braces — expected "
                         f"a ROOT with balanced braces")

    lines = [ln for ln in motion.splitlines() if ln.strip()]
    frames_m = re.match(r"\s*Frames:\s*(\d+)\s*$", lines[0]) if lines else None
    time_m = re.match(r"\s*Frame Time:\s*([0-9.eE+-]+)\s*$", lines[1]) if len(lines) > 1 else None
    if not frames_m or not time_m:
        raise ValueError(f"{path}: MOTION must start with 'Frames: N' and 'Frame Time: s' lines")
    num_frames, frame_time = int(frames_m.group(1)), float(time_m.group(1))
    if frame_time <= 0:
        raise ValueError(f"{path}: MOTION 'Frame Time: {frame_time}' — expected a positive number of seconds")
    rows = lines[2:]
    if len(rows) != num_frames:
        raise ValueError(f"{path}: MOTION 'Frames: {num_frames}' but {len(rows)} frame lines follow")
    num_channels = sum(len(c) for c in channels)
    values = np.empty((num_frames, num_channels))
    for k, row in enumerate(rows):
        fields = row.split()
        try:
            values[k] = [float(x) for x in fields]
        except ValueError as e:
            raise ValueError(f"{path}: MOTION frame {k} has {len(fields)} values {fields[:3]}... — expected "
                             f"{num_channels} numbers, one per CHANNELS entry") from e
    return BvhSkeleton(names, np.array(parents, np.int64), np.array(offsets), channels, end_sites, frame_time,
                       values)


def _bvh_local(skeleton: BvhSkeleton) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame local rotations [F, B, 4] (quaternions xyzw) and translations [F, B, 3] (file units).

    A joint's rotation channels compose in the order listed (intrinsic): "Zrotation Yrotation Xrotation" is
    R = R_z @ R_y @ R_x. Position channels replace the joint's OFFSET (they repeat it for non-root joints).
    """
    num_frames, num_joints = len(skeleton.values), len(skeleton.names)
    quats = np.zeros((num_frames, num_joints, 4))
    quats[..., 3] = 1.0
    translations = np.broadcast_to(skeleton.offsets, (num_frames, num_joints, 3)).copy()
    column = 0
    for j, chans in enumerate(skeleton.channels):
        cols = skeleton.values[:, column:column + len(chans)]
        column += len(chans)
        rot = [(c[0], cols[:, k]) for k, c in enumerate(chans) if c.endswith("rotation")]
        for k, c in enumerate(chans):
            if c.endswith("position"):
                translations[:, j, "XYZ".index(c[0])] = cols[:, k]
        if rot:
            order = "".join(axis for axis, _ in rot)
            quats[:, j] = Rotation.from_euler(order, np.stack([v for _, v in rot], 1), degrees=True).as_quat()
    return quats, translations


def _slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions [..., 4] with weights w broadcast over the last axis."""
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    near = sin < 1e-6
    safe = np.where(near, 1.0, sin)
    a = np.where(near, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    b = np.where(near, w, np.sin(w * theta) / safe)
    q = a * q0 + b * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _resample(quats: np.ndarray, translations: np.ndarray, frame_time: float, fps: float):
    """Resample per-frame local rotations (slerp) and translations (linear) to `fps`."""
    num_frames = len(quats)
    duration = (num_frames - 1) * frame_time
    # Files round the frame time (CMU: "0.008333"); a frame that rounding pushes a hair past the end still counts.
    count = int(np.floor(duration * fps + 1e-3)) + 1
    src = np.minimum(np.arange(count) / fps / frame_time, num_frames - 1)
    lo = np.minimum(np.floor(src).astype(int), num_frames - 1)
    hi = np.minimum(lo + 1, num_frames - 1)
    w = (src - lo)[:, None, None]
    return _slerp(quats[lo], quats[hi], w), (1 - w) * translations[lo] + w * translations[hi]


def _bvh_forward(parents: np.ndarray, quats: np.ndarray, translations: np.ndarray):
    """Global rotations [F, B, 3, 3] and positions [F, B, 3] of a BVH skeleton."""
    num_frames, num_joints = quats.shape[:2]
    local = Rotation.from_quat(quats.reshape(-1, 4)).as_matrix().reshape(num_frames, num_joints, 3, 3)
    glob = np.empty_like(local)
    pos = np.empty((num_frames, num_joints, 3))
    for j, p in enumerate(parents):
        if p < 0:
            glob[:, j], pos[:, j] = local[:, j], translations[:, j]
        else:
            glob[:, j] = glob[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + np.einsum("fij,fj->fi", glob[:, p], translations[:, j])
    return glob, pos


def _min_rotation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[..., 3, 3] the smallest rotation turning direction u [..., 3] onto direction v [..., 3]."""
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    axis = np.cross(u, v)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    cos = np.sum(u * v, axis=-1, keepdims=True)
    # Opposite directions: any axis perpendicular to u.
    fallback = np.cross(u, np.where(np.abs(u[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    axis = np.where(sin > 1e-9, axis, fallback)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.arctan2(sin, cos)
    return Rotation.from_rotvec((axis * angle).reshape(-1, 3)).as_matrix().reshape(u.shape[:-1] + (3, 3))


def _infer_unit(skeleton: BvhSkeleton, joint_of: dict[str, int], path: Path) -> float:
    rest = _bvh_forward(skeleton.parents, np.tile([0.0, 0.0, 0.0, 1.0], (1, len(skeleton.names), 1)),
                        skeleton.offsets[None])[1][0]
    leg = np.linalg.norm(rest[joint_of["left_ankle"]] - rest[joint_of["left_hip"]])
    if leg <= 0:
        raise ValueError(f"{path}: the left leg has zero length in the rest pose — cannot infer the BVH's unit")
    name = min(_BVH_UNITS_M, key=lambda u: abs(np.log(leg * _BVH_UNITS_M[u] / _TYPICAL_LEG_M)))
    return _BVH_UNITS_M[name]


def load_bvh(path: str | Path, fps: float = FPS, name_map: dict[str, str] | None = None,
             unit_m: float | None = None, axes: np.ndarray | None = None) -> Motion:
    """Read a BVH file and retarget it to SMPL's 24 joints at `fps`.

    name_map: SMPL joint -> BVH joint (default: `CMU_BVH_TO_SMPL` or `SMPL_BVH_TO_SMPL`, whichever the file's joint
    names fit). unit_m: metres per file unit (default: inferred from the leg length among m, cm, mm, inch and CMU
    units). axes: [3, 3] rotation taking the file's axes to SMPL's (y up, facing +z, left +x); default identity, as
    in the CMU conversions (a z-up file facing -y would use [[1,0,0],[0,0,1],[0,-1,0]]).

    Retargeting keeps bone directions: each SMPL joint takes its BVH joint's global rotation, first turned so the
    SMPL T-pose bone points along the BVH's rest bone (its rest pose is not SMPL's T-pose: the CMU skeleton's legs
    are splayed), then corrected so the bone points at the BVH's posed child even across in-between BVH joints
    (Neck1, LeftFingerBase). Joints with several children (pelvis, spine3) keep the BVH rotation as is; end joints
    (head, feet, hands) share their parent's rest correction. Root translation: the BVH root position, in metres.
    """
    path = Path(path)
    skeleton = read_bvh(path)
    if name_map is None:
        present = set(skeleton.names)
        fits = [m for m in (CMU_BVH_TO_SMPL, SMPL_BVH_TO_SMPL) if set(m.values()) <= present]
        if not fits:
            missing = sorted(set(CMU_BVH_TO_SMPL.values()) - present)
            raise ValueError(f"{path}: HIERARCHY lacks joints {missing} of the CMU BVH skeleton (and is not the SMPL "
                             f"skeleton write_bvh writes) — pass name_map= (SMPL joint -> BVH joint)")
        name_map = fits[0]
    missing = sorted(n for n in SMPL_24 if name_map.get(n) not in skeleton.names)
    if missing:
        raise ValueError(f"{path}: HIERARCHY has no joint for SMPL joints {missing} under the name map — expected "
                         f"{[name_map.get(n) for n in missing]}")
    index = {name: i for i, name in enumerate(skeleton.names)}
    joint_of = {smpl: index[name_map[smpl]] for smpl in SMPL_24}
    unit = _infer_unit(skeleton, joint_of, path) if unit_m is None else float(unit_m)
    axes = np.eye(3) if axes is None else np.asarray(axes, np.float64)
    if axes.shape != (3, 3) or not np.allclose(axes @ axes.T, np.eye(3), atol=1e-6) or np.linalg.det(axes) < 0:
        raise ValueError(f"load_bvh({path}): axes must be a 3x3 rotation matrix, got {axes.tolist()}")
    if len(skeleton.values) == 0:
        raise ValueError(f"{path}: MOTION has 0 frames — expected at least one")

    quats, translations = _bvh_local(skeleton)
    # Files print the frame time rounded (CMU: "Frame Time: 0.008333" for 120 fps); snap to the whole rate it
    # rounds, or every resampled frame would drift towards its neighbour.
    rate = 1.0 / skeleton.frame_time
    frame_time = 1.0 / round(rate) if abs(rate - round(rate)) < 1e-3 * rate else skeleton.frame_time
    quats, translations = _resample(quats, translations, frame_time, fps)
    glob, pos = _bvh_forward(skeleton.parents, quats, translations)
    glob = axes @ glob @ axes.T
    pos = np.einsum("ij,fbj->fbi", axes, pos) * unit
    rest_pos = _bvh_forward(skeleton.parents, np.tile([0.0, 0.0, 0.0, 1.0], (1, len(skeleton.names), 1)),
                            skeleton.offsets[None])[1][0] @ axes.T

    children = {j: [c for c in range(len(SMPL_24)) if SMPL_PARENTS[c] == j] for j in range(len(SMPL_24))}

    def tip(j: int) -> int | None:
        """BVH joint marking the end of SMPL joint j's bone (its only child), skipping zero-length BVH bones."""
        if len(children[j]) != 1:
            return None
        b, end = joint_of[SMPL_24[j]], joint_of[SMPL_24[children[j][0]]]
        while np.linalg.norm(rest_pos[end] - rest_pos[b]) < 1e-9:
            below = [c for c in range(len(skeleton.names)) if skeleton.parents[c] == end]
            if not below:
                return None
            end = below[0]
        return end

    num_frames = len(glob)
    smpl_glob = np.empty((num_frames, len(SMPL_24), 3, 3))
    rest_fix = np.empty((len(SMPL_24), 3, 3))
    for j in range(len(SMPL_24)):
        b, end = joint_of[SMPL_24[j]], tip(j)
        if end is not None:
            bone = REST_JOINTS[children[j][0]] - REST_JOINTS[j]
            rest_fix[j] = _min_rotation(bone, rest_pos[end] - rest_pos[b])
        elif children[j]:
            rest_fix[j] = np.eye(3)
        else:
            rest_fix[j] = rest_fix[SMPL_PARENTS[j]]
        rot = glob[:, b] @ rest_fix[j]
        if end is not None:
            bone = REST_JOINTS[children[j][0]] - REST_JOINTS[j]
            rot = _min_rotation(rot @ bone, pos[:, end] - pos[:, b]) @ rot
        smpl_glob[:, j] = rot
    local = np.empty_like(smpl_glob)
    local[:, 0] = smpl_glob[:, 0]
    parent_glob = smpl_glob[:, SMPL_PARENTS[1:]]
    local[:, 1:] = np.swapaxes(parent_glob, -1, -2) @ smpl_glob[:, 1:]
    pose = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(num_frames, -1)
    trans = pos[:, joint_of["pelvis"]] - REST_JOINTS[0]
    return Motion(pose.astype(np.float32), trans.astype(np.float32), float(fps), np.full(num_frames, "bvh"))


def write_bvh(path: str | Path, motion: Motion, rest_joints: np.ndarray = REST_JOINTS) -> Path:
    """Write `motion` as a BVH with SMPL's 24 joints (named as in SMPL_24), offsets from `rest_joints` in
    centimetres, "Zrotation Yrotation Xrotation" channels as in the CMU conversions, and the pelvis's world position
    as the root's. `load_bvh` reads it back to the same motion."""
    path = Path(path)
    rest = np.asarray(rest_joints, np.float64) * 100.0
    children = {j: [c for c in range(len(SMPL_24)) if SMPL_PARENTS[c] == j] for j in range(len(SMPL_24))}
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int):
        pad = "  " * depth
        kind = "ROOT" if SMPL_PARENTS[j] < 0 else "JOINT"
        offset = rest[j] - (rest[SMPL_PARENTS[j]] if SMPL_PARENTS[j] >= 0 else rest[j])
        lines.append(f"{pad}{kind} {SMPL_24[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        channels = "Zrotation Yrotation Xrotation"
        lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {channels}" if kind == "ROOT"
                     else f"{pad}  CHANNELS 3 {channels}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0.000000 0.000000 5.000000",
                          pad + "  }"])
        lines.append(pad + "}")

    emit(0, 0)
    order = []

    def visit(j: int):
        order.append(j)
        for c in children[j]:
            visit(c)

    visit(0)
    pose = np.asarray(motion.pose, np.float64).reshape(motion.num_frames, len(SMPL_24), 3)
    euler = Rotation.from_rotvec(pose[:, order].reshape(-1, 3)).as_euler("ZYX", degrees=True)
    euler = euler.reshape(motion.num_frames, -1)
    root = (np.asarray(motion.trans, np.float64) + REST_JOINTS[0]) * 100.0
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {1.0 / motion.fps:.10f}"]
    lines += [" ".join(f"{v:.6f}" for v in np.concatenate([root[f], euler[f]])) for f in range(motion.num_frames)]
    path.write_text("\n".join(lines) + "\n")
    return path
