"""SURREAL decoder (Varol et al., CVPR 2017): one clip's files -> camera-frame numpy arrays. No TensorFlow.

Layout (gulvarol/surreal README, "1. Download SURREAL dataset"):
`<root>/{train,val,test}/run{0,1,2}/<seq>/<seq>_c%04d.mp4` with `_info.mat`, `_segm.mat` and `_depth.mat` beside it.
`<root>` is SURREAL's `data/cmu`; a root holding `cmu/` is accepted too.

SURREAL's camera is a mirror. The camera matrix that datageneration/main_part1.py (init_scene) gives Blender, and
the world -> camera rotation that the authors' get_extrinsic() (misc/smpl_relations/smpl_relations.py) and
getExtrinsicBlender.m derive from it, have determinant -1. The released videos, segmentations, depths and `joints2D`
are therefore mirror images of the SMPL bodies that `pose`, `shape` and `joints3D` describe: a body's left hand shows
where a viewer sees a right hand (smpl_relations.py: "note that left/right are swapped"; gulvarol/surreal issues #10
and #49; DecoMR's datasets/preprocess/surreal.py: "The video of SURREAL is mirrored ... we need to mirror the video and
2D joints"). This decoder returns one consistent, unmirrored view: frames, segmentation and depth flipped left-right,
`joints2d` mirrored about the principal point, and joints and pose in the proper camera frame
diag(-1, 1, 1) @ (SURREAL's extrinsic). Then the SMPL body driven by `pose_cam` and `betas` lands exactly on
`joints3d_cam` (up to translation), whose projection lands on `joints2d` and on the person in `frames`.

Other conventions, each from SURREAL's published code and checked against the sample
`datageneration/misc/3Dto2D/01_01_c0001_info.mat` of that repository (the composed root rotation puts its joint 1,
SMPL's left hip, on the body's left axis with cosine >= 0.9999 on every frame; its `joints3D` project onto its
`joints2D` within 0.5 px). Quirks of the real files, all handled here:
- `_info.mat` is a MATLAB v5 file re-saved by MATLAB: per-frame vectors are columns (`gender (T,1)`, `zrot (T,1)`),
  `camLoc` is `(3,1)`, scalars are `(1,1)`; MATLAB drops trailing singleton dimensions, so a one-frame clip stores
  `joints3D` as `(3,24)`. `zrot` holds one value per frame (constant within a clip: main_part1.py draws
  `random_zrot` once per clip); a single value is accepted too.
- `joints2D` are rounded to whole pixels (main_part1.py `get_bone_locs` rounds Blender's `world_to_camera_view`).
- `depth_t` is Blender Cycles' Z pass: the distance along each pixel's ray from the camera centre, not the planar z,
  with 1e10 where no surface was hit (see `planar_depth_from_ray_distance`).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.io

from mhr_tf.body.joints import SMPL_24, SMPL_PARTS
from mhr_tf.geometry import (SURREAL_IMAGE_HW, SURREAL_INTRINSICS, Intrinsics, axis_angle_to_matrix,
                             matrix_to_axis_angle, project)

SPLITS = ("train", "val", "test")
RUNS = (0, 1, 2)  # run0/1/2: clips cut with 50/30/70 % overlap (README)
NUM_JOINTS = len(SMPL_24)
NUM_POSE = 3 * NUM_JOINTS  # SMPL axis-angle, `pose (72,T)`
NUM_BETAS = 10  # `shape (10,T)`
NUM_PART_IDS = len(SMPL_PARTS) + 1  # `segm`: 0 background, 1..24 SMPL parts (README)
GENDERS = ("female", "male")  # `gender` 0 = female, 1 = male (README; main_part1.py `genders`)
DEPTH_BACKGROUND = 1e10  # Blender's Z pass where a ray hits nothing
FPS = 30  # main_part1.py encodes the mp4 with `ffmpeg -r 30`
PELVIS = SMPL_24.index("pelvis")

# --------------------------------------------------------------------------------------------------------------------
# SURREAL's camera
#
# init_scene() in datageneration/main_part1.py gives the camera one fixed rotation in every clip; only its location
# `camLoc` changes. get_extrinsic() in datageneration/misc/smpl_relations/smpl_relations.py (and getExtrinsicBlender.m)
# turns it into an OpenCV extrinsic: world -> Blender camera is the transpose of the rotation part of
# `cam_ob.matrix_world`, then Blender's camera (looking down -z, y up) is flipped into OpenCV's (z forward, y down).
# That matrix has determinant -1 (see the module docstring); MIRROR_X turns it into the proper camera we return.
BLENDER_CAMERA_AXES = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])  # cam_ob.matrix_world[:3, :3]
BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
SURREAL_WORLD_TO_CAMERA = BLENDER_TO_OPENCV @ BLENDER_CAMERA_AXES.T  # [[0,0,-1],[0,1,0],[-1,0,0]], det -1
MIRROR_X = np.diag([-1.0, 1.0, 1.0])  # the left-right flip between SURREAL's images and an unmirrored view
WORLD_TO_CAMERA_ROTATION = MIRROR_X @ SURREAL_WORLD_TO_CAMERA  # [[0,0,1],[0,1,0],[-1,0,0]], det +1

# rotateBody() in smpl_relations.py: the SMPL root rotation in SURREAL's world is R90 @ Rz(zrot) @ R(pose[:3]), with
# R90 = transforms3d.euler.euler2mat(pi/2, 0, 0), i.e. +90 degrees about x (static 'sxyz' axes), and Rz the clip's
# random turn about z (main_part1.py keys Euler((0, 0, random_zrot)) on the '_root' bone; the authors' answer in
# gulvarol/surreal issue #10: "multiply zrot ... by pose[0:3]").
ROOT_TO_WORLD_ROTATION = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # R90



class SurrealFormatError(ValueError):
    """A SURREAL file that does not have the layout, field, shape or finite values SURREAL's files have.

    The message names the file and the field; `reason` is the same without the file (e.g. "non-finite joints3D"),
    what the manifest scan counts skipped clips by.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message.split(": ", 1)[-1]


