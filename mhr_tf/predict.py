"""Motion HMR on a user's video: every person tracked with an id, per-frame SMPL parameters, 3D joints and camera
for each, optional smoothing, files for other tools (AMASS-style npz, BVH, OBJ) and an overlay video.

    video (or a 3DPW sequence's imageFiles) ─► JPEG frames ─┐
    --keypoints: OpenPose JSON, COCO/mmpose JSON, a 3DPW    ├─► every person with an id (tracking.people_tracks)
      .pkl, or a pose model file (.tflite/.onnx) run on the │     ─► --person: every person (default), an id,
      frames (keypoint_sources.open_for_contract)           ┘        "longest" or "largest"
        ─► evaluate.predict_tracks on each person's frames, first to last detection (App. A's occlusion rule,
           overlapping windows, one prediction per frame) ─► --smooth: evaluate.smooth_prediction
        ─► per person: predictions.npz/json and the --export files; overlay.mp4 and people.json for all

The network needs 2D keypoints: they place each person's box, and (for keypoint models) they are an input channel.
No 2D keypoint detector that runs offline installs from PyPI with its weights, so they come from OpenPose's
`--write_json` files, COCO/mmpose JSON, a 3DPW sequence's `poses2d`, or one downloaded pose model file
(docs/predict_walkthrough.md). A model file's confidences are mapped onto OpenPose's scale, which the contract's test
rule (`pre.confidence`, `pre.min_keypoints`) was set for: a score above the model's own threshold
(`keypoint_sources.MODEL_CONFIDENCE_THRESHOLDS`, or `keypoint_threshold`) counts as above `pre.confidence`.

Frames where a person is missing, or has fewer than `pre.min_keypoints` confident keypoints (the network then sees a
total occlusion, App. A), are reported with a status and NaN values, never filled in (the BVH/AMASS exports, which
need every frame, interpolate them and say which were real).

Files written into the output directory:
- `people.json`: the index. The inputs, model, contract, keypoint confidence mapping, smoothing and, per person:
  id, folder, first and last frame detected, `missing_frames` (gaps between them), frames predicted and files.
- `overlay.mp4`: the frames with every person's mesh, skeleton, box and id (colour by id), and a side panel with
  each person's mesh turned by 60 degrees (paper Fig. 5), one slot per person.
- `person_<id>/` for each person selected:
  - `predictions.npz`, N = frames of the video: frame [N] int64 (0-based); status [N] str ("ok", "no_person",
    "too_few_keypoints"); valid [N] bool (status == "ok"); num_keypoints [N] int64 (LSP-14 keypoints above the
    contract's confidence); pose [N, 72] SMPL axis-angle (root orientation in the camera frame: x right, y down,
    z forward); betas [N, 10]; camera [N, 3] HMR weak perspective (s, tx, ty): x_box = s (X + tx),
    y_box = s (Y + ty) in the box's normalized coordinates [-1, 1]; box_centre [N, 2] px and box_size [N] px, the
    square box `camera` refers to; joints3d [N, 14, 3] LSP_14 and smpl_joints3d [N, 24, 3] SMPL_24 in metres, body
    frame (root joint at its rest position, camera-frame orientation); keypoints2d [N, 14, 2] the projected LSP_14
    joints in image pixels; vertices [N, V, 3] metres, body frame (only with `save_vertices`); fps, image_size (H, W).
    Values are NaN where `valid` is false.
  - `predictions.json`: the same per frame (without vertices) and a header naming the inputs, the model, units,
    joint orders, the smoothing and the person's missing frames.
  - with `export`: `motion_amass.npz` (AMASS-style, z up, `exports.write_amass_npz`), `motion.bvh` (the open body
    model's skeleton unless `bvh_body_model`, y up, `exports.write_bvh`), `meshes/frame_%05d.obj` (each valid
    frame's mesh at its camera translation, y up). Translation: `exports.camera_translation` with the focal length
    `exports.default_focal_px` (the image diagonal).
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

from mhr_tf import evaluate, exports, geometry, render, smoothing, tracking
from mhr_tf.body import joints as joint_sets
from mhr_tf.body import smpl
from mhr_tf.data import keypoint_sources, pipeline, threedpw, videos
from mhr_tf.data.preprocessing import Preprocessing

FORMAT = "mhr_tf.predict/2"             # a person's predictions.json
INDEX_FORMAT = "mhr_tf.predict.people/1"  # people.json
STATUS_OK, STATUS_NO_PERSON, STATUS_FEW_KEYPOINTS = "ok", "no_person", "too_few_keypoints"
EVERY_PERSON = "all"
EXPORTS = ("amass", "bvh", "obj")
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
PALETTE = ((255, 0, 255), (0, 200, 255), (255, 160, 0), (60, 220, 60), (255, 60, 60), (150, 110, 255))  # RGB, by id
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
    """One person over video frames, with the fields of `threedpw.PersonTrack` the pipeline's target branch reads."""
    sequence: str
    image_paths: tuple[str, ...]  # [N] JPEG frames
    keypoints2d: np.ndarray       # [N, 18, 3] float32 COCO-18 (x px, y px, confidence); zeros where not detected
    present: np.ndarray           # [N] bool, the person was detected in the frame
    id: int = 0                   # the person's track id
    first: int = 0                # video frame of image_paths[0]


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


