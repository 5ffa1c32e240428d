"""Procedural motion and BVH import, checked against references written here: a float64 forward kinematics with
scipy rotations, closed forms (ballistic flight, stride x cadence), scipy's Euler decompositions, and BVH files
written by hand in the CMU layout."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mhr_tf.body.joints import SMPL_24, SMPL_PARENTS
from mhr_tf.sim import motion

J = {name: i for i, name in enumerate(SMPL_24)}
FPS = 30
SEEDS = range(10)


# ---- references ---------------------------------------------------------------------------------------------

def _fk(pose, trans, rest=motion.REST_JOINTS):
    """[T, 24, 3] world joints: SMPL's kinematic chain in float64, written independently of the module."""
    pose = np.asarray(pose, np.float64).reshape(len(pose), 24, 3)
    out = np.zeros(pose.shape)
    glob = [None] * 24
    for j in range(24):
        rot = Rotation.from_rotvec(pose[:, j])  # all frames at once
        p = SMPL_PARENTS[j]
        if p < 0:
            glob[j], out[:, j] = rot, rest[j]
        else:
            glob[j] = glob[p] * rot
            out[:, j] = out[:, p] + glob[p].apply(rest[j] - rest[p])
    return out + np.asarray(trans, np.float64)[:, None]


def _euler(pose, name):
    """[T, 3] degrees: a joint's local rotation in its limit table's Euler order, decomposed by scipy."""
    limit = motion.JOINT_LIMITS_DEG[name]
    rotvec = np.asarray(pose, np.float64).reshape(len(pose), 24, 3)[:, J[name]]
    return Rotation.from_rotvec(rotvec).as_euler(limit.order, degrees=True)


def _root_yaw_deg(pose):
    forward = Rotation.from_rotvec(np.asarray(pose, np.float64)[:, :3]).apply([0.0, 0.0, 1.0])
    return np.degrees(np.unwrap(np.arctan2(forward[:, 0], forward[:, 2])))


def _max_accel(joints, fps):
    return np.linalg.norm(joints[2:] - 2 * joints[1:-1] + joints[:-2], axis=-1).max() * fps ** 2


def _soles(joints):
    """Per frame and foot (left, right): height of the lowest sole point above the floor, and that point's position.

    A foot touches the floor with its heel (ankle height above it) or its ball (the toe joint)."""
    ankle = joints[:, [J["left_ankle"], J["right_ankle"]]]
    toe = joints[:, [J["left_foot"], J["right_foot"]]]
    toe_height = motion.REST_JOINTS[J["left_foot"], 1] - motion.GROUND_Y_REST
    ankle_h, toe_h = ankle[..., 1] - motion.ANKLE_HEIGHT, toe[..., 1] - toe_height
    use_toe = toe_h < ankle_h
    return np.minimum(ankle_h, toe_h), np.where(use_toe[..., None], toe, ankle), use_toe


# ---- conventions ---------------------------------------------------------------------------------------------

def test_rest_skeleton_follows_smpl_t_pose_axes():
    rest = motion.REST_JOINTS
    for name in SMPL_24:
        if name.startswith("left_"):
            mirror = J["right_" + name[5:]]
            assert rest[J[name], 0] > 0 and np.allclose(rest[J[name]] * (-1, 1, 1), rest[mirror])
    assert rest[J["head"], 1] > rest[J["neck"], 1] > rest[J["pelvis"], 1] > rest[J["left_knee"], 1]
    assert rest[J["left_foot"], 2] > rest[J["left_ankle"], 2]  # toes point forwards (+z)
    assert rest[J["left_wrist"], 1] == pytest.approx(rest[J["left_shoulder"], 1], abs=0.02)  # arms horizontal


def test_forward_kinematics_matches_closed_form_and_reference():
    # Left shoulder turned -90 deg about z: the straight left arm (along +x) then hangs along -y.
    pose = np.zeros((1, 24, 3))
    pose[0, J["left_shoulder"]] = [0.0, 0.0, -np.pi / 2]
    joints = motion.forward_kinematics(pose, motion.REST_JOINTS, SMPL_PARENTS)
    shoulder = motion.REST_JOINTS[J["left_shoulder"]]
    arm = motion.REST_JOINTS[J["left_wrist"]] - shoulder
    expected = shoulder + np.array([arm[1], -arm[0], arm[2]])
    np.testing.assert_allclose(joints[0, J["left_wrist"]], expected, atol=1e-12)
    mot = motion.walk(np.random.default_rng(0), 12)
    np.testing.assert_allclose(motion.forward_kinematics(mot.pose, motion.REST_JOINTS, SMPL_PARENTS, mot.trans),
                               _fk(mot.pose, mot.trans), atol=1e-9)


