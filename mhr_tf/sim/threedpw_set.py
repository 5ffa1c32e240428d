"""The simulator's evaluation sets in 3DPW's layout (always named as simulated, never as 3DPW), rendered in a chosen
`domain.Domain`: in the training domain (`IN_DOMAIN`), in the shifted one (`SHIFTED`, the default), or anywhere
between, knob by knob.

Shifted domain (the sim2real gap in miniature): other clothing ("shifted" palettes and patterns), harsher lighting
from any side, a hand-held phone camera that follows the people and shakes, moving backgrounds consistent with the
camera's rotation, objects passing in front of the people, blur, noise and colour casts, one or two people, and
`poses2d` made as a 2D detector gives them (`detections.simulate_detections`). `domain.py` defines the knobs and
what the in-domain set is; `DOMAIN_SHIFT.md` maps them to the real causes.

Every sequence is a pure function of `(seed, index, domain)`. Each cause draws from its own generator
(`scene.sequence_rng(seed, index, stream)`, one stream per entry of `STREAMS`), so a knob changes only what it acts
on: the same `(seed, index)` in two domains that differ in one knob differ only there.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from mhr_tf import geometry
from mhr_tf.data import provenance, surreal, threedpw
from mhr_tf.sim import appearance, motion, sets, writers
from mhr_tf.sim.cameras import (PHONE_FRAMING, SURREAL_FRAMING, UP, background_for_camera, camera_following_background,
                                fixed_camera, hand_held_camera)
from mhr_tf.sim.degrade import degrade, draw_occluders, passing_occluders
from mhr_tf.sim.detections import Detections, coco_keypoints, simulate_detections
from mhr_tf.sim.domain import SHIFTED, Domain
from mhr_tf.sim.scene import (PELVIS, body_model, forward_body, preload_bodies, random_betas, render_clip,
                              rest_pelvis, rotate_root, sequence_rng, split_for_index)

THREEDPW_SPLIT_CYCLE = threedpw.SPLITS  # 3DPW's three splits in turn
THREEDPW_NAME_PREFIX = provenance.THREEDPW_SIMULATED_PREFIX  # simulated_00001, ...: never a 3DPW name
PAIR_SPACING_M = (0.9, 1.5)  # side by side, as 3DPW's walking pairs
INVALID_CAMPOSE_FRAMES = (2, 6)  # length of a run of frames whose stored camera pose is off (`Domain.campose_errors`)
INVALID_CAMPOSE_ERROR_DEG = (2.0, 5.0)  # how far off the stored camera rotation is on those frames
# `Domain.compression`: 0 stores JPEG quality 95 (the writer's default, the least lossy we write), 1 a quality drawn
# from this range (frames of compressed phone video).
JPEG_QUALITY = (70, 92)
LEAST_LOSSY_JPEG_QUALITY = writers.THREEDPW_JPEG_QUALITY
# One random stream per cause; a stream's number is its position here plus one (append new ones at the end, so the
# existing streams keep their numbers and the sets their bytes).
STREAMS = ("people", "clothing", "lighting", "camera", "shake", "background", "occluders", "colour_cast", "blur",
           "noise", "compression", "detector", "campose")


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
    clothing_style: str         # appearance.CLOTHING_STYLES: "train" | "shifted"
    detections: Detections


@dataclasses.dataclass(frozen=True)
class ThreeDPWSequence:
    name: str
    domain: Domain
    framing: str                # cameras.FRAMINGS: "surreal" | "phone"
    hand_held: bool             # filmed by a following operator (else: the training composites' camera motion)
    people: list[SimPerson]
    cam_poses: np.ndarray       # [N, 4, 4] float64, world -> camera as stored (off on invalid frames)
    cam_poses_true: np.ndarray  # [N, 4, 4] float64, the camera that rendered the images
    campose_valid: np.ndarray   # [N] bool
    cam_intrinsics: np.ndarray  # [3, 3] float64
    images: np.ndarray          # [N, H, W, 3] uint8 RGB, as stored (before the JPEG)
    background: np.ndarray      # [N, H, W, 3] uint8 RGB, the moving background the people were rendered over
    background_shift_px: np.ndarray  # [N, 2] float64, the background's content at the image centre, relative to the
    #                                  centre frame N // 2
    depth: np.ndarray           # [N, H, W] float32, metres along the camera's z, render.BACKGROUND_DEPTH off the people
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
                           body_model_path: str | None = None, domain: Domain = SHIFTED) -> ThreeDPWSequence:
    """Simulate evaluation sequence `index` of the set for `seed` in `domain` (in memory; `write_threedpw_sequence`
    writes it). `num_people` None: two people with probability `domain.people`, else one; 1 or 2 decides (the
    first person is the same either way)."""
    if num_frames < 2:
        raise ValueError(f"make_threedpw_sequence: num_frames={num_frames}, expected >= 2")
    if num_people not in (None, 1, 2):
        raise ValueError(f"make_threedpw_sequence: num_people={num_people}, expected 1, 2 or None")

    def rng(stream: str) -> np.random.Generator:
        return sequence_rng(seed, index, STREAMS.index(stream) + 1)

    # People: gendered bodies and motions; a second person walks beside the first.
    people_rng = rng("people")
    pair = people_rng.uniform() < domain.people
    num_people = (2 if pair else 1) if num_people is None else num_people
    people = []
    for p in range(num_people):
        gender = ("male", "female")[people_rng.integers(2)]
        model = body_model(body_model_path, gender)
        betas = random_betas(people_rng)
        moving = motion.sample_motion(people_rng, num_frames, motion.FPS)
        pose, trans = moving.pose.astype(np.float64), moving.trans.astype(np.float64)
        pelvis0 = rest_pelvis(model, betas)
        if p > 0:
            lead = people[0]
            facing = _facing(lead["pose"][:1])[0]
            mine = _facing(pose[:1])[0]
            yaw = (np.arctan2(facing[0], facing[2]) - np.arctan2(mine[0], mine[2])) + people_rng.normal(0.0, 0.15)
            beside = np.cross(UP, facing) * people_rng.uniform(*PAIR_SPACING_M) * people_rng.choice([-1.0, 1.0])
            target = lead["joints"][0, PELVIS] + beside + facing * people_rng.normal(0.0, 0.3)
            target[1] = trans[0, 1] + pelvis0[1]  # keep this body's own pelvis height
            pose, trans = _place(pose, trans, pelvis0, yaw, target)
        vertices, joints = forward_body(model, betas, pose, trans)
        people.append(dict(gender=gender, model=model, betas=betas, pose=pose, trans=trans, vertices=vertices,
                           joints=joints))

    floor_y = min(float(p["vertices"][..., 1].min()) for p in people)
    pelvis = np.stack([p["joints"][:, PELVIS] for p in people])  # [P, N, 3]
    all_joints = np.concatenate([p["joints"] for p in people], axis=1)  # [N, P * 24, 3]

    def min_depth(cam_poses):
        return float((np.einsum("nij,nkj->nki", cam_poses[:, :3, :3], all_joints)[..., 2]
                      + cam_poses[:, None, 2, 3]).min())

    # The camera: how it frames the people, and how it moves (with the background that goes with its motion).
    camera_rng = rng("camera")
    framing = PHONE_FRAMING if camera_rng.uniform() < domain.framing else SURREAL_FRAMING
    hand_held = bool(camera_rng.uniform() < domain.hand_held)
    if hand_held:
        cam_poses = hand_held_camera(pelvis, floor_y, camera_rng, framing, min_depth, rng("shake"),
                                     domain.camera_shake)
        background, background_shift = background_for_camera(cam_poses, rng("background"), framing)
    else:
        rotation, centre = fixed_camera(pelvis.reshape(-1, 3), camera_rng, framing,
                                        framing.draw_distance(camera_rng), min_depth)
        cam_poses, background, background_shift = camera_following_background(
            rotation, centre, num_frames, rng("background"), framing)
    rotation, translation = cam_poses[:, :3, :3], cam_poses[:, :3, 3]
    intrinsics = framing.intrinsics

    def to_camera(points):  # [N, K, 3] world -> camera
        return np.einsum("nij,nkj->nki", rotation, points) + translation[:, None, :]

    # Rendering: all people in one z-buffer, light fixed in the world, over the moving background.
    light_dir, ambient = appearance.random_lighting(rng("lighting"), harshness=domain.lighting)
    light_world = light_dir @ rotation[0]  # R_0^T l: the light as the first frame's camera sees it
    clothing_rng = rng("clothing")
    styles = ["shifted" if clothing_rng.uniform() < domain.clothing else "train" for _ in people]
    colours = np.concatenate([appearance.clothing_colors(p["model"].v_template, p["model"].part_ids, clothing_rng,
                                                     style=style) for p, style in zip(people, styles)])
    vertices_cam = np.concatenate([to_camera(p["vertices"]) for p in people], axis=1)
    offsets = np.cumsum([0] + [p["model"].num_vertices for p in people])
    faces = np.concatenate([p["model"].faces + o for p, o in zip(people, offsets[:-1])])
    part_ids = np.concatenate([p["model"].part_ids for p in people])
    images, _, depth = render_clip(vertices_cam, faces, colours, part_ids, light_world @ rotation.transpose(0, 2, 1),
                                   ambient, background, intrinsics, framing.image_hw)

    # Objects passing in front, then the camera's degradations.
    centre_uv = geometry.project(to_camera(pelvis.mean(axis=0)[:, None, :]), intrinsics)[:, 0]
    occluders = passing_occluders(rng("occluders"), centre_uv, framing.image_hw, domain.occluders)
    occluder_mask = np.stack([draw_occluders(images[t], t, occluders) for t in range(num_frames)])
    images = degrade(images, cam_poses, intrinsics, colour_cast=domain.colour_cast, blur=domain.blur,
                     noise=domain.noise, colour_rng=rng("colour_cast"), blur_rng=rng("blur"), noise_rng=rng("noise"))

    # One child generator per person: each person's detections draw the same numbers whatever the others'.
    detector_rngs = rng("detector").spawn(len(people))
    out_people = []
    for p, style, detector_rng in zip(people, styles, detector_rngs):
        keypoints_cam = to_camera(coco_keypoints(p["model"], p["vertices"]))
        detections = simulate_detections(keypoints_cam, intrinsics, depth, occluder_mask, detector_rng,
                                         domain.detector_noise)
        template, _ = forward_body(p["model"], p["betas"], np.zeros((1, surreal.NUM_POSE)))
        out_people.append(SimPerson(
            gender=p["gender"], betas=p["betas"], pose_world=p["pose"].astype(np.float32),
            trans_world=p["trans"].astype(np.float32), joints_world=p["joints"].astype(np.float32),
            joints3d_cam=to_camera(p["joints"]).astype(np.float32), keypoints3d_cam=keypoints_cam.astype(np.float32),
            v_template=template[0].astype(np.float32), clothing_style=style, detections=detections))

    campose_valid, stored = _campose_errors(cam_poses, rng("campose"), domain.campose_errors)
    compression_rng = rng("compression")
    drawn_quality = int(compression_rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    jpeg_quality = int(round(LEAST_LOSSY_JPEG_QUALITY
                             + domain.compression * (drawn_quality - LEAST_LOSSY_JPEG_QUALITY)))
    return ThreeDPWSequence(
        name=f"{THREEDPW_NAME_PREFIX}{index + 1:05d}", domain=domain, framing=framing.name, hand_held=hand_held,
        people=out_people, cam_poses=stored, cam_poses_true=cam_poses, campose_valid=campose_valid,
        cam_intrinsics=geometry.intrinsics_matrix(intrinsics), images=images, background=background,
        background_shift_px=background_shift, depth=depth, occluder_mask=occluder_mask, jpeg_quality=jpeg_quality)


def _campose_errors(cam_poses: np.ndarray, rng: np.random.Generator,
                    probability: float) -> tuple[np.ndarray, np.ndarray]:
    """3DPW flags frames whose camera pose is not aligned with the image; with `probability` a sequence has a short run
    of them, whose stored pose is off by a small turn about the camera centre. Returns (campose_valid [N] bool,
    stored cam_poses [N, 4, 4])."""
    num_frames = len(cam_poses)
    campose_valid = np.ones(num_frames, bool)
    stored = cam_poses.copy()
    if rng.uniform() < probability:
        length = int(min(rng.integers(INVALID_CAMPOSE_FRAMES[0], INVALID_CAMPOSE_FRAMES[1] + 1), num_frames))
        start = int(rng.integers(0, num_frames - length + 1))
        campose_valid[start:start + length] = False
        axis = rng.normal(size=3)
        error = geometry.axis_angle_to_matrix(axis / np.linalg.norm(axis)
                                              * np.radians(rng.uniform(*INVALID_CAMPOSE_ERROR_DEG)))
        stored[start:start + length, :3, :] = error @ cam_poses[start:start + length, :3, :]  # turned about its centre
    return campose_valid, stored


def write_threedpw_sequence(root, seed: int, index: int, num_frames: int, split: str | None = None,
                            num_people: int | None = None, body_model_path: str | None = None,
                            domain: Domain = SHIFTED) -> Path:
    """Simulate and write sequence `index` in `domain` as `<root>/sequenceFiles/<split>/simulated_%05d.pkl` and
    `<root>/imageFiles/simulated_%05d/image_%05d.jpg`; returns the pickle's path. `split` None:
    `THREEDPW_SPLIT_CYCLE`."""
    split = split_for_index(index, THREEDPW_SPLIT_CYCLE) if split is None else split
    seq = make_threedpw_sequence(seed, index, num_frames, num_people, body_model_path, domain)
    people = [{"betas": p.betas, "poses": p.pose_world, "trans": p.trans_world, "gender": p.gender,
               "joints3d": p.joints_world, "keypoints2d": p.detections.keypoints,
               "campose_valid": seq.campose_valid, "v_template_clothed": p.v_template} for p in seq.people]
    return writers.write_threedpw_sequence(root, split, seq.name, people, seq.cam_poses, seq.cam_intrinsics,
                                           seq.images, jpeg_quality=seq.jpeg_quality)


def write_threedpw_set(root, num_sequences: int, num_frames: int, seed: int, workers: int = 1,
                       split: str | None = None, body_model_path: str | None = None,
                       progress: bool = True, domain: Domain = SHIFTED) -> list[Path]:
    """Write `num_sequences` sequences in `domain` into `root` in 3DPW's layout; returns the pickles' paths. The set
    record (`sets.read_set_record`) stores the domain's knobs.

    `split` None spreads them over train/validation/test in turn (`THREEDPW_SPLIT_CYCLE`); a split name puts all
    of them there.
    """
    if split is not None and split not in threedpw.SPLITS:
        raise ValueError(f"write_threedpw_set: split {split!r}, expected one of {threedpw.SPLITS} or None")
    root = Path(root)
    preload_bodies(body_model_path, ("male", "female"))
    job = functools.partial(write_threedpw_sequence, root, seed, num_frames=num_frames, split=split,
                            body_model_path=body_model_path, domain=domain)
    paths = sets.run_parallel(job, range(num_sequences), workers, "evaluation sequences", progress)
    sets.write_set_record(root, "threedpw", seed=seed, num_sequences=num_sequences, num_frames=num_frames,
                          split=split, body_model=body_model_path, domain=domain.knobs(),
                          files=[str(p.relative_to(root)) for p in paths])
    return paths
