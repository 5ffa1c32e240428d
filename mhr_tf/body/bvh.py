"""BVH motion files for SMPL's 24-joint skeleton: read any BVH (the CMU conversions' by default) retargeted to
SMPL's joints, and write SMPL pose sequences (a simulated motion, or a model's predictions) as BVH.

Conventions: SMPL's rest frame, y up, the body faces +z, the person's left is +x, metres. A motion is SMPL's
`pose [T, 72]` (axis-angle local joint rotations, joint 0 the root in the world) and `trans [T, 3]` (the pelvis is
at the rest pelvis + trans), at `fps` frames per second. The rest skeleton `rest_joints [24, 3]` (joint positions
of the unposed body, metres) is an argument: the simulator's reference skeleton, or a body model's J(betas).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mhr_tf.body.joints import SMPL_24, SMPL_PARENTS

DEFAULT_FPS = 30  # SURREAL's clips, 3DPW's images and the simulator's motions are all 30 fps

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


def load_bvh(path: str | Path, rest_joints: np.ndarray, fps: float = DEFAULT_FPS,
             name_map: dict[str, str] | None = None, unit_m: float | None = None,
             axes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a BVH file and retarget it to SMPL's 24 joints at `fps`: (pose [T, 72], trans [T, 3]) float64, SMPL's
    axis-angle and root translation for a skeleton whose rest joints are `rest_joints [24, 3]` (metres, T-pose).

    name_map: SMPL joint -> BVH joint (default: `CMU_BVH_TO_SMPL` or `SMPL_BVH_TO_SMPL`, whichever the file's joint
    names fit). unit_m: metres per file unit (default: inferred from the leg length among m, cm, mm, inch and CMU
    units). axes: [3, 3] rotation taking the file's axes to SMPL's (y up, facing +z, left +x); default identity, as
    in the CMU conversions (a z-up file facing -y would use [[1,0,0],[0,0,1],[0,-1,0]]).

    Retargeting keeps bone directions: each SMPL joint takes its BVH joint's global rotation, first turned so the
    SMPL T-pose bone points along the BVH's rest bone (its rest pose is not SMPL's T-pose: the CMU skeleton's legs
    are splayed), then corrected so the bone points at the BVH's posed child even across in-between BVH joints
    (Neck1, LeftFingerBase). Joints with several children (pelvis, spine3) keep the BVH rotation as is; end joints
    (head, feet, hands) share their parent's rest correction. Root translation: the BVH root position, in metres,
    minus the rest pelvis (so that the pelvis of `rest_joints` lands on the BVH root).
    """
    path = Path(path)
    rest_joints = np.asarray(rest_joints, np.float64)
    if rest_joints.shape != (len(SMPL_24), 3):
        raise ValueError(f"load_bvh({path}): rest_joints has shape {rest_joints.shape} — expected "
                         f"({len(SMPL_24)}, 3)")
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
            bone = rest_joints[children[j][0]] - rest_joints[j]
            rest_fix[j] = _min_rotation(bone, rest_pos[end] - rest_pos[b])
        elif children[j]:
            rest_fix[j] = np.eye(3)
        else:
            rest_fix[j] = rest_fix[SMPL_PARENTS[j]]
        rot = glob[:, b] @ rest_fix[j]
        if end is not None:
            bone = rest_joints[children[j][0]] - rest_joints[j]
            rot = _min_rotation(rot @ bone, pos[:, end] - pos[:, b]) @ rot
        smpl_glob[:, j] = rot
    local = np.empty_like(smpl_glob)
    local[:, 0] = smpl_glob[:, 0]
    parent_glob = smpl_glob[:, SMPL_PARENTS[1:]]
    local[:, 1:] = np.swapaxes(parent_glob, -1, -2) @ smpl_glob[:, 1:]
    pose = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(num_frames, -1)
    trans = pos[:, joint_of["pelvis"]] - rest_joints[0]
    return pose, trans


def write_bvh(path: str | Path, pose: np.ndarray, trans: np.ndarray, rest_joints: np.ndarray,
              fps: float = DEFAULT_FPS) -> Path:
    """Write an SMPL pose sequence as a BVH with SMPL's 24 joints (named as in SMPL_24): `pose [T, 72]` axis-angle,
    `trans [T, 3]` metres, for the skeleton with rest joints `rest_joints [24, 3]` (metres, T-pose), at `fps`.

    Offsets are `rest_joints`' bones in centimetres, channels "Zrotation Yrotation Xrotation" as in the CMU
    conversions, the root's position is the pelvis's (rest pelvis + trans). `load_bvh(path, rest_joints, fps)` reads
    it back to the same joint positions."""
    path = Path(path)
    pose = np.asarray(pose, np.float64)
    trans = np.asarray(trans, np.float64)
    rest_joints = np.asarray(rest_joints, np.float64)
    num_frames = len(pose)
    if pose.shape != (num_frames, 3 * len(SMPL_24)) or trans.shape != (num_frames, 3) or \
            rest_joints.shape != (len(SMPL_24), 3):
        raise ValueError(f"write_bvh({path}): pose {pose.shape}, trans {trans.shape}, rest_joints "
                         f"{rest_joints.shape} — expected [T, 72], [T, 3], [24, 3]")
    if not fps > 0:
        raise ValueError(f"write_bvh({path}): fps={fps} — expected a positive frame rate")
    rest = rest_joints * 100.0
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
    euler = Rotation.from_rotvec(pose.reshape(num_frames, len(SMPL_24), 3)[:, order].reshape(-1, 3)).as_euler(
        "ZYX", degrees=True).reshape(num_frames, -1)
    root = (trans + rest_joints[0]) * 100.0
    lines += ["MOTION", f"Frames: {num_frames}", f"Frame Time: {1.0 / fps:.10f}"]
    lines += [" ".join(f"{v:.6f}" for v in np.concatenate([root[f], euler[f]])) for f in range(num_frames)]
    path.write_text("\n".join(lines) + "\n")
    return path