class Extrinsics(NamedTuple):
    """World -> OpenCV camera: `x_cam = R @ x_world + t`."""
    R: np.ndarray  # [3, 3] float64
    t: np.ndarray  # [3] float64, metres


@dataclasses.dataclass(frozen=True)
class SurrealClip:
    """One SURREAL clip (or a slice of its frames), in the OpenCV camera frame (x right, y down, z forward)."""
    path: Path  # the .mp4
    frame_indices: np.ndarray  # [T] int64, 0-based frame numbers within the clip
    frames: np.ndarray  # [T, 240, 320, 3] uint8 RGB, unmirrored (the stored video flipped left-right)
    segm: np.ndarray | None  # [T, 240, 320] uint8, 0 background, 1 + SMPL part index; unmirrored
    depth: np.ndarray | None  # [T, 240, 320] float32, metres along each pixel's ray, DEPTH_BACKGROUND off the body
    joints2d: np.ndarray  # [T, 24, 2] float32, pixels, SMPL_24 order: the stored joints2D mirrored (u -> 2 cx - u)
    joints3d_cam: np.ndarray  # [T, 24, 3] float32, metres, camera frame (x right, y down, z forward)
    pose_cam: np.ndarray  # [T, 72] float32, SMPL axis-angle, root rotated into the camera frame
    pose: np.ndarray  # [T, 72] float32, as stored (root relative to SURREAL's world, before zrot and R90)
    zrot: np.ndarray  # [T] float32, radians
    betas: np.ndarray  # [10] float32 (constant within a clip)
    gender: str  # "female" | "male"
    intrinsics: Intrinsics
    cam_loc: np.ndarray  # [3] float64, camera centre in SURREAL's world, metres
    extrinsics: Extrinsics  # SURREAL's world -> the camera frame above (a proper rotation)


# --------------------------------------------------------------------------------------------------------------------
# Camera conversions (float64 inside; usable by the simulator to write SURREAL-consistent files)

def surreal_extrinsics(cam_loc) -> Extrinsics:
    """SURREAL's own world -> camera for a camera at `cam_loc [3]`, as smpl_relations.get_extrinsic (det R = -1):
    it maps `joints3D` onto the stored, mirrored `joints2D`."""
    cam_loc = np.asarray(cam_loc, dtype=np.float64).reshape(3)
    return Extrinsics(SURREAL_WORLD_TO_CAMERA.copy(), -SURREAL_WORLD_TO_CAMERA @ cam_loc)


