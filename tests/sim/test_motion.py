"""Procedural motion, checked against references written here: a float64 forward kinematics with scipy rotations,
closed forms (ballistic flight, stride x cadence) and scipy's Euler decompositions."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mhr_tf.body.joints import SMPL_24, SMPL_PARENTS
from mhr_tf.sim import motion, skeleton

J = {name: i for i, name in enumerate(SMPL_24)}
FPS = 30
SEEDS = range(10)


# ---- references ---------------------------------------------------------------------------------------------

def _fk(pose, trans, rest=skeleton.REST_JOINTS):
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
    limit = skeleton.JOINT_LIMITS_DEG[name]
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
    toe_height = skeleton.REST_JOINTS[J["left_foot"], 1] - skeleton.GROUND_Y_REST
    ankle_h, toe_h = ankle[..., 1] - skeleton.ANKLE_HEIGHT, toe[..., 1] - toe_height
    use_toe = toe_h < ankle_h
    return np.minimum(ankle_h, toe_h), np.where(use_toe[..., None], toe, ankle), use_toe


# ---- conventions ---------------------------------------------------------------------------------------------

def test_rest_skeleton_follows_smpl_t_pose_axes():
    rest = skeleton.REST_JOINTS
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
    joints = skeleton.forward_kinematics(pose, skeleton.REST_JOINTS, SMPL_PARENTS)
    shoulder = skeleton.REST_JOINTS[J["left_shoulder"]]
    arm = skeleton.REST_JOINTS[J["left_wrist"]] - shoulder
    expected = shoulder + np.array([arm[1], -arm[0], arm[2]])
    np.testing.assert_allclose(joints[0, J["left_wrist"]], expected, atol=1e-12)
    mot = motion.walk(np.random.default_rng(0), 12)
    np.testing.assert_allclose(skeleton.forward_kinematics(mot.pose, skeleton.REST_JOINTS, SMPL_PARENTS, mot.trans),
                               _fk(mot.pose, mot.trans), atol=1e-9)


def test_limit_table_signs_move_joints_the_named_way():
    """Knee flexion (+x) takes the ankle back, the elbow's allowed flexion brings the wrist forward on both sides,
    and the standing arm angle (-z left, +z right) lowers each arm."""
    table = skeleton.JOINT_LIMITS_DEG
    for side, sign in (("left", 1.0), ("right", -1.0)):
        knee, elbow = table[f"{side}_knee"], table[f"{side}_elbow"]
        assert knee.lo[knee.order.index("X")] == 0.0  # the knee flexes one way only
        y = elbow.order.index("Y")
        assert (elbow.hi[y] == 0.0) if sign > 0 else (elbow.lo[y] == 0.0)  # so does the elbow

        def moved(joint, angles_deg, target):
            pose = np.zeros((1, 24, 3))
            order = table[joint].order
            pose[0, J[joint]] = Rotation.from_euler(order, angles_deg, degrees=True).as_rotvec()
            return _fk(pose, np.zeros((1, 3)))[0, J[target]] - skeleton.REST_JOINTS[J[target]]

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
    for name, limit in skeleton.JOINT_LIMITS_DEG.items():
        if name.startswith("left_"):
            right = skeleton.JOINT_LIMITS_DEG["right_" + name[5:]]
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
        for name, limit in skeleton.JOINT_LIMITS_DEG.items():
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
    standing = skeleton.STANDING_PELVIS_HEIGHT
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
    assert pelvis_y.min() == pytest.approx(skeleton.STANDING_PELVIS_HEIGHT - 0.01 - depth, abs=0.01)
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