def test_limit_table_signs_move_joints_the_named_way():
    """Knee flexion (+x) takes the ankle back, the elbow's allowed flexion brings the wrist forward on both sides,
    and the standing arm angle (-z left, +z right) lowers each arm."""
    table = motion.JOINT_LIMITS_DEG
    for side, sign in (("left", 1.0), ("right", -1.0)):
        knee, elbow = table[f"{side}_knee"], table[f"{side}_elbow"]
        assert knee.lo[knee.order.index("X")] == 0.0  # the knee flexes one way only
        y = elbow.order.index("Y")
        assert (elbow.hi[y] == 0.0) if sign > 0 else (elbow.lo[y] == 0.0)  # so does the elbow

        def moved(joint, angles_deg, target):
            pose = np.zeros((1, 24, 3))
            order = table[joint].order
            pose[0, J[joint]] = Rotation.from_euler(order, angles_deg, degrees=True).as_rotvec()
            return _fk(pose, np.zeros((1, 3)))[0, J[target]] - motion.REST_JOINTS[J[target]]

        flex = [0.0, 0.0, 0.0]
        flex[knee.order.index("X")] = 90.0
        assert moved(f"{side}_knee", flex, f"{side}_ankle")[2] < -0.3
        flex = [0.0, 0.0, 0.0]
        flex[y] = -sign * 90.0
        assert moved(f"{side}_elbow", flex, f"{side}_wrist")[2] > 0.2
        lower = [0.0, 0.0, 0.0]
        lower[table[f"{side}_shoulder"].order.index("Z")] = -sign * 75.0
        drop = moved(f"{side}_shoulder", lower, f"{side}_wrist")
        assert drop[1] < -0.45 and sign * drop[0] < -0.3  # down, and in towards the body


def test_right_limits_mirror_left_limits():
    for name, limit in motion.JOINT_LIMITS_DEG.items():
        if name.startswith("left_"):
            right = motion.JOINT_LIMITS_DEG["right_" + name[5:]]
            for k, axis in enumerate(limit.order):
                if axis == "X":
                    assert (right.lo[k], right.hi[k]) == (limit.lo[k], limit.hi[k])
                else:
                    assert (right.lo[k], right.hi[k]) == (-limit.hi[k], -limit.lo[k])


# ---- every kind --------------------------------------------------------------------------------------------

def _all_motions():
    for seed in SEEDS:
        for kind in motion.KINDS:
            yield kind, getattr(motion, kind)(np.random.default_rng(seed), 75)
        yield "combination", motion.sample_motion(np.random.default_rng(100 + seed), 150)


def test_joint_limits_hold_for_every_kind():
    for kind, mot in _all_motions():
        for name, limit in motion.JOINT_LIMITS_DEG.items():
            euler = _euler(mot.pose, name)
            assert np.all(euler >= np.array(limit.lo) - 1e-3) and np.all(euler <= np.array(limit.hi) + 1e-3), \
                (kind, name, euler.min(0), euler.max(0))


def test_motion_is_smooth_including_transitions():
    bound = 150.0  # m/s², joint accelerations; a 17 cm jump between two frames at 30 fps would exceed it
    transitions = 0
    for kind, mot in _all_motions():
        assert mot.pose.dtype == np.float32 and mot.trans.dtype == np.float32 and mot.fps == FPS
        assert _max_accel(_fk(mot.pose, mot.trans), FPS) < bound, kind
        transitions += np.count_nonzero(mot.kind[1:] != mot.kind[:-1])
    assert transitions >= 3  # the combinations did change kind mid-sequence
    # Control: the same kinds glued without a cross-fade jump, and the bound sees it.
    first = motion.walk(np.random.default_rng(0), 20)
    second = motion.squat(np.random.default_rng(0), 20)
    glued = _fk(np.concatenate([first.pose, second.pose]), np.concatenate([first.trans, second.trans]))
    assert _max_accel(glued, FPS) > bound


def test_same_seed_same_motion_other_seed_other_motion():
    for kind in motion.KINDS + ("sample_motion",):
        make = getattr(motion, kind)
        a, b = make(np.random.default_rng(7), 40), make(np.random.default_rng(7), 40)
        c = make(np.random.default_rng(8), 40)
        assert np.array_equal(a.pose, b.pose) and np.array_equal(a.trans, b.trans) and np.array_equal(a.kind, b.kind)
        assert not np.allclose(a.pose, c.pose)