def camera_extrinsics(cam_loc) -> Extrinsics:
    """World -> the unmirrored camera frame the decoder returns: MIRROR_X @ `surreal_extrinsics(cam_loc)`."""
    R, t = surreal_extrinsics(cam_loc)
    return Extrinsics(MIRROR_X @ R, MIRROR_X @ t)


def mirror_images(images) -> np.ndarray:
    """Flip `[T, H, W]` or `[T, H, W, C]` left-right: SURREAL's stored view <-> the unmirrored one (an involution)."""
    return np.ascontiguousarray(np.flip(images, axis=2))


def mirror_joints2d(joints2d) -> np.ndarray:
    """u -> 2 cx - u on `[..., 2]` pixels: the projection of MIRROR_X, taking a point's projection in one view to its
    projection in the other. SURREAL's cx = 160 is the frame's centre line in Blender's raster coordinates (pixel c
    spans [c, c + 1]), so this is the same flip as `mirror_images`."""
    joints2d = np.array(joints2d)
    joints2d[..., 0] = 2.0 * SURREAL_INTRINSICS.cx - joints2d[..., 0]
    return joints2d


def zrot_matrix(zrot) -> np.ndarray:
    """Rotations about z by `zrot [...]` radians -> `[..., 3, 3]` (RzBody in smpl_relations.main)."""
    zrot = np.asarray(zrot, dtype=np.float64)
    c, s, zero, one = np.cos(zrot), np.sin(zrot), np.zeros_like(zrot), np.ones_like(zrot)
    return np.stack([np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2)


def _stored_root_to_camera(zrot) -> np.ndarray:
    """`[T, 3, 3]`: the rotation taking a stored root orientation to the camera frame (extrinsic @ R90 @ Rz)."""
    return WORLD_TO_CAMERA_ROTATION @ ROOT_TO_WORLD_ROTATION @ zrot_matrix(zrot)


def pose_to_camera(pose, zrot) -> np.ndarray:
    """Stored SURREAL `pose [T, 72]` and per-frame `zrot [T]` -> `pose_cam [T, 72]` float64.

    The root becomes WORLD_TO_CAMERA_ROTATION @ R90 @ Rz(zrot) @ R(pose[:3]) (rotateBody, then the unmirrored
    get_extrinsic rotation); the other 23 joint rotations are relative to their parents and unchanged.
    """
    pose = np.array(pose, dtype=np.float64)
    root = _stored_root_to_camera(zrot) @ axis_angle_to_matrix(pose[:, :3])
    pose[:, :3] = matrix_to_axis_angle(root)
    return pose


def pose_from_camera(pose_cam, zrot) -> np.ndarray:
    """Inverse of `pose_to_camera`: `pose_cam [T, 72]`, `zrot [T]` -> the `pose [T, 72]` SURREAL stores."""
    pose = np.array(pose_cam, dtype=np.float64)
    to_cam = _stored_root_to_camera(zrot)
    pose[:, :3] = matrix_to_axis_angle(np.swapaxes(to_cam, -1, -2) @ axis_angle_to_matrix(pose[:, :3]))
    return pose


def joints_to_camera(joints_world, cam_loc) -> np.ndarray:
    """World points `[..., 3]` (SURREAL's `joints3D`) -> the unmirrored camera frame `[..., 3]` float64."""
    R, t = camera_extrinsics(cam_loc)
    return np.asarray(joints_world, dtype=np.float64) @ R.T + t


def joints_from_camera(joints_cam, cam_loc) -> np.ndarray:
    """Camera-frame points `[..., 3]` -> SURREAL world `[..., 3]` float64 (x_world = R^T (x_cam - t))."""
    R, t = camera_extrinsics(cam_loc)
    return (np.asarray(joints_cam, dtype=np.float64) - t) @ R


def camera_to_surreal_world(pose_cam, joints3d_cam, cam_loc, zrot) -> tuple[np.ndarray, np.ndarray]:
    """A body posed in the (unmirrored) camera frame -> what SURREAL stores: `(pose [T, 72], joints3D [T, 24, 3])`.

    `pose_cam [T, 72]`: SMPL axis-angle with the root in the camera frame; `joints3d_cam [T, 24, 3]` metres;
    `cam_loc [3]`: the camera centre to record in SURREAL's world (any value gives a consistent file; SURREAL's own
    sit a few metres along world +x from the body, e.g. (6.75, -0.98, -1.93) in 01_01_c0001); `zrot`: scalar or
    `[T]` radians (SURREAL draws one uniform in [0, 2 pi) per clip). `load_clip` on the written file gives back
    `pose_cam` (as a rotation) and `joints3d_cam`; images go through `mirror_images` on the way in and out.
    """
    pose_cam = np.asarray(pose_cam, dtype=np.float64)
    zrot = np.broadcast_to(np.asarray(zrot, dtype=np.float64), pose_cam.shape[:1])
    return pose_from_camera(pose_cam, zrot), joints_from_camera(joints3d_cam, cam_loc)


def _pixel_ray_norms(hw: tuple[int, int]) -> np.ndarray:
    """`[H, W]` length of the ray through each pixel per metre of planar depth, for SURREAL's camera.

    Blender traces pixel (row r, column c) through raster point (c + 0.5, r + 0.5), with the principal point (cx, cy)
    on the frame's centre lines; the lengths are then symmetric under `mirror_images`.
    """
    k = SURREAL_INTRINSICS
    v, u = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float64) + 0.5
    return np.sqrt(((u - k.cx) / k.fx) ** 2 + ((v - k.cy) / k.fy) ** 2 + 1.0)


