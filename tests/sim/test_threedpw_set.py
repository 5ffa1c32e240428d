"""The simulator's 3DPW-format evaluation sequences read back through the real decoder: what the files say equals what
the simulator used, `poses2d` behave like a detector's, and one seed gives the same bytes. References are float64
numpy (tests/sim/references.py) and the body model."""
import cv2
import numpy as np
import pytest

from mhr_tf.body import joints as joint_sets
from mhr_tf.data import threedpw
from mhr_tf.sim import cameras, detections, preview, threedpw_set
from mhr_tf.sim.domain import SHIFTED
from tests.sim import references

SEED = 3
FRAMES = 8


@pytest.fixture(scope="session")
def threedpw_sequences(tmp_path_factory):
    """Shifted domain. Sequence 0: two people, a passing object and a run of invalid camera poses for sure;
    sequence 1: one person, everything else as drawn."""
    root = tmp_path_factory.mktemp("threedpw_sim")
    certain = SHIFTED.replace(campose_errors=1.0, occluders=1.0)
    pair = threedpw_set.write_threedpw_sequence(root, SEED, 0, FRAMES, split="test", num_people=2, domain=certain)
    pair_truth = threedpw_set.make_threedpw_sequence(SEED, 0, FRAMES, num_people=2, domain=certain)
    single = threedpw_set.write_threedpw_sequence(root, SEED, 1, FRAMES, split="train", num_people=1)
    single_truth = threedpw_set.make_threedpw_sequence(SEED, 1, FRAMES, num_people=1)
    return root, [(pair, pair_truth), (single, single_truth)]


def test_threedpw_round_trip_with_two_people(threedpw_sequences):
    root, sequences = threedpw_sequences
    (pair_path, truth), _ = sequences
    assert pair_path == root / "sequenceFiles" / "test" / "simulated_00001.pkl"
    tracks = threedpw.load_sequence(pair_path)
    assert len(tracks) == 2 and tracks[0].sequence == "simulated_00001"
    valid = truth.campose_valid
    assert valid.any() and not valid.all()  # the fixture forces a run of invalid frames
    for track, person in zip(tracks, truth.people):
        assert track.gender == person.gender
        np.testing.assert_allclose(track.betas, person.betas, atol=1e-6)
        np.testing.assert_allclose(track.pose_world, person.pose_world, atol=1e-6)
        np.testing.assert_allclose(track.trans_world, person.trans_world, atol=1e-6)
        np.testing.assert_array_equal(track.campose_valid, valid)
        # On valid frames the stored camera is the one that rendered the images.
        np.testing.assert_allclose(track.joints3d_cam[valid], person.joints3d_cam[valid], atol=1e-4)
        # On invalid ones it is off by a turn of a few degrees about the camera centre.
        off = np.linalg.norm(track.joints3d_cam[~valid] - person.joints3d_cam[~valid], axis=-1)
        distance = np.linalg.norm(person.joints3d_cam[~valid], axis=-1)
        assert np.all(off / distance > np.sin(np.radians(1.0)))
        # The file's world joints are the body's joints with its world pose, shape and translation (SMPL's trans).
        model = references.body(person.gender)
        _, joints = references.forward(model, track.betas, track.pose_world, track.trans_world)
        np.testing.assert_allclose(joints, track.joints3d_world, atol=1e-4)
        _, joints_cam = references.forward(model, track.betas, track.pose_cam, track.trans_cam)
        np.testing.assert_allclose(joints_cam, track.joints3d_cam, atol=1e-4)
        template, _ = references.forward(model, track.betas, np.zeros((1, 72)))
        np.testing.assert_allclose(person.v_template, template[0], atol=1e-5)
    for i, image_path in enumerate(tracks[0].image_paths):
        image = threedpw.read_image(image_path)
        assert image.shape == cameras.PHONE_FRAMING.image_hw + (3,)
        assert np.abs(image.astype(float) - truth.images[i]).mean() < 8.0  # JPEG of the simulated image


def test_threedpw_poses2d_are_near_the_projected_ground_truth_except_injected_errors(threedpw_sequences):
    _, sequences = threedpw_sequences
    coco_from_lsp = joint_sets.indices(joint_sets.LSP_14, joint_sets.COCO_18)
    counts = dict.fromkeys(("detected", "swapped"), 0)
    for path, truth in sequences:
        for track, person in zip(threedpw.load_sequence(path), truth.people):
            valid = track.campose_valid
            model = references.body(track.gender)
            vertices, _ = references.forward(model, track.betas, track.pose_cam, track.trans_cam)
            lsp = np.einsum("kv,tvc->tkc", np.asarray(model.lsp_regressor, np.float64), vertices)
            k = track.cam_intrinsics
            reference = references.project(lsp, k[0, 0], k[1, 1], k[0, 2], k[1, 2])  # [T, 14, 2]
            shared = coco_from_lsp >= 0  # the 13 COCO keypoints that are evaluation joints (no face points)
            kp = track.keypoints2d[valid][:, shared]  # [T', 13, 3]
            expected = reference[valid][:, coco_from_lsp[shared]]
            error = person.detections.error[valid][:, shared]
            sigma = person.detections.sigma_px[valid][:, None]
            detected = error == detections.DETECTED
            distance = np.linalg.norm(kp[..., :2] - expected, axis=-1)
            assert np.all(distance[detected] < 5.0 * np.broadcast_to(sigma, distance.shape)[detected] + 0.5)
            assert np.all((kp[..., 2][detected] >= 0.3) & (kp[..., 2][detected] <= 0.98))
            assert np.all(kp[error == detections.MISSING] == 0.0)
            assert np.all(kp[..., 2][(error == detections.GUESSED) | (error == detections.OUTLIER)] <= 0.45)
            counts["detected"] += int(detected.sum())
            # A swapped keypoint sits where its mirror twin is.
            flip = joint_sets.flip_permutation(joint_sets.COCO_18)
            full_kp, full_error = track.keypoints2d[valid], person.detections.error[valid]
            full_reference = np.full(full_kp.shape[:2] + (2,), np.nan)
            full_reference[:, shared] = expected
            twin_visible = person.detections.visible[valid][:, flip]
            for t, i in zip(*np.nonzero((full_error == detections.SWAPPED) & twin_visible & shared[flip])):
                counts["swapped"] += 1
                assert np.linalg.norm(full_kp[t, i, :2] - full_reference[t, flip[i]]) < 5.0 * sigma[t, 0] + 0.5
    assert counts["detected"] > 30  # enough detected keypoints for the checks above to mean something


def test_threedpw_preview_draws_every_sequence(threedpw_sequences, tmp_path):
    root, sequences = threedpw_sequences
    sheet = cv2.imread(str(preview.preview_threedpw(root, tmp_path / "preview.png")))
    height, width = cameras.PHONE_FRAMING.image_hw
    assert sheet.shape == (len(sequences) * (height + 6), 6 * width + 5 * 4, 3)


def test_threedpw_same_seed_writes_the_same_pickle(threedpw_sequences, tmp_path):
    _, sequences = threedpw_sequences
    path, _ = sequences[1]
    again = threedpw_set.write_threedpw_sequence(tmp_path, SEED, 1, FRAMES, split="train", num_people=1)
    assert again.read_bytes() == path.read_bytes()
    first = sorted((path.parents[2] / "imageFiles" / "simulated_00002").glob("*.jpg"))
    second = sorted((tmp_path / "imageFiles" / "simulated_00002").glob("*.jpg"))
    assert len(first) == FRAMES and [f.read_bytes() for f in first] == [f.read_bytes() for f in second]