def video_frames(out_frames_dir, video=None, threedpw_sequence=None) -> tuple[tuple[str, ...], float, str]:
    """The frames to predict on, their rate and a name: `video` decoded into `out_frames_dir`, else the imageFiles
    of a 3DPW sequence."""
    if video is not None:
        paths, fps = extract_frames(video, out_frames_dir)
        return paths, fps, Path(video).stem
    if threedpw_sequence is None:
        raise ValueError("give a video (--video) or a 3DPW sequence (--threedpw) whose imageFiles hold the frames")
    track = threedpw.load_sequence(threedpw_sequence)[0]
    return track.image_paths, DEFAULT_FPS, track.sequence


def people_keypoints(paths, pre: Preprocessing, keypoints=None, threedpw_sequence=None,
                     keypoint_threshold: float | None = None, model_options: dict | None = None
                     ) -> tuple[keypoint_sources.KeypointSequence, float | None]:
    """Every person's keypoints over the frames `paths`, on the contract's confidence scale (see the module
    docstring), and the source threshold that was mapped (None: unchanged)."""
    spec = keypoints if keypoints is not None else threedpw_sequence
    if spec is None:
        raise ValueError("give a keypoint source: --keypoints FILE|DIR|MODEL (OpenPose or COCO/mmpose JSON, a 3DPW "
                         ".pkl, or a .tflite/.onnx pose model run on the frames) or a 3DPW sequence (--threedpw)")
    return keypoint_sources.open_for_contract(spec, list(paths), pre.confidence, keypoint_threshold,
                                              **(model_options or {}))


def selected_tracks(sequence: keypoint_sources.KeypointSequence, num_frames: int,
                    person=None) -> list[tracking.Track]:
    """The tracks `person` names: every person (None or "all"), or one (`tracking.select_track`)."""
    tracks = tracking.people_tracks(sequence, num_frames)
    if not tracks:
        raise ValueError(f"{sequence.source}: no person was tracked in any frame — check the keypoint source")
    if person is None or person == EVERY_PERSON:
        return tracks
    return [tracking.select_track(tracks, person)]


def track_inputs(track: tracking.Track, paths, name: str) -> VideoTrack:
    """A person's frames from its first to its last detection, as the pipeline's test branch reads them."""
    frames = track.frames
    first, last = int(frames[0]), int(frames[-1])
    return VideoTrack(f"{name}_person{track.id}", tuple(paths[first:last + 1]),
                      track.converted(joint_sets.COCO_18)[first:last + 1], track.present[first:last + 1],
                      track.id, first)


def padded(prediction: evaluate.TrackPrediction, first: int, num_frames: int) -> evaluate.TrackPrediction:
    """A prediction over a person's frames placed in the whole video: other frames NaN and occluded."""
    values = {}
    for field in dataclasses.fields(prediction):
        value = getattr(prediction, field.name)
        if value is None:
            values[field.name] = None
            continue
        fill = True if field.name == "occluded" else (np.nan if value.dtype.kind == "f" else 0)
        out = np.full((num_frames,) + value.shape[1:], fill, value.dtype)
        out[first:first + len(value)] = value
        values[field.name] = out
    return evaluate.TrackPrediction(**values)


