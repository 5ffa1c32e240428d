"""Exports: the AMASS-style .npz and the BVH checked against the body layer (mhr_tf.body.smpl's forward pass in the
camera frame, turned by the frame rotation here), the BVH parsed by an independent reader from PyPI (bvhio, which
computes world joint positions itself); the camera translation against HMR's weak perspective by hand; OBJ text."""
import bvhio
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mhr_tf import exports
from mhr_tf.body import smpl
from mhr_tf.body.joints import SMPL_24

# aitviewer's SMPLSequence.fk for z-up (AMASS) sequences: (x, y, z) -> (x, z, -y) into its y-up view.
AITVIEWER_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@pytest.fixture(scope="module")
def body():
    return smpl.load_body_model(None)


def motion(num_frames=4, seed=0):
    """A camera-frame motion: an upright body (root turned 180 degrees about x: SMPL's y up -> the camera's y down)
    2.5 m in front of the camera, with random joint rotations."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.25, size=(num_frames, 72))
    pose[:, :3] = (Rotation.from_rotvec([np.pi, 0.0, 0.0]) * Rotation.from_rotvec(pose[:, :3] * 0.3)).as_rotvec()
    trans = np.array([0.1, 0.2, 2.5]) + rng.normal(scale=0.05, size=(num_frames, 3))
    betas = rng.normal(scale=0.5, size=10)
    return pose, trans, betas


def camera_joints(body, pose, trans, betas):
    return smpl.forward_numpy(body, np.tile(betas, (len(pose), 1)), pose, trans)[1].astype(np.float64)


def test_amass_npz_keys_and_joints_match_the_body_in_a_z_up_world(tmp_path, body):
    pose, trans, betas = motion()
    path = exports.write_amass_npz(tmp_path / "person0_poses.npz", pose, trans, betas, "neutral", 30.0, body=body)
    with np.load(path) as data:
        assert data["poses"].shape == (4, 156) and data["trans"].shape == (4, 3) and data["betas"].shape == (16,)
        assert str(data["gender"]) == "neutral" and float(data["mocap_framerate"]) == 30.0
        assert int(data["mocap_frame_rate"]) == 30 and data["dmpls"].shape == (4, 8) and data["valid"].all()
        np.testing.assert_array_equal(data["poses"][:, 66:], 0.0)  # the hands
        np.testing.assert_allclose(data["betas"][:10], betas)
        amass_pose = np.concatenate([data["poses"][:, :66], np.zeros((4, 6))], axis=1)
        amass_joints = camera_joints(body, amass_pose, data["trans"], betas)
    expected = camera_joints(body, pose, trans, betas) @ exports.CAMERA_TO_Z_UP.T
    np.testing.assert_allclose(amass_joints, expected, atol=1e-5)
    # In a z-up world the head is above the pelvis; aitviewer's y-up view of it is the camera frame upside up.
    assert (amass_joints[:, 15, 2] > amass_joints[:, 0, 2] + 0.3).all()
    np.testing.assert_allclose(AITVIEWER_TO_Y_UP @ exports.CAMERA_TO_Z_UP, exports.CAMERA_TO_Y_UP)


def test_amass_npz_smpl_layout_and_filled_gaps(tmp_path, body):
    pose, trans, betas = motion(num_frames=5, seed=1)
    pose[2] = np.nan
    path = exports.write_amass_npz(tmp_path / "p.npz", pose, trans, betas, "female", 25.0, body=body,
                                   layout="smpl", frame="camera")
    with np.load(path) as data:
        assert data["poses"].shape == (5, 72) and data["valid"].tolist() == [True, True, False, True, True]
        np.testing.assert_allclose(data["poses"][[0, 1, 3, 4]], pose[[0, 1, 3, 4]], atol=1e-9)
        assert np.isfinite(data["poses"]).all()


def test_fill_gaps_slerps_rotations_and_interpolates_translations():
    pose = np.zeros((5, 72))
    pose[1, 3:6] = [0.2, 0.0, 0.0]
    pose[3, 3:6] = [0.6, 0.0, 0.0]
    trans = np.array([[0.0, 0, 0], [1.0, 0, 0], [np.nan] * 3, [3.0, 0, 0], [9.0, 9, 9]])
    valid = np.array([False, True, False, True, False])
    filled_pose, filled_trans = exports.fill_gaps(pose, trans, valid)
    np.testing.assert_allclose(filled_pose[:, 3], [0.2, 0.2, 0.4, 0.6, 0.6], atol=1e-12)  # held at the ends
    np.testing.assert_allclose(filled_trans[:, 0], [1.0, 1.0, 2.0, 3.0, 3.0])


def test_bvh_read_by_bvhio_matches_the_body_layer_to_a_millimetre(tmp_path, body):
    pose, trans, betas = motion(num_frames=3, seed=2)
    path = exports.write_bvh(tmp_path / "person0.bvh", pose, trans, betas, fps=30.0, body=body)
    expected = camera_joints(body, pose, trans, betas) @ exports.CAMERA_TO_Y_UP.T  # metres, y up
    root = bvhio.readAsHierarchy(str(path))
    by_name = {joint.Name: joint for joint, _, _ in root.layout()}
    names = list(SMPL_24)
    assert set(names) <= set(by_name)
    for t in range(3):
        root.loadPose(t)
        found = np.array([list(by_name[name].PositionWorld) for name in names]) / 100.0  # the file is in cm
        np.testing.assert_allclose(found, expected[t], atol=1e-3)
    assert (expected[:, 15, 1] > expected[:, 0, 1]).all()  # y up: the head above the pelvis


def test_camera_translation_reproduces_hmr_weak_perspective_at_the_body_depth():
    # HMR: x_norm = s (X + tx); crop pixel u_c = (x_norm + 1) S / 2; image u = (u_c + 0.5) size / S + c - size / 2.
    s, tx, ty, size, crop, centre = 0.8, 0.05, -0.1, 300.0, 224, np.array([700.0, 400.0])
    points = np.array([[0.3, -0.7, 0.0], [-0.2, 0.4, 0.0], [0.0, 0.0, 0.0]])  # at the body's depth (z = 0)
    x_norm = s * (points[:, :2] + [tx, ty])
    hmr = ((x_norm + 1.0) * crop / 2.0 + 0.5) * size / crop + centre - size / 2.0
    image_hw, focal = (720, 1280), 1500.0
    trans = exports.camera_translation([[s, tx, ty]], [centre], [size], image_hw, crop, focal)[0]
    moved = points + trans
    pinhole = focal * moved[:, :2] / moved[:, 2:] + [(1280 - 1) / 2.0, (720 - 1) / 2.0]
    np.testing.assert_allclose(pinhole, hmr, atol=1e-9)
    assert trans[2] == pytest.approx(2 * focal / (s * size))


def test_weak_perspective_round_trip_through_the_translation():
    camera = np.array([[0.8, 0.05, -0.1], [1.1, -0.2, 0.3]])
    centre, size = np.array([[700.0, 400.0], [100.0, 650.0]]), np.array([300.0, 120.0])
    trans = exports.camera_translation(camera, centre, size, (720, 1280), 224)
    np.testing.assert_allclose(exports.weak_perspective_from_translation(trans, centre, size, (720, 1280), 224),
                               camera, rtol=1e-12)


def test_obj_files_are_one_based_and_one_per_valid_frame(tmp_path):
    vertices = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    faces = np.array([[0, 1, 2], [0, 1, 3]])
    text = exports.write_obj(tmp_path / "mesh.obj", vertices, faces).read_text().splitlines()
    assert text[1] == "v 1.000000 0.000000 0.000000" and text[-1] == "f 1 2 4" and len(text) == 6
    sequence = np.stack([vertices, vertices + 1.0, vertices * np.nan])
    written = exports.write_obj_sequence(tmp_path / "objs", sequence, faces, frame="y_up")
    assert [p.name for p in written] == ["frame_00000.obj", "frame_00001.obj"]
    assert written[1].read_text().splitlines()[0] == "v 1.000000 -1.000000 -1.000000"
    with pytest.raises(ValueError, match="face indices"):
        exports.write_obj(tmp_path / "bad.obj", vertices, faces + 2)
