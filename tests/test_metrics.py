"""Tests for mhr_tf.metrics: hand-computed cases (numbers written here), invariances, and numpy == TF."""
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import metrics
from mhr_tf.body.joints import LSP_14

HIPS_AND_HEAD = ("left_hip", "right_hip", "head_top")


def mm(values) -> np.ndarray:
    """Millimetres written in a test, as metres."""
    return np.asarray(values, dtype=np.float64) / 1000.0


def test_mpjpe_by_hand_with_frame_mask():
    gt = np.zeros((2, 2, 3))
    # Frame 0: joint errors 5 mm (3-4-5) and 1 mm -> 3 mm. Frame 1: 10 mm (6-8-10) and 0 mm -> 5 mm.
    pred = mm([[[3, 4, 0], [0, 0, 1]], [[6, 0, 8], [0, 0, 0]]])
    np.testing.assert_allclose(metrics.mpjpe_per_frame(pred, gt), [3.0, 5.0], atol=1e-9)
    assert metrics.mpjpe(pred, gt) == pytest.approx(4.0)
    assert metrics.mpjpe(pred, gt, mask=[True, False]) == pytest.approx(3.0)
    assert np.isnan(metrics.mpjpe(pred, gt, mask=[False, False]))
    assert float(metrics.mpjpe_tf(pred, gt, mask=[False, True])) == pytest.approx(5.0)
    assert float(metrics.mpjpe_tf(pred, gt, mask=[False, False])) == 0.0


def test_mpjpe_root_relative_on_hip_midpoint():
    gt = np.array([[[-0.1, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, -0.5, 0.0]]])
    # The prediction is 3.7 m away, but once both are centred on their hips only the head's 6 mm remains: 6 / 3 = 2.
    pred = gt + np.array([1.0, 2.0, 3.0]) + mm([[0, 0, 0], [0, 0, 0], [6, 0, 0]])
    relative = metrics.mpjpe(pred, gt, joint_names=HIPS_AND_HEAD, pelvis=metrics.PELVIS_HIP_MIDPOINT)
    assert relative == pytest.approx(2.0)
    assert metrics.mpjpe(pred, gt, joint_names=HIPS_AND_HEAD) > 3000.0
    relative_tf = metrics.mpjpe_tf(tf.constant(pred), tf.constant(gt), joint_names=HIPS_AND_HEAD,
                                   pelvis=metrics.PELVIS_HIP_MIDPOINT)
    assert float(relative_tf) == pytest.approx(2.0)


def test_pa_mpjpe_of_mirrored_body_by_hand():
    # Octahedron with half-axes 3, 2, 1 m against its mirror image: the best rotation is diag(-1, 1, -1) with scale
    # 6/7, leaving residuals 3/7, 3/7, 2/7, 2/7, 13/7, 13/7 m; mean 36/42 m = 857.142857 mm.
    pred = np.array([[3, 0, 0], [-3, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 1], [0, 0, -1]], float)
    gt = pred * np.array([-1.0, 1.0, 1.0])
    assert metrics.pa_mpjpe(pred[None], gt[None]) == pytest.approx(6000.0 / 7.0)
    assert float(metrics.pa_mpjpe_tf(tf.constant(pred[None]), tf.constant(gt[None]))) == pytest.approx(6000.0 / 7.0)
    # Unaligned, only the two x points are wrong, by 6 m each: 12 m / 6 points = 2000 mm.
    assert metrics.mpjpe(pred[None], gt[None]) == pytest.approx(2000.0)


def test_pa_mpjpe_invariant_to_a_similarity_of_the_prediction():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(3, 14, 3)) * 0.3
    pred = gt + rng.normal(size=gt.shape) * 0.05
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation[:, 0] *= np.sign(np.linalg.det(rotation))  # proper: det +1
    moved = 1.7 * pred @ rotation.T + np.array([0.3, -2.0, 5.0])
    np.testing.assert_allclose(metrics.pa_mpjpe_per_frame(moved, gt), metrics.pa_mpjpe_per_frame(pred, gt),
                               rtol=1e-9)
    assert metrics.pa_mpjpe(1.7 * gt @ rotation.T + 4.0, gt) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mpjpe(moved, gt) > 10 * metrics.pa_mpjpe(moved, gt)


def test_pve_by_hand_with_frame_mask():
    gt = np.zeros((2, 3, 3))
    # Frame 0: vertex errors 3, 4, 5 mm -> 4 mm. Frame 1: 9 mm on one of three vertices -> 3 mm.
    pred = mm([[[3, 0, 0], [0, 4, 0], [0, 3, 4]], [[0, 0, 9], [0, 0, 0], [0, 0, 0]]])
    np.testing.assert_allclose(metrics.pve_per_frame(pred, gt), [4.0, 3.0], atol=1e-9)
    assert metrics.pve(pred, gt, mask=[False, True]) == pytest.approx(3.0)
    assert float(metrics.pve_tf(pred, gt)) == pytest.approx(3.5)