# --------------------------------------------------------------------------------------------------------------------
# Per-frame results

def frame_results(track: VideoTrack, prediction: evaluate.TrackPrediction, pre: Preprocessing,
                  save_vertices: bool = False) -> dict[str, np.ndarray]:
    """The arrays of `predictions.npz` (see the module docstring) of one person over the whole video."""
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


def write_exports(directory, results: dict, vertices, faces, kinds, fps: float, image_hw: tuple[int, int],
                  crop_size: int, body: smpl.BodyModel, bvh_body: smpl.BodyModel | None = None) -> dict[str, Path]:
    """The `export` files of one person (see the module docstring); none when no frame was predicted."""
    unknown = sorted(set(kinds) - set(EXPORTS))
    if unknown:
        raise ValueError(f"--export {','.join(unknown)}: expected some of {','.join(EXPORTS)}")
    directory = Path(directory)
    # A weak-perspective scale s <= 0 (an untrained model) places the body at no depth: not exported.
    valid = results["valid"] & (np.nan_to_num(results["camera"][:, 0]) > 0)
    if not kinds or not valid.any():
        return {}
    with np.errstate(divide="ignore", invalid="ignore"):
        trans = exports.camera_translation(results["camera"], results["box_centre"], results["box_size"], image_hw,
                                           crop_size)
    trans[~valid] = np.nan
    betas = smoothing.fixed_betas(results["betas"], valid)
    written = {}
    if "amass" in kinds:
        written["amass"] = exports.write_amass_npz(directory / "motion_amass.npz", results["pose"], trans, betas,
                                                   body.gender, fps, valid, body=body)
    if "bvh" in kinds:
        written["bvh"] = exports.write_bvh(directory / "motion.bvh", results["pose"], trans, betas, fps, valid,
                                           body=bvh_body)
    if "obj" in kinds and vertices is not None:
        meshes = exports.write_obj_sequence(directory / "meshes", np.asarray(vertices) + trans[:, None], faces, valid,
                                            frame="y_up")
        written["obj"] = meshes[0].parent
    return written


# --------------------------------------------------------------------------------------------------------------------
# Overlay

@dataclasses.dataclass
class _Drawn:
    id: int
    results: dict
    vertices: np.ndarray | None  # [N, V, 3]
    first: int
    last: int

    @property
    def colour(self) -> tuple[int, int, int]:
        return PALETTE[self.id % len(PALETTE)]


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


def _side_view(panel: np.ndarray, vertices: np.ndarray, scale: float, faces: np.ndarray) -> np.ndarray:
    """The mesh turned by SIDE_VIEW_DEG, centred in `panel`."""
    height, width = panel.shape[:2]
    turned = (vertices - vertices.mean(axis=0)) @ Rotation.from_euler("y", SIDE_VIEW_DEG, degrees=True).as_matrix().T
    extent = np.ptp(turned[:, :2], axis=0)
    side_scale = min(scale, 0.85 * width / max(extent[0], 1e-3), 0.85 * height / max(extent[1], 1e-3))
    points = turned[:, :2] * side_scale + np.array([width / 2.0, height / 2.0])
    return _blend(panel, *_render_points(points, turned[:, 2], side_scale), faces)


