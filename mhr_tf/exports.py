"""Predictions as files other tools open: an AMASS-style `.npz`, a BVH of the body model's skeleton, OBJ meshes.
numpy only (the body model's numpy forward pass gives rest joints).

    per-frame SMPL pose (root in the camera frame), betas, HMR camera + box
        ─► camera_translation (a full-image pinhole camera)     ─► trans in the camera frame
        ─► fill_gaps (frames without a prediction)               ─► every video frame has a pose
        ─► world_motion (camera frame → a z-up or y-up world)    ─► write_amass_npz / write_bvh; write_obj(s)

Frames:
- camera: x right, y down, z forward (OpenCV; the predictions' frame).
- AMASS (`CAMERA_TO_Z_UP`): z up, the camera looking along +y: x_w = x_c, y_w = z_c, z_w = -y_c. This is what
  AMASS readers assume: aitviewer's `SMPLSequence.from_amass(z_up=True)` turns it to its y-up view with
  (x, y, z) -> (x, z, -y), which lands on `CAMERA_TO_Y_UP` below, so the person stands and faces the viewer as in
  the video; the SMPL-X Blender add-on's "AMASS" format puts the body on Blender's (z-up) ground plane.
- BVH (`CAMERA_TO_Y_UP`): y up, z towards the camera (x_w = x_c, y_w = -y_c, z_w = -z_c), the frame of SMPL's rest
  pose and of mhr_tf.body.bvh.
The ground is not estimated: the world's origin is the camera, and "up" is the camera's up.

SMPL turns the root about the rest pelvis J0(betas), not the origin, so moving a body into another frame by a
rotation R needs the body model's J0: root' = R root, trans' = R (trans + J0) - J0 (`world_motion`).

AMASS-style `.npz` (the keys AMASS's SMPL+H files have, as aitviewer and the SMPL-X Blender add-on read them):
  poses [N, 156] SMPL+H: root + 21 body joints (SMPL's first 22) + 2 x 15 hand joints (zero: the hand model's
  reference pose); or [N, 72] plain SMPL with `layout="smpl"`. trans [N, 3] metres. betas [16] (SMPL's 10, zero
  padded; they are the body model's shape coefficients, so another model shows another shape — pose and motion
  carry over). gender str. mocap_framerate (and mocap_frame_rate, the SMPL-X-era spelling) float. dmpls [N, 8] zero.
  Extra keys: valid [N] (frames with a prediction; the others are filled), frame_convention.
  The Blender add-on takes int(mocap_framerate) and refuses rates below its import target (30 by default): for
  29.97 fps video set the target to 29 or lower.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mhr_tf import geometry
from mhr_tf.body import bvh, smpl
from mhr_tf.body.joints import SMPL_24

CAMERA_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
CAMERA_TO_Y_UP = np.diag([1.0, -1.0, -1.0])
FRAMES = {"z_up": CAMERA_TO_Z_UP, "y_up": CAMERA_TO_Y_UP, "camera": np.eye(3)}
AMASS_NUM_BETAS = 16       # AMASS's SMPL+H betas
AMASS_NUM_DMPLS = 8
SMPLH_BODY_JOINTS = 22     # root + 21: SMPL's joints 0..21 (SMPL's 22, 23 are the hands SMPL+H replaces)
SMPLH_HAND_JOINTS = 2 * 15
AMASS_LAYOUTS = ("smplh", "smpl")


def rest_joints(body: smpl.BodyModel, betas) -> np.ndarray:
    """The unposed skeleton J(betas) `[24, 3]` metres (y up, facing +z) of `body` for `betas [10]`."""
    betas = np.asarray(betas, np.float64).reshape(1, -1)
    _, joints = smpl.forward_numpy(body, betas, np.zeros((1, 3 * len(SMPL_24))))
    return joints[0].astype(np.float64)


def default_focal_px(image_hw: tuple[int, int]) -> float:
    """A focal length for an unknown camera: the image diagonal in pixels (about 53 degrees across the long side)."""
    return float(np.hypot(*image_hw))


def camera_translation(camera, box_centre, box_size, image_hw: tuple[int, int], crop_size: int,
                       focal_px: float | None = None) -> np.ndarray:
    """SMPL's translation `[T, 3]` (metres, camera frame) for a pinhole camera over the whole image (focal
    `focal_px`, default `default_focal_px`; principal point the image centre ((W - 1) / 2, (H - 1) / 2)) that
    reproduces HMR's box-relative weak perspective `camera [T, 3]` = (s, tx, ty) of boxes `box_centre [T, 2]`,
    `box_size [T]` px: exactly for points at the body's depth.

    In the image, HMR puts a body point X at u = u0 + (s size / 2)(X + tx), u0 the image position of the box's
    normalised origin (geometry's crop conventions). A pinhole camera puts it at u = c + f (X + T) / Tz. So
    Tz = 2 f / (s size) and T_xy = t_xy + (u0 - c) Tz / f."""
    camera = np.asarray(camera, np.float64)
    box_centre, box_size = np.asarray(box_centre, np.float64), np.asarray(box_size, np.float64)
    focal = default_focal_px(image_hw) if focal_px is None else float(focal_px)
    origin = geometry.crop_to_image(geometry.normalized_to_crop_pixels(np.zeros((len(camera), 1, 2)), crop_size),
                                    box_centre, box_size, crop_size)[:, 0]  # [T, 2]
    principal = np.array([(image_hw[1] - 1) / 2.0, (image_hw[0] - 1) / 2.0])
    depth = 2.0 * focal / (camera[:, 0] * box_size)
    return np.concatenate([camera[:, 1:3] + (origin - principal) * (depth / focal)[:, None], depth[:, None]], axis=1)


def weak_perspective_from_translation(trans, box_centre, box_size, image_hw: tuple[int, int], crop_size: int,
                                      focal_px: float | None = None) -> np.ndarray:
    """Inverse of `camera_translation`: HMR's (s, tx, ty) `[T, 3]` in the boxes for translations `trans [T, 3]` (e.g.
    after smoothing them, to draw the overlay again)."""
    trans = np.asarray(trans, np.float64)
    box_centre, box_size = np.asarray(box_centre, np.float64), np.asarray(box_size, np.float64)
    focal = default_focal_px(image_hw) if focal_px is None else float(focal_px)
    origin = geometry.crop_to_image(geometry.normalized_to_crop_pixels(np.zeros((len(trans), 1, 2)), crop_size),
                                    box_centre, box_size, crop_size)[:, 0]
    principal = np.array([(image_hw[1] - 1) / 2.0, (image_hw[0] - 1) / 2.0])
    scale = 2.0 * focal / (trans[:, 2] * box_size)
    return np.concatenate([scale[:, None], trans[:, :2] - (origin - principal) * (trans[:, 2:] / focal)], axis=1)


def world_motion(pose, trans, rotation, pelvis) -> tuple[np.ndarray, np.ndarray]:
    """The same bodies seen in a frame turned by `rotation [3, 3]`: pose `[T, 72]` with the root turned, and trans
    `[T, 3]` moved so the pelvis (rest pelvis `pelvis [3]` + trans) turns with it."""
    pose, trans = np.array(pose, np.float64), np.asarray(trans, np.float64)
    rotation, pelvis = np.asarray(rotation, np.float64), np.asarray(pelvis, np.float64)
    pose[:, :3] = (Rotation.from_matrix(rotation) * Rotation.from_rotvec(pose[:, :3])).as_rotvec()
    return pose, (trans + pelvis) @ rotation.T - pelvis


def fill_gaps(pose, trans, valid) -> tuple[np.ndarray, np.ndarray]:
    """Frames without a prediction (`valid [T]` false) filled for files that need every frame: rotations slerped
    joint by joint between the nearest valid frames, translations interpolated linearly, held before the first and
    after the last valid frame."""
    pose, trans, valid = np.asarray(pose, np.float64), np.asarray(trans, np.float64), np.asarray(valid, bool)
    frames = np.flatnonzero(valid)
    if not len(frames):
        raise ValueError("fill_gaps: no valid frame — nothing to export")
    num_frames = len(valid)
    at = np.clip(np.arange(num_frames), frames[0], frames[-1]).astype(np.float64)
    joints = pose.reshape(num_frames, -1, 3)
    out = np.empty_like(joints)
    for j in range(joints.shape[1]):
        if len(frames) == 1:
            out[:, j] = joints[frames[0], j]
        else:
            out[:, j] = Slerp(frames.astype(np.float64), Rotation.from_rotvec(joints[frames, j]))(at).as_rotvec()
    filled_trans = np.stack([np.interp(at, frames, trans[frames, c]) for c in range(3)], axis=1)
    return out.reshape(pose.shape), filled_trans


def _prepared(pose, trans, valid, body, betas, frame: str):
    if frame not in FRAMES:
        raise ValueError(f"frame {frame!r} is not one of {sorted(FRAMES)}")
    pose, trans = np.asarray(pose, np.float64), np.asarray(trans, np.float64)
    num_frames = len(pose)
    if pose.shape != (num_frames, 3 * len(SMPL_24)) or trans.shape != (num_frames, 3):
        raise ValueError(f"pose {pose.shape} and trans {trans.shape} — expected [T, 72] and [T, 3]")
    valid = np.isfinite(pose).all(axis=1) & np.isfinite(trans).all(axis=1) if valid is None else \
        np.asarray(valid, bool) & np.isfinite(pose).all(axis=1) & np.isfinite(trans).all(axis=1)
    body = smpl.load_body_model(None) if body is None else body
    skeleton = rest_joints(body, betas)
    pose, trans = fill_gaps(pose, trans, valid)
    pose, trans = world_motion(pose, trans, FRAMES[frame], skeleton[0])
    return pose, trans, valid, skeleton


def write_amass_npz(path, pose, trans, betas, gender: str = "neutral", fps: float = 30.0, valid=None,
                    body: smpl.BodyModel | None = None, frame: str = "z_up", layout: str = "smplh") -> Path:
    """Write one person's motion as an AMASS-style `.npz` (keys in the module docstring).

    `pose [T, 72]` (root in the camera frame) and `trans [T, 3]` (camera frame, e.g. `camera_translation`), NaN or
    `valid` false where there is no prediction (filled by `fill_gaps`); `betas [10]` one shape for the track
    (`smoothing.fixed_betas`); `body` the model whose rest pelvis moves the root (default: the open body model);
    `frame` "z_up" (AMASS) or "y_up" / "camera"; `layout` "smplh" (poses [T, 156], AMASS) or "smpl" ([T, 72])."""
    if layout not in AMASS_LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {AMASS_LAYOUTS}")
    betas = np.asarray(betas, np.float64).reshape(-1)
    pose, trans, valid, _ = _prepared(pose, trans, valid, body, betas, frame)
    num_frames = len(pose)
    if layout == "smplh":
        pose = np.concatenate([pose[:, :3 * SMPLH_BODY_JOINTS], np.zeros((num_frames, 3 * SMPLH_HAND_JOINTS))], 1)
    padded = np.zeros(max(AMASS_NUM_BETAS, len(betas)))
    padded[:len(betas)] = betas
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, poses=pose, trans=trans, betas=padded, gender=np.array(str(gender)),
             mocap_framerate=np.array(float(fps)), mocap_frame_rate=np.array(float(fps)),
             dmpls=np.zeros((num_frames, AMASS_NUM_DMPLS)), valid=valid,
             frame_convention=np.array(f"{frame}: world from the camera frame (x right, y down, z forward) by "
                                       f"{FRAMES[frame].astype(int).tolist()}"))
    return path


def write_bvh(path, pose, trans, betas, fps: float = 30.0, valid=None, body: smpl.BodyModel | None = None,
              frame: str = "y_up") -> Path:
    """Write one person's motion as a BVH of the body model's skeleton (`mhr_tf.body.bvh.write_bvh`: SMPL's 24
    joints, offsets from J(betas) of `body`, default the open body model so no licence is needed; centimetres).
    Inputs as `write_amass_npz`; `frame` "y_up" (BVH's usual up axis) by default."""
    pose, trans, _, skeleton = _prepared(pose, trans, valid, body, betas, frame)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return bvh.write_bvh(path, pose, trans, skeleton, fps)


def write_obj(path, vertices, faces) -> Path:
    """One mesh as Wavefront OBJ: `vertices [V, 3]` (metres, as given), `faces [F, 3]` 0-based (written 1-based)."""
    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"write_obj({path}): vertices {vertices.shape}, faces {faces.shape} — expected [V, 3], "
                         "[F, 3]")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"write_obj({path}): face indices outside 0..{len(vertices) - 1}")
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_obj_sequence(directory, vertices, faces, valid=None, pattern: str = "frame_%05d.obj",
                       frame: str = "camera") -> list[Path]:
    """One OBJ per valid frame of `vertices [T, V, 3]` into `directory` (`pattern` % frame number), turned into
    `frame` ("camera" as predicted, or "y_up" / "z_up")."""
    vertices = np.asarray(vertices, np.float64)
    valid = np.isfinite(vertices).all(axis=(1, 2)) if valid is None else np.asarray(valid, bool)
    rotation = FRAMES[frame]
    return [write_obj(Path(directory) / (pattern % t), vertices[t] @ rotation.T, faces)
            for t in np.flatnonzero(valid)]
