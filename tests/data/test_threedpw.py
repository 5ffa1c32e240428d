"""3DPW decoder and writer: a sequence pickle built by hand in 3DPW's real layout, corrupted variants, round trips.

References are float64 numpy and scipy written here: SMPL's kinematic chain (root rotated about the pelvis), the
extrinsics applied as homogeneous 4x4 matrices, rotations composed with scipy's Rotation.
"""
import io
import pickle
import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mhr_tf.body.joints import SMPL_PARENTS
from mhr_tf.data import threedpw
from mhr_tf.sim import writers

NUM_FRAMES = 5
SEQUENCE = "courtyard_handBuilt_00"
# Every key of a real 3DPW sequence file (courtyard_arguing_00.pkl as loaded with encoding='latin1').
REAL_KEYS = {"sequence", "betas", "betas_clothed", "poses", "trans", "poses_60Hz", "trans_60Hz", "genders",
             "poses2d", "jointPositions", "cam_poses", "cam_intrinsics", "campose_valid", "img_frame_ids",
             "v_template_clothed", "texture_maps"}


def forward_kinematics(pose, rest_joints, trans):
    """SMPL's posed joints [N, 24, 3]: root rotated about the rest pelvis, then the chain, then the translation."""
    n = len(pose)
    local = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(n, 24, 3, 3)
    world = np.zeros((n, 24, 3, 3))
    position = np.zeros((n, 24, 3))
    for j, parent in enumerate(SMPL_PARENTS):
        if parent < 0:
            world[:, j], position[:, j] = local[:, j], rest_joints[j]
        else:
            world[:, j] = world[:, parent] @ local[:, j]
            position[:, j] = position[:, parent] + world[:, parent] @ (rest_joints[j] - rest_joints[parent])
    return position + trans[:, None, :]


class Python2StylePickler(pickle.Pickler):
    """Protocol 2 with numpy arrays as Python 2 wrote them: the raw buffer is a str, which latin1 decoding gives."""

    def reducer_override(self, obj):
        if type(obj) is np.ndarray:
            reconstruct = np.zeros(1).__reduce__()[0]
            return (reconstruct, (np.ndarray, (0,), b"b"),
                    (1, obj.shape, obj.dtype, False, np.ascontiguousarray(obj).tobytes().decode("latin1")))
        return NotImplemented


def dump_python2_style(content, path):
    buffer = io.BytesIO()
    Python2StylePickler(buffer, protocol=2).dump(content)
    # Python-2-era files name numpy's module numpy.core.multiarray.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    return path


def hand_built_sequence(seed=0):
    """A 2-person sequence dict in 3DPW's layout, and the ground truth used to make it."""
    rng = np.random.default_rng(seed)
    cam_rotation = Rotation.random(NUM_FRAMES, random_state=seed).as_matrix()
    cam_poses = np.zeros((NUM_FRAMES, 4, 4))
    cam_poses[:, :3, :3], cam_poses[:, :3, 3], cam_poses[:, 3, 3] = cam_rotation, rng.normal(size=(NUM_FRAMES, 3)), 1
    truth = {"rest_joints": [], "cam_poses": cam_poses}
    data = {key: [] for key in ("betas", "betas_clothed", "poses", "trans", "poses_60Hz", "trans_60Hz", "genders",
                                "poses2d", "jointPositions", "campose_valid", "v_template_clothed")}
    for person, gender in enumerate(["f", "m"]):
        rest_joints = rng.normal(scale=0.2, size=(24, 3))
        poses = rng.normal(scale=0.3, size=(NUM_FRAMES, 72))
        poses[:, :3] = Rotation.random(NUM_FRAMES, random_state=seed + person).as_rotvec()
        poses[0, :3] = [0.0, 0.0, np.pi - 1e-4]  # near π, where axis-angle conversions go wrong
        trans = rng.normal(size=(NUM_FRAMES, 3))
        poses2d = rng.uniform(0, 500, size=(NUM_FRAMES, 3, 18))
        poses2d[2] = 0.0  # no detection in frame 2
        truth["rest_joints"].append(rest_joints)
        data["betas"].append(rng.normal(size=10))
        data["betas_clothed"].append(rng.normal(size=10))
        data["poses"].append(poses)
        data["trans"].append(trans)
        data["poses_60Hz"].append(np.repeat(poses, 2, axis=0))
        data["trans_60Hz"].append(np.repeat(trans, 2, axis=0))
        data["genders"].append(gender)
        data["poses2d"].append(poses2d)
        data["jointPositions"].append(forward_kinematics(poses, rest_joints, trans).reshape(NUM_FRAMES, 72))
        data["campose_valid"].append(np.array([1, 1, 1, 0, 1], np.uint8))
        data["v_template_clothed"].append(rng.normal(size=(7, 3)))
    data.update(sequence=SEQUENCE, cam_poses=cam_poses, texture_maps=[],
                cam_intrinsics=np.array([[1961.85, 0.0, 540.0], [0.0, 1969.23, 960.0], [0.0, 0.0, 1.0]]),
                img_frame_ids=(np.arange(NUM_FRAMES) * 2).astype(np.uint16))
    return data, truth