def overlay_frame(image: np.ndarray, people: list[_Drawn], t: int, faces: np.ndarray, crop_size: int,
                  side_width: int) -> np.ndarray:
    """One overlay frame `[H, W + side_width, 3]` uint8: every person's mesh, skeleton, box and id on the image (the
    farther first), each one's turned mesh in its slot of the side panel."""
    height = image.shape[0]
    side = np.full((height, side_width, 3), 235, np.uint8)
    image = image.copy()
    slot = height // max(len(people), 1)
    scales = {}
    for person in people:
        r = person.results
        if r["valid"][t]:
            scales[person.id] = float(r["camera"][t, 0]) * float(r["box_size"][t]) / 2.0  # pixels per metre
    for person in sorted((p for p in people if p.id in scales), key=lambda p: scales[p.id]):  # far (small) first
        r = person.results
        if person.vertices is not None:
            camera, centre, size = r["camera"][t], r["box_centre"][t], float(r["box_size"][t])
            # HMR's weak perspective mapped through the box: pixels per metre = s * size / 2.
            box_points = geometry.normalized_to_crop_pixels(
                geometry.weak_perspective_project(person.vertices[t], camera), crop_size)
            points = geometry.crop_to_image(box_points, centre, size, crop_size)
            image = _blend(image, *_render_points(points, person.vertices[t][:, 2], scales[person.id]), faces)
    notes = []
    for index, person in enumerate(people):
        r = person.results
        label = f"id {person.id}"
        if person.id not in scales:
            if person.first <= t <= person.last:
                notes.append(f"{label}: {str(r['status'][t]).replace('_', ' ')}")
            continue
        centre, half = r["box_centre"][t], float(r["box_size"][t]) / 2.0
        corner = (int(centre[0] - half), int(centre[1] - half))
        cv2.rectangle(image, corner, (int(centre[0] + half), int(centre[1] + half)), person.colour, 1)
        for a, b in _BONES:
            cv2.line(image, tuple(int(v) for v in r["keypoints2d"][t, a]),
                     tuple(int(v) for v in r["keypoints2d"][t, b]), person.colour, 2)
        cv2.putText(image, label, (max(corner[0], 2), max(corner[1] - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    person.colour, 2)
        if person.vertices is not None:
            rows = slice(index * slot, (index + 1) * slot)
            side[rows] = _side_view(side[rows], person.vertices[t], scales[person.id], faces)
            cv2.putText(side, label, (4, index * slot + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, person.colour, 1)
    for k, note in enumerate(notes):
        cv2.putText(image, note, (8, 20 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, PALETTE[0], 2)
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


def write_overlay(path, image_paths, people: list[_Drawn], faces: np.ndarray, crop_size: int, fps: float,
                  progress: bool = False) -> Path:
    """`overlay.mp4`: each frame with every person drawn (see `overlay_frame`), scaled to OVERLAY_MAX_SIDE."""
    first = threedpw.read_image(image_paths[0])
    zoom = min(1.0, OVERLAY_MAX_SIDE / max(first.shape[:2]))
    height, width = (int(round(d * zoom / 2)) * 2 for d in first.shape[:2])  # the codec needs even sizes
    side_width = int(round(SIDE_VIEW_PANEL * height / 2)) * 2
    # The box, and with it the pixels per metre, shrinks with the frame; the camera is box-relative and stays.
    scaled = [dataclasses.replace(p, results={**p.results, **{name: p.results[name] * zoom for name in (
        "box_centre", "box_size", "keypoints2d")}}) for p in people]
    sink = _VideoSink(path, fps, height, width + side_width)
    try:
        for t in tqdm(range(len(image_paths)), desc="overlay", unit="frame", disable=not progress):
            image = cv2.resize(threedpw.read_image(image_paths[t]), (width, height), interpolation=cv2.INTER_AREA)
            sink.write(overlay_frame(image, scaled, t, faces, crop_size, side_width))
    finally:
        sink.close()
    return Path(path)


# --------------------------------------------------------------------------------------------------------------------

def _frames_where(results: dict, status: str) -> list[int]:
    return [int(t) for t in np.flatnonzero(results["status"] == status)]


def predict_video(predictor: evaluate.Predictor, out_dir, video=None, keypoints=None, threedpw_sequence=None,
                  person=None, batch_size: int = 1, overlay: bool = True, save_vertices: bool = False,
                  keep_frames: bool = False, progress: bool = False, smooth: bool = False, export=(),
                  keypoint_threshold: float | None = None, bvh_body_model=None,
                  model_options: dict | None = None) -> dict:
    """Run `predictor` on the people of a video and write the files of the module docstring into `out_dir`.

    `keypoints`: what `--keypoints` names (without it, a 3DPW sequence's poses2d); `person`: None or "all" (every
    person), an id, "longest" or "largest"; `smooth`: `evaluate.smooth_prediction` on each person; `export`: some of
    EXPORTS. Returns {"json": people.json, "overlay": overlay.mp4, "people": {id: {"npz", "json", exports...}}}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pre = predictor.pre
    export = tuple(k for k in export.split(",") if k) if isinstance(export, str) else tuple(export)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".frames-") as scratch:
        frames_dir = out_dir / "frames" if keep_frames else Path(scratch)
        paths, fps, name = video_frames(frames_dir, video, threedpw_sequence)
        sequence, threshold = people_keypoints(paths, pre, keypoints, threedpw_sequence, keypoint_threshold,
                                               model_options)
        tracks = selected_tracks(sequence, len(paths), person)
        inputs = [track_inputs(track, paths, name) for track in tracks]
        image_hw = tuple(int(v) for v in threedpw.read_image(paths[0]).shape[:2])
        smoothing_record = None
        if smooth:
            smoothing_record = {"pose": dataclasses.asdict(smoothing.POSE_FILTER), "rotations": "6D",
                                "camera": dataclasses.asdict(smoothing.CAMERA_FILTER),
                                "camera_space": "full-image translation (exports.camera_translation)",
                                "betas": "median over the person's valid frames"}
        header = {
            "video": str(video) if video is not None else None,
            "keypoints": str(keypoints if keypoints is not None else threedpw_sequence),
            "keypoint_layout": sequence.layout,
            "keypoint_confidence": {"source_threshold": threshold, "contract_confidence": pre.confidence,
                                    "rule": "a keypoint counts when its confidence (on the contract's OpenPose "
                                            "scale) exceeds contract_confidence"},
            "model": predictor.name, "model_source": predictor.source, "num_frames": len(paths), "fps": fps,
            "image_size": list(image_hw), "preprocessing": pre.to_json(), "combination_rule": evaluate.WINDOW_RULE,
            "smoothing": smoothing_record}
        written = {"json": out_dir / "people.json", "people": {}}
        drawn, index = [], []
        bvh_body = smpl.load_body_model(bvh_body_model) if bvh_body_model is not None and "bvh" in export else None
        for position, prediction in evaluate.predict_tracks(predictor, inputs, batch_size, progress):
            track, spec = tracks[position], inputs[position]
            if smooth:
                prediction = evaluate.smooth_prediction(prediction, fps, predictor.body(), image_hw, pre.crop_size)
            full = padded(prediction, spec.first, len(paths))
            whole = VideoTrack(spec.sequence, tuple(paths), track.converted(joint_sets.COCO_18), track.present,
                               track.id, 0)
            results = frame_results(whole, full, pre, save_vertices)
            folder = out_dir / f"person_{track.id}"
            folder.mkdir(exist_ok=True)
            person_record = {
                "id": track.id, "folder": folder.name, "first_frame": spec.first,
                "last_frame": spec.first + len(spec.image_paths) - 1, "frames_detected": int(track.present.sum()),
                "missing_frames": [int(t) for t in track.missing_frames],
                "frames_predicted": int(results["valid"].sum()),
                "frames_too_few_keypoints": _frames_where(results, STATUS_FEW_KEYPOINTS)}
            files = {"npz": folder / "predictions.npz", "json": folder / "predictions.json"}
            np.savez(files["npz"], fps=np.float64(fps), image_size=np.array(image_hw, np.int64), **results)
            person_header = {"format": FORMAT, **header, "person": person_record, "units": UNITS,
                             "joint_sets": {"joints3d": list(joint_sets.LSP_14),
                                            "smpl_joints3d": list(joint_sets.SMPL_24),
                                            "keypoints2d": list(joint_sets.LSP_14)},
                             "frames_without_person": _frames_where(results, STATUS_NO_PERSON),
                             "frames_too_few_keypoints": person_record["frames_too_few_keypoints"]}
            files["json"].write_text(json.dumps(results_json(results, person_header)) + "\n")
            files.update(write_exports(folder, results, full.vertices, predictor.faces, export, fps, image_hw,
                                       pre.crop_size, predictor.body() if "amass" in export else None, bvh_body))
            written["people"][track.id] = files
            index.append({**person_record, "files": {k: str(v.relative_to(out_dir)) for k, v in files.items()}})
            drawn.append(_Drawn(track.id, results, full.vertices, person_record["first_frame"],
                                person_record["last_frame"]))
        written["json"].write_text(json.dumps({"format": INDEX_FORMAT, **header, "person_selection": str(
            person if person is not None else EVERY_PERSON), "exports": list(export), "people": index}, indent=1)
            + "\n")
        if overlay:
            written["overlay"] = write_overlay(out_dir / "overlay.mp4", paths, drawn, predictor.faces, pre.crop_size,
                                               fps, progress)
    if keep_frames:
        written["frames"] = frames_dir
    return written