def test_standing_arms_hang_at_the_sides():
    mot = motion.squat(np.random.default_rng(1), 5)  # the first frames stand still
    joints = _fk(mot.pose, mot.trans)[0]
    yaw = np.radians(_root_yaw_deg(mot.pose)[0])
    left_axis = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder, wrist = joints[J[f"{side}_shoulder"]], joints[J[f"{side}_wrist"]]
        assert shoulder[1] - wrist[1] > 0.45
        assert sign * (wrist - joints[J["pelvis"]]) @ left_axis > 0.1  # beside the body, not across it
    # The T-pose arms are lowered about z by 70-80 deg: negative for the left arm, positive for the right.
    assert -80.5 < _euler(mot.pose, "left_shoulder")[0, 2] < -69.5
    assert 69.5 < _euler(mot.pose, "right_shoulder")[0, 2] < 80.5


# ---- what each kind does -------------------------------------------------------------------------------------

def test_walk_feet_alternate_and_root_moves_at_stride_times_cadence():
    speed, seconds = 1.2, 4.0
    mot = motion.walk(np.random.default_rng(3), int(seconds * FPS), speed=speed, heading=0.0)
    joints = _fk(mot.pose, mot.trans)
    root_velocity = np.diff(mot.trans, axis=0).mean(0) * FPS
    np.testing.assert_allclose(root_velocity, [0.0, 0.0, speed], atol=0.03 * speed)

    height, point, _ = _soles(joints)
    lower = np.argmin(height, axis=1)
    # Footprints: where the lower foot stands each time support passes to the other foot.
    switches = np.nonzero(np.diff(lower))[0] + 1
    assert len(switches) >= 5
    feet = lower[switches]
    assert np.all(feet[1:] != feet[:-1])  # left, right, left, ...
    prints = point[switches, feet, 2]
    step_length = np.diff(prints).mean()
    steps_per_s = (len(switches) - 1) / ((switches[-1] - switches[0]) / FPS)
    assert step_length * steps_per_s == pytest.approx(speed, rel=0.06)
    assert 0.5 < step_length < 0.85 and 1.5 < steps_per_s < 2.4  # human walking


def test_walk_lower_foot_does_not_skate():
    for seed in SEEDS:
        mot = motion.walk(np.random.default_rng(seed), 90, speed=1.3)
        joints = _fk(mot.pose, mot.trans)
        height, _, use_toe = _soles(joints)
        lower = np.argmin(height, axis=1)[:-1]
        frames = np.arange(len(lower))
        ankle = joints[:, [J["left_ankle"], J["right_ankle"]]][..., [0, 2]]
        toe = joints[:, [J["left_foot"], J["right_foot"]]][..., [0, 2]]
        # Speed of the same point (heel or ball) of the lower foot from one frame to the next.
        point_speed = np.where(use_toe[:-1, :, None], np.diff(toe, axis=0), np.diff(ankle, axis=0))
        skate = np.linalg.norm(point_speed[frames, lower], axis=-1) * FPS
        assert np.all(height[frames, lower] < 0.02)  # walking: a foot is always on the floor
        assert skate.mean() < 0.08 * 1.3 and np.median(skate) < 0.03, (seed, skate.mean(), np.median(skate))


def test_run_has_flight_phases_and_moves_at_its_speed():
    speed = 3.0
    mot = motion.run(np.random.default_rng(2), 90, speed=speed)
    joints = _fk(mot.pose, mot.trans)
    height, _, _ = _soles(joints)
    airborne = height.min(axis=1) > 0.02
    assert 0.1 < airborne.mean() < 0.6
    assert np.diff(mot.trans[:, 2]).mean() * FPS == pytest.approx(speed, rel=0.03)
    # Runners carry their forearms bent: the left elbow flexes with y < 0, the right with y > 0.
    assert _euler(mot.pose, "left_elbow")[:, 2].max() < -50.0 and _euler(mot.pose, "right_elbow")[:, 2].min() > 50.0


