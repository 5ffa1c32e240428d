"""Smoothing: the vectorised One-Euro filter against a scalar float64 loop written here from Casiez et al. (2012)'s
pseudocode; rotations stay rotations and do not flip near pi; one shape per track."""
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mhr_tf import smoothing


def reference_one_euro(values, times, min_cutoff, beta, d_cutoff):
    """Casiez et al. 2012, one channel, one sample at a time (None = skipped sample)."""
    def alpha(period, cutoff):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / period)

    out, x_hat, dx_hat, t_prev = [], None, 0.0, None
    for x, t in zip(values, times):
        if x is None:
            out.append(float("nan"))
            continue
        if x_hat is None:
            x_hat = x
        else:
            period = t - t_prev
            dx = (x - x_hat) / period
            a_d = alpha(period, d_cutoff)
            dx_hat = a_d * dx + (1.0 - a_d) * dx_hat
            a = alpha(period, min_cutoff + beta * abs(dx_hat))
            x_hat = a * x + (1.0 - a) * x_hat
        t_prev = t
        out.append(x_hat)
    return out


def test_one_euro_matches_the_scalar_reference_on_every_channel():
    rng = np.random.default_rng(3)
    t = np.arange(90) / 30.0
    signal = np.stack([np.sin(2 * np.pi * 0.5 * t), 5.0 * (t > 1.5), 0.2 * t], axis=1)
    signal = signal + rng.normal(scale=0.05, size=signal.shape)
    params = smoothing.OneEuro(min_cutoff=1.2, beta=0.4, d_cutoff=0.8)
    out = smoothing.one_euro(signal.reshape(90, 3, 1), fps=30.0, params=params).reshape(90, 3)
    for c in range(3):
        expected = reference_one_euro(signal[:, c].tolist(), t.tolist(), 1.2, 0.4, 0.8)
        np.testing.assert_allclose(out[:, c], expected, rtol=1e-12, atol=1e-12)
    assert np.abs(np.diff(out[:45, 0], 2)).mean() < np.abs(np.diff(signal[:45, 0], 2)).mean() / 3  # it smooths


def test_one_euro_skips_invalid_frames_with_the_elapsed_time():
    rng = np.random.default_rng(4)
    values = rng.normal(size=12)
    times = np.cumsum(rng.uniform(0.02, 0.05, size=12))
    valid = np.ones(12, bool)
    valid[[0, 4, 5, 9]] = False
    out = smoothing.one_euro(values, timestamps=times, valid=valid, params=smoothing.OneEuro(1.0, 0.3, 1.0))
    expected = reference_one_euro([v if ok else None for v, ok in zip(values, valid)], times, 1.0, 0.3, 1.0)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert np.isnan(out[~valid]).all()


def angle_between(a, b) -> np.ndarray:
    return (Rotation.from_rotvec(a).inv() * Rotation.from_rotvec(b)).magnitude()


def test_rotations_near_pi_stay_valid_and_do_not_flip():
    # About z, angles alternating either side of pi: axis-angle flips its axis between frames (pi - e about +z is
    # near pi + e about +z = pi - e about -z), so averaging the vectors would pass near the identity.
    rng = np.random.default_rng(5)
    angles = np.pi + rng.choice([-1.0, 1.0], size=60) * rng.uniform(0.02, 0.08, size=60)
    truth = Rotation.from_rotvec(np.outer(angles, [0.0, 0.0, 1.0]))
    rotvec = truth.as_rotvec()
    assert (rotvec[:, 2] > 0).any() and (rotvec[:, 2] < 0).any()  # the representation really flips
    out = smoothing.smooth_rotations(rotvec[:, None, :], fps=30.0)[:, 0]
    matrices = Rotation.from_rotvec(out).as_matrix()
    np.testing.assert_allclose(matrices @ np.swapaxes(matrices, 1, 2), np.tile(np.eye(3), (60, 1, 1)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-9)
    half_turn = np.tile([0.0, 0.0, np.pi], (60, 1))
    assert angle_between(out, half_turn).max() < np.radians(6.0)
    # The same filter on the axis-angle vectors goes far off: that is what the 6D representation avoids.
    naive = smoothing.one_euro(rotvec, fps=30.0, params=smoothing.POSE_FILTER)
    assert angle_between(naive, half_turn).max() > np.radians(90.0)


def test_smooth_rotations_follows_a_slow_turn_and_keeps_nan_frames():
    angles = np.linspace(0.0, 1.0, 30)
    rotvec = np.outer(angles, [1.0, 0.0, 0.0])
    valid = np.ones(30, bool)
    valid[10] = False
    out = smoothing.smooth_rotations(rotvec[:, None], fps=30.0, valid=valid,
                                     params=smoothing.OneEuro(min_cutoff=50.0))[:, 0]
    assert np.isnan(out[10]).all()
    assert angle_between(out[valid], rotvec[valid]).max() < np.radians(1.0)  # a high cutoff barely lags


def test_fixed_betas_median_and_mean_over_valid_frames():
    betas = np.array([[1.0, 10.0], [2.0, 20.0], [9.0, 90.0], [np.nan, np.nan], [100.0, 0.0]])
    valid = np.array([True, True, True, True, False])
    np.testing.assert_allclose(smoothing.fixed_betas(betas, valid), [2.0, 20.0])
    np.testing.assert_allclose(smoothing.fixed_betas(betas, valid, "mean"), [4.0, 40.0])


def test_smooth_track_outputs():
    rng = np.random.default_rng(6)
    pose = rng.normal(scale=0.3, size=(20, 72))
    betas = rng.normal(size=(20, 10))
    camera = rng.normal(size=(20, 3))
    valid = np.ones(20, bool)
    valid[[3, 4]] = False
    pose[~valid] = np.nan
    out = smoothing.smooth_track(pose, betas, camera, valid, fps=25.0)
    assert out["pose"].shape == (20, 72) and np.isnan(out["pose"][~valid]).all()
    np.testing.assert_allclose(out["betas"][valid], np.tile(np.median(betas[valid], axis=0), (18, 1)))
    np.testing.assert_allclose(out["camera"], smoothing.one_euro(camera, 25.0, valid=valid,
                                                                 params=smoothing.CAMERA_FILTER))
    with pytest.raises(ValueError, match="method"):
        smoothing.fixed_betas(betas, valid, "mode")
