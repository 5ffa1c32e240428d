"""Cameras of the simulated scenes: how a camera frames its people (`Framing`), the level fixed camera of the
training clips, that camera turning with a moving background as the training composites do, and the hand-held
phone camera of the shifted-domain evaluation set (an operator who follows the people, aims with a lag, bobs and
shakes), with a background that turns with it.

World frame: SMPL's, y up, metres. Camera frames as everywhere in mhr_tf: x right, y down, z forward; a camera pose
is world -> camera, X_cam = R X_world + t, stored as [4, 4].
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from mhr_tf import geometry
from mhr_tf.sim import backgrounds
from mhr_tf.sim.skeleton import FPS

UP = np.array([0.0, 1.0, 0.0])  # SMPL's world: y up


@dataclasses.dataclass(frozen=True)
class Framing:
    """How a camera frames its people: the image, the lens, and how far from them it stands."""
    name: str
    image_hw: tuple[int, int]
    intrinsics: geometry.Intrinsics
    distance_m: tuple[float, float]  # range of the camera's distance from the people (their pelvis), metres
    distance_std_m: float | None     # None: uniform over the range; else a normal about its middle, clipped to it
    pelvis_margin_px: tuple[float, float]  # a fixed camera keeps the pelvis this close to the principal point (x, y)
    max_distance_m: float            # how far a fixed camera may back off to keep a wide path in view

    def draw_distance(self, rng: np.random.Generator) -> float:
        lo, hi = self.distance_m
        if self.distance_std_m is None:
            return float(rng.uniform(lo, hi))
        return float(np.clip(rng.normal((lo + hi) / 2.0, self.distance_std_m), lo, hi))


# SURREAL (main_part1.py): 320x240, f = 600 px; camera_distance = np.random.normal(8.0, 1), recorded as `camDist`,
# the camera then about camDist - 1 m from the pelvis (01_01_c0001: camDist 7.692, camera-pelvis 6.694 m). The
# normal's tails are clipped (camDist 5.5-10.5 m: the person about 100-200 px tall). The fixed camera keeps the
# pelvis within (140, 95) px of the centre: a person running across leaves the frame partly, never wholly.
SURREAL_FRAMING = Framing("surreal", geometry.SURREAL_IMAGE_HW, geometry.SURREAL_INTRINSICS, distance_m=(4.5, 9.5),
                          distance_std_m=1.0, pelvis_margin_px=(140.0, 95.0), max_distance_m=11.0)
# Portrait phone video as 3DPW's (1080 x 1920) at a quarter of the size, with about its focal length (3DPW's
# cam_intrinsics have fx ~ 1.8 image widths), 2.5-4.5 m from the people; pelvis margins the same share of the frame
# as SURREAL's.
PHONE_FRAMING = Framing("phone", (480, 270), geometry.Intrinsics(490.0, 490.0, 135.0, 240.0), distance_m=(2.5, 4.5),
                        distance_std_m=None, pelvis_margin_px=(118.0, 190.0), max_distance_m=11.0)
FRAMINGS = {f.name: f for f in (SURREAL_FRAMING, PHONE_FRAMING)}

# The fixed camera's aim (main_part1.py): at the pelvis's height (0.03 m above it in 01_01), here at the middle of
# the pelvis path plus a random offset.
AIM_JITTER_M = 0.15  # sideways
AIM_HEIGHT_STD_M = 0.05  # up and down
MIN_DEPTH_M = 1.8  # no joint closer to the camera than this

# The hand-held operator of the shifted domain.
PAIR_VIEW_SPREAD_DEG = 50.0  # the camera sees a pair within this angle of straight across their line
CAMERA_HEIGHT_M = (1.25, 1.7)  # above the floor
CAMERA_FOLLOW = (0.3, 1.0)  # share of the people's horizontal motion the camera operator walks along
AIM_LAG_FRAMES = 4.0  # the operator's aim trails the people (Gaussian smoothing of the aim point, frames)
# Camera shake at strength 1 (`Domain.camera_shake`).
SHAKE_DEG = (0.15, 0.8)  # hand-held rotation jitter per axis (std, degrees)
SHAKE_SMOOTHING_FRAMES = 1.5
BOB_M = (0.005, 0.02)  # the operator's step bob, metres
BOB_HZ = (1.5, 2.2)  # steps per second


def _poses(rotation: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """[N, 4, 4] world -> camera of rotations [N, 3, 3] and camera centres [N, 3] (world)."""
    rotation = np.asarray(rotation, np.float64)
    cam_poses = np.tile(np.eye(4), (len(rotation), 1, 1))
    cam_poses[:, :3, :3] = rotation
    cam_poses[:, :3, 3] = -np.einsum("nij,nj->ni", rotation, np.broadcast_to(centre, (len(rotation), 3)))
    return cam_poses


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[..., 3, 3] world -> camera rotation (rows: the camera's x right, y down, z forward in world coordinates) of
    cameras at `eye [..., 3]` looking at `target [..., 3]`, with no roll (image rows level with the y-up world)."""
    forward = np.asarray(target, np.float64) - np.asarray(eye, np.float64)
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, UP)  # forward x up is right for a y-down image
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=-2)


