"""3DPW decoder: `sequenceFiles/<split>/<seq>.pkl` → one `PersonTrack` per person, in the camera frame. No TensorFlow.

The layout (von Marcard et al., ECCV 2018; the dataset's readme, and the loaders of SPIN/VIBE that read it):
```
<root>/sequenceFiles/{train,validation,test}/<seq>.pkl    Python-2 pickles of a dict, read with encoding='latin1'
<root>/imageFiles/<seq>/image_%05d.jpg                    numbered by the frame index 0..N-1 (not img_frame_ids)
```
Keys of the dict (N image frames at 30 Hz, P = 1 or 2 people; "list" = one entry per person):
  sequence           str
  betas              list of [10] SMPL shape (some tools store more; the first 10 are SMPL's)
  betas_clothed      list of [10]
  poses              list of [N, 72] SMPL axis-angle, world frame
  trans              list of [N, 3] SMPL root translation, world frame, metres
  poses_60Hz, trans_60Hz   the same at the IMU rate (unused here)
  genders            list of 'm' / 'f'   (the readme says 'gender'; the files say 'genders')
  poses2d            list of [N, 3, 18] OpenPose COCO-18 (x px, y px, confidence); all zero where no detection
                     (the readme says 'poses2D'; the files say 'poses2d')
  jointPositions     list of [N, 72] = [N, 24, 3] SMPL joints, world frame, metres
  cam_poses          [N, 4, 4] world → camera extrinsics: X_cam = R X_world + t
  cam_intrinsics     [3, 3] K
  campose_valid      list of [N] (uint8): the camera pose is aligned with the image for this person
  img_frame_ids      [N] index into the 60 Hz streams (0, 2, 4, …)
  v_template_clothed, texture_maps   unused here

Pickles run code when loaded: open only 3DPW files and files this project wrote.
"""
from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np

from mhr_tf.body import joints
from mhr_tf.geometry import axis_angle_to_matrix, matrix_to_axis_angle

SPLITS = ("train", "validation", "test")
SEQUENCE_DIR = "sequenceFiles"
IMAGE_DIR = "imageFiles"
IMAGE_PATTERN = "image_%05d.jpg"  # imageFiles/<seq>/, numbered by the frame index as SPIN's loader does
NUM_BETAS = 10  # SMPL's shape space
NUM_SMPL_JOINTS = len(joints.SMPL_24)
NUM_KEYPOINTS = len(joints.COCO_18)  # poses2d is OpenPose COCO-18
GENDERS = {"m": "male", "f": "female"}  # the files' codes → the body-model loader's names

# Keys the decoder reads; the writer (mhr_tf.sim.writers) writes these and the unused ones of the real files.
SEQUENCE_KEYS = ("sequence", "cam_poses", "cam_intrinsics", "img_frame_ids")
PERSON_KEYS = ("betas", "poses", "trans", "genders", "poses2d", "jointPositions", "campose_valid")
# Tolerance on R^T R = I for the rotation part of cam_poses: catches a matrix of another kind (e.g. K or a
# projection) in the field, not float noise.
ROTATION_TOLERANCE = 1e-3


class ThreeDPWFormatError(ValueError):
    """A 3DPW-layout pickle that is unreadable, lacks a key, or holds a value of the wrong shape or kind."""