def planar_depth_from_ray_distance(depth) -> np.ndarray:
    """SURREAL's `depth [..., H, W]` (Cycles' Z pass, distance to the camera centre) -> planar z, same shape.

    Cycles writes the distance along the ray, unlike Blender Internal and most renderers (blender.stackexchange
    q/134122, devtalk.blender.org "Cycles Z-Depth does not conform to the standard Z-Depth output"). Background
    (DEPTH_BACKGROUND) stays as it is.
    """
    depth = np.asarray(depth)
    planar = depth / _pixel_ray_norms(depth.shape[-2:])
    return np.where(depth >= DEPTH_BACKGROUND, depth, planar).astype(depth.dtype)


def ray_distance_from_planar_depth(depth_z) -> np.ndarray:
    """Planar z `[..., H, W]` (a z-buffer) -> SURREAL's convention; inverse of `planar_depth_from_ray_distance`."""
    depth_z = np.asarray(depth_z)
    ray = depth_z * _pixel_ray_norms(depth_z.shape[-2:])
    return np.where(depth_z >= DEPTH_BACKGROUND, depth_z, ray).astype(depth_z.dtype)


def project_joints(joints3d_world, cam_loc) -> np.ndarray:
    """SURREAL's stored `joints2D` for world joints `[..., 3]`: projection with its (mirroring) camera, rounded to
    whole pixels as main_part1.get_bone_locs does (numpy rounds halves to even, as Python 3's `round`)."""
    R, t = surreal_extrinsics(cam_loc)
    return np.round(project(np.asarray(joints3d_world, dtype=np.float64) @ R.T + t, SURREAL_INTRINSICS))


# --------------------------------------------------------------------------------------------------------------------
# File names

_CLIP_RE = re.compile(r"^(?P<seq>.+)_c(?P<clip>\d{4})$")


def clip_path(root, split: str, run: int, seq: str, clip: int) -> Path:
    """`<root>/<split>/run<run>/<seq>/<seq>_c%04d.mp4` (clips are numbered from 1)."""
    return Path(root) / split / f"run{run}" / seq / f"{seq}_c{clip:04d}.mp4"


def companion_path(mp4_path, kind: str) -> Path:
    """The `_info.mat`, `_segm.mat` or `_depth.mat` (kind "info", "segm", "depth") beside a clip's .mp4."""
    mp4_path = Path(mp4_path)
    return mp4_path.with_name(f"{mp4_path.stem}_{kind}.mat")


# --------------------------------------------------------------------------------------------------------------------
# .mat reading

