"""Temporal smoothing of per-frame predictions (off unless asked for: `predict --smooth`). numpy and scipy.

- The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): a first-order low-pass filter whose cutoff rises with
  the signal's speed, cutoff = min_cutoff + beta |dx/dt| (the speed itself low-passed at d_cutoff), so slow motion
  loses its jitter and fast motion keeps up. `one_euro` runs it on every channel of `[T, ...]` at once, each
  channel with its own speed.
- Rotations are filtered in the continuous 6D representation (the first two columns of the rotation matrix, Zhou
  et al., CVPR 2019) and brought back by Gram-Schmidt: axis-angle jumps from angle pi to -pi (the vector flips) and
  quaternions from q to -q, where a per-channel filter would average through the identity.
- Shape is one per person: `fixed_betas` gives a track one betas vector (median or mean over its valid frames).
- Camera parameters (`[T, C]`, e.g. a translation) are filtered like any signal.

Frames marked invalid (no person, too few keypoints) are skipped: they come out NaN, the filter's state carries over
them, and the next valid frame is filtered with the time elapsed since the last one.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation


@dataclasses.dataclass(frozen=True)
class OneEuro:
    """One-Euro parameters: cutoffs in Hz, `beta` in (1 / unit of the signal)."""
    min_cutoff: float = 1.0
    beta: float = 0.0
    d_cutoff: float = 1.0


# Starting points, to be tuned on footage: rotations' 6D entries are unitless (~1), translations metres.
POSE_FILTER = OneEuro(min_cutoff=1.0, beta=0.7, d_cutoff=1.0)
CAMERA_FILTER = OneEuro(min_cutoff=1.0, beta=0.1, d_cutoff=1.0)
BETAS_METHODS = ("median", "mean")


def _alpha(period: np.ndarray | float, cutoff: np.ndarray | float) -> np.ndarray:
    """The smoothing factor of a first-order low-pass filter at `cutoff` Hz for a sample `period` s later:
    1 / (1 + tau / period), tau = 1 / (2 pi cutoff)."""
    return 1.0 / (1.0 + 1.0 / (2.0 * np.pi * np.asarray(cutoff) * period))


def one_euro(signal, fps: float | None = None, timestamps=None, valid=None,
             params: OneEuro = OneEuro()) -> np.ndarray:
    """The One-Euro filter along axis 0 of `signal [T, ...]`, every other entry a channel of its own; float64.

    Time comes from `timestamps [T]` (s, increasing) or `fps`. `valid [T]` (default: all, NaN frames excluded)
    picks the frames filtered; the others come out NaN.
    """
    signal = np.asarray(signal, np.float64)
    num_frames = signal.shape[0]
    if timestamps is None:
        if not fps or fps <= 0:
            raise ValueError(f"one_euro: fps={fps} — give a positive frame rate or timestamps")
        timestamps = np.arange(num_frames) / float(fps)
    timestamps = np.asarray(timestamps, np.float64)
    if timestamps.shape != (num_frames,):
        raise ValueError(f"one_euro: timestamps {timestamps.shape} for {num_frames} frames")
    flat = signal.reshape(num_frames, -1)
    valid = np.isfinite(flat).all(axis=1) if valid is None else np.asarray(valid, bool) & np.isfinite(flat).all(1)
    out = np.full_like(flat, np.nan)
    smoothed = speed = None
    last_time = None
    for t in np.flatnonzero(valid):
        if smoothed is None:
            smoothed, speed = flat[t].copy(), np.zeros(flat.shape[1])
        else:
            period = timestamps[t] - last_time
            if period <= 0:
                raise ValueError(f"one_euro: timestamps must increase (frame {t}: {timestamps[t]} after "
                                 f"{last_time})")
            a_speed = _alpha(period, params.d_cutoff)
            speed = a_speed * (flat[t] - smoothed) / period + (1.0 - a_speed) * speed
            a_value = _alpha(period, params.min_cutoff + params.beta * np.abs(speed))
            smoothed = a_value * flat[t] + (1.0 - a_value) * smoothed
        out[t], last_time = smoothed, timestamps[t]
    return out.reshape(signal.shape)


def matrix_to_6d(matrix) -> np.ndarray:
    """Rotation matrices `[..., 3, 3]` -> `[..., 6]`: the first column, then the second."""
    matrix = np.asarray(matrix, np.float64)
    return np.concatenate([matrix[..., :, 0], matrix[..., :, 1]], axis=-1)


def matrix_from_6d(six) -> np.ndarray:
    """`[..., 6]` -> the nearest rotation matrices `[..., 3, 3]` by Gram-Schmidt (Zhou et al. 2019)."""
    six = np.asarray(six, np.float64)
    first = six[..., :3] / np.linalg.norm(six[..., :3], axis=-1, keepdims=True)
    second = six[..., 3:] - np.sum(first * six[..., 3:], axis=-1, keepdims=True) * first
    second = second / np.linalg.norm(second, axis=-1, keepdims=True)
    return np.stack([first, second, np.cross(first, second)], axis=-1)


def smooth_rotations(axis_angle, fps: float | None = None, timestamps=None, valid=None,
                     params: OneEuro = POSE_FILTER) -> np.ndarray:
    """Axis-angle rotations `[T, ..., 3]` (e.g. SMPL pose `[T, 24, 3]`) One-Euro filtered in 6D; NaN where
    invalid. The result is a rotation in every valid frame."""
    axis_angle = np.asarray(axis_angle, np.float64)
    num_frames, rest = axis_angle.shape[0], axis_angle.shape[1:-1]
    valid = np.isfinite(axis_angle.reshape(num_frames, -1)).all(axis=1) if valid is None else \
        np.asarray(valid, bool) & np.isfinite(axis_angle.reshape(num_frames, -1)).all(axis=1)
    safe = np.where(valid.reshape((-1,) + (1,) * (axis_angle.ndim - 1)), axis_angle, 0.0)
    six = matrix_to_6d(Rotation.from_rotvec(safe.reshape(-1, 3)).as_matrix()).reshape(num_frames, -1)
    filtered = one_euro(six, fps, timestamps, valid, params)
    out = np.full(axis_angle.shape, np.nan)
    if valid.any():
        matrices = matrix_from_6d(filtered[valid].reshape(-1, 6))
        out[valid] = Rotation.from_matrix(matrices).as_rotvec().reshape((int(valid.sum()),) + rest + (3,))
    return out


def fixed_betas(betas, valid=None, method: str = "median") -> np.ndarray:
    """One shape for a track: the per-dimension median (or mean) of `betas [T, B]` over its valid frames, `[B]`."""
    betas = np.asarray(betas, np.float64)
    valid = np.isfinite(betas).all(axis=1) if valid is None else np.asarray(valid, bool) & \
        np.isfinite(betas).all(axis=1)
    if method not in BETAS_METHODS:
        raise ValueError(f"fixed_betas: method {method!r} is not one of {BETAS_METHODS}")
    if not valid.any():
        return np.full(betas.shape[1], np.nan)
    return (np.median if method == "median" else np.mean)(betas[valid], axis=0)


def smooth_track(pose, betas, camera, valid, fps: float, pose_filter: OneEuro = POSE_FILTER,
                 camera_filter: OneEuro = CAMERA_FILTER, betas_method: str = "median") -> dict[str, np.ndarray]:
    """One person's per-frame predictions smoothed: `pose [T, 72]` axis-angle in 6D (`smooth_rotations`), `betas
    [T, B]` fixed (`fixed_betas`, every valid frame the same), `camera [T, C]` One-Euro filtered. Invalid frames
    (`valid [T]` false) come out NaN."""
    pose = np.asarray(pose, np.float64)
    valid = np.asarray(valid, bool)
    num_frames = len(valid)
    smoothed_pose = smooth_rotations(pose.reshape(num_frames, -1, 3), fps, valid=valid, params=pose_filter)
    shape = fixed_betas(betas, valid, betas_method)
    betas_out = np.where(valid[:, None], shape[None], np.nan)
    return {"pose": smoothed_pose.reshape(pose.shape), "betas": betas_out,
            "camera": one_euro(camera, fps, valid=valid, params=camera_filter)}