def test_jump_goes_up_and_comes_down_ballistically():
    height = 0.3
    mot = motion.jump(np.random.default_rng(4), 120, height=height)
    joints = _fk(mot.pose, mot.trans)
    pelvis_y = joints[:, J["pelvis"], 1]
    standing = motion.STANDING_PELVIS_HEIGHT
    assert pelvis_y.max() > standing + height and pelvis_y.min() < standing - 0.1
    assert abs(pelvis_y[-1] - pelvis_y[0]) < 0.05  # back down
    soles, _, _ = _soles(joints)
    airborne = soles.min(axis=1) > 0.03
    inside = airborne[:-2] & airborne[1:-1] & airborne[2:]  # second differences wholly inside a flight
    assert inside.sum() >= 4
    accel = (pelvis_y[2:] - 2 * pelvis_y[1:-1] + pelvis_y[:-2]) * FPS ** 2
    np.testing.assert_allclose(accel[inside], -motion.GRAVITY, atol=0.05 * motion.GRAVITY)


def test_squat_lowers_pelvis_while_knees_flex():
    depth = 0.4
    mot = motion.squat(np.random.default_rng(5), 120, depth=depth)
    pelvis_y = _fk(mot.pose, mot.trans)[:, J["pelvis"], 1]
    knee = (_euler(mot.pose, "left_knee")[:, 0] + _euler(mot.pose, "right_knee")[:, 0]) / 2
    assert pelvis_y.min() == pytest.approx(motion.STANDING_PELVIS_HEIGHT - 0.01 - depth, abs=0.01)
    assert knee[np.argmin(pelvis_y)] > 80.0 and knee[np.argmax(pelvis_y)] < 20.0
    assert np.corrcoef(pelvis_y, knee)[0, 1] < -0.95
    feet = _fk(mot.pose, mot.trans)[:, [J["left_ankle"], J["right_ankle"]]]
    assert np.abs(feet - feet[0]).max() < 0.005  # planted


@pytest.mark.parametrize("side", ["left", "right"])
def test_wave_raises_one_wrist_above_the_shoulder_and_swings_it(side):
    frequency = 2.0
    mot = motion.wave(np.random.default_rng(6), 150, side=side, frequency=frequency)
    joints = _fk(mot.pose, mot.trans)
    other = "right" if side == "left" else "left"
    above = joints[:, J[f"{side}_wrist"], 1] > joints[:, J[f"{side}_shoulder"], 1]
    assert above.mean() > 0.4 and not above.all()  # raised for waving, lowered in between
    assert np.all(joints[:, J[f"{other}_wrist"], 1] < joints[:, J[f"{other}_shoulder"], 1] - 0.3)
    # While raised, the hand swings side to side at the waving frequency.
    sideways = joints[above, J[f"{side}_wrist"], 0] - joints[above, J[f"{side}_elbow"], 0]
    spectrum = np.abs(np.fft.rfft(sideways - sideways.mean(), n=1024))
    peak_hz = np.fft.rfftfreq(1024, 1.0 / FPS)[np.argmax(spectrum)]
    assert peak_hz == pytest.approx(frequency, abs=0.25)
    assert np.ptp(sideways) > 0.1


@pytest.mark.parametrize("angle_deg", [-150.0, 60.0, 120.0])
def test_turn_changes_root_yaw_by_the_angle(angle_deg):
    mot = motion.turn(np.random.default_rng(7), 120, angle=np.radians(angle_deg), heading=0.3)
    yaw = _root_yaw_deg(mot.pose)
    assert yaw[0] == pytest.approx(np.degrees(0.3), abs=1.0)
    assert yaw[-1] - yaw[0] == pytest.approx(angle_deg, abs=2.0)
    assert np.abs(np.diff(mot.trans[:, [0, 2]], axis=0)).sum(0).max() < 0.5 * 120 / FPS  # slow, not walking off


def test_sample_motion_respects_kinds_and_rejects_unknown_ones():
    mot = motion.sample_motion(np.random.default_rng(9), 150, kinds=("wave", "squat"))
    assert set(mot.kind) <= {"wave", "squat"} and mot.num_frames == 150
    with pytest.raises(ValueError, match="fly"):
        motion.sample_motion(np.random.default_rng(9), 30, kinds=("fly",))


# ---- BVH --------------------------------------------------------------------------------------------------