def _loadmat(path: Path, variable_names=None) -> dict:
    if not path.is_file():
        raise SurrealFormatError(f"{path}: missing (every SURREAL clip has <seq>_c%04d.mp4, _info.mat, _segm.mat "
                                 f"and _depth.mat side by side)", reason=f"missing _{path.name.rsplit('_', 1)[-1]}")
    try:
        return scipy.io.loadmat(path, variable_names=variable_names)
    except NotImplementedError as err:  # scipy's answer to v7.3 (HDF5) files
        raise SurrealFormatError(f"{path}: {err}; SURREAL's .mat files are MATLAB v5",
                                 reason="a MATLAB v7.3 file") from err
    except Exception as err:  # a truncated or foreign file fails in scipy in many ways: MatReadError (short or
        # empty), ValueError (text: "Unknown mat file type"), OSError or IndexError (cut mid-variable)
        raise SurrealFormatError(f"{path}: not a readable MATLAB v5 file ({type(err).__name__}: {err})",
                                 reason="not a readable MATLAB v5 file") from err


def _numeric_field(mat: dict, name: str, path: Path) -> np.ndarray:
    if name not in mat:
        raise SurrealFormatError(f"{path}: no field '{name}'")
    value = mat[name]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise SurrealFormatError(f"{path}: field '{name}' is {type(value).__name__} of "
                                 f"{getattr(value, 'dtype', '?')} — expected numbers",
                                 reason=f"field '{name}' is not numeric")
    return value


def _shape_error(path: Path, name: str, value: np.ndarray, expected: str, num_frames: int) -> SurrealFormatError:
    return SurrealFormatError(f"{path}: field '{name}' has shape {value.shape} — expected {expected} "
                              f"(T = {num_frames} from 'pose')", reason=f"field '{name}' has the wrong shape")


def _check_finite(values: np.ndarray, name: str, path: Path, per_frame: bool = True, frames=None,
                  key: str | None = None) -> np.ndarray:
    """`values` unchanged if all finite; else an error naming the file, the field and the first bad frame.

    A NaN or Inf in a label is a broken file, not a pose: left in, it would surface much later as a projection off
    the image ("the person leaves the frame"). `per_frame`: axis 0 is frames (numbered 0..T-1, as `frame_indices`,
    or as given by `frames`); `key`, the field holding them when it is not `name` (`depth_4` for depth frame 3).
    """
    finite = np.isfinite(values)
    if finite.all():
        return values
    if not per_frame:
        raise SurrealFormatError(f"{path}: non-finite {name} ({int((~finite).sum())} of {finite.size} values)",
                                 reason=f"non-finite {name}")
    bad = np.flatnonzero(~finite.reshape(len(values), -1).all(axis=1))
    numbers = np.arange(len(values)) if frames is None else np.asarray(frames)
    more = f" and {len(bad) - 1} more of {len(values)}" if len(bad) > 1 else ""
    field = f", field '{key}'" if key else ""
    raise SurrealFormatError(f"{path}: non-finite {name} (frame {int(numbers[bad[0]])}{more}{field})",
                             reason=f"non-finite {name}")


def _per_joint(mat, name, dims, path, num_frames) -> np.ndarray:
    """`joints2D (2,24,T)` / `joints3D (3,24,T)` -> `[T, 24, dims]`; MATLAB stores one frame as `(dims, 24)`."""
    value = _numeric_field(mat, name, path)
    if value.shape == (dims, NUM_JOINTS) and num_frames == 1:
        value = value[..., None]
    if value.shape != (dims, NUM_JOINTS, num_frames):
        raise _shape_error(path, name, value, f"({dims}, {NUM_JOINTS}, T)", num_frames)
    return np.transpose(value, (2, 1, 0))


def _per_frame(mat, name, path, num_frames) -> np.ndarray:
    """A per-frame vector stored `(T,1)`, `(1,T)` or as one value `(1,1)` -> `[T]`."""
    value = _numeric_field(mat, name, path)
    if value.size not in (1, num_frames) or sum(d > 1 for d in value.shape) > 1:
        raise _shape_error(path, name, value, "(T, 1)", num_frames)
    return np.broadcast_to(value.reshape(-1), (num_frames,))


