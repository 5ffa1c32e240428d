"""The simulator's SURREAL-style training clips, written in SURREAL's layout.

SURREAL (Varol et al. 2017, datageneration/main_part1.py): one person per clip, random gender and shape, a fixed
camera looking horizontally at the person from `camDist` ~ N(8, 1) m, i.e. about camDist - 1 m from the pelvis
(main_part1.py offsets the pelvis reference by 1 m; see `writers.surreal_info_fields`), a random `zrot`, clothing and
lighting, composited over one static background picture (SURREAL uses LSUN photographs; here skimage photographs and
procedural textures). Unlike SURREAL, which re-centres the camera on the first frame's pelvis, the camera aims at
the middle of the clip's pelvis path and backs off when the path is wide, so the person stays mostly in frame.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from mhr_tf.data import provenance, surreal, surreal_manifest
from mhr_tf.sim import appearance, backgrounds, motion, sets, writers
from mhr_tf.sim.cameras import SURREAL_FRAMING, fixed_camera
from mhr_tf.sim.scene import (PELVIS, body_model, forward_body, preload_bodies, random_betas, render_clip,
                              rotate_root, sequence_rng, split_for_index)

SIM_SOURCE = writers.SURREAL_SIM_SOURCE  # `source` of every simulated SURREAL clip
# 8 of every 10 sequences train, then one val and one test (indices 8 and 9 of each block of 10).
SURREAL_SPLIT_CYCLE = ("train",) * 8 + ("val", "test")

SURREAL_RUN = 0  # run0: SURREAL's 50 %-overlap cut (the only run we write)
SURREAL_CLIP = 1  # each simulated sequence is one clip, `_c0001`
SURREAL_NAME_PREFIX = provenance.SURREAL_SIMULATED_NAME_PREFIX  # sim00001, sim00002, ...
# main_part1.py: camera_distance = np.random.normal(8.0, 1), recorded as `camDist`; the camera then sits about
# camDist - 1 m from the pelvis (the sample 01_01_c0001: camDist 7.692, camera-pelvis 6.694 m). The normal's tails
# are clipped: the person is about 100-200 px tall (`cameras.SURREAL_FRAMING` has the same range, as distances).
SURREAL_CAM_DIST_MEAN_M = 8.0
SURREAL_CAM_DIST_STD_M = 1.0
SURREAL_PELVIS_OFFSET_M = 1.0
SURREAL_CAM_DIST_RANGE_M = (5.5, 10.5)


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
    rotation, centre = fixed_camera(pelvis, rng, SURREAL_FRAMING, cam_dist - SURREAL_PELVIS_OFFSET_M)
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
    vertices, joints = forward_body(model, betas, moving.pose, moving.trans)
    rotation, centre, cam_dist = surreal_camera(joints[:, PELVIS], rng)
    vertices_cam = (vertices - centre) @ rotation.T  # [T, V, 3]
    joints_cam = (joints - centre) @ rotation.T
    pose_cam = rotate_root(moving.pose, rotation)

    colours = appearance.clothing_colors(model.v_template, model.part_ids, rng, style="train")
    light_dir, ambient = appearance.random_lighting(rng, style="train")
    still = backgrounds.make_background_video(1, rng, hw=surreal.SURREAL_IMAGE_HW, kind="static", num_objects=0)
    frames, segm, depth = render_clip(vertices_cam, model.faces, colours, model.part_ids, light_dir, ambient,
                                      np.broadcast_to(still.frames[0], (num_frames,) + still.frames.shape[1:]))
    # The world SURREAL records: the first frame's pelvis at the origin (its own clips sit near it too).
    cam_loc = -surreal.joints_from_camera(joints_cam[0, PELVIS], np.zeros(3))
    return SurrealSequence(
        name=f"{SURREAL_NAME_PREFIX}{index + 1:05d}", gender=gender, betas=betas,
        pose_cam=pose_cam.astype(np.float32), joints3d_cam=joints_cam.astype(np.float32), frames=frames, segm=segm,
        depth_planar=depth, cam_loc=cam_loc, cam_dist=cam_dist, zrot=zrot,
        light=surreal_light(light_dir, ambient), background=still.source)


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
        for cache in surreal_manifest.manifest_cache_paths(root, split):
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
    paths = sets.run_parallel(job, range(num_sequences), workers, "SURREAL sequences", progress)
    _forget_manifests(root, surreal.SPLITS)
    sets.write_set_record(root, "surreal", seed=seed, num_sequences=num_sequences, num_frames=num_frames,
                          split=split, body_model=body_model_path, files=[str(p.relative_to(root)) for p in paths])
    return paths
