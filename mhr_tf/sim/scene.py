"""Pieces every simulated scene shares: one random generator per sequence, bodies (shape prior, loading, posing),
and rendering a clip of a posed mesh over background frames.

Every sequence is a pure function of `(seed, index)`: its generator is `sequence_rng(seed, index)`, so a set is the
same bytes whatever the number of worker processes, and workers split a set by index.

World frame of every scene: SMPL's, y up, metres (the frame `skeleton.Motion` lives in). Camera frames as everywhere
in mhr_tf: x right, y down, z forward.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from mhr_tf import geometry
from mhr_tf.body import joints as joint_sets
from mhr_tf.data import surreal
from mhr_tf import render

# Shape prior: the open body model's betas are scaled so one unit is about one standard deviation of adults (as
# SMPL's PCA betas are); extreme draws are clipped.
BETA_CLIP = 2.5
PELVIS = joint_sets.SMPL_24.index("pelvis")


def sequence_rng(seed: int, index: int, stream: int | None = None) -> np.random.Generator:
    """The generator of sequence `index` of the set made with `seed` (independent of every other sequence), or of its
    random stream number `stream` >= 1 (independent of the sequence's other streams), for a sequence whose causes
    draw from separate streams."""
    if stream is None:
        return np.random.default_rng([int(seed), int(index)])
    if int(stream) < 1:
        raise ValueError(f"sequence_rng: stream={stream}, expected a number >= 1")
    return np.random.default_rng([int(seed), int(index), int(stream)])


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


def forward_body(model, betas: np.ndarray, pose: np.ndarray, trans: np.ndarray | None = None):
    """The posed body for every frame: (vertices [T, V, 3], joints [T, 24, 3]) float64, metres, model frame."""
    from mhr_tf.body import smpl
    num_frames = len(pose)
    vertices, joints = smpl.forward_numpy(model, np.broadcast_to(betas, (num_frames, surreal.NUM_BETAS)), pose,
                                          trans)
    return vertices.astype(np.float64), joints.astype(np.float64)


def rest_pelvis(model, betas: np.ndarray) -> np.ndarray:
    """[3] float64: the pelvis J0(betas) of the unposed body, about which SMPL turns the root."""
    _, joints = forward_body(model, betas, np.zeros((1, surreal.NUM_POSE)))
    return joints[0, PELVIS]


def rotate_root(pose: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """`pose [T, 72]` with its root orientation turned by `rotation [3, 3]` or `[T, 3, 3]` (a change of the frame the
    body is expressed in); the other joints are relative to their parents and unchanged."""
    pose = np.array(pose, dtype=np.float64)
    pose[:, :3] = geometry.matrix_to_axis_angle(rotation @ geometry.axis_angle_to_matrix(pose[:, :3]))
    return pose


def split_for_index(index: int, cycle: Sequence[str]) -> str:
    """Sequence `index`'s split: `cycle` repeated over the indices (a fixed fraction, whatever the set's size)."""
    return cycle[index % len(cycle)]


def render_clip(vertices_cam, faces, colours, part_ids, light_dir, ambient, background_frames,
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
