"""3DPW's official PCK, AUC, MPJAE and PA-MPJAE, a user's joint regressor and the poolings, on hand-built cases
whose answers are worked out here (closed forms, counts, known angles)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mhr_tf import metrics
from mhr_tf.body.joints import SMPL_24

# Errors (mm, along x) of the 12 PCK joints in metrics.PCK_JOINTS order; half millimetres keep them off the integer
# thresholds, where float rounding would decide.
ERRORS_MM = np.array([0, 10, 48, 49, 51, 100, 150, 198, 200, 250, 30, 70], float) + 0.5


def skeleton_pair():
    """A random SMPL-24 skeleton (metres) and a prediction off by ERRORS_MM on the 12 PCK joints, 1 m on the other
    joints except the pelvis, and moved by (3, -2, 5) m as a whole."""
    rng = np.random.default_rng(0)
    gt = rng.normal(scale=0.3, size=(24, 3))
    pred = gt.copy()
    others = [j for j, name in enumerate(SMPL_24) if name not in metrics.PCK_JOINTS and name != "pelvis"]
    pred[others] += [1.0, 0.0, 0.0]
    for name, error in zip(metrics.PCK_JOINTS, ERRORS_MM):
        pred[SMPL_24.index(name), 0] += error / 1000.0
    return pred + np.array([3.0, -2.0, 5.0]), gt


def test_pck_counts_the_twelve_joints_within_50_mm_after_root_alignment():
    pred, gt = skeleton_pair()
    # Within 50 mm: 0.5, 10.5, 48.5, 49.5, 30.5 -> 5 of 12; the 1 m errors elsewhere and the global shift do not
    # count. Within 100 mm: 51.5 and 70.5 too.
    assert metrics.pck_per_frame(pred[None], gt[None])[0] == pytest.approx(5 / 12)
    assert metrics.pck_per_frame(pred, gt, threshold_mm=100.0) == pytest.approx(7 / 12)


def test_pck_auc_is_the_closed_form_area_of_step_curves():
    pred, gt = skeleton_pair()
    # A joint with error e counts from threshold k = ceil(e) on: its curve, linear between the thresholds 0..199
    # (divided by 199), is a ramp over [k - 1, k] then 1, with area (199.5 - k) / 199; 0 when k > 199.
    areas = [(199.5 - np.ceil(e)) / 199.0 if np.ceil(e) <= 199 else 0.0 for e in ERRORS_MM]
    assert metrics.pck_auc_per_frame(pred, gt) == pytest.approx(np.mean(areas), abs=1e-9)


def test_pck_after_procrustes_ignores_a_similarity():
    rng = np.random.default_rng(1)
    gt = rng.normal(scale=0.3, size=(2, 24, 3))
    turn = Rotation.from_rotvec([0.3, -0.5, 0.9]).as_matrix()
    pred = 1.3 * gt @ turn.T + np.array([0.2, 0.1, -0.4])
    np.testing.assert_allclose(metrics.pck_per_frame(pred, gt, alignment="procrustes"), [1.0, 1.0])
    assert metrics.pck_per_frame(pred, gt).max() < 1.0
    with pytest.raises(ValueError, match="alignment"):
        metrics.pck_per_frame(pred, gt, alignment="scale")


def poses(num_frames=3, seed=2):
    return np.random.default_rng(seed).normal(scale=0.4, size=(num_frames, 24, 3))


def test_mpjae_of_a_root_turned_by_30_degrees_is_30_and_pa_mpjae_0():
    gt_pose = poses()
    pred_pose = gt_pose.copy()
    turn = Rotation.from_rotvec(np.radians(30.0) * np.array([0.6, 0.0, 0.8]))
    pred_pose[:, 0] = (turn * Rotation.from_rotvec(gt_pose[:, 0])).as_rotvec()
    pred_rot, gt_rot = metrics.global_rotations(pred_pose), metrics.global_rotations(gt_pose)
    np.testing.assert_allclose(metrics.mpjae_per_frame(pred_rot, gt_rot), 30.0, atol=1e-9)
    # The joints turn with the root about it, so Procrustes undoes the turn.
    gt_joints = np.random.default_rng(3).normal(scale=0.3, size=(3, 24, 3))
    pred_joints = gt_joints @ turn.as_matrix().T
    np.testing.assert_allclose(metrics.pa_mpjae_per_frame(pred_rot, gt_rot, pred_joints, gt_joints), 0.0,
                               atol=1e-6)


def test_mpjae_of_one_knee_bent_40_degrees_more_is_40_over_9():
    gt_pose = poses(seed=4)
    pred_pose = gt_pose.copy()
    knee = SMPL_24.index("left_knee")
    pred_pose[:, knee] = (Rotation.from_rotvec(gt_pose[:, knee]) * Rotation.from_euler("x", 40, degrees=True)
                          ).as_rotvec()
    # The knee's global rotation differs by 40 degrees (so do the ankle's and foot's, which MPJAE does not score);
    # the other eight scored joints are unchanged.
    value = metrics.mpjae_per_frame(metrics.global_rotations(pred_pose), metrics.global_rotations(gt_pose))
    np.testing.assert_allclose(value, 40.0 / 9.0, atol=1e-9)


def test_global_rotations_accept_flat_pose_and_matrices():
    pose = poses(num_frames=2, seed=5)
    flat = metrics.global_rotations(pose.reshape(2, 72))
    np.testing.assert_allclose(flat, metrics.global_rotations(Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix()
                                                              .reshape(2, 24, 3, 3)))
    right_wrist = SMPL_24.index("right_wrist")
    chain = [0, 3, 6, 9, 14, 17, 19, 21]  # pelvis, spines, right collar, shoulder, elbow, wrist
    expected = np.eye(3)
    for j in chain:
        expected = expected @ Rotation.from_rotvec(pose[1, j]).as_matrix()
    np.testing.assert_allclose(flat[1, right_wrist], expected, atol=1e-12)


def test_joint_regressor_from_npy_maps_vertices_as_built(tmp_path):
    regressor = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.25, 0.75]])
    np.save(tmp_path / "J_regressor_toy.npy", regressor.T)  # stored [V, J]: transposed back on load
    loaded = metrics.load_joint_regressor(tmp_path / "J_regressor_toy.npy", num_vertices=4)
    vertices = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 8.0]])
    np.testing.assert_allclose(metrics.regress_joints(loaded, vertices[None]), [[[1.0, 0.0, 0.0], [0.0, 1.0, 6.0]]])
    with pytest.raises(ValueError, match="6 vertices"):
        metrics.load_joint_regressor(tmp_path / "J_regressor_toy.npy", num_vertices=6)


def test_joint_regressor_from_an_hmr_style_pickle(tmp_path):
    import pickle
    regressor = np.zeros((19, 5))
    regressor[np.arange(19), np.arange(19) % 5] = 1.0
    (tmp_path / "neutral_smpl_with_cocoplus_reg.pkl").write_bytes(
        pickle.dumps({"cocoplus_regressor": regressor, "f": np.zeros((1, 3), np.int64)}, protocol=2))
    loaded = metrics.load_joint_regressor(tmp_path / "neutral_smpl_with_cocoplus_reg.pkl", num_vertices=5)
    vertices = np.arange(15, dtype=float).reshape(5, 3)
    np.testing.assert_allclose(metrics.regress_joints(loaded, vertices)[7], vertices[2])  # joint 7 = vertex 7 % 5


def test_poolings_by_hand():
    # Sequence A: tracks [1, 2, 3] and [10]; sequence B: track [4, 8, (99 masked)]; a track with nothing valid.
    per_frame = [np.array([1.0, 2.0, 3.0]), np.array([10.0]), np.array([4.0, 8.0, 99.0]), np.array([50.0])]
    masks = [np.ones(3, bool), np.ones(1, bool), np.array([True, True, False]), np.zeros(1, bool)]
    sequences = ["A", "A", "B", "B"]
    assert metrics.pooled_mean(per_frame, masks, sequences, "frame") == pytest.approx(28.0 / 6.0)
    assert metrics.pooled_mean(per_frame, masks, sequences, "track") == pytest.approx((2.0 + 10.0 + 6.0) / 3.0)
    assert metrics.pooled_mean(per_frame, masks, sequences, "sequence") == pytest.approx((16.0 / 4.0 + 6.0) / 2.0)
    assert np.isnan(metrics.pooled_mean(per_frame[3:], masks[3:], sequences[3:]))


def test_official_per_frame_bundle_on_a_perfect_and_a_turned_prediction():
    pose = poses(num_frames=2, seed=6).reshape(2, 72)
    joints = np.random.default_rng(7).normal(scale=0.3, size=(2, 24, 3))
    perfect = metrics.official_3dpw_per_frame(pose, joints, pose, joints)
    np.testing.assert_allclose(perfect["pck"], 1.0)
    np.testing.assert_allclose(perfect["auc"], 1.0)  # every error 0 counts from threshold 0 on
    np.testing.assert_allclose(perfect["mpjae"], 0.0, atol=1e-6)
    turned = pose.copy()
    turned[:, :3] = (Rotation.from_euler("y", 90, degrees=True) * Rotation.from_rotvec(pose[:, :3])).as_rotvec()
    np.testing.assert_allclose(metrics.official_3dpw_per_frame(turned, joints, pose, joints)["mpjae"], 90.0)