class SurrealInfo(NamedTuple):
    """The `_info.mat` fields the decoder uses, checked and frame-major."""
    num_frames: int
    pose: np.ndarray  # [T, 72] float32
    joints2d: np.ndarray  # [T, 24, 2] float32, pixels, as stored (SURREAL's mirrored view)
    joints3d_world: np.ndarray  # [T, 24, 3] float32, metres, SURREAL's world
    betas: np.ndarray  # [T, 10] float32
    zrot: np.ndarray  # [T] float32
    genders: tuple[str, ...]  # [T]
    cam_loc: np.ndarray  # [3] float64


def _genders(mat, path, num_frames) -> tuple[str, ...]:
    codes = _per_frame(mat, "gender", path, num_frames)
    bad = sorted(set(codes.tolist()) - set(range(len(GENDERS))))
    if bad:
        raise SurrealFormatError(f"{path}: field 'gender' holds {bad} — expected 0 (female) or 1 (male)",
                                 reason="field 'gender' is not 0 or 1")
    return tuple(GENDERS[int(c)] for c in codes)


def _num_frames(mat, path) -> int:
    pose = _numeric_field(mat, "pose", path)
    if pose.ndim != 2 or pose.shape[0] != NUM_POSE or pose.shape[1] < 1:
        raise SurrealFormatError(f"{path}: field 'pose' has shape {pose.shape} — expected ({NUM_POSE}, T)",
                                 reason="field 'pose' has the wrong shape")
    return pose.shape[1]


def read_info(info_path) -> SurrealInfo:
    """Reads and checks the fields of an `_info.mat` the decoder uses; per-frame arrays come out frame-major.

    Raises `SurrealFormatError` naming the file and the field on a missing field, a wrong shape, or a NaN or Inf
    (with the first such frame).
    """
    info_path = Path(info_path)
    mat = _loadmat(info_path, ["joints2D", "joints3D", "pose", "shape", "camLoc", "zrot", "gender"])
    num_frames = _num_frames(mat, info_path)
    shape = _numeric_field(mat, "shape", info_path)
    if shape.ndim != 2 or shape.shape[0] != NUM_BETAS or shape.shape[1] not in (1, num_frames):
        raise _shape_error(info_path, "shape", shape, f"({NUM_BETAS}, T)", num_frames)
    cam_loc = _numeric_field(mat, "camLoc", info_path)
    if cam_loc.size != 3:
        raise _shape_error(info_path, "camLoc", cam_loc, "(3, 1)", num_frames)
    return SurrealInfo(
        num_frames=num_frames,
        pose=_check_finite(mat["pose"].T, "pose", info_path).astype(np.float32),
        joints2d=_check_finite(_per_joint(mat, "joints2D", 2, info_path, num_frames), "joints2D",
                               info_path).astype(np.float32),
        joints3d_world=_check_finite(_per_joint(mat, "joints3D", 3, info_path, num_frames), "joints3D",
                                     info_path).astype(np.float32),
        betas=_check_finite(np.broadcast_to(shape.T, (num_frames, NUM_BETAS)), "shape", info_path).astype(np.float32),
        zrot=_check_finite(_per_frame(mat, "zrot", info_path, num_frames), "zrot", info_path).astype(np.float32),
        genders=_genders(mat, info_path, num_frames),
        cam_loc=_check_finite(cam_loc.reshape(3), "camLoc", info_path, per_frame=False).astype(np.float64))


def _read_frame_mat(path: Path, prefix: str, indices: np.ndarray, num_frames: int, info_path: Path,
                    dtype) -> np.ndarray:
    """`<prefix>_1 .. <prefix>_T` (1-based, 240x320 each) at 0-based `indices` -> `[len(indices), 240, 320]`."""
    keys = [f"{prefix}_{i + 1}" for i in indices]
    whole = len(indices) == num_frames
    mat = _loadmat(path, None if whole else keys)  # a slice decodes only its own frames
    missing = [k for k in keys if k not in mat]
    stored = sum(1 for k in mat if re.fullmatch(rf"{prefix}_\d+", k))
    if missing or (whole and stored != num_frames):
        found = f"no field '{missing[0]}'" if missing else f"holds {stored} '{prefix}_<t>' frames"
        raise SurrealFormatError(f"{path}: {found} — expected {prefix}_1..{prefix}_{num_frames} "
                                 f"(T = {num_frames} from {info_path.name})")
    out = np.empty((len(keys),) + SURREAL_IMAGE_HW, dtype)  # filled in place: one copy, converting as it goes
    for i, key in enumerate(keys):
        value = mat[key]
        if value.shape != SURREAL_IMAGE_HW or value.dtype.kind not in "biuf":
            raise SurrealFormatError(f"{path}: field '{key}' is {value.dtype} {value.shape} — expected "
                                     f"{SURREAL_IMAGE_HW} numbers")
        if value.dtype.kind == "f":  # before the cast: a NaN cast to the integer `segm` would be an arbitrary part id
            _check_finite(value[None], prefix, path, frames=indices[i:i + 1], key=key)
        out[i] = value
    return out