# The CMU conversions' hierarchy (31 joints): (name, parent). Offsets are chosen per test.
CMU_TREE = [
    ("Hips", None), ("LHipJoint", "Hips"), ("LeftUpLeg", "LHipJoint"), ("LeftLeg", "LeftUpLeg"),
    ("LeftFoot", "LeftLeg"), ("LeftToeBase", "LeftFoot"), ("RHipJoint", "Hips"), ("RightUpLeg", "RHipJoint"),
    ("RightLeg", "RightUpLeg"), ("RightFoot", "RightLeg"), ("RightToeBase", "RightFoot"), ("LowerBack", "Hips"),
    ("Spine", "LowerBack"), ("Spine1", "Spine"), ("Neck", "Spine1"), ("Neck1", "Neck"), ("Head", "Neck1"),
    ("LeftShoulder", "Spine1"), ("LeftArm", "LeftShoulder"), ("LeftForeArm", "LeftArm"), ("LeftHand", "LeftForeArm"),
    ("LeftFingerBase", "LeftHand"), ("LeftHandIndex1", "LeftFingerBase"), ("LThumb", "LeftHand"),
    ("RightShoulder", "Spine1"), ("RightArm", "RightShoulder"), ("RightForeArm", "RightArm"),
    ("RightHand", "RightForeArm"), ("RightFingerBase", "RightHand"), ("RightHandIndex1", "RightFingerBase"),
    ("RThumb", "RightHand"),
]
CMU_NAMES = [n for n, _ in CMU_TREE]
CMU_PARENT = dict(CMU_TREE)
CMU_UNIT = 0.0254 / 0.45  # metres per CMU BVH unit


def _aligned_cmu_offsets():
    """CMU-layout offsets (CMU units) whose bones point exactly along the SMPL T-pose bones of REST_JOINTS."""
    r = {n: motion.REST_JOINTS[J[n]] / CMU_UNIT for n in SMPL_24}
    off = {"Hips": np.zeros(3), "LowerBack": np.zeros(3), "Spine": r["spine2"] - r["spine1"],
           "Spine1": r["spine3"] - r["spine2"], "Neck": np.zeros(3), "Neck1": 0.5 * (r["head"] - r["neck"]),
           "Head": 0.5 * (r["head"] - r["neck"])}
    for side, s in (("left", "Left"), ("right", "Right")):
        off.update({
            f"{s[0]}HipJoint": np.zeros(3), f"{s}UpLeg": r[f"{side}_hip"] - r["pelvis"],
            f"{s}Leg": r[f"{side}_knee"] - r[f"{side}_hip"], f"{s}Foot": r[f"{side}_ankle"] - r[f"{side}_knee"],
            f"{s}ToeBase": r[f"{side}_foot"] - r[f"{side}_ankle"], f"{s}Shoulder": np.zeros(3),
            f"{s}Arm": r[f"{side}_shoulder"] - r[f"{side}_collar"],
            f"{s}ForeArm": r[f"{side}_elbow"] - r[f"{side}_shoulder"],
            f"{s}Hand": r[f"{side}_wrist"] - r[f"{side}_elbow"], f"{s}FingerBase": np.zeros(3),
            f"{s}HandIndex1": r[f"{side}_hand"] - r[f"{side}_wrist"],
            f"{s[0]}Thumb": 0.5 * (r[f"{side}_hand"] - r[f"{side}_wrist"]) + (0, 0, 0.5)})
    return off


def _cmu_like_offsets():
    """A skeleton shaped like the CMU conversions' rest pose (our own numbers): legs splayed 20 deg outwards, hips
    below and in front of the root, collar bones rising to the shoulders, arms straight out along x."""
    off = {"Hips": np.zeros(3), "LowerBack": np.zeros(3), "Spine": np.array([0.0, 2.2, -0.05]),
           "Spine1": np.array([0.05, 2.2, -0.2]), "Neck": np.zeros(3), "Neck1": np.array([-0.1, 1.45, 0.3]),
           "Head": np.array([0.15, 1.45, -0.3])}
    for s, sign in (("Left", 1.0), ("Right", -1.0)):
        off.update({
            f"{s[0]}HipJoint": np.zeros(3), f"{s}UpLeg": np.array([1.8 * sign, -1.75, 0.85]),
            f"{s}Leg": np.array([2.4 * sign, -6.6, 0.0]), f"{s}Foot": np.array([2.5 * sign, -6.9, 0.0]),
            f"{s}ToeBase": np.array([0.2 * sign, -0.5, 2.0]), f"{s}Shoulder": np.zeros(3),
            f"{s}Arm": np.array([3.3 * sign, 0.9, 0.1]), f"{s}ForeArm": np.array([5.0 * sign, 0.0, 0.0]),
            f"{s}Hand": np.array([3.4 * sign, 0.0, 0.0]), f"{s}FingerBase": np.zeros(3),
            f"{s}HandIndex1": np.array([0.8 * sign, 0.0, 0.0]), f"{s[0]}Thumb": np.array([0.6 * sign, 0.0, 0.6])})
    return off


