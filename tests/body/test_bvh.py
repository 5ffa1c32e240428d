"""BVH import and export, checked against BVH files written here by hand in the CMU conversions' layout, a float64
forward kinematics with scipy rotations, and scipy's Euler decompositions. Motions and the rest skeleton come from
the simulator."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mhr_tf.body import bvh
from mhr_tf.body.joints import SMPL_24, SMPL_PARENTS
from mhr_tf.sim import motion
from mhr_tf.sim.skeleton import REST_JOINTS as REST

J = {name: i for i, name in enumerate(SMPL_24)}
FPS = 30


def _fk(pose, trans, rest=REST):
    """[T, 24, 3] world joints: SMPL's kinematic chain in float64, written independently of the modules."""
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
    r = {n: REST[J[n]] / CMU_UNIT for n in SMPL_24}
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
    pose, trans = bvh.load_bvh(path, REST)
    assert pose.shape == (num_frames, 72) and trans.shape == (num_frames, 3)
    expected_sources = {smpl: [cmu] for smpl, cmu in bvh.CMU_BVH_TO_SMPL.items()}
    expected_sources["left_hip"] = ["LHipJoint", "LeftUpLeg"]
    expected_sources["right_hip"] = ["RHipJoint", "RightUpLeg"]
    pose = pose.reshape(num_frames, 24, 3)
    for smpl, sources in expected_sources.items():
        for f in range(num_frames):
            expected = Rotation.identity()
            for cmu in sources:
                expected = expected * _bvh_rot(angles.get(cmu, np.zeros((num_frames, 3)))[f])
            np.testing.assert_allclose(pose[f, J[smpl]], expected.as_rotvec(), atol=2e-5, err_msg=smpl)
    np.testing.assert_allclose(trans, root_pos * CMU_UNIT - REST[J["pelvis"]], atol=1e-5)


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
    pose, trans = bvh.load_bvh(path, REST)
    smpl_joints = _fk(pose, trans)

    # The BVH's own joint positions, by its own chain, in metres.
    posed = np.zeros((num_frames, len(CMU_NAMES), 3))
    for f in range(num_frames):
        glob = {}
        for k, name in enumerate(CMU_NAMES):
            parent = CMU_PARENT[name]
            rot = _bvh_rot(angles[name][f])
            if parent is None:
                glob[name], posed[f, k] = rot, root_pos[f] + offsets[name]
            else:
                glob[name] = glob[parent] * rot
                posed[f, k] = posed[f, CMU_NAMES.index(parent)] + glob[parent].apply(offsets[name])
    posed *= CMU_UNIT
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
        want = posed[:, CMU_NAMES.index(b)] - posed[:, CMU_NAMES.index(a)]
        cos = np.sum(got * want, -1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
        assert np.all(cos > 1 - 1e-6), (smpl, cos)
    # End joints (head, toes, hands) have no bone to aim; at rest they must not turn against their parents.
    rest_pose = pose.reshape(num_frames, 24, 3)[0]
    for leaf in ("head", "left_foot", "right_foot", "left_hand", "right_hand"):
        assert np.linalg.norm(rest_pose[J[leaf]]) < 1e-5, leaf
    # At rest the SMPL legs splay like the CMU skeleton's (about 20 deg), and the pelvis sits on the BVH root.
    thigh = smpl_joints[0, J["left_knee"]] - smpl_joints[0, J["left_hip"]]
    assert np.degrees(np.arctan2(thigh[0], -thigh[1])) == pytest.approx(np.degrees(np.arctan2(2.4, 6.6)), abs=0.1)
    np.testing.assert_allclose(smpl_joints[:, J["pelvis"]], posed[:, 0], atol=1e-5)


def test_cmu_rest_pose_maps_onto_smpl_bones_by_the_smallest_turn(tmp_path):
    """A twist of the CMU thigh about its own (splayed) axis stays a twist about that axis on the SMPL thigh: the
    SMPL rotation is the BVH's, applied after the smallest turn taking SMPL's rest thigh onto the BVH's."""
    offsets = _cmu_like_offsets()
    thigh = offsets["LeftLeg"] / np.linalg.norm(offsets["LeftLeg"])
    twist = Rotation.from_rotvec(np.radians(70.0) * thigh)
    angles = {"LeftUpLeg": twist.as_euler("ZYX", degrees=True)[None]}
    path = _write_cmu_bvh(tmp_path / "twist.bvh", offsets, np.array([[0.0, 17.0, 0.0]]), angles)
    pose, _ = bvh.load_bvh(path, REST)
    smpl_thigh = REST[J["left_knee"]] - REST[J["left_hip"]]
    rest_turn, _ = Rotation.align_vectors([thigh], [smpl_thigh])  # one pair: scipy returns the smallest rotation
    got = Rotation.from_rotvec(pose.reshape(24, 3)[J["left_hip"]])
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
    pose, trans = bvh.load_bvh(path, REST, fps=FPS)
    out_times = np.arange(len(pose)) / FPS
    assert len(pose) == int(seconds * FPS) + 1
    np.testing.assert_allclose(pose[:, :3], np.stack([0 * out_times, np.radians(90.0) * out_times,
                                                     0 * out_times], 1), atol=1e-5)
    np.testing.assert_allclose(trans[:, 2] + REST[J["pelvis"], 2], out_times, atol=1e-5)


def test_z_up_bvh_with_axes_matches_the_y_up_file(tmp_path):
    rng = np.random.default_rng(2)
    num_frames = 2
    offsets = _cmu_like_offsets()
    angles = _random_angles(rng, num_frames, CMU_NAMES, scale=30.0)
    root_pos = rng.uniform(-10, 10, size=(num_frames, 3)) + (0, 17, 0)
    y_up = bvh.load_bvh(_write_cmu_bvh(tmp_path / "y.bvh", offsets, root_pos, angles), REST)
    # The same take in a z-up frame facing -y: p_zup = A^T p_yup, R_zup = A^T R_yup A.
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # z-up -> y-up
    to_zup = Rotation.from_matrix(axes.T)
    z_offsets = {n: axes.T @ o for n, o in offsets.items()}
    z_angles = {n: (to_zup * _bvh_rot(a) * to_zup.inv()).as_euler("ZYX", degrees=True) for n, a in angles.items()}
    z_up = bvh.load_bvh(_write_cmu_bvh(tmp_path / "z.bvh", z_offsets, root_pos @ axes, z_angles), REST, axes=axes)
    np.testing.assert_allclose(_fk(*z_up), _fk(*y_up), atol=1e-4)


def test_write_bvh_then_load_bvh_gives_back_the_joint_positions(tmp_path):
    mot = motion.sample_motion(np.random.default_rng(3), 40)
    pose, trans = mot.pose.astype(np.float64), mot.trans.astype(np.float64)
    path = bvh.write_bvh(tmp_path / "sim.bvh", pose, trans, REST, fps=mot.fps)
    back_pose, back_trans = bvh.load_bvh(path, REST, fps=mot.fps)
    assert back_pose.shape == pose.shape
    np.testing.assert_allclose(_fk(back_pose, back_trans), _fk(pose, trans), rtol=0, atol=1e-6)


def test_write_bvh_round_trips_another_rest_skeleton(tmp_path):
    """A body's own J(betas) (here: the reference skeleton scaled and shifted) round-trips with its own offsets and
    root, as predictions exported for that body must."""
    rest = REST * 1.1 + np.array([0.01, 0.05, -0.02])
    mot = motion.sample_motion(np.random.default_rng(4), 12)
    pose, trans = mot.pose.astype(np.float64), mot.trans.astype(np.float64)
    back = bvh.load_bvh(bvh.write_bvh(tmp_path / "body.bvh", pose, trans, rest), rest)
    np.testing.assert_allclose(_fk(*back, rest=rest), _fk(pose, trans, rest=rest), rtol=0, atol=1e-6)


def test_bad_bvh_files_raise_errors_naming_file_and_field(tmp_path):
    good = _write_cmu_bvh(tmp_path / "good.bvh", _cmu_like_offsets(), np.zeros((2, 3)), {}).read_text()
    bad_count = tmp_path / "count.bvh"
    bad_count.write_text(good.replace("Frames: 2", "Frames: 3"))
    with pytest.raises(ValueError, match=r"count\.bvh.*Frames: 3.*2 frame lines"):
        bvh.load_bvh(bad_count, REST)
    short_row = tmp_path / "row.bvh"
    short_row.write_text(good.rstrip("\n").rsplit(" ", 1)[0] + "\n")
    with pytest.raises(ValueError, match=r"row\.bvh.*frame 1.*expected 96"):
        bvh.load_bvh(short_row, REST)
    renamed = tmp_path / "names.bvh"
    renamed.write_text(good.replace("LeftForeArm", "LeftElbow"))
    with pytest.raises(ValueError, match=r"names\.bvh.*LeftForeArm"):
        bvh.load_bvh(renamed, REST)
    no_motion = tmp_path / "nomotion.bvh"
    no_motion.write_text(good.split("MOTION")[0])
    with pytest.raises(ValueError, match=r"nomotion\.bvh.*MOTION"):
        bvh.load_bvh(no_motion, REST)