def write_hand_built(tmp_path, data):
    return dump_python2_style(data, tmp_path / "sequenceFiles" / "test" / f"{SEQUENCE}.pkl")


@pytest.fixture
def hand_built(tmp_path):
    data, truth = hand_built_sequence()
    return write_hand_built(tmp_path, data), data, truth


def test_hand_built_pickle_reads_every_field(hand_built, tmp_path):
    path, data, _ = hand_built
    assert set(data) == REAL_KEYS
    tracks = threedpw.load_sequence(path)
    assert [t.person for t in tracks] == [0, 1]
    assert [t.gender for t in tracks] == ["female", "male"]
    for p, track in enumerate(tracks):
        assert track.sequence == SEQUENCE and track.num_frames == NUM_FRAMES
        np.testing.assert_allclose(track.betas, data["betas"][p], atol=1e-6)
        np.testing.assert_allclose(track.betas_clothed, data["betas_clothed"][p], atol=1e-6)
        np.testing.assert_allclose(track.pose_world, data["poses"][p], atol=1e-6)
        np.testing.assert_allclose(track.trans_world, data["trans"][p], atol=1e-6)
        np.testing.assert_allclose(track.joints3d_world[:, 5], data["jointPositions"][p][:, 15:18], atol=1e-6)
        # poses2d is (frame, channel, joint): keypoint j of frame t is poses2d[t, :, j].
        for t, j in [(0, 0), (1, 17), (4, 9)]:
            np.testing.assert_allclose(track.keypoints2d[t, j], data["poses2d"][p][t, :, j], atol=1e-4)
        assert track.keypoints_valid.tolist() == [True, True, False, True, True]
        assert track.campose_valid.tolist() == [True, True, True, False, True]
        assert track.frame_ids.tolist() == [0, 2, 4, 6, 8]
        np.testing.assert_allclose(track.cam_intrinsics, data["cam_intrinsics"])
    assert tracks[0].image_paths[3] == str(tmp_path / "imageFiles" / SEQUENCE / "image_00003.jpg")


def test_root_orientation_rotated_into_camera_frame(hand_built):
    path, data, truth = hand_built
    for p, track in enumerate(threedpw.load_sequence(path)):
        for t in range(NUM_FRAMES):
            expected = (Rotation.from_matrix(truth["cam_poses"][t, :3, :3])
                        * Rotation.from_rotvec(data["poses"][p][t, :3])).as_matrix()
            got = Rotation.from_rotvec(track.pose_cam[t, :3].astype(np.float64)).as_matrix()
            np.testing.assert_allclose(got, expected, atol=2e-6)
        np.testing.assert_allclose(track.pose_cam[:, 3:], data["poses"][p][:, 3:], atol=1e-6)


def test_camera_joints_are_the_extrinsics_applied_to_joint_positions(hand_built):
    path, data, truth = hand_built
    for p, track in enumerate(threedpw.load_sequence(path)):
        world = data["jointPositions"][p].reshape(NUM_FRAMES, 24, 3)
        homogeneous = np.concatenate([world, np.ones((NUM_FRAMES, 24, 1))], -1)
        expected = np.einsum("nij,nkj->nki", truth["cam_poses"], homogeneous)[..., :3]
        np.testing.assert_allclose(track.joints3d_cam, expected, atol=1e-5)


def test_body_with_pose_cam_and_trans_cam_reproduces_camera_joints(hand_built):
    path, _, truth = hand_built
    for p, track in enumerate(threedpw.load_sequence(path)):
        rest_joints = truth["rest_joints"][p]
        np.testing.assert_allclose(track.rest_pelvis, rest_joints[0], atol=1e-6)
        body = forward_kinematics(track.pose_cam.astype(np.float64), rest_joints, track.trans_cam.astype(np.float64))
        np.testing.assert_allclose(body, track.joints3d_cam, atol=1e-5)
        # Rotating the root is not a rotation about the origin: the naive R trans + t is wrong by (R - I) J0.
        naive = np.einsum("nij,nj->ni", truth["cam_poses"][:, :3, :3], track.trans_world) + truth["cam_poses"][:, :3, 3]
        assert np.abs(naive - track.trans_cam).max() > 1e-2


def test_camera_translation_matches_trans_cam(hand_built):
    path, _, truth = hand_built
    track = threedpw.load_sequence(path)[1]
    got = threedpw.camera_translation(track.trans_world, truth["cam_poses"], truth["rest_joints"][1][0])
    np.testing.assert_allclose(got, track.trans_cam, atol=1e-5)


