"""The simulator's datasets, written in the real file formats: SURREAL-style training clips, Kinetics-style background
videos, and the shifted-domain evaluation set in 3DPW's layout (always named as simulated, never as 3DPW).

Every sequence is a pure function of `(seed, index)`: its generator is `np.random.default_rng([seed, index])` (the
convention of `backgrounds.write_background_video`), so a set is the same bytes whatever the number of worker
processes, and workers split a set by index. The parts come from the other simulator modules: bodies
(`mhr_tf.body.smpl`, the open body model by default), motion (`motion.sample_motion`), the z-buffer renderer and its
procedural clothing and lighting (`render`), moving backgrounds (`backgrounds`), and the writers (`writers`), whose
files the decoders in `mhr_tf.data` read back.

World frame of every scene: SMPL's, y up, metres (the frame `motion.Motion` lives in). Camera frames as everywhere in
mhr_tf: x right, y down, z forward.

SURREAL (Varol et al. 2017, datageneration/main_part1.py): one person per clip, random gender and shape, a fixed
camera looking horizontally at the person from `camDist` ~ N(8, 1) m, i.e. about camDist - 1 m from the pelvis
(main_part1.py offsets the pelvis reference by 1 m; see `writers.surreal_info_fields`), a random `zrot`, clothing and
lighting, composited over one static background picture (SURREAL uses LSUN photographs; here skimage photographs and
procedural textures). Unlike SURREAL, which re-centres the camera on the first frame's pelvis, the camera aims at
the middle of the clip's pelvis path and backs off when the path is wide, so the person stays mostly in frame.

Shifted domain (the sim2real gap in miniature): other clothing ("shifted" palettes and patterns), harsher lighting
from any side, a hand-held camera that follows the people and shakes, moving backgrounds consistent with the
camera's rotation, objects passing in front of the people, blur, noise and colour casts, one or two people, and
`poses2d` made as a 2D detector gives them (`simulate_detections`).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from mhr_tf import geometry
from mhr_tf.body import joints as joint_sets
from mhr_tf.data import surreal, threedpw
from mhr_tf.sim import backgrounds, motion, render, writers

# ---- shared ------------------------------------------------------------------------------------------------------

KINDS = ("surreal", "backgrounds", "threedpw")
SIM_SOURCE = writers.SURREAL_SIM_SOURCE  # `source` of every simulated SURREAL clip
SET_RECORD = "mhr_tf_sim.json"  # written last into a set's root: what was generated, with which arguments
SET_RECORD_VERSION = 1
UP = np.array([0.0, 1.0, 0.0])  # SMPL's world: y up
# Shape prior: the open body model's betas are scaled so one unit is about one standard deviation of adults (as
# SMPL's PCA betas are); extreme draws are clipped.
BETA_CLIP = 2.5
_HEAD_PART = joint_sets.SMPL_PARTS.index("head")
_PELVIS = joint_sets.SMPL_24.index("pelvis")


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sequence `index` of the set made with `seed` (independent of every other sequence)."""
    return np.random.default_rng([int(seed), int(index)])


def random_betas(rng: np.random.Generator) -> np.ndarray:
    """[10] float32: N(0, 1) per shape component, clipped to +-BETA_CLIP."""
    return np.clip(rng.normal(size=surreal.NUM_BETAS), -BETA_CLIP, BETA_CLIP).astype(np.float32)


@functools.lru_cache(maxsize=None)
def body_model(path: str | None, gender: str):
    """The body model for `gender` ("neutral", "male", "female"), loaded once per process. `path` None = the open
    body model (built into MHR_TF_HOME on first use)."""
    from mhr_tf.body import smpl  # imports TensorFlow (the layer lives there): only where a body is needed
    return smpl.load_body_model(path, gender)


def preload_bodies(path: str | None = None, genders=("female", "male")) -> None:
    """Load the bodies in this process before workers fork from it: they inherit the models and the modules (the
    body layer's module imports TensorFlow, seconds per process) instead of loading them each."""
    for gender in genders:
        body_model(path, gender)


def _forward(model, betas: np.ndarray, pose: np.ndarray, trans: np.ndarray | None = None):
    """The posed body for every frame: (vertices [T, V, 3], joints [T, 24, 3]) float64, metres, model frame."""
    from mhr_tf.body import smpl
    num_frames = len(pose)
    vertices, joints = smpl.forward_numpy(model, np.broadcast_to(betas, (num_frames, surreal.NUM_BETAS)), pose,
                                          trans)
    return vertices.astype(np.float64), joints.astype(np.float64)


def rest_pelvis(model, betas: np.ndarray) -> np.ndarray:
    """[3] float64: the pelvis J0(betas) of the unposed body, about which SMPL turns the root."""
    _, joints = _forward(model, betas, np.zeros((1, surreal.NUM_POSE)))
    return joints[0, _PELVIS]


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[..., 3, 3] world -> camera rotation (rows: the camera's x right, y down, z forward in world coordinates) of
    cameras at `eye [..., 3]` looking at `target [..., 3]`, with no roll (image rows level with the y-up world)."""
    forward = np.asarray(target, np.float64) - np.asarray(eye, np.float64)
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, UP)  # forward x up is right for a y-down image
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=-2)


def rotate_root(pose: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """`pose [T, 72]` with its root orientation turned by `rotation [3, 3]` or `[T, 3, 3]` (a change of the frame the
    body is expressed in); the other joints are relative to their parents and unchanged."""
    pose = np.array(pose, dtype=np.float64)
    pose[:, :3] = geometry.matrix_to_axis_angle(rotation @ geometry.axis_angle_to_matrix(pose[:, :3]))
    return pose


def split_for_index(index: int, cycle: Sequence[str]) -> str:
    """Sequence `index`'s split: `cycle` repeated over the indices (a fixed fraction, whatever the set's size)."""
    return cycle[index % len(cycle)]


# SURREAL: 8 of every 10 sequences train, then one val and one test (indices 8 and 9 of each block of 10).
SURREAL_SPLIT_CYCLE = ("train",) * 8 + ("val", "test")
# 3DPW: its three splits in turn.
THREEDPW_SPLIT_CYCLE = threedpw.SPLITS


# ---- SURREAL -----------------------------------------------------------------------------------------------------

SURREAL_RUN = 0  # run0: SURREAL's 50 %-overlap cut (the only run we write)
SURREAL_CLIP = 1  # each simulated sequence is one clip, `_c0001`
SURREAL_NAME_PREFIX = "sim"  # sequence names say they are simulated: sim00001, sim00002, ...
# main_part1.py: camera_distance = np.random.normal(8.0, 1), recorded as `camDist`; the camera then sits about
# camDist - 1 m from the pelvis (the sample 01_01_c0001: camDist 7.692, camera-pelvis 6.694 m).
SURREAL_CAM_DIST_MEAN_M = 8.0
SURREAL_CAM_DIST_STD_M = 1.0
SURREAL_PELVIS_OFFSET_M = 1.0
SURREAL_CAM_DIST_RANGE_M = (5.5, 10.5)  # clip the normal's tails: the person is about 100-200 px tall
SURREAL_MAX_DISTANCE_M = 11.0  # how far the camera may back off to keep a wide path in view
# The camera keeps the pelvis at most this many pixels from the principal point (the frame is 320 x 240): a person
# running across leaves the frame partly, never wholly.
SURREAL_PELVIS_MARGIN_PX = (140.0, 95.0)
SURREAL_AIM_JITTER_M = 0.15  # the aim point's random offset from the middle of the pelvis path
SURREAL_CAMERA_HEIGHT_STD_M = 0.05  # main_part1.py: the camera at the pelvis's height (0.03 m above it in 01_01)


@dataclasses.dataclass(frozen=True)
class SurrealSequence:
    """One simulated SURREAL clip, everything in the decoder's (unmirrored) camera frame."""
    name: str
    gender: str                # "female" | "male"
    betas: np.ndarray          # [10] float32
    pose_cam: np.ndarray       # [T, 72] float32, SMPL axis-angle, root in the camera frame
    joints3d_cam: np.ndarray   # [T, 24, 3] float32, metres, camera frame
    frames: np.ndarray         # [T, 240, 320, 3] uint8 RGB
    segm: np.ndarray           # [T, 240, 320] uint8, 0 background, SMPL part + 1
    depth_planar: np.ndarray   # [T, 240, 320] float32, metres along the camera's z, 1e10 off the body
    cam_loc: np.ndarray        # [3] float64, camera centre in SURREAL's world
    cam_dist: float            # SURREAL's sampled `camDist`, metres
    zrot: float                # radians
    light: np.ndarray          # [9] float32, SURREAL's `light` field (see `surreal_light`)
    background: str            # the picture behind the person
    motion_kinds: tuple[str, ...]  # what the clip shows, e.g. ("walk", "turn")


