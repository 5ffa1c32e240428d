"""Motion HMR on a user's video: per-frame SMPL parameters, 3D joints and camera, and an overlay video.

    video (or a 3DPW sequence's imageFiles) ─► JPEG frames ┐
    OpenPose JSON (or 3DPW poses2d) ─► one followed person ┴─► a track, as a 3DPW person track is
        ─► evaluate.predict_tracks (the pipeline's target branch: boxes from keypoints, App. A's occlusion rule,
           "cover" windows, one prediction per frame) ─► predictions.npz, predictions.json, overlay.mp4

The network needs 2D keypoints: they place the person's box in every frame, and (for keypoint models) they are an
input channel. No 2D keypoint detector that runs offline installs from PyPI (MediaPipe's wheel ships no pose model
and fetches it at run time; the others download their weights too), so keypoints come from OpenPose's
`--write_json` files (COCO-18 or BODY_25) or a 3DPW sequence's `poses2d`.

Frames where the followed person is missing, or has fewer than 7 confident keypoints (the network then sees a
total occlusion, App. A), are reported with a status and NaN values, never filled in.

Files written into the output directory:
- `predictions.npz`, N = frames of the video:
    frame [N] int64 (0-based frame number); status [N] str ("ok", "no_person", "too_few_keypoints");
    valid [N] bool (status == "ok"); num_keypoints [N] int64 (LSP-14 keypoints with confidence > 0.1);
    pose [N, 72] SMPL axis-angle (root orientation in the camera frame: x right, y down, z forward);
    betas [N, 10]; camera [N, 3] HMR weak perspective (s, tx, ty): x_box = s (X + tx), y_box = s (Y + ty) in the
    box's normalized coordinates [-1, 1]; box_centre [N, 2] px and box_size [N] px, the square box `camera` refers
    to; joints3d [N, 14, 3] LSP_14 and smpl_joints3d [N, 24, 3] SMPL_24 in metres, body frame (root joint at its
    rest position, camera-frame orientation); keypoints2d [N, 14, 2] the projected LSP_14 joints in image pixels;
    vertices [N, V, 3] metres, body frame (only with `save_vertices`); fps, image_size (H, W).
  Values are NaN where `valid` is false.
- `predictions.json`: the same per frame (without vertices) and a header naming the inputs, the model, units,
  joint orders and the frames without a person.
- `overlay.mp4`: the frames with the predicted mesh and skeleton (blue) and the person box (magenta), and a side
  panel with the mesh turned by 60 degrees (paper Fig. 5).
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from mhr_tf import evaluate, geometry, render
from mhr_tf.body import joints as joint_sets
from mhr_tf.data import openpose, pipeline, threedpw, videos
from mhr_tf.data.preprocessing import Preprocessing

FORMAT = "mhr_tf.predict/1"
STATUS_OK, STATUS_NO_PERSON, STATUS_FEW_KEYPOINTS = "ok", "no_person", "too_few_keypoints"
FRAME_PATTERN = "image_%05d.jpg"  # the adapter writes frames as 3DPW's imageFiles are named
JPEG_QUALITY = 95
DEFAULT_FPS = 30.0  # 3DPW's image rate, used when frames come from a 3DPW sequence
# Paper Fig. 5: "the image-aligned estimated mesh, and the same mesh rotated by 60 degrees".
SIDE_VIEW_DEG = 60.0
SIDE_VIEW_PANEL = 0.6  # width of the side-view panel, as a fraction of the frame height
# The weak-perspective body is drawn with a perspective renderer at this depth: near enough to orthographic that a
# 0.5 m deep body changes size by 5 % front to back.
RENDER_DEPTH_M = 10.0
OVERLAY_MAX_SIDE = 960  # overlay frames are scaled down to this (rendering time grows with the pixels)
MESH_ALPHA = 0.7
BOX_COLOUR, SKELETON_COLOUR, TEXT_COLOUR = (255, 0, 255), (40, 90, 255), (255, 60, 60)  # RGB
# The LSP-14 skeleton, as pairs of joint names.
LSP_BONES = (("right_ankle", "right_knee"), ("right_knee", "right_hip"), ("left_hip", "left_knee"),
             ("left_knee", "left_ankle"), ("right_hip", "left_hip"), ("right_wrist", "right_elbow"),
             ("right_elbow", "right_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
             ("right_shoulder", "left_shoulder"), ("right_shoulder", "right_hip"), ("left_shoulder", "left_hip"),
             ("neck", "head_top"))
_BONES = [(joint_sets.LSP_14.index(a), joint_sets.LSP_14.index(b)) for a, b in LSP_BONES]
UNITS = {
    "pose": "SMPL axis-angle, radians; root orientation in the camera frame (x right, y down, z forward)",
    "camera": "HMR weak perspective (s, tx, ty): box coordinates x = s (X + tx), y = s (Y + ty) in [-1, 1]",
    "box_centre": "pixels", "box_size": "pixels",
    "joints3d": "metres, body frame: root joint at its rest position, camera-frame orientation",
    "smpl_joints3d": "metres, body frame", "keypoints2d": "image pixels"}
PER_FRAME_ARRAYS = ("pose", "betas", "camera", "box_centre", "box_size", "joints3d", "smpl_joints3d",
                    "keypoints2d")


@dataclasses.dataclass
class VideoTrack:
    """A video's followed person with the fields of `threedpw.PersonTrack` that the pipeline's target branch reads."""
    sequence: str
    image_paths: tuple[str, ...]  # [N] JPEG frames
    keypoints2d: np.ndarray       # [N, 18, 3] float32 COCO-18 (x px, y px, confidence); zeros where no person
    present: np.ndarray           # [N] bool, the person was detected in the frame


# --------------------------------------------------------------------------------------------------------------------
# Inputs

def extract_frames(video, directory) -> tuple[tuple[str, ...], float]:
    """Decode `video` frame by frame into `directory/image_%05d.jpg`; returns the paths and the frame rate."""
    video, directory = Path(video), Path(directory)
    if not video.is_file():
        raise videos.UnreadableVideoError(f"{video}: no such video file")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise videos.UnreadableVideoError(f"{video}: OpenCV cannot open it as a video")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or videos.DEFAULT_FPS
        while True:
            ok, frame = capture.read()  # BGR, which is what imwrite expects
            if not ok:
                break
            path = directory / (FRAME_PATTERN % len(paths))
            if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OSError(f"{path}: OpenCV could not write the frame")
            paths.append(str(path))
    finally:
        capture.release()
    if not paths:
        raise videos.UnreadableVideoError(f"{video}: no frame decodes")
    return tuple(paths), fps


def openpose_keypoints(directory, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """COCO-18 keypoints `[N, 18, 3]` and presence `[N]` of the person OpenPose's JSON files follow.

    File frame number k is video frame k (OpenPose numbers a video's frames from 0); frames without a file have no
    person.
    """
    track = openpose.load_openpose_dir(directory, joint_names=joint_sets.COCO_18)
    beyond = np.flatnonzero((track.frame_numbers >= num_frames) | (track.frame_numbers < 0))
    if beyond.size:
        raise openpose.OpenPoseFormatError(
            f"{track.paths[beyond[0]]}: frame number {track.frame_numbers[beyond[0]]} — the video has {num_frames} "
            "frames (0-based); expected one JSON file per video frame as OpenPose --write_json numbers them")
    keypoints = np.zeros((num_frames, len(joint_sets.COCO_18), 3), np.float32)
    present = np.zeros(num_frames, bool)
    keypoints[track.frame_numbers] = track.keypoints
    present[track.frame_numbers] = track.present
    return keypoints, present


def video_track(out_frames_dir, video=None, keypoints_dir=None, threedpw_sequence=None,
                person: int = 0) -> tuple[VideoTrack, float]:
    """The person track to predict on, and the frame rate. Frames come from `video` (written as JPEGs into
    `out_frames_dir`) or, without a video, from a 3DPW sequence's imageFiles; keypoints from `keypoints_dir`
    (OpenPose JSON) or the sequence's poses2d."""
    if (keypoints_dir is None) == (threedpw_sequence is None):
        raise ValueError("give exactly one keypoint source: OpenPose JSON files (--keypoints DIR) or a 3DPW "
                         "sequence (--threedpw seq.pkl, its poses2d). No offline 2D keypoint detector installs from "
                         "PyPI; run OpenPose with --write_json DIR on the video")
    sequence = None
    if threedpw_sequence is not None:
        people = threedpw.load_sequence(threedpw_sequence)
        if not 0 <= person < len(people):
            raise ValueError(f"{threedpw_sequence}: person {person} — the sequence has {len(people)} people")
        sequence = people[person]
    if video is not None:
        paths, fps = extract_frames(video, out_frames_dir)
        name = Path(video).stem
    elif sequence is not None:
        paths, fps, name = sequence.image_paths, DEFAULT_FPS, sequence.sequence
    else:
        raise ValueError("give a video (--video) or a 3DPW sequence (--threedpw) whose imageFiles hold the frames")
    if sequence is not None:
        if len(paths) != sequence.num_frames:
            raise ValueError(f"{video}: {len(paths)} frames, but {threedpw_sequence} has {sequence.num_frames}")
        keypoints, present = sequence.keypoints2d, np.asarray(sequence.keypoints_valid, bool)
    else:
        keypoints, present = openpose_keypoints(keypoints_dir, len(paths))
    return VideoTrack(name, tuple(paths), np.asarray(keypoints, np.float32), present), fps


# --------------------------------------------------------------------------------------------------------------------
# Per-frame results

def frame_results(track: VideoTrack, prediction: evaluate.TrackPrediction, pre: Preprocessing,
                  save_vertices: bool = False) -> dict[str, np.ndarray]:
    """The arrays of `predictions.npz` (see the module docstring)."""
    crop_size = pre.crop_size
    confident = pipeline.coco_to_lsp_keypoints(track.keypoints2d)[..., 2] > pre.confidence
    valid = ~np.asarray(prediction.occluded, bool)
    status = np.where(valid, STATUS_OK, np.where(track.present, STATUS_FEW_KEYPOINTS, STATUS_NO_PERSON))
    crop_points = geometry.normalized_to_crop_pixels(np.asarray(prediction.keypoints2d, np.float64), crop_size)
    image_points = geometry.crop_to_image(crop_points, prediction.box_centre.astype(np.float64),
                                          prediction.box_size.astype(np.float64), crop_size)
    values = {name: np.array(getattr(prediction, name), np.float32) for name in PER_FRAME_ARRAYS}  # copies
    values["keypoints2d"] = image_points.astype(np.float32)
    if save_vertices and prediction.vertices is not None:
        values["vertices"] = np.array(prediction.vertices, np.float32)
    for value in values.values():
        value[~valid] = np.nan
    return {"frame": np.arange(len(valid), dtype=np.int64), "status": status.astype(str), "valid": valid,
            "num_keypoints": confident.sum(axis=-1).astype(np.int64), **values}


def _rounded(array: np.ndarray, digits: int = 6) -> list:
    return np.round(np.asarray(array, np.float64), digits).tolist()


def results_json(results: dict, header: dict) -> dict:
    """`predictions.json`: the header, then one entry per frame (values only on valid frames)."""
    frames = []
    for t in range(len(results["frame"])):
        entry = {"frame": int(results["frame"][t]), "status": str(results["status"][t]),
                 "num_keypoints": int(results["num_keypoints"][t])}
        if results["valid"][t]:
            entry.update({name: _rounded(results[name][t]) for name in PER_FRAME_ARRAYS})
        frames.append(entry)
    return {**header, "frames": frames}


# --------------------------------------------------------------------------------------------------------------------
# Overlay

def _render_points(points_px: np.ndarray, depth: np.ndarray, scale: float):
    """Vertices and intrinsics for the z-buffer renderer that put each vertex at `points_px` [V, 2] with depth
    ordering from `depth` [V] (metres, relative); `scale` is pixels per metre."""
    z = RENDER_DEPTH_M + np.asarray(depth, np.float64)
    focal = max(scale, 1e-6) * RENDER_DEPTH_M
    vertices = np.stack([points_px[:, 0] * z / focal, points_px[:, 1] * z / focal, z], axis=1)
    return vertices, geometry.Intrinsics(focal, focal, 0.0, 0.0)


def _blend(image: np.ndarray, vertices: np.ndarray, intrinsics, faces: np.ndarray) -> np.ndarray:
    # Two-sided: an untrained model's camera scale can be negative, which mirrors the mesh.
    drawn = render.render(vertices, faces, intrinsics, image.shape[:2], light_dir=(0.0, -0.4, -0.9),
                          background=image)
    out = image.astype(np.float32)
    out[drawn.mask] = MESH_ALPHA * drawn.rgb[drawn.mask] + (1 - MESH_ALPHA) * out[drawn.mask]
    return out.astype(np.uint8)


def overlay_frame(image: np.ndarray, results: dict, t: int, faces: np.ndarray, crop_size: int,
                  vertices: np.ndarray | None, side_width: int) -> np.ndarray:
    """One overlay frame `[H, W + side_width, 3]` uint8: the mesh and skeleton on the image, the turned mesh beside."""
    height = image.shape[0]
    side = np.full((height, side_width, 3), 235, np.uint8)
    image = image.copy()
    if not results["valid"][t]:
        cv2.putText(image, str(results["status"][t]).replace("_", " "), (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    TEXT_COLOUR, 2)
        return np.concatenate([image, side], axis=1)
    camera, centre, size = results["camera"][t], results["box_centre"][t], float(results["box_size"][t])
    if vertices is not None:
        # The image projection is HMR's weak perspective mapped through the box: pixels per metre = s * size / 2.
        box_points = geometry.normalized_to_crop_pixels(geometry.weak_perspective_project(vertices, camera),
                                                        crop_size)
        points = geometry.crop_to_image(box_points, centre, size, crop_size)
        scale = float(camera[0]) * size / 2.0
        image = _blend(image, *_render_points(points, vertices[:, 2], scale), faces)
        turned = (vertices - vertices.mean(axis=0)) @ Rotation.from_euler(
            "y", SIDE_VIEW_DEG, degrees=True).as_matrix().T
        extent = np.ptp(turned[:, :2], axis=0)
        side_scale = min(scale, 0.85 * side_width / max(extent[0], 1e-3), 0.85 * height / max(extent[1], 1e-3))
        side_points = turned[:, :2] * side_scale + np.array([side_width / 2.0, height / 2.0])
        side = _blend(side, *_render_points(side_points, turned[:, 2], side_scale), faces)
    half = size / 2.0
    cv2.rectangle(image, (int(centre[0] - half), int(centre[1] - half)), (int(centre[0] + half),
                                                                           int(centre[1] + half)), BOX_COLOUR, 1)
    joints = results["keypoints2d"][t]
    for a, b in _BONES:
        cv2.line(image, tuple(int(v) for v in joints[a]), tuple(int(v) for v in joints[b]), SKELETON_COLOUR, 2)
    return np.concatenate([image, side], axis=1)


class _VideoSink:
    """Writes frames one at a time with the codec `videos.write_video` uses for the extension."""

    def __init__(self, path, fps: float, height: int, width: int):
        self.path = Path(path)
        fourcc = videos.WRITE_FOURCC[self.path.suffix.lower()]
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
        if not self.writer.isOpened():
            raise videos.VideoError(f"{self.path}: OpenCV cannot open a '{fourcc}' writer for {width}x{height}")

    def write(self, rgb: np.ndarray) -> None:
        self.writer.write(np.ascontiguousarray(rgb[..., ::-1]))

    def close(self) -> None:
        self.writer.release()


def write_overlay(path, track: VideoTrack, results: dict, vertices: np.ndarray | None, faces: np.ndarray,
                  crop_size: int, fps: float, progress: bool = False) -> Path:
    """`overlay.mp4`: each frame with its prediction drawn (see `overlay_frame`), scaled to OVERLAY_MAX_SIDE."""
    first = threedpw.read_image(track.image_paths[0])
    zoom = min(1.0, OVERLAY_MAX_SIDE / max(first.shape[:2]))
    height, width = (int(round(d * zoom / 2)) * 2 for d in first.shape[:2])  # the codec needs even sizes
    side_width = int(round(SIDE_VIEW_PANEL * height / 2)) * 2
    # The box, and with it the pixels per metre, shrinks with the frame; the camera is box-relative and stays.
    scaled = {**results, **{name: results[name] * zoom for name in ("box_centre", "box_size", "keypoints2d")}}
    sink = _VideoSink(path, fps, height, width + side_width)
    try:
        for t in tqdm(range(len(track.image_paths)), desc="overlay", unit="frame", disable=not progress):
            image = cv2.resize(threedpw.read_image(track.image_paths[t]), (width, height),
                               interpolation=cv2.INTER_AREA)
            sink.write(overlay_frame(image, scaled, t, faces, crop_size,
                                     None if vertices is None else vertices[t], side_width))
    finally:
        sink.close()
    return Path(path)


# --------------------------------------------------------------------------------------------------------------------

def predict_video(predictor: evaluate.Predictor, out_dir, video=None, keypoints_dir=None, threedpw_sequence=None,
                  person: int = 0, batch_size: int = 1, overlay: bool = True, save_vertices: bool = False,
                  keep_frames: bool = False, progress: bool = False) -> dict[str, Path]:
    """Run `predictor` on one person of a video and write `predictions.npz`, `predictions.json` and (with
    `overlay`) `overlay.mp4` into `out_dir`; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".frames-") as scratch:
        frames_dir = out_dir / "frames" if keep_frames else Path(scratch)
        track, fps = video_track(frames_dir, video, keypoints_dir, threedpw_sequence, person)
        ((_, prediction),) = list(evaluate.predict_tracks(predictor, [track], batch_size, progress))
        pre = predictor.pre
        results = frame_results(track, prediction, pre, save_vertices)
        image_hw = tuple(int(v) for v in threedpw.read_image(track.image_paths[0]).shape[:2])
        header = {
            "format": FORMAT, "video": str(video) if video is not None else None,
            "keypoints": str(keypoints_dir if keypoints_dir is not None else threedpw_sequence),
            "person": person, "model": predictor.name, "model_source": predictor.source,
            "num_frames": len(track.image_paths), "fps": fps, "image_size": list(image_hw),
            "preprocessing": pre.to_json(),
            "combination_rule": evaluate.WINDOW_RULE, "units": UNITS,
            "joint_sets": {"joints3d": list(joint_sets.LSP_14), "smpl_joints3d": list(joint_sets.SMPL_24),
                           "keypoints2d": list(joint_sets.LSP_14)},
            "frames_without_person": [int(t) for t in np.flatnonzero(results["status"] == STATUS_NO_PERSON)],
            "frames_too_few_keypoints": [int(t) for t in
                                         np.flatnonzero(results["status"] == STATUS_FEW_KEYPOINTS)],
        }
        written = {"npz": out_dir / "predictions.npz", "json": out_dir / "predictions.json"}
        np.savez(written["npz"], fps=np.float64(fps), image_size=np.array(image_hw, np.int64), **results)
        written["json"].write_text(json.dumps(results_json(results, header)) + "\n")
        if overlay:
            written["overlay"] = write_overlay(out_dir / "overlay.mp4", track, results, prediction.vertices,
                                               predictor.faces, pre.crop_size, fps, progress)
    if keep_frames:
        written["frames"] = frames_dir
    return written