def corrupt_shape(key, person, shape):
    def edit(data):
        data[key][person] = np.zeros(shape)
    return edit


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("cam_poses"), r"key\(s\) \['cam_poses'\] missing"),
    (lambda d: d.pop("genders"), r"\['genders'\] missing"),
    (corrupt_shape("poses", 1, (NUM_FRAMES, 69)), r"key 'poses'\[1\] has shape \(5, 69\) — expected \(5, 72\)"),
    (corrupt_shape("poses2d", 0, (NUM_FRAMES, 18, 3)), r"key 'poses2d'\[0\] has shape \(5, 18, 3\)"),
    (corrupt_shape("jointPositions", 0, (NUM_FRAMES - 1, 72)), r"key 'jointPositions'\[0\] has shape \(4, 72\)"),
    (corrupt_shape("betas", 1, (6,)), r"key 'betas'\[1\] has 6 values"),
    (lambda d: d["betas"].pop(), r"disagree on the number of people"),
    (lambda d: d.update(poses=np.zeros((NUM_FRAMES, 72))), r"disagree on the number of people"),
    (lambda d: d["genders"].__setitem__(0, "x"), r"key 'genders'\[0\] is 'x'"),
    (lambda d: d.update(cam_poses=d["cam_poses"] * 2.0), r"key 'cam_poses' is not a stack of rigid"),
    (lambda d: d.update(cam_poses=d["cam_poses"][:, :3]), r"key 'cam_poses' has shape \(5, 3, 4\)"),
    (lambda d: d.update(cam_intrinsics=np.eye(4)), r"key 'cam_intrinsics' has shape \(4, 4\)"),
    (lambda d: d.update(sequence=3), r"key 'sequence' is a int"),
])
def test_corrupted_sequence_raises_named_error(tmp_path, edit, message):
    data, _ = hand_built_sequence()
    edit(data)
    path = write_hand_built(tmp_path, data)
    with pytest.raises(threedpw.ThreeDPWFormatError, match=message) as error:
        threedpw.load_sequence(path)
    assert str(path) in str(error.value)


def set_non_finite(key, index, value=np.nan, person=None):
    def edit(data):
        array = np.array(data[key] if person is None else data[key][person], dtype=np.float64)
        array[index] = value
        if person is None:
            data[key] = array
        else:
            data[key][person] = array
    return edit


@pytest.mark.parametrize("edit, message", [
    (set_non_finite("poses", (3, 40), person=1), r"non-finite 'poses'\[1\] \(frame 3\)$"),
    (set_non_finite("trans", (2, 0), np.inf, person=0), r"non-finite 'trans'\[0\] \(frame 2\)$"),
    (set_non_finite("jointPositions", (4, 7), person=0), r"non-finite 'jointPositions'\[0\] \(frame 4\)$"),
    (set_non_finite("poses2d", (1, 0, 5), person=1), r"non-finite 'poses2d'\[1\] \(frame 1\)$"),
    (set_non_finite("campose_valid", 0, person=0), r"non-finite 'campose_valid'\[0\] \(frame 0\)$"),
    (set_non_finite("cam_poses", (3, 0, 3)), r"non-finite 'cam_poses' \(frame 3\)$"),
    (set_non_finite("img_frame_ids", 2), r"non-finite 'img_frame_ids' \(frame 2\)$"),
    (set_non_finite("cam_intrinsics", (0, 2), np.inf), r"non-finite 'cam_intrinsics' \(1 of 9 values\)$"),
    (set_non_finite("betas", 4, person=1), r"non-finite 'betas'\[1\] \(1 of 10 values\)$"),
    (set_non_finite("betas_clothed", 0, person=0), r"non-finite 'betas_clothed'\[0\] \(1 of 10 values\)$"),
])
def test_non_finite_value_raises_naming_file_key_and_frame(tmp_path, edit, message):
    data, _ = hand_built_sequence()
    edit(data)
    path = write_hand_built(tmp_path, data)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: {message}"):
        threedpw.load_sequence(path)


def test_nan_in_several_frames_names_the_first_and_counts_the_rest(tmp_path):
    data, _ = hand_built_sequence()
    data["poses"][0][[1, 3, 4], 10] = np.nan
    path = write_hand_built(tmp_path, data)
    with pytest.raises(threedpw.ThreeDPWFormatError, match=r"non-finite 'poses'\[0\] \(frame 1 and 2 more of 5\)$"):
        threedpw.load_sequence(path)


@pytest.mark.parametrize("content, message", [
    ([{"sequence": SEQUENCE}], r"holds a list — expected a 3DPW sequence dict"),
    ({"poses": [], "betas": []}, r"key 'sequence' missing — not a 3DPW sequence file"),
])
def test_pickle_of_another_layout_raises_named_error(tmp_path, content, message):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(threedpw.ThreeDPWFormatError, match=message):
        threedpw.load_sequence(path)