def surreal_light(light_dir_cam: np.ndarray, ambient: float) -> np.ndarray:
    """SURREAL's `light` field (9 spherical-harmonics coefficients, main_part1.py) for our ambient + directional
    light: coefficient 0 the ambient level, 1-3 (real SH band 1, in the order y, z, x) the light direction in
    SURREAL's world scaled by the directional share, the rest 0. A stand-in with the field's shape and meaning."""
    direction = surreal.joints_from_camera(light_dir_cam, np.zeros(3))  # rotation only: cam_loc 0
    light = np.zeros(writers.SURREAL_NUM_SH, np.float32)
    light[0] = ambient
    light[1:4] = (1.0 - ambient) * direction[[1, 2, 0]]
    return light


def surreal_camera(pelvis: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """A fixed, level camera for a pelvis path `[T, 3]` (world): (R world -> camera [3, 3], centre [3], camDist)."""
    cam_dist = float(np.clip(rng.normal(SURREAL_CAM_DIST_MEAN_M, SURREAL_CAM_DIST_STD_M), *SURREAL_CAM_DIST_RANGE_M))
    azimuth = rng.uniform(0.0, 2.0 * np.pi)  # the person's heading is random anyway; so is where the camera stands
    forward = np.array([np.sin(azimuth), 0.0, np.cos(azimuth)])
    rotation = look_at(np.zeros(3), forward)
    # Aim at the middle of the pelvis path as the camera sees it (lateral and vertical extent), plus a jitter.
    path_cam = pelvis @ rotation.T
    middle = (path_cam.min(axis=0) + path_cam.max(axis=0)) / 2.0
    aim = middle + np.array([rng.normal(0.0, SURREAL_AIM_JITTER_M), rng.normal(0.0, SURREAL_CAMERA_HEIGHT_STD_M),
                             0.0])
    distance = cam_dist - SURREAL_PELVIS_OFFSET_M
    k = surreal.SURREAL_INTRINSICS
    while True:  # back off until the pelvis stays within the margins on every frame (or the limit is reached)
        rel = path_cam - aim + np.array([0.0, 0.0, distance])
        u = k.fx * rel[:, 0] / rel[:, 2]
        v = k.fy * rel[:, 1] / rel[:, 2]
        inside = (np.abs(u).max() <= SURREAL_PELVIS_MARGIN_PX[0] and np.abs(v).max() <= SURREAL_PELVIS_MARGIN_PX[1]
                  and rel[:, 2].min() > 2.0)
        if inside or distance >= SURREAL_MAX_DISTANCE_M:
            break
        distance = min(distance * 1.08, SURREAL_MAX_DISTANCE_M)
    # The camera centre in the world: the aim point is `distance` straight ahead of it.
    centre = rotation.T @ (aim - np.array([0.0, 0.0, distance]))
    return rotation, centre, cam_dist


def make_surreal_sequence(seed: int, index: int, num_frames: int, body_model_path: str | None = None,
                          kinds: Sequence[str] | None = None) -> SurrealSequence:
    """Simulate SURREAL clip number `index` of the set for `seed` (in memory; `write_surreal_sequence` writes it)."""
    if num_frames < 1:
        raise ValueError(f"make_surreal_sequence: num_frames={num_frames}, expected >= 1")
    rng = sequence_rng(seed, index)
    gender = surreal.GENDERS[rng.integers(len(surreal.GENDERS))]
    model = body_model(body_model_path, gender)
    betas = random_betas(rng)
    moving = motion.sample_motion(rng, num_frames, motion.FPS, kinds)
    # main_part1.py: random_zrot = 2 pi U(0, 1), once per clip. Our motion's heading is already random, so zrot is
    # only recorded: the writer's stored root orientation undoes it, and the file stays consistent.
    zrot = float(rng.uniform(0.0, 2.0 * np.pi))
    vertices, joints = _forward(model, betas, moving.pose, moving.trans)
    rotation, centre, cam_dist = surreal_camera(joints[:, _PELVIS], rng)
    vertices_cam = (vertices - centre) @ rotation.T  # [T, V, 3]
    joints_cam = (joints - centre) @ rotation.T
    pose_cam = rotate_root(moving.pose, rotation)

    colours = render.clothing_colors(model.v_template, model.part_ids, rng, style="train")
    light_dir, ambient = render.random_lighting(rng, style="train")
    still = backgrounds.make_background_video(1, rng, hw=surreal.SURREAL_IMAGE_HW, kind="static", num_objects=0)
    frames, segm, depth = _render_clip(vertices_cam, model.faces, colours, model.part_ids, light_dir, ambient,
                                       np.broadcast_to(still.frames[0], (num_frames,) + still.frames.shape[1:]))
    # The world SURREAL records: the first frame's pelvis at the origin (its own clips sit near it too).
    cam_loc = -surreal.joints_from_camera(joints_cam[0, _PELVIS], np.zeros(3))
    kinds_shown = tuple(dict.fromkeys(str(k) for k in moving.kind))
    return SurrealSequence(
        name=f"{SURREAL_NAME_PREFIX}{index + 1:05d}", gender=gender, betas=betas,
        pose_cam=pose_cam.astype(np.float32), joints3d_cam=joints_cam.astype(np.float32), frames=frames, segm=segm,
        depth_planar=depth, cam_loc=cam_loc, cam_dist=cam_dist, zrot=zrot,
        light=surreal_light(light_dir, ambient), background=still.source, motion_kinds=kinds_shown)


def _render_clip(vertices_cam, faces, colours, part_ids, light_dir, ambient, background_frames,
                 intrinsics=surreal.SURREAL_INTRINSICS, image_hw=surreal.SURREAL_IMAGE_HW):
    """Render every frame of `vertices_cam [T, V, 3]` over `background_frames [T, H, W, 3]`: (rgb [T, H, W, 3]
    uint8, segm [T, H, W] uint8, planar depth [T, H, W] float32). `light_dir` [3] or [T, 3], camera frame."""
    num_frames = len(vertices_cam)
    light_dir = np.broadcast_to(np.asarray(light_dir, np.float64), (num_frames, 3))
    out_rgb = np.empty((num_frames,) + tuple(image_hw) + (3,), np.uint8)
    out_segm = np.empty((num_frames,) + tuple(image_hw), np.uint8)
    out_depth = np.empty((num_frames,) + tuple(image_hw), np.float32)
    for t in range(num_frames):
        # Back faces culled: the body meshes are closed and outward-wound, so the images are the same, twice as fast.
        frame = render.render(vertices_cam[t], faces, intrinsics, image_hw, vertex_colors=colours,
                              part_ids=part_ids, light_dir=light_dir[t], ambient=ambient,
                              background=np.ascontiguousarray(background_frames[t]), cull_back_faces=True)
        out_rgb[t], out_segm[t], out_depth[t] = frame.rgb, frame.segm, frame.depth
    return out_rgb, out_segm, out_depth


def write_surreal_sequence(root, seed: int, index: int, num_frames: int, split: str | None = None,
                           body_model_path: str | None = None) -> Path:
    """Simulate and write SURREAL clip `index` as `<root>/<split>/run0/sim%05d/sim%05d_c0001.mp4` with its
    `_info.mat`, `_segm.mat`, `_depth.mat`; returns the .mp4's path. `split` None: `SURREAL_SPLIT_CYCLE`."""
    split = split_for_index(index, SURREAL_SPLIT_CYCLE) if split is None else split
    seq = make_surreal_sequence(seed, index, num_frames, body_model_path)
    return writers.write_surreal_clip_from_camera(
        root, split, SURREAL_RUN, seq.name, SURREAL_CLIP, seq.frames, seq.segm,
        surreal.ray_distance_from_planar_depth(seq.depth_planar),  # SURREAL's depth is Cycles' ray distance
        seq.joints3d_cam, seq.pose_cam, seq.betas, seq.gender, seq.cam_loc, seq.zrot,
        light=seq.light, cam_dist=seq.cam_dist, bg=f"simulated:{seq.background}",
        cloth="simulated:procedural_clothing_train", source=SIM_SOURCE)


def _forget_manifests(root: Path, splits) -> None:
    """Drop the decoder's cached manifests of `root`: they would list the clips of an earlier run."""
    for split in splits:
        for cache in surreal.manifest_cache_paths(root, split):
            cache.unlink(missing_ok=True)


def write_surreal_set(root, num_sequences: int, num_frames: int, seed: int, workers: int = 1,
                      split: str | None = None, body_model_path: str | None = None,
                      progress: bool = True) -> list[Path]:
    """Write `num_sequences` simulated SURREAL clips into `root` (SURREAL's layout); returns their .mp4 paths.

    `split` None spreads them over train/val/test by `SURREAL_SPLIT_CYCLE`; a split name puts all of them there.
    Clips of an earlier, larger set in `root` are left in place; the set record (`read_set_record`) lists this set's.
    """
    if split is not None and split not in surreal.SPLITS:
        raise ValueError(f"write_surreal_set: split {split!r}, expected one of {surreal.SPLITS} or None")
    root = Path(root)
    preload_bodies(body_model_path, surreal.GENDERS)
    job = functools.partial(write_surreal_sequence, root, seed, num_frames=num_frames, split=split,
                            body_model_path=body_model_path)
    paths = run_parallel(job, range(num_sequences), workers, "SURREAL sequences", progress)
    _forget_manifests(root, surreal.SPLITS)
    _write_set_record(root, "surreal", seed=seed, num_sequences=num_sequences, num_frames=num_frames, split=split,
                      body_model=body_model_path, files=[str(p.relative_to(root)) for p in paths])
    return paths


# ---- background videos --------------------------------------------------------------------------------------------

def write_background_set(root, num_videos: int, num_frames: int, seed: int, workers: int = 1,
                         progress: bool = True) -> list[Path]:
    """`backgrounds.write_background_set` with worker processes and a progress bar: the same files (each video is a
    function of `(seed, index)`); returns the video paths."""
    root = Path(root)
    job = functools.partial(_background_video, root, seed=seed, num_frames=num_frames)
    paths = run_parallel(job, range(num_videos), workers, "background videos", progress)
    _write_set_record(root, "backgrounds", seed=seed, num_sequences=num_videos, num_frames=num_frames,
                      files=[str(p.relative_to(root)) for p in paths])
    return paths


def _background_video(root: Path, index: int, seed: int, num_frames: int) -> Path:
    return backgrounds.write_background_video(root, index, num_frames, seed).path


# ---- the shifted-domain set in 3DPW's layout ---------------------------------------------------------------------

THREEDPW_NAME_PREFIX = "simulated_"  # simulated_00001, ...: never a 3DPW name
# Portrait phone video as 3DPW's (1080 x 1920) at a quarter of the size, with about its focal length (3DPW's
# cam_intrinsics have fx ~ 1.8 image widths).
THREEDPW_IMAGE_HW = (480, 270)
THREEDPW_INTRINSICS = geometry.Intrinsics(490.0, 490.0, 135.0, 240.0)
TWO_PEOPLE_PROBABILITY = 0.35
PAIR_SPACING_M = (0.9, 1.5)  # side by side, as 3DPW's walking pairs
PAIR_VIEW_SPREAD_DEG = 50.0  # the camera sees a pair within this angle of straight across their line
CAMERA_DISTANCE_M = (2.5, 4.5)  # from the people to the hand-held camera: 3DPW-like framing
CAMERA_HEIGHT_M = (1.25, 1.7)  # above the floor
MIN_DEPTH_M = 1.8  # no joint closer to the camera than this
CAMERA_FOLLOW = (0.3, 1.0)  # share of the people's horizontal motion the camera operator walks along
AIM_LAG_FRAMES = 4.0  # the operator's aim trails the people (Gaussian smoothing of the aim point, frames)
SHAKE_DEG = (0.15, 0.8)  # hand-held rotation jitter per axis (std, degrees)
SHAKE_SMOOTHING_FRAMES = 1.5
BOB_M = (0.005, 0.02)  # the operator's step bob, metres
OCCLUDER_PROBABILITY = 0.6  # a sequence has something passing in front of the people
INVALID_CAMPOSE_PROBABILITY = 0.3  # a sequence has a short run of frames whose camera pose is off (campose_valid 0)
INVALID_CAMPOSE_FRAMES = (2, 6)
INVALID_CAMPOSE_ERROR_DEG = (2.0, 5.0)  # how far off the stored camera rotation is on those frames
BLUR_SIGMA_PX = (0.3, 1.2)
EXPOSURE = 0.5  # share of the frame interval the shutter is open: motion blur is half the inter-frame motion
MAX_STREAK_PX = 15.0
NOISE_STD = (2.0, 7.0)  # sensor noise, 0..255 units
JPEG_QUALITY = (70, 92)

# The 2D detector (OpenPose COCO-18 as 3DPW's poses2d): what it sees, how precisely, and how it fails.
JOINT_HIDDEN_BEHIND_M = 0.2  # App. B's rule: a joint this far behind the rendered surface is hidden
SURFACE_HIDDEN_BEHIND_M = 0.04  # face keypoints are on the surface: hidden by anything in front of them
DETECTION_JITTER = 0.008  # std of a detected keypoint's error, as a fraction of the person's height in pixels
GUESS_PROBABILITY = 0.5  # a hidden keypoint is still guessed (low confidence) rather than left out
GUESS_JITTER = 0.04
GUESS_CONFIDENCE = (0.05, 0.3)
DROP_PROBABILITY = 0.03  # a visible keypoint is missed
OUTLIER_PROBABILITY = 0.01  # a visible keypoint lands far off, with low confidence
OUTLIER_DISTANCE = (0.08, 0.2)  # fraction of the person's height
OUTLIER_CONFIDENCE = (0.1, 0.45)
SWAP_PROBABILITY = 0.04  # a frame's left and right limbs are swapped (arms, legs or all)
CONFIDENCE_MEAN = 0.75
CONFIDENCE_STD = 0.1
CONFIDENCE_RANGE = (0.3, 0.98)
MIN_DETECTED = 6  # 3DPW's readme: poses2d only where at least 6 joints were detected; else the frame is all zero
# Codes of `Detections.error`
DETECTED, MISSING, GUESSED, OUTLIER, SWAPPED = 0, 1, 2, 3, 4
_FACE_KEYPOINTS = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
# Offsets from the nose tip (metres, rest pose: x = the person's left, y up, z forward) where the eyes are looked for.
_EYE_OFFSET = np.array([0.032, 0.035, -0.025])
_EAR_ABOVE_NOSE_M = 0.02


@dataclasses.dataclass(frozen=True)
class Detections:
    """A simulated detector's COCO-18 output for one person, and what went wrong where."""
    keypoints: np.ndarray  # [N, 18, 3] float32 (x px, y px, confidence), all zero where not detected
    error: np.ndarray      # [N, 18] int8: DETECTED, MISSING, GUESSED, OUTLIER or SWAPPED
    visible: np.ndarray    # [N, 18] bool, in the image and not hidden (by a body or a passing object)
    sigma_px: np.ndarray   # [N] float32, std of the jitter of DETECTED keypoints


@dataclasses.dataclass(frozen=True)
class SimPerson:
    gender: str                 # "male" | "female"
    betas: np.ndarray           # [10] float32
    pose_world: np.ndarray      # [N, 72] float32
    trans_world: np.ndarray     # [N, 3] float32
    joints_world: np.ndarray    # [N, 24, 3] float32, SMPL joints
    joints3d_cam: np.ndarray    # [N, 24, 3] float32, true camera frame
    keypoints3d_cam: np.ndarray  # [N, 18, 3] float32, COCO-18 points of the body, true camera frame
    v_template: np.ndarray      # [V, 3] float32, the person's unposed body (betas applied)
    detections: Detections


@dataclasses.dataclass(frozen=True)
class ThreeDPWSequence:
    name: str
    people: list[SimPerson]
    cam_poses: np.ndarray       # [N, 4, 4] float64, world -> camera as stored (off on invalid frames)
    cam_poses_true: np.ndarray  # [N, 4, 4] float64, the camera that rendered the images
    campose_valid: np.ndarray   # [N] bool
    cam_intrinsics: np.ndarray  # [3, 3] float64
    images: np.ndarray          # [N, H, W, 3] uint8 RGB
    occluder_mask: np.ndarray   # [N, H, W] bool, where a passing object covers the view
    jpeg_quality: int


def face_keypoint_vertices(model) -> dict[str, int]:
    """Vertex ids of the nose tip, eyes and ears on any SMPL-layout body, found from its rest template: the nose is the
    head's most forward vertex, the eyes the head vertices nearest to fixed offsets from it, the ears the head's
    outermost vertices at about the nose's height."""
    vertices = np.asarray(model.v_template, np.float64)
    head = np.flatnonzero(np.asarray(model.part_ids) == _HEAD_PART)
    if head.size == 0:
        raise ValueError(f"{model.source}: no vertex has the head's part id {_HEAD_PART} — cannot place the face "
                         f"keypoints")
    points = vertices[head]
    nose = int(np.argmax(points[:, 2]))
    ids = {"nose": int(head[nose])}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        target = points[nose] + _EYE_OFFSET * np.array([sign, 1.0, 1.0])
        ids[f"{side}_eye"] = int(head[np.argmin(np.linalg.norm(points - target, axis=1))])
    level = np.abs(points[:, 1] - (points[nose, 1] + _EAR_ABOVE_NOSE_M))
    band = level <= np.quantile(level, 0.1)  # the head's slice at ear height
    band_ids = np.flatnonzero(band)
    ids["left_ear"] = int(head[band_ids[np.argmax(points[band, 0])]])  # the person's left is +x
    ids["right_ear"] = int(head[band_ids[np.argmin(points[band, 0])]])
    return ids


def coco_keypoints(model, vertices: np.ndarray) -> np.ndarray:
    """COCO-18 points `[T, 18, 3]` of posed `vertices [T, V, 3]`: neck and limb joints from the body's 14-joint
    evaluation regressor (the joints the training heatmaps are drawn at), face points from surface vertices."""
    lsp = np.einsum("kv,tvc->tkc", np.asarray(model.lsp_regressor, np.float64), vertices)
    out = joint_sets.convert(lsp, joint_sets.LSP_14, joint_sets.COCO_18)
    for name, vertex in face_keypoint_vertices(model).items():
        out[:, joint_sets.COCO_18.index(name)] = vertices[:, vertex]
    return out


def _at_pixels(maps: np.ndarray, uv: np.ndarray, outside) -> np.ndarray:
    """`maps [N, H, W]` at the nearest pixel of `uv [N, K, 2]`: [N, K], `outside` where that pixel is off the map."""
    height, width = maps.shape[-2:]
    col, row = np.rint(uv[..., 0]).astype(np.int64), np.rint(uv[..., 1]).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    flat = maps.reshape(maps.shape[:-2] + (-1,))
    picked = np.take_along_axis(flat, np.where(inside, row * width + col, 0), axis=-1)
    return np.where(inside, picked, outside)


def simulate_detections(keypoints_cam: np.ndarray, intrinsics: geometry.Intrinsics, depth: np.ndarray,
                        occluder: np.ndarray, rng: np.random.Generator) -> Detections:
    """COCO-18 detections of one person as OpenPose gives them, from the true points `keypoints_cam [N, 18, 3]`
    (camera frame), the scene's rendered planar `depth [N, H, W]` (all people) and the passing objects' mask
    `occluder [N, H, W]`.

    A keypoint is visible when it is in the image, not covered by a passing object, and not behind a rendered
    surface (by JOINT_HIDDEN_BEHIND_M for joints inside the body, SURFACE_HIDDEN_BEHIND_M for face points). Visible
    keypoints are detected with jitter (std DETECTION_JITTER of the person's height in pixels) and a confidence,
    except a few dropped (MISSING) or thrown far off with a low confidence (OUTLIER); hidden ones are sometimes
    guessed with a low confidence (GUESSED), else missing. Some frames swap the left and right arms, legs or both
    (SWAPPED: the positions and confidences of the pair are exchanged). Frames with fewer than MIN_DETECTED
    keypoints are all zero, as in 3DPW.
    """
    num_frames, num_keypoints = keypoints_cam.shape[:2]
    height, width = depth.shape[-2:]
    uv = geometry.project(keypoints_cam, intrinsics)  # [N, 18, 2]
    in_image = (uv[..., 0] >= 0) & (uv[..., 0] <= width - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= height - 1)
    is_face = np.isin(np.array(joint_sets.COCO_18), _FACE_KEYPOINTS)
    slack = np.where(is_face, SURFACE_HIDDEN_BEHIND_M, JOINT_HIDDEN_BEHIND_M)
    unhidden = keypoints_cam[..., 2] - _at_pixels(depth, uv, np.inf) < slack
    covered = _at_pixels(occluder, uv, False)
    visible = in_image & unhidden & ~covered

    person_px = np.ptp(uv[..., 1], axis=1) * 1.15  # the body's height in pixels (head top and soles beyond the points)
    sigma = np.maximum(DETECTION_JITTER * person_px, 0.5)  # [N]
    confidence = np.clip(rng.normal(CONFIDENCE_MEAN, CONFIDENCE_STD, (num_frames, num_keypoints)),
                         *CONFIDENCE_RANGE)
    xy = uv + rng.normal(size=uv.shape) * sigma[:, None, None]
    error = np.where(visible, DETECTED, MISSING).astype(np.int8)

    guess = ~visible & in_image & (rng.uniform(size=visible.shape) < GUESS_PROBABILITY)
    xy = np.where(guess[..., None], uv + rng.normal(size=uv.shape) * (GUESS_JITTER * person_px)[:, None, None], xy)
    confidence = np.where(guess, rng.uniform(*GUESS_CONFIDENCE, visible.shape), confidence)
    error[guess] = GUESSED

    outlier = visible & (rng.uniform(size=visible.shape) < OUTLIER_PROBABILITY)
    angle = rng.uniform(0.0, 2.0 * np.pi, visible.shape)
    reach = rng.uniform(*OUTLIER_DISTANCE, visible.shape) * person_px[:, None]
    far = uv + np.stack([np.cos(angle), np.sin(angle)], axis=-1) * reach[..., None]
    xy = np.where(outlier[..., None], far, xy)
    confidence = np.where(outlier, rng.uniform(*OUTLIER_CONFIDENCE, visible.shape), confidence)
    error[outlier] = OUTLIER

    dropped = visible & ~outlier & (rng.uniform(size=visible.shape) < DROP_PROBABILITY)
    error[dropped] = MISSING

    detected = error != MISSING
    keypoints = np.concatenate([xy, confidence[..., None]], axis=-1) * detected[..., None]
    flip = joint_sets.flip_permutation(joint_sets.COCO_18)
    limbs = {"arms": ("shoulder", "elbow", "wrist"), "legs": ("hip", "knee", "ankle")}
    for t in np.flatnonzero(rng.uniform(size=num_frames) < SWAP_PROBABILITY):
        which = rng.choice(["arms", "legs", "all"])
        parts = limbs["arms"] + limbs["legs"] if which == "all" else limbs[which]
        names = [f"{side}_{part}" for part in parts for side in ("left", "right")]
        swap = np.array([joint_sets.COCO_18.index(n) for n in names])
        mirror = flip[swap]
        keypoints[t, swap] = keypoints[t, mirror]
        changed = detected[t, swap] | detected[t, mirror]  # a pair missing on both sides stays missing
        error[t, swap] = np.where(changed, np.where(detected[t, mirror], SWAPPED, MISSING), error[t, swap])
        detected[t, swap] = detected[t, mirror]
    # A frame with too few detections has none (3DPW's readme).
    too_few = (keypoints[..., 2] > 0).sum(axis=1) < MIN_DETECTED
    keypoints[too_few] = 0.0
    error[too_few] = MISSING
    return Detections(keypoints=keypoints.astype(np.float32), error=error, visible=visible,
                      sigma_px=sigma.astype(np.float32))


def _facing(pose: np.ndarray) -> np.ndarray:
    """[T, 3] unit horizontal direction the body faces (its root's +z), y-up world."""
    facing = geometry.axis_angle_to_matrix(pose[:, :3])[:, :, 2] * np.array([1.0, 0.0, 1.0])
    return facing / np.maximum(np.linalg.norm(facing, axis=1, keepdims=True), 1e-9)


def _place(pose: np.ndarray, trans: np.ndarray, pelvis0: np.ndarray, yaw: float, target: np.ndarray):
    """A motion turned by `yaw` about the vertical and moved so its first pelvis lands on `target` (world):
    (pose, trans). `pelvis0` is the body's rest pelvis J0, about which SMPL turns the root."""
    turn = geometry.axis_angle_to_matrix(np.array([0.0, yaw, 0.0]))
    num_frames = len(pose)
    transform = np.tile(np.eye(4), (num_frames, 1, 1))
    transform[:, :3, :3] = turn
    # The same formula as a camera change: trans' = R (trans + J0) + t - J0 (SMPL turns the root about J0).
    moved = threedpw.camera_translation(trans, transform, pelvis0)
    moved += target - (moved[0] + pelvis0)
    return rotate_root(pose, turn), moved


def _shake(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """[N, 3, 3] small smooth random rotations (camera frame): the hand-held wobble."""
    amplitude = np.radians(rng.uniform(*SHAKE_DEG))
    noise = gaussian_filter1d(rng.normal(size=(num_frames, 3)), SHAKE_SMOOTHING_FRAMES, axis=0, mode="nearest")
    noise *= amplitude / max(float(noise.std()), 1e-9)
    return geometry.axis_angle_to_matrix(noise)


def _hand_held_camera(pelvis: np.ndarray, floor_y: float, rng: np.random.Generator,
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
    bob = rng.uniform(*BOB_M) * np.sin(2.0 * np.pi * rng.uniform(1.5, 2.2) * np.arange(num_frames) / motion.FPS
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


def _background_for_camera(cam_poses: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
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


def _occluders(rng: np.random.Generator, people_uv: np.ndarray) -> list[dict]:
    """Objects passing in front of the people: each a shape, colours, and a path crossing the people's position
    `people_uv [N, 2]` (pixels) at a random frame."""
    height, width = THREEDPW_IMAGE_HW
    num_frames = len(people_uv)
    out = []
    if rng.uniform() >= OCCLUDER_PROBABILITY:
        return out
    for _ in range(int(rng.integers(1, 3))):
        crossing = int(rng.integers(0, num_frames))
        speed = rng.uniform(width / 40.0, width / 12.0) * rng.choice([-1.0, 1.0])  # px per frame
        round_shape = bool(rng.uniform() < 0.4)  # a ball or a bag rather than a pole or a passer-by
        size = (np.full(2, rng.uniform(0.15, 0.35) * width) if round_shape
                else np.array([rng.uniform(0.12, 0.35) * width, rng.uniform(0.3, 1.2) * height]))
        start = people_uv[crossing] + np.array([0.0, rng.normal(0.0, 0.15 * height)])
        out.append({"crossing": crossing, "speed": speed, "size": size, "start": start,
                    "round": round_shape, "colour": rng.uniform(20, 235, 3),
                    "stripes": rng.uniform(0, 255, 3) if rng.uniform() < 0.5 else None,
                    "period": rng.uniform(6, 20)})
    return out


def _draw_occluders(image: np.ndarray, t: int, occluders: list[dict]) -> np.ndarray:
    """Draws the objects of frame `t` into `image` (in place); returns their mask [H, W] bool."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    for item in occluders:
        centre = item["start"] + np.array([item["speed"] * (t - item["crossing"]), 0.0])
        half = item["size"] / 2.0
        one = np.zeros_like(mask)
        if item["round"]:
            cv2.circle(one, (int(round(centre[0])), int(round(centre[1]))), int(round(half[0])), 1, -1)
        else:
            corners = np.round([centre - half, centre + half]).astype(int)
            cv2.rectangle(one, tuple(int(c) for c in corners[0]), tuple(int(c) for c in corners[1]), 1, -1)
        covered = one.astype(bool)
        if not covered.any():
            continue
        v, u = np.nonzero(covered)
        shade = 0.75 + 0.25 * (u - u.min()) / max(np.ptp(u), 1)  # lit from one side
        colour = np.tile(item["colour"], (len(u), 1))
        if item["stripes"] is not None:
            band = ((v + u * 0.3) // item["period"]) % 2 == 1
            colour[band] = item["stripes"]
        image[v, u] = np.clip(colour * shade[:, None], 0, 255).astype(np.uint8)
        mask |= one
    return mask.astype(bool)


def _degrade(images: np.ndarray, cam_poses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A phone camera's look: a colour cast and gamma, motion blur along the camera's image motion, defocus blur,
    sensor noise. [N, H, W, 3] uint8 -> same."""
    gain = rng.uniform(0.85, 1.15, 3)
    gamma = rng.uniform(0.8, 1.25)
    sigma = rng.uniform(*BLUR_SIGMA_PX)
    noise = rng.uniform(*NOISE_STD)
    levels = np.arange(256, dtype=np.float64)[:, None] / 255.0
    grading = np.clip(np.rint(levels ** gamma * gain * 255.0), 0, 255).astype(np.uint8)[:, None, :]  # [256, 1, 3]
    k = THREEDPW_INTRINSICS
    out = np.empty_like(images)
    for t, image in enumerate(images):
        x = cv2.LUT(np.ascontiguousarray(image), grading)
        # Image motion of the scene at the centre since the previous frame (the camera's turn), smeared over the
        # exposure.
        previous_axis = cam_poses[max(t - 1, 0), 2, :3]
        direction = cam_poses[t, :3, :3] @ previous_axis
        streak = EXPOSURE * np.array([k.fx * direction[0] / direction[2], k.fy * direction[1] / direction[2]])
        length = float(np.linalg.norm(streak))
        if length >= 2.0:
            streak *= min(length, MAX_STREAK_PX) / length
            half = int(np.ceil(np.abs(streak).max() / 2.0))
            kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
            a, b = half - streak / 2.0, half + streak / 2.0
            cv2.line(kernel, tuple(int(round(c)) for c in a), tuple(int(round(c)) for c in b), 1.0, 1)
            x = cv2.filter2D(x, -1, kernel / kernel.sum())
        x = cv2.GaussianBlur(x, (0, 0), sigma)
        # OpenCV's generator, seeded from ours (deterministic), draws the noise several times faster than numpy.
        cv2.setRNGSeed(int(rng.integers(2 ** 31)))
        grain = np.empty(x.shape, np.int16)
        cv2.randn(grain, 0.0, noise)
        out[t] = cv2.add(x, grain, dtype=cv2.CV_8U)  # saturating
    return out


def make_threedpw_sequence(seed: int, index: int, num_frames: int, num_people: int | None = None,
                           body_model_path: str | None = None) -> ThreeDPWSequence:
    """Simulate shifted-domain sequence `index` of the set for `seed` (in memory; `write_threedpw_sequence` writes
    it). `num_people` None: two people with probability TWO_PEOPLE_PROBABILITY, else one."""
    if num_frames < 2:
        raise ValueError(f"make_threedpw_sequence: num_frames={num_frames}, expected >= 2")
    rng = sequence_rng(seed, index)
    if num_people is None:
        num_people = 2 if rng.uniform() < TWO_PEOPLE_PROBABILITY else 1
    if num_people not in (1, 2):
        raise ValueError(f"make_threedpw_sequence: num_people={num_people}, expected 1 or 2")

    # People: gendered bodies and motions; a second person walks beside the first.
    people = []
    for p in range(num_people):
        gender = ("male", "female")[rng.integers(2)]
        model = body_model(body_model_path, gender)
        betas = random_betas(rng)
        moving = motion.sample_motion(rng, num_frames, motion.FPS)
        pose, trans = moving.pose.astype(np.float64), moving.trans.astype(np.float64)
        pelvis0 = rest_pelvis(model, betas)
        if p > 0:
            lead = people[0]
            facing = _facing(lead["pose"][:1])[0]
            mine = _facing(pose[:1])[0]
            yaw = (np.arctan2(facing[0], facing[2]) - np.arctan2(mine[0], mine[2])) + rng.normal(0.0, 0.15)
            beside = np.cross(UP, facing) * rng.uniform(*PAIR_SPACING_M) * rng.choice([-1.0, 1.0])
            target = lead["joints"][0, _PELVIS] + beside + facing * rng.normal(0.0, 0.3)
            target[1] = trans[0, 1] + pelvis0[1]  # keep this body's own pelvis height
            pose, trans = _place(pose, trans, pelvis0, yaw, target)
        vertices, joints = _forward(model, betas, pose, trans)
        people.append(dict(gender=gender, model=model, betas=betas, pose=pose, trans=trans, vertices=vertices,
                           joints=joints))

    floor_y = min(float(p["vertices"][..., 1].min()) for p in people)
    pelvis = np.stack([p["joints"][:, _PELVIS] for p in people])
    all_joints = np.concatenate([p["joints"] for p in people], axis=1)  # [N, P * 24, 3]

    def min_depth(cam_poses):
        return float((np.einsum("nij,nkj->nki", cam_poses[:, :3, :3], all_joints)[..., 2]
                      + cam_poses[:, None, 2, 3]).min())

    cam_poses = _hand_held_camera(pelvis, floor_y, rng, min_depth)
    rotation, translation = cam_poses[:, :3, :3], cam_poses[:, :3, 3]

    def to_camera(points):  # [N, K, 3] world -> camera
        return np.einsum("nij,nkj->nki", rotation, points) + translation[:, None, :]

    # Rendering: all people in one z-buffer, light fixed in the world, over the turning background.
    light_dir, ambient = render.random_lighting(rng, style="shifted")
    light_world = light_dir @ rotation[0]  # R_0^T l: the light as the first frame's camera sees it
    vertices_cam = np.concatenate([to_camera(p["vertices"]) for p in people], axis=1)
    offsets = np.cumsum([0] + [p["model"].num_vertices for p in people])
    faces = np.concatenate([p["model"].faces + o for p, o in zip(people, offsets[:-1])])
    colours = np.concatenate([render.clothing_colors(p["model"].v_template, p["model"].part_ids, rng,
                                                     style="shifted") for p in people])
    part_ids = np.concatenate([p["model"].part_ids for p in people])
    background, _ = _background_for_camera(cam_poses, rng)
    images, _, depth = _render_clip(vertices_cam, faces, colours, part_ids, light_world @ rotation.transpose(0, 2, 1),
                                    ambient, background, THREEDPW_INTRINSICS, THREEDPW_IMAGE_HW)

    # Objects passing in front, then the camera's degradations.
    centre_uv = geometry.project(to_camera(pelvis.mean(axis=0)[:, None, :]), THREEDPW_INTRINSICS)[:, 0]
    occluders = _occluders(rng, centre_uv)
    occluder_mask = np.stack([_draw_occluders(images[t], t, occluders) for t in range(num_frames)])
    images = _degrade(images, cam_poses, rng)

    out_people = []
    for p in people:
        keypoints_cam = to_camera(coco_keypoints(p["model"], p["vertices"]))
        detections = simulate_detections(keypoints_cam, THREEDPW_INTRINSICS, depth, occluder_mask, rng)
        template, _ = _forward(p["model"], p["betas"], np.zeros((1, surreal.NUM_POSE)))
        out_people.append(SimPerson(
            gender=p["gender"], betas=p["betas"], pose_world=p["pose"].astype(np.float32),
            trans_world=p["trans"].astype(np.float32), joints_world=p["joints"].astype(np.float32),
            joints3d_cam=to_camera(p["joints"]).astype(np.float32), keypoints3d_cam=keypoints_cam.astype(np.float32),
            v_template=template[0].astype(np.float32), detections=detections))

    # 3DPW flags frames whose camera pose is not aligned with the image; ours are off by a small turn there.
    campose_valid = np.ones(num_frames, bool)
    stored = cam_poses.copy()
    if rng.uniform() < INVALID_CAMPOSE_PROBABILITY:
        length = int(min(rng.integers(INVALID_CAMPOSE_FRAMES[0], INVALID_CAMPOSE_FRAMES[1] + 1), num_frames))
        start = int(rng.integers(0, num_frames - length + 1))
        campose_valid[start:start + length] = False
        axis = rng.normal(size=3)
        error = geometry.axis_angle_to_matrix(axis / np.linalg.norm(axis)
                                              * np.radians(rng.uniform(*INVALID_CAMPOSE_ERROR_DEG)))
        stored[start:start + length, :3, :] = error @ cam_poses[start:start + length, :3, :]  # turned about its centre
    return ThreeDPWSequence(
        name=f"{THREEDPW_NAME_PREFIX}{index + 1:05d}", people=out_people, cam_poses=stored, cam_poses_true=cam_poses,
        campose_valid=campose_valid, cam_intrinsics=geometry.intrinsics_matrix(THREEDPW_INTRINSICS), images=images,
        occluder_mask=occluder_mask, jpeg_quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))


def write_threedpw_sequence(root, seed: int, index: int, num_frames: int, split: str | None = None,
                            num_people: int | None = None, body_model_path: str | None = None) -> Path:
    """Simulate and write shifted-domain sequence `index` as `<root>/sequenceFiles/<split>/simulated_%05d.pkl` and
    `<root>/imageFiles/simulated_%05d/image_%05d.jpg`; returns the pickle's path. `split` None:
    `THREEDPW_SPLIT_CYCLE`."""
    split = split_for_index(index, THREEDPW_SPLIT_CYCLE) if split is None else split
    seq = make_threedpw_sequence(seed, index, num_frames, num_people, body_model_path)
    people = [{"betas": p.betas, "poses": p.pose_world, "trans": p.trans_world, "gender": p.gender,
               "joints3d": p.joints_world, "keypoints2d": p.detections.keypoints,
               "campose_valid": seq.campose_valid, "v_template_clothed": p.v_template} for p in seq.people]
    return writers.write_threedpw_sequence(root, split, seq.name, people, seq.cam_poses, seq.cam_intrinsics,
                                           seq.images, jpeg_quality=seq.jpeg_quality)


def write_threedpw_set(root, num_sequences: int, num_frames: int, seed: int, workers: int = 1,
                       split: str | None = None, body_model_path: str | None = None,
                       progress: bool = True) -> list[Path]:
    """Write `num_sequences` shifted-domain sequences into `root` in 3DPW's layout; returns the pickles' paths.

    `split` None spreads them over train/validation/test in turn (`THREEDPW_SPLIT_CYCLE`); a split name puts all
    of them there.
    """
    if split is not None and split not in threedpw.SPLITS:
        raise ValueError(f"write_threedpw_set: split {split!r}, expected one of {threedpw.SPLITS} or None")
    root = Path(root)
    preload_bodies(body_model_path, ("male", "female"))
    job = functools.partial(write_threedpw_sequence, root, seed, num_frames=num_frames, split=split,
                            body_model_path=body_model_path)
    paths = run_parallel(job, range(num_sequences), workers, "shifted-domain sequences", progress)
    _write_set_record(root, "threedpw", seed=seed, num_sequences=num_sequences, num_frames=num_frames, split=split,
                      body_model=body_model_path, files=[str(p.relative_to(root)) for p in paths])
    return paths


# ---- running, records ----------------------------------------------------------------------------------------------

def run_parallel(job: Callable[[int], object], indices, workers: int, description: str,
                 progress: bool = True) -> list:
    """`[job(i) for i in indices]`, in order, over `workers` processes, with a tqdm progress bar.

    Workers are forked where the platform allows it, so they share the modules (TensorFlow, with the body layer)
    and body models the parent has loaded; results depend only on the indices, never on the worker.
    """
    from tqdm import tqdm
    indices = list(indices)
    workers = max(1, min(int(workers), len(indices)))
    bar = tqdm(total=len(indices), desc=description, unit="seq", disable=not progress)
    try:
        if workers == 1:
            results = []
            for i in indices:
                results.append(job(i))
                bar.update()
            return results
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            results = []
            for result in pool.imap(job, indices):
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()


def _write_set_record(root: Path, kind: str, **arguments) -> Path:
    """`<root>/mhr_tf_sim.json`: what the simulator wrote here and with which arguments. Written last, so its presence
    says the set is complete (a caller may compare the arguments to reuse a set)."""
    record = {"version": SET_RECORD_VERSION, "simulated": True, "generator": "mhr_tf.sim.make", "kind": kind,
              **arguments}
    path = root / SET_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=1))
    os.replace(partial, path)
    return path


def read_set_record(root) -> dict | None:
    """The record `write_*_set` left in `root`, or None when there is none (an unfinished or foreign set)."""
    path = Path(root) / SET_RECORD
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_set(kind: str, root, num_sequences: int, num_frames: int, seed: int, workers: int = 1,
              split: str | None = None, body_model_path: str | None = None, progress: bool = True) -> list[Path]:
    """One entry point for the three kinds ("surreal", "backgrounds", "threedpw")."""
    if kind == "surreal":
        return write_surreal_set(root, num_sequences, num_frames, seed, workers, split, body_model_path, progress)
    if kind == "threedpw":
        return write_threedpw_set(root, num_sequences, num_frames, seed, workers, split, body_model_path, progress)
    if kind == "backgrounds":
        if split is not None or body_model_path is not None:
            raise ValueError("write_set: background videos take neither a split nor a body model")
        return write_background_set(root, num_sequences, num_frames, seed, workers, progress)
    raise ValueError(f"write_set: kind {kind!r}, expected one of {KINDS}")


# ---- previews: contact sheets of what the decoders read back ----------------------------------------------------

PREVIEW_MAX_ROWS = 4
PREVIEW_COLUMNS = 6
_TEXT = dict(fontFace=cv2.FONT_HERSHEY_SIMPLEX, fontScale=0.4, thickness=1, lineType=cv2.LINE_AA)


def _part_colours() -> np.ndarray:
    """[25, 3] uint8 RGB for segmentation pictures: black background, then one hue per SMPL part, spread so that
    parts next to each other in SMPL's order differ."""
    num_parts = len(joint_sets.SMPL_PARTS)
    ramp = ((np.arange(num_parts) * 7) % num_parts * (255 // (num_parts - 1))).astype(np.uint8)
    colours = cv2.applyColorMap(ramp[:, None], cv2.COLORMAP_HSV)[:, 0, ::-1]
    return np.concatenate([np.zeros((1, 3), np.uint8), colours])


_SKELETON = [(joint_sets.SMPL_PARENTS[j], j) for j in range(1, len(joint_sets.SMPL_24))]
_COCO_EDGES = [("neck", "nose"), ("neck", "right_shoulder"), ("right_shoulder", "right_elbow"),
               ("right_elbow", "right_wrist"), ("neck", "left_shoulder"), ("left_shoulder", "left_elbow"),
               ("left_elbow", "left_wrist"), ("neck", "right_hip"), ("right_hip", "right_knee"),
               ("right_knee", "right_ankle"), ("neck", "left_hip"), ("left_hip", "left_knee"),
               ("left_knee", "left_ankle"), ("nose", "right_eye"), ("nose", "left_eye"), ("right_eye", "right_ear"),
               ("left_eye", "left_ear")]


def _is_left(name: str) -> bool:
    return name.startswith("left_")


def _label(image: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(image, text, (4, 13), color=(0, 0, 0), **{**_TEXT, "thickness": 3})
    cv2.putText(image, text, (4, 13), color=(255, 255, 255), **_TEXT)
    return image


def _draw_points(image: np.ndarray, points: np.ndarray, names, edges, ok=None) -> np.ndarray:
    """Draw a skeleton: the person's left side red, right side blue, the middle green; `ok [K]` hides points."""
    ok = np.ones(len(points), bool) if ok is None else ok
    index = {n: i for i, n in enumerate(names)}
    colour = [(255, 60, 60) if _is_left(n) else (60, 120, 255) if n.startswith("right_") else (60, 220, 60)
              for n in names]
    for a, b in edges:
        i, j = (index[a], index[b]) if isinstance(a, str) else (a, b)
        if ok[i] and ok[j]:
            cv2.line(image, tuple(np.rint(points[i]).astype(int)), tuple(np.rint(points[j]).astype(int)),
                     colour[j], 1, cv2.LINE_AA)
    for i, p in enumerate(points):
        if ok[i]:
            cv2.circle(image, tuple(np.rint(p).astype(int)), 2, colour[i], -1, cv2.LINE_AA)
    return image


def _columns(num_frames: int) -> np.ndarray:
    return np.unique(np.linspace(0, num_frames - 1, min(PREVIEW_COLUMNS, num_frames)).round().astype(int))


def _save_sheet(rows: list[np.ndarray], png) -> Path:
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = np.concatenate(rows, axis=0)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{png}: OpenCV could not write the PNG")
    return png


def _spaced(tiles: list[np.ndarray]) -> np.ndarray:
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([x for tile in tiles for x in (tile, gap)][:-1], axis=1)


def preview_surreal(root, png) -> Path:
    """Contact sheet of a SURREAL-layout set as the decoder reads it: per clip, frames with the 24 joints of
    `joints2d` (left side red), and the segmentation coloured by part."""
    mp4s = sorted(Path(root).glob("*/run*/*/*_c*.mp4"))[:PREVIEW_MAX_ROWS]
    if not mp4s:
        raise FileNotFoundError(f"{root}: no SURREAL clips (<root>/<split>/run<r>/<seq>/<seq>_c0001.mp4)")
    rows = []
    for mp4 in mp4s:
        clip = surreal.load_clip(mp4, load_depth=False)
        picks = _columns(len(clip.frames))
        frames = [_draw_points(clip.frames[t].copy(), clip.joints2d[t], joint_sets.SMPL_24, _SKELETON) for t in picks]
        segm = [_draw_points(_part_colours()[clip.segm[t]], clip.joints2d[t], joint_sets.SMPL_24, _SKELETON)
                for t in picks]
        height_px = np.ptp(clip.joints2d[..., 1], axis=1).mean()
        _label(frames[0], f"{mp4.parent.parent.parent.name}/{mp4.stem} {clip.gender}, joints span {height_px:.0f}px")
        for tile, t in zip(frames[1:], picks[1:]):
            _label(tile, f"t={t}")
        rows += [_spaced(frames), _spaced(segm), np.full((6, 1, 3), 255, np.uint8)]
    return _save_sheet(rows, png)


def preview_backgrounds(root, png) -> Path:
    """Contact sheet of a Kinetics-style folder of background videos: a few frames of each."""
    from mhr_tf.data import videos
    entries = videos.list_videos(root)[:PREVIEW_MAX_ROWS * 2]
    rows = []
    for entry in entries:
        frames = videos.read_video(entry.path)
        tiles = [cv2.resize(frames[t], (frames.shape[2] // 2, frames.shape[1] // 2), interpolation=cv2.INTER_AREA)
                 for t in _columns(len(frames))]
        _label(tiles[0], f"{entry.label}/{entry.video_id}")
        rows += [_spaced(tiles), np.full((4, 1, 3), 255, np.uint8)]
    return _save_sheet(rows, png)


def preview_threedpw(root, png) -> Path:
    """Contact sheet of a 3DPW-layout set as the decoder reads it: frames with each person's `poses2d` (confidence
    > 0.1; left side red) and, in white, the projection of the decoder's camera-frame joints."""
    pickles = sorted(Path(root).glob(f"{threedpw.SEQUENCE_DIR}/*/*.pkl"))[:PREVIEW_MAX_ROWS]
    if not pickles:
        raise FileNotFoundError(f"{root}: no sequences (<root>/{threedpw.SEQUENCE_DIR}/<split>/<seq>.pkl)")
    rows = []
    for path in pickles:
        tracks = threedpw.load_sequence(path)
        picks = _columns(tracks[0].num_frames)
        tiles = []
        for t in picks:
            image = threedpw.read_image(tracks[0].image_paths[t])
            for track in tracks:
                k = track.cam_intrinsics
                uv = geometry.project(track.joints3d_cam[t].astype(np.float64),
                                      geometry.Intrinsics(k[0, 0], k[1, 1], k[0, 2], k[1, 2]))
                for p in uv:
                    cv2.circle(image, tuple(np.rint(p).astype(int)), 1, (255, 255, 255), -1)
                kp = track.keypoints2d[t]
                _draw_points(image, kp[:, :2], joint_sets.COCO_18, _COCO_EDGES, ok=kp[:, 2] > 0.1)
            tiles.append(_label(image, f"t={t}" + ("" if tracks[0].campose_valid[t] else " campose invalid")))
        _label(tiles[0], f"{path.parent.name}/{path.stem}, {len(tracks)} person(s)")
        rows += [_spaced(tiles), np.full((6, 1, 3), 255, np.uint8)]
    return _save_sheet(rows, png)


def preview(kind: str, root, png) -> Path:
    """The contact sheet of a set of `kind` ("surreal", "backgrounds", "threedpw")."""
    makers = {"surreal": preview_surreal, "backgrounds": preview_backgrounds, "threedpw": preview_threedpw}
    if kind not in makers:
        raise ValueError(f"preview: kind {kind!r}, expected one of {KINDS}")
    return makers[kind](root, png)
