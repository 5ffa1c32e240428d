"""Cameras of the simulated scenes: a level camera looking at a point, and the hand-held phone camera of the
3DPW-format evaluation set (an operator who follows the people, aims with a lag, bobs and shakes), with a moving
background that turns with it.

World frame: SMPL's, y up, metres. Camera frames as everywhere in mhr_tf: x right, y down, z forward; a camera pose
is world -> camera, X_cam = R X_world + t.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from mhr_tf import geometry
from mhr_tf.sim import backgrounds
from mhr_tf.sim.skeleton import FPS

UP = np.array([0.0, 1.0, 0.0])  # SMPL's world: y up
# Portrait phone video as 3DPW's (1080 x 1920) at a quarter of the size, with about its focal length (3DPW's
# cam_intrinsics have fx ~ 1.8 image widths).
THREEDPW_IMAGE_HW = (480, 270)
THREEDPW_INTRINSICS = geometry.Intrinsics(490.0, 490.0, 135.0, 240.0)
PAIR_VIEW_SPREAD_DEG = 50.0  # the camera sees a pair within this angle of straight across their line
CAMERA_DISTANCE_M = (2.5, 4.5)  # from the people to the hand-held camera: 3DPW-like framing
CAMERA_HEIGHT_M = (1.25, 1.7)  # above the floor
MIN_DEPTH_M = 1.8  # no joint closer to the camera than this
CAMERA_FOLLOW = (0.3, 1.0)  # share of the people's horizontal motion the camera operator walks along
AIM_LAG_FRAMES = 4.0  # the operator's aim trails the people (Gaussian smoothing of the aim point, frames)
SHAKE_DEG = (0.15, 0.8)  # hand-held rotation jitter per axis (std, degrees)
SHAKE_SMOOTHING_FRAMES = 1.5
BOB_M = (0.005, 0.02)  # the operator's step bob, metres


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[..., 3, 3] world -> camera rotation (rows: the camera's x right, y down, z forward in world coordinates) of
    cameras at `eye [..., 3]` looking at `target [..., 3]`, with no roll (image rows level with the y-up world)."""
    forward = np.asarray(target, np.float64) - np.asarray(eye, np.float64)
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, UP)  # forward x up is right for a y-down image
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=-2)


def _shake(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """[N, 3, 3] small smooth random rotations (camera frame): the hand-held wobble."""
    amplitude = np.radians(rng.uniform(*SHAKE_DEG))
    noise = gaussian_filter1d(rng.normal(size=(num_frames, 3)), SHAKE_SMOOTHING_FRAMES, axis=0, mode="nearest")
    noise *= amplitude / max(float(noise.std()), 1e-9)
    return geometry.axis_angle_to_matrix(noise)


def hand_held_camera(pelvis: np.ndarray, floor_y: float, rng: np.random.Generator,
                     min_depth_of: Callable[[np.ndarray], float]) -> np.ndarray:
    """World -> camera `[N, 4, 4]` of an operator following the people: `pelvis [P, N, 3]` (world).

    The operator stands CAMERA_DISTANCE_M from the group at a random bearing, walks along with a share of its
    motion, aims (with a lag) at it, bobs and shakes; steps back while some joint comes closer than MIN_DEPTH_M
    (`min_depth_of(cam_poses)` measures it).
    """
    num_frames = pelvis.shape[1]
    group = pelvis.mean(axis=0)  # [N, 3]
    bearing = rng.uniform(0.0, 2.0 * np.pi)
    if len(pelvis) > 1:  # the operator frames a pair from the front or back of their line, not along it
        line = (pelvis[1, 0] - pelvis[0, 0]) * np.array([1.0, 0.0, 1.0])
        across = np.cross(UP, line)
        bearing = np.arctan2(across[0], across[2]) + rng.choice([0.0, np.pi]) + np.radians(rng.uniform(
            -PAIR_VIEW_SPREAD_DEG, PAIR_VIEW_SPREAD_DEG))
    away = np.array([np.sin(bearing), 0.0, np.cos(bearing)])
    follow = rng.uniform(*CAMERA_FOLLOW)
    height = floor_y + rng.uniform(*CAMERA_HEIGHT_M)
    bob = rng.uniform(*BOB_M) * np.sin(2.0 * np.pi * rng.uniform(1.5, 2.2) * np.arange(num_frames) / FPS
                                       + rng.uniform(0, 2 * np.pi))
    aim = gaussian_filter1d(group, AIM_LAG_FRAMES, axis=0, mode="nearest")
    aim[:, 1] = aim[:, 1] + rng.uniform(0.0, 0.3)  # between pelvis and chest
    shake = _shake(rng, num_frames)
    # Spread of the group across the view: two people side by side need the camera further back.
    spread = float(np.linalg.norm(pelvis[:, 0] - group[0], axis=1).max()) if len(pelvis) > 1 else 0.0
    half_width_m = (THREEDPW_IMAGE_HW[1] / 2.0 - 10.0) / THREEDPW_INTRINSICS.fx
    distance = max(rng.uniform(*CAMERA_DISTANCE_M), (spread + 0.45) / half_width_m)
    for _ in range(30):
        walk = group - group[0]
        eye = group[0] + away * distance + follow * walk
        eye[:, 1] = height + bob
        rotation = shake @ look_at(eye, aim)
        cam_poses = np.tile(np.eye(4), (num_frames, 1, 1))
        cam_poses[:, :3, :3] = rotation
        cam_poses[:, :3, 3] = -np.einsum("nij,nj->ni", rotation, eye)
        if min_depth_of(cam_poses) >= MIN_DEPTH_M:
            break
        distance += 0.5
    return cam_poses


def background_for_camera(cam_poses: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """[N, H, W, 3] moving background that turns with the camera: a static-camera background video (with its own
    moving objects) larger than the frame, cut where the camera's rotation points it (distant scenery)."""
    height, width = THREEDPW_IMAGE_HW
    k = THREEDPW_INTRINSICS
    # Where the centre of view of frame t lies in frame 0's image (a direction at infinity).
    centre_dir = np.einsum("ij,nj->ni", cam_poses[0, :3, :3], cam_poses[:, 2, :3])  # R_0 R_t^T e_z
    shift = np.stack([k.fx * centre_dir[:, 0] / centre_dir[:, 2], k.fy * centre_dir[:, 1] / centre_dir[:, 2]], -1)
    margin = np.ceil(np.abs(shift).max(axis=0)).astype(int) + 4  # (x, y)
    big_hw = (height + 2 * int(margin[1]), width + 2 * int(margin[0]))
    video = backgrounds.make_background_video(len(cam_poses), rng, hw=big_hw, kind="static")
    centre = np.array([big_hw[1] - 1, big_hw[0] - 1]) / 2.0 + shift
    frames = np.stack([cv2.getRectSubPix(f, (width, height), (float(c[0]), float(c[1])))
                       for f, c in zip(video.frames, centre)])
    return frames, video.source