@dataclasses.dataclass
class PersonTrack:
    """One person of one 3DPW sequence, N frames at 30 Hz.

    Camera frame: x right, y down, z forward (OpenCV), metres. `pose_cam` is `pose_world` with the root orientation
    rotated by the camera rotation, so the body with `pose_cam`, `betas` reproduces `joints3d_cam` up to a
    translation. SMPL rotates its root about the rest-pose pelvis J0(betas), not the origin, so the camera-frame
    translation is not R trans + t but `trans_cam = R (trans + J0) + t - J0 = pelvis_cam - J0`; with `trans_cam`
    the body reproduces `joints3d_cam` exactly. J0 is read off the file as `rest_pelvis` (see `camera_translation`
    to use another body model's J0).
    """
    sequence: str
    person: int                 # index in the file's per-person lists
    gender: str                 # 'male' | 'female'
    betas: np.ndarray           # [10] float32, SMPL shape
    pose_world: np.ndarray      # [N, 72] float32, SMPL axis-angle, world frame (the file's 'poses')
    trans_world: np.ndarray     # [N, 3] float32, metres, world frame (the file's 'trans')
    joints3d_world: np.ndarray  # [N, 24, 3] float32, metres, world frame (the file's 'jointPositions')
    pose_cam: np.ndarray        # [N, 72] float32, root orientation in the camera frame, other joints as the file
    joints3d_cam: np.ndarray    # [N, 24, 3] float32, metres, camera frame
    rest_pelvis: np.ndarray     # [3] float32, metres: J0(betas), median over frames of jointPositions[:, 0] - trans
    trans_cam: np.ndarray       # [N, 3] float32, metres: SMPL translation that puts the pelvis at joints3d_cam[:, 0]
    keypoints2d: np.ndarray     # [N, 18, 3] float32, COCO-18 (x px, y px, confidence); zeros where not detected
    campose_valid: np.ndarray   # [N] bool, the camera pose is aligned with the image for this person
    keypoints_valid: np.ndarray  # [N] bool, poses2d is not all zero in this frame
    frame_ids: np.ndarray       # [N] int64, img_frame_ids: index of each frame in the 60 Hz streams
    image_paths: tuple[str, ...]  # [N] imageFiles/<seq>/image_%05d.jpg under the dataset root
    cam_poses: np.ndarray       # [N, 4, 4] float64, world → camera
    cam_intrinsics: np.ndarray  # [3, 3] float64, K in pixels
    betas_clothed: np.ndarray | None  # [10] float32 when the file has 'betas_clothed'

    @property
    def num_frames(self) -> int:
        return int(self.pose_world.shape[0])


def list_sequences(root: str | Path, split: str) -> list[Path]:
    """The sequence pickles of one split, sorted: `<root>/sequenceFiles/<split>/*.pkl`."""
    if split not in SPLITS:
        raise ValueError(f"3DPW split {split!r} is not one of {SPLITS}")
    directory = Path(root) / SEQUENCE_DIR / split
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory — expected 3DPW's layout "
                                f"<root>/{SEQUENCE_DIR}/{{{','.join(SPLITS)}}}/<seq>.pkl")
    return sorted(directory.glob("*.pkl"))


def load_split(root: str | Path, split: str) -> list[PersonTrack]:
    """Every person track of every sequence of a split, in file order then person order."""
    return [track for path in list_sequences(root, split) for track in load_sequence(path)]


def load_sequence(path: str | Path, image_root: str | Path | None = None) -> list[PersonTrack]:
    """Read one 3DPW sequence pickle into one `PersonTrack` per person.

    `image_root` is the directory holding `imageFiles/`; by default the dataset root the pickle sits in
    (`<root>/sequenceFiles/<split>/<seq>.pkl`). Image paths are returned, not read (see `read_image`).
    """
    path = Path(path)
    data = _read_pickle(path)
    name = _as_str(data["sequence"], path, "'sequence'")
    num_frames = _frame_count(data, path)
    per_frame = f" (N = {num_frames} frames, the length of img_frame_ids)"
    cam_poses = _checked(data["cam_poses"], path, "'cam_poses'", (num_frames, 4, 4), per_frame, frames=True)
    _check_rigid(cam_poses, path)
    image_root = Path(image_root) if image_root is not None else path.parent.parent.parent
    shared = dict(
        sequence=name, cam_poses=cam_poses,
        cam_intrinsics=_checked(data["cam_intrinsics"], path, "'cam_intrinsics'", (3, 3)),
        frame_ids=_checked(data["img_frame_ids"], path, "'img_frame_ids'", (num_frames,),
                           frames=True).astype(np.int64),
        image_paths=tuple(str(image_root / IMAGE_DIR / name / (IMAGE_PATTERN % i)) for i in range(num_frames)))
    return [_person_track(data, path, person, shared, per_frame) for person in range(_person_count(data, path))]


