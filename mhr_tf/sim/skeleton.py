"""SMPL's 24-joint skeleton for the simulator's motions: the reference rest skeleton, anatomical joint limits, the
Euler-angle layout the procedural motions are built in, the `Motion` record, and forward kinematics.

Conventions (SMPL's rest T-pose): y up, the body faces +z, the person's left is +x, metres; arms horizontal in the
rest pose. Every joint's local frame is parallel to the world's in the rest pose, so a local rotation about x is a
flexion in the sagittal plane (knee flexion is +x, hip flexion is -x, trunk flexion is +x), and a rotation about z
lowers or raises an arm in the frontal plane (the left arm hangs at z = -75 deg, the right arm at z = +75 deg).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from mhr_tf.body.joints import SMPL_24, SMPL_PARENTS, mirror_name

FPS = 30  # the simulator's frame rate: SURREAL's clips and 3DPW's images are 30 fps too
JOINT_INDEX = {name: i for i, name in enumerate(SMPL_24)}


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
            rest[JOINT_INDEX[name]] = _LEFT_AND_CENTRE_REST[name]
        else:
            rest[JOINT_INDEX[name]] = np.array(_LEFT_AND_CENTRE_REST[mirror_name(name)]) * (-1.0, 1.0, 1.0)
    return rest


REST_JOINTS = _rest_joints()  # [24, 3] float64, metres, rest T-pose
ANKLE_HEIGHT = 0.07  # m, ankle joint above the sole of a flat foot
GROUND_Y_REST = REST_JOINTS[JOINT_INDEX["left_ankle"], 1] - ANKLE_HEIGHT  # the soles' height in the rest pose
STANDING_PELVIS_HEIGHT = REST_JOINTS[JOINT_INDEX["pelvis"], 1] - GROUND_Y_REST  # m above the floor, straight legs
# m, ankle -> ball of the foot, along z
TOE_LENGTH = REST_JOINTS[JOINT_INDEX["left_foot"], 2] - REST_JOINTS[JOINT_INDEX["left_ankle"], 2]
HEEL_LENGTH = 0.05  # m, heel behind the ankle


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
           else _mirrored(_LEFT_AND_CENTRE_LIMITS[mirror_name(name)]))
    for name in SMPL_24 if name != "pelvis"}

# The angle layout the procedural motions are built in: angles[T, 24, 3] in radians, joint j in EULER_ORDERS[j]. The
# root row is (yaw, pitch, roll) in "YXZ", so the heading is its own angle and can be unwrapped and blended.
ROOT_ORDER = "YXZ"
EULER_ORDERS = [ROOT_ORDER] + [JOINT_LIMITS_DEG[name].order for name in SMPL_24[1:]]
_LO = np.radians(np.array([(-np.inf,) * 3] + [JOINT_LIMITS_DEG[n].lo for n in SMPL_24[1:]]))
_HI = np.radians(np.array([(np.inf,) * 3] + [JOINT_LIMITS_DEG[n].hi for n in SMPL_24[1:]]))
_LIMIT_MARGIN = np.radians(3.0)  # angles this close to a limit are eased into it instead of cut


def angle_slot(name: str, axis: str) -> tuple[int, int]:
    """(joint index, position of `axis` in that joint's Euler order): where a named rotation lives in `angles`."""
    j = JOINT_INDEX[name]
    return j, EULER_ORDERS[j].upper().index(axis)


def soft_limits(angles: np.ndarray) -> np.ndarray:
    """Keep every angle inside its limits, easing the last `_LIMIT_MARGIN` smoothly (C2) so clipping never jerks."""
    lo, hi = _LO, _HI
    margin = np.minimum(_LIMIT_MARGIN, 0.2 * (hi - lo))
    with np.errstate(invalid="ignore"):  # the root's infinite limits give NaNs that np.where never picks
        eased_hi = hi - margin + margin * np.tanh((angles - (hi - margin)) / margin)
        eased_lo = lo + margin + margin * np.tanh((angles - (lo + margin)) / margin)
    return np.where(angles > hi - margin, eased_hi, np.where(angles < lo + margin, eased_lo, angles))


def pose_from_angles(angles: np.ndarray) -> np.ndarray:
    """[T, 24, 3] Euler angles (radians, per-joint orders) -> [T, 72] axis-angle."""
    num_frames = angles.shape[0]
    pose = np.zeros((num_frames, len(SMPL_24), 3))
    for order in sorted(set(EULER_ORDERS)):
        idx = [j for j, o in enumerate(EULER_ORDERS) if o == order]
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
