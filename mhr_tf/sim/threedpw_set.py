"""The shifted-domain evaluation set in 3DPW's layout (always named as simulated, never as 3DPW).

Shifted domain (the sim2real gap in miniature): other clothing ("shifted" palettes and patterns), harsher lighting
from any side, a hand-held camera that follows the people and shakes, moving backgrounds consistent with the
camera's rotation, objects passing in front of the people, blur, noise and colour casts, one or two people, and
`poses2d` made as a 2D detector gives them (`detections.simulate_detections`).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from mhr_tf import geometry
from mhr_tf.data import provenance, surreal, threedpw
from mhr_tf.sim import motion, render, sets, writers
from mhr_tf.sim.cameras import (THREEDPW_IMAGE_HW, THREEDPW_INTRINSICS, UP, background_for_camera,
                                hand_held_camera)
from mhr_tf.sim.degrade import degrade, draw_occluders, passing_occluders
from mhr_tf.sim.detections import Detections, coco_keypoints, simulate_detections
from mhr_tf.sim.scene import (PELVIS, body_model, forward_body, preload_bodies, random_betas, render_clip,
                              rest_pelvis, rotate_root, sequence_rng, split_for_index)

THREEDPW_SPLIT_CYCLE = threedpw.SPLITS  # 3DPW's three splits in turn
THREEDPW_NAME_PREFIX = provenance.THREEDPW_SIMULATED_PREFIX  # simulated_00001, ...: never a 3DPW name
TWO_PEOPLE_PROBABILITY = 0.35
PAIR_SPACING_M = (0.9, 1.5)  # side by side, as 3DPW's walking pairs
INVALID_CAMPOSE_PROBABILITY = 0.3  # a sequence has a short run of frames whose camera pose is off (campose_valid 0)
INVALID_CAMPOSE_FRAMES = (2, 6)
INVALID_CAMPOSE_ERROR_DEG = (2.0, 5.0)  # how far off the stored camera rotation is on those frames
JPEG_QUALITY = (70, 92)


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
            target = lead["joints"][0, PELVIS] + beside + facing * rng.normal(0.0, 0.3)
            target[1] = trans[0, 1] + pelvis0[1]  # keep this body's own pelvis height
            pose, trans = _place(pose, trans, pelvis0, yaw, target)
        vertices, joints = forward_body(model, betas, pose, trans)
        people.append(dict(gender=gender, model=model, betas=betas, pose=pose, trans=trans, vertices=vertices,
                           joints=joints))

    floor_y = min(float(p["vertices"][..., 1].min()) for p in people)
    pelvis = np.stack([p["joints"][:, PELVIS] for p in people])
    all_joints = np.concatenate([p["joints"] for p in people], axis=1)  # [N, P * 24, 3]

    def min_depth(cam_poses):
        return float((np.einsum("nij,nkj->nki", cam_poses[:, :3, :3], all_joints)[..., 2]
                      + cam_poses[:, None, 2, 3]).min())

    cam_poses = hand_held_camera(pelvis, floor_y, rng, min_depth)
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
    background, _ = background_for_camera(cam_poses, rng)
    images, _, depth = render_clip(vertices_cam, faces, colours, part_ids, light_world @ rotation.transpose(0, 2, 1),
                                   ambient, background, THREEDPW_INTRINSICS, THREEDPW_IMAGE_HW)

    # Objects passing in front, then the camera's degradations.
    centre_uv = geometry.project(to_camera(pelvis.mean(axis=0)[:, None, :]), THREEDPW_INTRINSICS)[:, 0]
    occluders = passing_occluders(rng, centre_uv)
    occluder_mask = np.stack([draw_occluders(images[t], t, occluders) for t in range(num_frames)])
    images = degrade(images, cam_poses, rng)

    out_people = []
    for p in people:
        keypoints_cam = to_camera(coco_keypoints(p["model"], p["vertices"]))
        detections = simulate_detections(keypoints_cam, THREEDPW_INTRINSICS, depth, occluder_mask, rng)
        template, _ = forward_body(p["model"], p["betas"], np.zeros((1, surreal.NUM_POSE)))
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
    paths = sets.run_parallel(job, range(num_sequences), workers, "shifted-domain sequences", progress)
    sets.write_set_record(root, "threedpw", seed=seed, num_sequences=num_sequences, num_frames=num_frames,
                          split=split, body_model=body_model_path, files=[str(p.relative_to(root)) for p in paths])
    return paths