def _person_track(data: dict, path: Path, person: int, shared: dict, per_frame: str) -> PersonTrack:
    """The `person`-th entry of every per-person key, checked, and moved into the camera frame."""
    num_frames = len(shared["frame_ids"])

    def field(key, shape):
        return _checked(data[key][person], path, f"'{key}'[{person}]", shape, per_frame, frames=True)

    betas = np.asarray(data["betas"][person], dtype=object).reshape(-1)
    betas = _checked(betas, path, f"'betas'[{person}]", betas.shape)
    if betas.size < NUM_BETAS:
        raise ThreeDPWFormatError(f"{path}: key 'betas'[{person}] has {betas.size} values — expected at least "
                                  f"{NUM_BETAS} (SMPL's shape space)")
    gender = _as_str(data["genders"][person], path, f"'genders'[{person}]")
    if gender not in GENDERS:
        raise ThreeDPWFormatError(f"{path}: key 'genders'[{person}] is {gender!r} — expected one of "
                                  f"{sorted(GENDERS)}")
    pose_world = field("poses", (num_frames, 72))
    trans_world = field("trans", (num_frames, 3))
    joints3d_world = field("jointPositions", (num_frames, 3 * NUM_SMPL_JOINTS)).reshape(
        num_frames, NUM_SMPL_JOINTS, 3)
    poses2d = field("poses2d", (num_frames, 3, NUM_KEYPOINTS))

    rotation, translation = shared["cam_poses"][:, :3, :3], shared["cam_poses"][:, :3, 3]
    pose_cam = pose_world.copy()
    pose_cam[:, :3] = matrix_to_axis_angle(rotation @ axis_angle_to_matrix(pose_world[:, :3]))
    joints3d_cam = np.einsum("nij,nkj->nki", rotation, joints3d_world) + translation[:, None, :]
    # The posed pelvis of SMPL is J0(betas) + trans whatever the pose, so jointPositions[:, 0] - trans is J0.
    rest_pelvis = np.median(joints3d_world[:, 0] - trans_world, axis=0)
    betas_clothed = None
    if "betas_clothed" in data and len(data["betas_clothed"]) > person:
        betas_clothed = np.asarray(data["betas_clothed"][person], dtype=object).reshape(-1)
        betas_clothed = _checked(betas_clothed, path, f"'betas_clothed'[{person}]", betas_clothed.shape)
        betas_clothed = betas_clothed[:NUM_BETAS].astype(np.float32)
    return PersonTrack(
        person=person, gender=GENDERS[gender],
        betas=betas[:NUM_BETAS].astype(np.float32),
        pose_world=pose_world.astype(np.float32),
        trans_world=trans_world.astype(np.float32),
        joints3d_world=joints3d_world.astype(np.float32),
        pose_cam=pose_cam.astype(np.float32),
        joints3d_cam=joints3d_cam.astype(np.float32),
        rest_pelvis=rest_pelvis.astype(np.float32),
        trans_cam=(joints3d_cam[:, 0] - rest_pelvis).astype(np.float32),
        keypoints2d=np.transpose(poses2d, (0, 2, 1)).astype(np.float32),
        campose_valid=field("campose_valid", (num_frames,)) != 0,
        keypoints_valid=np.any(poses2d != 0, axis=(1, 2)),
        betas_clothed=betas_clothed, **shared)


def camera_translation(trans_world: np.ndarray, cam_poses: np.ndarray, rest_pelvis: np.ndarray) -> np.ndarray:
    """SMPL translation in the camera frame: `R (trans + J0) + t - J0` ([N, 3], metres).

    `rest_pelvis` is J0 = the rest-pose pelvis of the body model for these betas (`[3]`), because SMPL's root
    rotation turns the body about J0, not about the origin.
    """
    cam_poses = np.asarray(cam_poses, np.float64)
    rest_pelvis = np.asarray(rest_pelvis, np.float64)
    pelvis_world = np.asarray(trans_world, np.float64) + rest_pelvis
    pelvis_cam = np.einsum("nij,nj->ni", cam_poses[:, :3, :3], pelvis_world) + cam_poses[:, :3, 3]
    return pelvis_cam - rest_pelvis


def read_image(path: str | Path) -> np.ndarray:
    """One frame of `imageFiles/<seq>/`: [H, W, 3] uint8 RGB."""
    import cv2  # only the image reader needs OpenCV
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: missing or not a readable image (expected a 3DPW JPEG frame)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ---- reading and checking the pickle ------------------------------------------------------------------------