def test_accel_error_by_hand_with_vibes_masking():
    # Two joints, five frames; ground truth still, the prediction's joint 0 jumps 1 mm in x at frame 2.
    # Second differences x[t] - 2 x[t+1] + x[t+2] of joint 0: +1, -2, +1 mm; joint 1: 0 -> per entry 0.5, 1, 0.5.
    gt = np.zeros((5, 2, 3))
    pred = np.zeros((5, 2, 3))
    pred[2, 0, 0] = mm(1.0)
    np.testing.assert_allclose(metrics.accel_error_per_frame(pred, gt), [0.5, 1.0, 0.5], atol=1e-9)
    assert metrics.accel_error(pred, gt) == pytest.approx(2.0 / 3.0)
    # Frame 4 invalid removes the one entry that touches it: (0.5 + 1) / 2.
    last_invalid = [True, True, True, True, False]
    np.testing.assert_array_equal(metrics.accel_mask(last_invalid), [True, True, False])
    assert metrics.accel_error(pred, gt, mask=last_invalid) == pytest.approx(0.75)
    # Frame 2 invalid removes all three entries.
    middle_invalid = [True, True, False, True, True]
    assert np.isnan(metrics.accel_error(pred, gt, mask=middle_invalid))
    assert float(metrics.accel_error_tf(pred, gt, mask=last_invalid)) == pytest.approx(0.75)


def test_accel_error_ignores_constant_offset_and_velocity_errors():
    # A prediction that is off by a constant plus a constant drift per frame has zero acceleration error while its
    # MPJPE is large; one with a curved error does not.
    rng = np.random.default_rng(1)
    frames = np.arange(6, dtype=float)[:, None, None]
    gt = rng.normal(size=(6, 14, 3)) * 0.2
    drifting = gt + np.array([0.1, 0.0, 0.2]) + frames * np.array([0.01, -0.02, 0.0])
    assert metrics.accel_error(drifting, gt) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mpjpe(drifting, gt) > 100.0
    curving = gt + frames ** 2 * np.array([0.0, 0.001, 0.0])  # 2 mm/frame² on every joint
    assert metrics.accel_error(curving, gt) == pytest.approx(2.0)


def test_numpy_and_tf_metrics_agree():
    rng = np.random.default_rng(2)
    gt = (rng.normal(size=(3, 9, 14, 3)) * np.array([0.2, 0.5, 0.1]) + np.array([0.0, 0.0, 4.0]))
    pred = gt + rng.normal(size=gt.shape) * 0.04
    mask = rng.uniform(size=(3, 9)) > 0.2
    pred32, gt32 = tf.constant(pred, tf.float32), tf.constant(gt, tf.float32)
    pelvis = metrics.PELVIS_HIP_MIDPOINT
    pairs = [
        (metrics.mpjpe(pred, gt, mask, LSP_14, pelvis), metrics.mpjpe_tf(pred32, gt32, mask, LSP_14, pelvis)),
        (metrics.mpjpe(pred, gt, mask), metrics.mpjpe_tf(pred32, gt32, mask)),
        (metrics.pa_mpjpe(pred, gt, mask), metrics.pa_mpjpe_tf(pred32, gt32, mask)),
        (metrics.pve(pred, gt, mask), metrics.pve_tf(pred32, gt32, mask)),
        (metrics.accel_error(pred, gt, mask, LSP_14, pelvis),
         metrics.accel_error_tf(pred32, gt32, mask, LSP_14, pelvis)),
    ]
    for expected, got in pairs:
        assert float(got) == pytest.approx(expected, rel=1e-4, abs=1e-4)
    # The same inside a compiled training step whose batch and clip length are unknown when traced.
    joints_spec = tf.TensorSpec([None, None, 14, 3], tf.float32)
    signature = [joints_spec, joints_spec, tf.TensorSpec([None, None], tf.bool)]
    pa_compiled = tf.function(metrics.pa_mpjpe_tf, input_signature=signature)
    accel_compiled = tf.function(lambda p, g, m: metrics.accel_error_tf(p, g, m, LSP_14, pelvis),
                                 input_signature=signature)
    assert float(pa_compiled(pred32, gt32, mask)) == pytest.approx(pairs[2][0], rel=1e-4)
    assert float(accel_compiled(pred32, gt32, mask)) == pytest.approx(pairs[4][0], rel=1e-4)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match=r"prediction \(2, 14, 3\) and ground truth \(2, 13, 3\)"):
        metrics.mpjpe(np.zeros((2, 14, 3)), np.zeros((2, 13, 3)))
    with pytest.raises(ValueError, match="pelvis joints"):
        metrics.mpjpe(np.zeros((1, 3, 3)), np.zeros((1, 3, 3)), joint_names=("a", "b", "c"),
                      pelvis=metrics.PELVIS_HIP_MIDPOINT)
    with pytest.raises(ValueError, match="T >= 3"):
        metrics.accel_error(np.zeros((2, 14, 3)), np.zeros((2, 14, 3)))
    with pytest.raises(ValueError, match="mask"):
        metrics.pve(np.zeros((2, 5, 3)), np.zeros((2, 5, 3)), mask=[True])