def _write_cmu_bvh(path, offsets, root_pos, angles, frame_time=1.0 / FPS):
    """A BVH file in the CMU conversions' layout: 6 root channels, then 3 per joint, all "Z Y X" rotations in
    degrees; angles: {joint: [F, 3] (z, y, x)}, missing joints stay at 0; root_pos: [F, 3] CMU units."""
    children = {n: [c for c, p in CMU_TREE if p == n] for n in CMU_NAMES}
    lines, order = ["HIERARCHY"], []

    def emit(name, depth):
        pad = "\t" * depth
        order.append(name)
        lines.append(f"{pad}{'ROOT' if CMU_PARENT[name] is None else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(pad + "\tOFFSET " + " ".join(f"{v:.6f}" for v in offsets[name]))
        lines.append(pad + ("\tCHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation"
                            if CMU_PARENT[name] is None else "\tCHANNELS 3 Zrotation Yrotation Xrotation"))
        for child in children[name]:
            emit(child, depth + 1)
        if not children[name]:
            lines.extend([pad + "\tEnd Site", pad + "\t{", pad + "\t\tOFFSET 0.000000 0.000000 1.000000", pad + "\t}"])
        lines.append(pad + "}")

    emit("Hips", 0)
    num_frames = len(root_pos)
    lines += ["MOTION", f"Frames: {num_frames}", f"Frame Time: {frame_time:.6f}"]
    for f in range(num_frames):
        row = list(root_pos[f])
        for name in order:
            row += list(angles.get(name, np.zeros((num_frames, 3)))[f])
        lines.append(" ".join(f"{v:.6f}" for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path


def _bvh_rot(angles_zyx_deg):
    """A BVH "Zrotation Yrotation Xrotation" triple: R = R_z @ R_y @ R_x (intrinsic, in the listed order)."""
    return Rotation.from_euler("ZYX", angles_zyx_deg, degrees=True)


def _random_angles(rng, num_frames, names, scale=40.0):
    return {n: rng.uniform(-scale, scale, size=(num_frames, 3)) for n in names}


def test_cmu_bvh_with_known_euler_angles_gives_the_expected_axis_angles(tmp_path):
    rng = np.random.default_rng(0)
    num_frames = 4
    # Neck1 and the finger bases have no SMPL twin; at zero each SMPL joint is exactly one CMU joint (the left hip
    # also carries LHipJoint's rotation).
    driven = [n for n in CMU_NAMES if n not in ("Neck1", "LeftFingerBase", "RightFingerBase")]
    angles = _random_angles(rng, num_frames, driven)
    root_pos = rng.uniform(-20, 20, size=(num_frames, 3)) + (0, 17, 0)
    path = _write_cmu_bvh(tmp_path / "01_01.bvh", _aligned_cmu_offsets(), root_pos, angles)
    mot = motion.load_bvh(path)
    assert mot.num_frames == num_frames and mot.fps == FPS and set(mot.kind) == {"bvh"}
    expected_sources = {smpl: [cmu] for smpl, cmu in motion.CMU_BVH_TO_SMPL.items()}
    expected_sources["left_hip"] = ["LHipJoint", "LeftUpLeg"]
    expected_sources["right_hip"] = ["RHipJoint", "RightUpLeg"]
    pose = mot.pose.reshape(num_frames, 24, 3).astype(np.float64)
    for smpl, sources in expected_sources.items():
        for f in range(num_frames):
            expected = Rotation.identity()
            for cmu in sources:
                expected = expected * _bvh_rot(angles.get(cmu, np.zeros((num_frames, 3)))[f])
            np.testing.assert_allclose(pose[f, J[smpl]], expected.as_rotvec(), atol=2e-5, err_msg=smpl)
    np.testing.assert_allclose(mot.trans, root_pos * CMU_UNIT - motion.REST_JOINTS[J["pelvis"]], atol=1e-5)


def test_cmu_rest_pose_and_motion_keep_bone_directions(tmp_path):
    """The CMU rest pose is not SMPL's T-pose; retargeted SMPL bones must point where the BVH's bones point."""
    rng = np.random.default_rng(1)
    num_frames = 3
    offsets = _cmu_like_offsets()
    angles = _random_angles(rng, num_frames, CMU_NAMES, scale=30.0)
    for name in CMU_NAMES:
        angles[name][0] = 0.0  # frame 0: the file's rest pose
    root_pos = rng.uniform(-10, 10, size=(num_frames, 3)) + (0, 17, 0)
    path = _write_cmu_bvh(tmp_path / "cmu_like.bvh", offsets, root_pos, angles)
    mot = motion.load_bvh(path)
    smpl_joints = _fk(mot.pose, mot.trans)

    # The BVH's own joint positions, by its own chain, in metres.
    bvh = np.zeros((num_frames, len(CMU_NAMES), 3))
    for f in range(num_frames):
        glob = {}
        for k, name in enumerate(CMU_NAMES):
            parent = CMU_PARENT[name]
            rot = _bvh_rot(angles[name][f])
            if parent is None:
                glob[name], bvh[f, k] = rot, root_pos[f] + offsets[name]
            else:
                glob[name] = glob[parent] * rot
                bvh[f, k] = bvh[f, CMU_NAMES.index(parent)] + glob[parent].apply(offsets[name])
    bvh *= CMU_UNIT
    # SMPL bone (joint -> child) and the BVH points it should follow.
    bones = {"left_hip": ("LeftUpLeg", "LeftLeg"), "left_knee": ("LeftLeg", "LeftFoot"),
             "left_ankle": ("LeftFoot", "LeftToeBase"), "spine1": ("LowerBack", "Spine"),
             "spine2": ("Spine", "Spine1"), "neck": ("Neck", "Head"), "left_collar": ("LeftShoulder", "LeftArm"),
             "left_shoulder": ("LeftArm", "LeftForeArm"), "left_elbow": ("LeftForeArm", "LeftHand"),
             "left_wrist": ("LeftHand", "LeftHandIndex1")}
    bones.update({"right" + k[4:]: tuple(n.replace("Left", "Right") for n in v)
                  for k, v in bones.items() if k.startswith("left")})
    for smpl, (a, b) in bones.items():
        child = [c for c in range(24) if SMPL_PARENTS[c] == J[smpl]][0]
        got = smpl_joints[:, child] - smpl_joints[:, J[smpl]]
        want = bvh[:, CMU_NAMES.index(b)] - bvh[:, CMU_NAMES.index(a)]
        cos = np.sum(got * want, -1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
        assert np.all(cos > 1 - 1e-6), (smpl, cos)
    # End joints (head, toes, hands) have no bone to aim; at rest they must not turn against their parents.
    rest_pose = mot.pose.reshape(num_frames, 24, 3)[0]
    for leaf in ("head", "left_foot", "right_foot", "left_hand", "right_hand"):
        assert np.linalg.norm(rest_pose[J[leaf]]) < 1e-5, leaf
    # At rest the SMPL legs splay like the CMU skeleton's (about 20 deg), and the pelvis sits on the BVH root.
    thigh = smpl_joints[0, J["left_knee"]] - smpl_joints[0, J["left_hip"]]
    assert np.degrees(np.arctan2(thigh[0], -thigh[1])) == pytest.approx(np.degrees(np.arctan2(2.4, 6.6)), abs=0.1)
    np.testing.assert_allclose(smpl_joints[:, J["pelvis"]], bvh[:, 0], atol=1e-5)


def test_cmu_rest_pose_maps_onto_smpl_bones_by_the_smallest_turn(tmp_path):
    """A twist of the CMU thigh about its own (splayed) axis stays a twist about that axis on the SMPL thigh: the
    SMPL rotation is the BVH's, applied after the smallest turn taking SMPL's rest thigh onto the BVH's."""
    offsets = _cmu_like_offsets()
    thigh = offsets["LeftLeg"] / np.linalg.norm(offsets["LeftLeg"])
    twist = Rotation.from_rotvec(np.radians(70.0) * thigh)
    angles = {"LeftUpLeg": twist.as_euler("ZYX", degrees=True)[None]}
    mot = motion.load_bvh(_write_cmu_bvh(tmp_path / "twist.bvh", offsets, np.array([[0.0, 17.0, 0.0]]), angles))
    smpl_thigh = motion.REST_JOINTS[J["left_knee"]] - motion.REST_JOINTS[J["left_hip"]]
    rest_turn, _ = Rotation.align_vectors([thigh], [smpl_thigh])  # one pair: scipy returns the smallest rotation
    got = Rotation.from_rotvec(mot.pose.reshape(24, 3)[J["left_hip"]].astype(np.float64))
    assert ((twist * rest_turn).inv() * got).magnitude() < 1e-5


def test_bvh_is_resampled_to_30_fps(tmp_path):
    """120 fps, root turning at a constant 90 deg/s and moving at 1 m/s: 30 fps samples fall on the same lines."""
    source_fps, seconds = 120, 0.5
    num_frames = int(source_fps * seconds) + 1
    times = np.arange(num_frames) / source_fps
    angles = {"Hips": np.stack([np.zeros(num_frames), 90.0 * times, np.zeros(num_frames)], 1)}
    root_pos = np.stack([np.zeros(num_frames), np.full(num_frames, 17.0), times / CMU_UNIT], 1)
    path = _write_cmu_bvh(tmp_path / "fast.bvh", _aligned_cmu_offsets(), root_pos, angles,
                          frame_time=1.0 / source_fps)
    mot = motion.load_bvh(path, fps=FPS)
    out_times = np.arange(mot.num_frames) / FPS
    assert mot.num_frames == int(seconds * FPS) + 1
    np.testing.assert_allclose(mot.pose[:, :3], np.stack([0 * out_times, np.radians(90.0) * out_times,
                                                          0 * out_times], 1), atol=1e-5)
    np.testing.assert_allclose(mot.trans[:, 2] + motion.REST_JOINTS[J["pelvis"], 2], out_times, atol=1e-5)


def test_z_up_bvh_with_axes_matches_the_y_up_file(tmp_path):
    rng = np.random.default_rng(2)
    num_frames = 2
    offsets = _cmu_like_offsets()
    angles = _random_angles(rng, num_frames, CMU_NAMES, scale=30.0)
    root_pos = rng.uniform(-10, 10, size=(num_frames, 3)) + (0, 17, 0)
    y_up = motion.load_bvh(_write_cmu_bvh(tmp_path / "y.bvh", offsets, root_pos, angles))
    # The same take in a z-up frame facing -y: p_zup = A^T p_yup, R_zup = A^T R_yup A.
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # z-up -> y-up
    to_zup = Rotation.from_matrix(axes.T)
    z_offsets = {n: axes.T @ o for n, o in offsets.items()}
    z_angles = {n: (to_zup * _bvh_rot(a) * to_zup.inv()).as_euler("ZYX", degrees=True) for n, a in angles.items()}
    z_up = motion.load_bvh(_write_cmu_bvh(tmp_path / "z.bvh", z_offsets, root_pos @ axes, z_angles), axes=axes)
    np.testing.assert_allclose(_fk(z_up.pose, z_up.trans), _fk(y_up.pose, y_up.trans), atol=1e-4)


def test_write_bvh_then_load_bvh_round_trips(tmp_path):
    mot = motion.sample_motion(np.random.default_rng(3), 40)
    back = motion.load_bvh(motion.write_bvh(tmp_path / "sim.bvh", mot))
    rel = Rotation.from_rotvec(mot.pose.reshape(-1, 3)).inv() * Rotation.from_rotvec(back.pose.reshape(-1, 3))
    assert rel.magnitude().max() < 1e-5
    np.testing.assert_allclose(back.trans, mot.trans, atol=1e-5)


def test_bad_bvh_files_raise_errors_naming_file_and_field(tmp_path):
    good = _write_cmu_bvh(tmp_path / "good.bvh", _cmu_like_offsets(), np.zeros((2, 3)), {}).read_text()
    bad_count = tmp_path / "count.bvh"
    bad_count.write_text(good.replace("Frames: 2", "Frames: 3"))
    with pytest.raises(ValueError, match=r"count\.bvh.*Frames: 3.*2 frame lines"):
        motion.load_bvh(bad_count)
    short_row = tmp_path / "row.bvh"
    short_row.write_text(good.rstrip("\n").rsplit(" ", 1)[0] + "\n")
    with pytest.raises(ValueError, match=r"row\.bvh.*frame 1.*expected 96"):
        motion.load_bvh(short_row)
    renamed = tmp_path / "names.bvh"
    renamed.write_text(good.replace("LeftForeArm", "LeftElbow"))
    with pytest.raises(ValueError, match=r"names\.bvh.*LeftForeArm"):
        motion.load_bvh(renamed)
    no_motion = tmp_path / "nomotion.bvh"
    no_motion.write_text(good.split("MOTION")[0])
    with pytest.raises(ValueError, match=r"nomotion\.bvh.*MOTION"):
        motion.load_bvh(no_motion)