def test_truncated_pickle_raises_named_error(hand_built):
    path = hand_built[0]
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(threedpw.ThreeDPWFormatError, match="not a readable pickle") as error:
        threedpw.load_sequence(path)
    assert str(path) in str(error.value)


def test_list_sequences_sorted_and_checked(tmp_path):
    for name in ["b_seq_00", "a_seq_01"]:
        (tmp_path / "sequenceFiles" / "validation").mkdir(parents=True, exist_ok=True)
        (tmp_path / "sequenceFiles" / "validation" / f"{name}.pkl").write_bytes(b"")
    assert [p.stem for p in threedpw.list_sequences(tmp_path, "validation")] == ["a_seq_01", "b_seq_00"]
    with pytest.raises(ValueError, match="'val' is not one of"):
        threedpw.list_sequences(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="sequenceFiles/test"):
        threedpw.list_sequences(tmp_path, "test")


def people_from(data):
    """The writer's `people` dicts holding the values of a `hand_built_sequence` dict."""
    return [{"betas": data["betas"][p], "poses": data["poses"][p], "trans": data["trans"][p],
             "gender": ["female", "m"][p], "joints3d": data["jointPositions"][p].reshape(NUM_FRAMES, 24, 3),
             "keypoints2d": data["poses2d"][p].transpose(0, 2, 1), "campose_valid": data["campose_valid"][p]}
            for p in range(2)]


def test_writer_reader_round_trip_two_people(tmp_path):
    data, truth = hand_built_sequence(seed=3)
    yy, xx = np.mgrid[0:24, 0:32]
    images = np.stack([np.stack([xx * 8, yy * 10, np.full_like(xx, 40 * t)], -1) for t in range(NUM_FRAMES)])
    images = images.astype(np.uint8)
    path = writers.write_threedpw_sequence(tmp_path, "train", "sim_twoPeople_00", people_from(data),
                                           truth["cam_poses"], data["cam_intrinsics"], images)
    assert path == tmp_path / "sequenceFiles" / "train" / "sim_twoPeople_00.pkl"

    with open(path, "rb") as stream:
        raw = pickle.load(stream, encoding="latin1")
    assert set(raw) == REAL_KEYS
    assert raw["genders"] == ["f", "m"] and raw["sequence"] == "sim_twoPeople_00"
    assert raw["campose_valid"][0].dtype == np.uint8 and raw["img_frame_ids"].dtype == np.uint16
    assert raw["poses2d"][1].shape == (NUM_FRAMES, 3, 18) and raw["jointPositions"][1].shape == (NUM_FRAMES, 72)
    np.testing.assert_array_equal(raw["poses_60Hz"][0][raw["img_frame_ids"]], data["poses"][0])

    tracks = threedpw.load_sequence(path)
    expected = threedpw.load_sequence(write_hand_built(tmp_path / "hand", data))
    assert len(tracks) == 2
    for got, want in zip(tracks, expected):
        assert got.gender == want.gender
        for field in ("betas", "pose_world", "trans_world", "joints3d_cam", "pose_cam", "trans_cam", "keypoints2d",
                      "campose_valid", "keypoints_valid", "frame_ids"):
            np.testing.assert_allclose(getattr(got, field), getattr(want, field), atol=1e-6, err_msg=field)
    for t in [0, NUM_FRAMES - 1]:
        frame = threedpw.read_image(tracks[1].image_paths[t])
        assert frame.shape == (24, 32, 3)
        assert np.abs(frame.astype(float) - images[t]).mean() < 3.0  # JPEG at quality 95 on a smooth ramp


def test_writer_rejects_bad_people(tmp_path):
    data, truth = hand_built_sequence()
    people = people_from(data)
    people[1]["keypoints2d"] = people[1]["keypoints2d"].transpose(0, 2, 1)
    with pytest.raises(ValueError, match=r"people\[1\]\['keypoints2d'\] has shape \(5, 3, 18\)"):
        writers.write_threedpw_sequence(tmp_path, "test", "bad", people, truth["cam_poses"], np.eye(3))
    people = people_from(data)
    del people[0]["joints3d"]
    people[0]["joint_positions"] = 0
    with pytest.raises(ValueError, match=r"people\[0\]: keys \['joints3d'\] missing, \['joint_positions'\] unknown"):
        writers.write_threedpw_sequence(tmp_path, "test", "bad", people, truth["cam_poses"], np.eye(3))
    assert not (tmp_path / "sequenceFiles" / "test" / "bad.pkl").exists()


def test_read_image_names_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="image_00000.jpg"):
        threedpw.read_image(tmp_path / "image_00000.jpg")