def fixed_camera(pelvis: np.ndarray, rng: np.random.Generator, framing: Framing, distance: float,
                 min_depth_of: Callable[[np.ndarray], float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, level camera for pelvis positions `[K, 3]` (world; every frame of every person), as SURREAL's:
    (R world -> camera [3, 3], centre [3]).

    It stands in a random direction, `distance` m from the middle of the pelvis path as it sees it, aims there (plus
    a jitter), and backs off while the pelvis leaves `framing.pelvis_margin_px` of the principal point on some frame
    or comes closer than 2 m, or some joint comes closer than MIN_DEPTH_M (`min_depth_of(cam_poses [1, 4, 4])`,
    when given), up to `framing.max_distance_m`.
    """
    azimuth = rng.uniform(0.0, 2.0 * np.pi)  # the person's heading is random anyway; so is where the camera stands
    forward = np.array([np.sin(azimuth), 0.0, np.cos(azimuth)])
    rotation = look_at(np.zeros(3), forward)
    # Aim at the middle of the pelvis path as the camera sees it (lateral and vertical extent), plus a jitter.
    path_cam = pelvis @ rotation.T
    middle = (path_cam.min(axis=0) + path_cam.max(axis=0)) / 2.0
    aim = middle + np.array([rng.normal(0.0, AIM_JITTER_M), rng.normal(0.0, AIM_HEIGHT_STD_M), 0.0])
    k, margin = framing.intrinsics, framing.pelvis_margin_px
    while True:
        rel = path_cam - aim + np.array([0.0, 0.0, distance])
        u = k.fx * rel[:, 0] / rel[:, 2]
        v = k.fy * rel[:, 1] / rel[:, 2]
        # The camera centre in the world: the aim point is `distance` straight ahead of it.
        centre = rotation.T @ (aim - np.array([0.0, 0.0, distance]))
        inside = np.abs(u).max() <= margin[0] and np.abs(v).max() <= margin[1] and rel[:, 2].min() > 2.0
        if inside and min_depth_of is not None:
            inside = min_depth_of(_poses(rotation[None], centre)) >= MIN_DEPTH_M
        if inside or distance >= framing.max_distance_m:
            return rotation, centre
        distance = min(distance * 1.08, framing.max_distance_m)


def turn_towards(shift_px: np.ndarray, intrinsics: geometry.Intrinsics) -> np.ndarray:
    """[N, 3, 3] camera-frame rotations that move what the principal point shows by `shift_px [N, 2]` (x, y) pixels:
    the smallest turn taking the optical axis to the ray of (cx + shift_x, cy + shift_y)."""
    shift_px = np.asarray(shift_px, np.float64)
    ray = np.stack([shift_px[:, 0] / intrinsics.fx, shift_px[:, 1] / intrinsics.fy, np.ones(len(shift_px))], -1)
    ray /= np.linalg.norm(ray, axis=-1, keepdims=True)
    sideways = np.hypot(ray[:, 0], ray[:, 1])
    axis = np.stack([-ray[:, 1], ray[:, 0], np.zeros(len(ray))], -1) / np.maximum(sideways, 1e-300)[:, None]
    return geometry.axis_angle_to_matrix(axis * np.arctan2(sideways, ray[:, 2])[:, None])


def shift_relative_to_centre(steps_px: np.ndarray) -> np.ndarray:
    """[N, 2] where the content of the centre frame's point p is at frame t, minus p, from the per-frame content
    displacements `steps_px [N, 2]` (row t: frame t-1 -> t; row 0 unused), with the centre frame N // 2 as
    reference, as `mhr_tf.data.camera_motion.integrate_relative_to_centre` integrates the median flow."""
    cumulative = np.cumsum(np.concatenate([np.zeros((1, 2)), np.asarray(steps_px, np.float64)[1:]]), axis=0)
    return cumulative - cumulative[len(cumulative) // 2]


def camera_following_background(rotation: np.ndarray, centre: np.ndarray, num_frames: int, rng: np.random.Generator,
                                framing: Framing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training composites' camera motion for a fixed camera (`rotation [3, 3]`, `centre [3]`): one of the
    simulator's moving background videos at the frame size (a random camera kind, moving objects), and the camera
    turning about its centre so that what it showed at the principal point in the centre frame moves as the
    background's content at the image centre does, as the training pipeline's `follow_camera` moves the person.

    Returns (cam_poses [N, 4, 4], background frames [N, H, W, 3] uint8, shift [N, 2] px of the content at the image
    centre relative to the centre frame).
    """
    video = backgrounds.make_background_video(num_frames, rng, hw=framing.image_hw)
    shift = shift_relative_to_centre(video.camera.image_shift_px())
    turned = turn_towards(shift, framing.intrinsics) @ rotation
    return _poses(turned, centre), video.frames, shift


def _shake(rng: np.random.Generator, num_frames: int, strength: float) -> np.ndarray:
    """[N, 3, 3] small smooth random rotations (camera frame): the hand-held wobble, its std scaled by `strength`."""
    amplitude = np.radians(rng.uniform(*SHAKE_DEG)) * strength
    noise = gaussian_filter1d(rng.normal(size=(num_frames, 3)), SHAKE_SMOOTHING_FRAMES, axis=0, mode="nearest")
    noise *= amplitude / max(float(noise.std()), 1e-9)
    return geometry.axis_angle_to_matrix(noise)


def hand_held_camera(pelvis: np.ndarray, floor_y: float, rng: np.random.Generator, framing: Framing,
                     min_depth_of: Callable[[np.ndarray], float], shake_rng: np.random.Generator,
                     shake: float) -> np.ndarray:
    """World -> camera `[N, 4, 4]` of an operator following the people: `pelvis [P, N, 3]` (world).

    The operator stands `framing`'s distance from the group at a random bearing, walks along with a share of its
    motion and aims (with a lag) at it; steps back while some joint comes closer than MIN_DEPTH_M
    (`min_depth_of(cam_poses)` measures it). `shake` scales the operator's step bob and rotation jitter, drawn from
    `shake_rng` (0: a perfectly steady operator, the rest of the path unchanged).
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
    aim = gaussian_filter1d(group, AIM_LAG_FRAMES, axis=0, mode="nearest")
    aim[:, 1] = aim[:, 1] + rng.uniform(0.0, 0.3)  # between pelvis and chest
    bob = shake * shake_rng.uniform(*BOB_M) * np.sin(
        2.0 * np.pi * shake_rng.uniform(*BOB_HZ) * np.arange(num_frames) / FPS + shake_rng.uniform(0, 2 * np.pi))
    jitter = _shake(shake_rng, num_frames, shake)
    # Spread of the group across the view: two people side by side need the camera further back.
    spread = float(np.linalg.norm(pelvis[:, 0] - group[0], axis=1).max()) if len(pelvis) > 1 else 0.0
    half_width_m = (framing.image_hw[1] / 2.0 - 10.0) / framing.intrinsics.fx
    distance = max(framing.draw_distance(rng), (spread + 0.45) / half_width_m)
    for _ in range(30):
        walk = group - group[0]
        eye = group[0] + away * distance + follow * walk
        eye[:, 1] = height + bob
        cam_poses = _poses(jitter @ look_at(eye, aim), eye)
        if min_depth_of(cam_poses) >= MIN_DEPTH_M:
            break
        distance += 0.5
    return cam_poses


def background_for_camera(cam_poses: np.ndarray, rng: np.random.Generator,
                          framing: Framing) -> tuple[np.ndarray, np.ndarray]:
    """A moving background that turns with the camera: a static-camera background video (with its own moving objects)
    larger than the frame, cut where the camera's rotation points it (distant scenery). Returns (frames [N, H, W, 3]
    uint8, shift [N, 2] px of the content at the image centre relative to the centre frame)."""
    height, width = framing.image_hw
    k = framing.intrinsics
    # Where the centre of view of frame t lies in frame 0's image (a direction at infinity).
    centre_dir = np.einsum("ij,nj->ni", cam_poses[0, :3, :3], cam_poses[:, 2, :3])  # R_0 R_t^T e_z
    shift = np.stack([k.fx * centre_dir[:, 0] / centre_dir[:, 2], k.fy * centre_dir[:, 1] / centre_dir[:, 2]], -1)
    margin = np.ceil(np.abs(shift).max(axis=0)).astype(int) + 4  # (x, y)
    big_hw = (height + 2 * int(margin[1]), width + 2 * int(margin[0]))
    video = backgrounds.make_background_video(len(cam_poses), rng, hw=big_hw, kind="static")
    centre = np.array([big_hw[1] - 1, big_hw[0] - 1]) / 2.0 + shift
    frames = np.stack([cv2.getRectSubPix(f, (width, height), (float(c[0]), float(c[1])))
                       for f, c in zip(video.frames, centre)])
    # Content at the centre moves opposite to where the view turns.
    return frames, -(shift - shift[len(shift) // 2])