def _read_segm(path, indices, num_frames, info_path) -> np.ndarray:
    segm = _read_frame_mat(path, "segm", indices, num_frames, info_path, np.int64)
    if segm.min() < 0 or segm.max() >= NUM_PART_IDS:
        raise SurrealFormatError(f"{path}: part ids span {segm.min()}..{segm.max()} — expected 0..{NUM_PART_IDS - 1}")
    return segm.astype(np.uint8)


def _read_frames(mp4_path: Path, indices: np.ndarray, num_frames: int, info_path: Path) -> np.ndarray:
    from mhr_tf.data import videos  # OpenCV is loaded only when frames are read

    if not mp4_path.is_file():
        raise SurrealFormatError(f"{mp4_path}: missing (the clip's video)")
    first, count = int(indices.min()), int(indices.max() - indices.min() + 1)
    whole = len(indices) == num_frames
    mismatch = f"— expected T = {num_frames} as in {info_path.name}"
    try:
        video = videos.read_video(mp4_path, start=first, num_frames=None if whole else count)
    except videos.VideoTooShortError as err:
        raise SurrealFormatError(f"{err} {mismatch}") from err
    if len(video) != count:  # `count` is T when the whole clip was read
        raise SurrealFormatError(f"{mp4_path}: has {first + len(video)} frames {mismatch}")
    if video.shape[1:] != SURREAL_IMAGE_HW + (3,):
        raise SurrealFormatError(f"{mp4_path}: frames are {video.shape[1:]} — expected {SURREAL_IMAGE_HW + (3,)}")
    return video[indices - first]


def load_clip(mp4_path, frames: slice | None = None, load_segm: bool = True, load_depth: bool = True) -> SurrealClip:
    """Reads one SURREAL clip and returns camera-frame quantities, unmirrored (see the module docstring).

    `frames` selects frames of the clip (a slice over 0..T-1; None = all). Segmentation and depth are read only if
    asked. Raises `SurrealFormatError` naming the file and field on a missing companion file or field, a field of the
    wrong shape, or frame counts that disagree between the .mp4 and the .mat files.
    """
    mp4_path = Path(mp4_path)
    info_path = companion_path(mp4_path, "info")
    info = read_info(info_path)
    indices = np.arange(info.num_frames)[frames if frames is not None else slice(None)]
    if indices.size == 0:
        raise ValueError(f"{mp4_path}: frames={frames} selects none of its {info.num_frames} frames")
    pose = info.pose[indices]
    zrot = info.zrot[indices]
    return SurrealClip(
        path=mp4_path,
        frame_indices=indices.astype(np.int64),
        frames=mirror_images(_read_frames(mp4_path, indices, info.num_frames, info_path)),
        segm=(mirror_images(_read_segm(companion_path(mp4_path, "segm"), indices, info.num_frames, info_path))
              if load_segm else None),
        depth=(mirror_images(_read_frame_mat(companion_path(mp4_path, "depth"), "depth", indices, info.num_frames,
                                             info_path, np.float32)) if load_depth else None),
        joints2d=mirror_joints2d(info.joints2d[indices]).astype(np.float32),
        joints3d_cam=joints_to_camera(info.joints3d_world[indices], info.cam_loc).astype(np.float32),
        pose_cam=pose_to_camera(pose, zrot).astype(np.float32),
        pose=pose,
        zrot=zrot,
        betas=info.betas[indices[0]].copy(),
        gender=info.genders[indices[0]],
        intrinsics=SURREAL_INTRINSICS,
        cam_loc=info.cam_loc,
        extrinsics=camera_extrinsics(info.cam_loc))