def _read_pickle(path: Path) -> dict:
    with open(path, "rb") as stream:  # a missing file raises FileNotFoundError with its name
        try:
            data = pickle.load(stream, encoding="latin1")  # Python-2 str → latin1, as numpy's arrays expect
        except Exception as error:  # unpickling fails in many ways: truncation, garbage, unknown classes
            raise ThreeDPWFormatError(f"{path}: not a readable pickle ({type(error).__name__}: {error}) — "
                                      "expected a 3DPW sequence file") from error
    if not isinstance(data, dict):
        raise ThreeDPWFormatError(f"{path}: the pickle holds a {type(data).__name__} — expected a 3DPW sequence "
                                  f"dict with keys {SEQUENCE_KEYS + PERSON_KEYS}")
    if "sequence" not in data:
        raise ThreeDPWFormatError(f"{path}: key 'sequence' missing — not a 3DPW sequence file "
                                  f"(keys found: {sorted(map(str, data))[:12]})")
    missing = [key for key in SEQUENCE_KEYS + PERSON_KEYS if key not in data]
    if missing:
        raise ThreeDPWFormatError(f"{path}: key(s) {missing} missing — a 3DPW sequence file has "
                                  f"{SEQUENCE_KEYS + PERSON_KEYS}")
    return data


def _frame_count(data: dict, path: Path) -> int:
    frame_ids = np.asarray(data["img_frame_ids"])
    if frame_ids.ndim != 1:
        raise ThreeDPWFormatError(f"{path}: key 'img_frame_ids' has shape {frame_ids.shape} — expected (N,)")
    return int(frame_ids.shape[0])


def _person_count(data: dict, path: Path) -> int:
    counts = {}
    for key in PERSON_KEYS:
        value = data[key]
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__"):
            raise ThreeDPWFormatError(f"{path}: key {key!r} is a {type(value).__name__} — expected a list with "
                                      "one entry per person")
        counts[key] = len(value)
    if len(set(counts.values())) != 1 or counts["poses"] == 0:
        raise ThreeDPWFormatError(f"{path}: the per-person keys disagree on the number of people ({counts}) — "
                                  "expected the same non-zero count in each")
    return counts["poses"]


def _checked(value, path: Path, label: str, shape: tuple[int, ...], note: str = "",
             frames: bool = False) -> np.ndarray:
    """`value` as finite float64 of exactly `shape`, else an error naming the file and the key (`label`).

    A NaN or Inf is reported with the first frame holding one when axis 0 is frames (`frames`, numbered 0..N-1 as
    imageFiles' image_%05d.jpg): left in, it would surface much later as a projection off the image.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ThreeDPWFormatError(f"{path}: key {label} is not numeric ({error}) — expected shape {shape}") \
            from error
    if array.shape != tuple(shape):
        raise ThreeDPWFormatError(f"{path}: key {label} has shape {array.shape} — expected {tuple(shape)}{note}")
    finite = np.isfinite(array)
    if finite.all():
        return array
    if not frames or array.ndim == 0:
        raise ThreeDPWFormatError(f"{path}: non-finite {label} ({int((~finite).sum())} of {finite.size} values)")
    bad = np.flatnonzero(~finite.reshape(len(array), -1).all(axis=1))
    more = f" and {len(bad) - 1} more of {len(array)}" if len(bad) > 1 else ""
    raise ThreeDPWFormatError(f"{path}: non-finite {label} (frame {int(bad[0])}{more})")


def _check_rigid(cam_poses: np.ndarray, path: Path) -> None:
    rotation = cam_poses[:, :3, :3]
    error = np.abs(np.swapaxes(rotation, -1, -2) @ rotation - np.eye(3)).max(initial=0.0)
    bottom = np.abs(cam_poses[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(initial=0.0)
    if error > ROTATION_TOLERANCE or bottom > ROTATION_TOLERANCE or np.any(np.linalg.det(rotation) < 0):
        raise ThreeDPWFormatError(f"{path}: key 'cam_poses' is not a stack of rigid 4x4 transforms "
                                  f"(|R^T R - I| = {error:.3g}, last row off by {bottom:.3g}) — expected world → "
                                  "camera extrinsics [R t; 0 0 0 1]")


def _as_str(value, path: Path, label: str) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:  # some files hold the name as a 0-d string array
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode("latin1")
    if not isinstance(value, str):
        raise ThreeDPWFormatError(f"{path}: key {label} is a {type(value).__name__} — expected a string")
    return value
