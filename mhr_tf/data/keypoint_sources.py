"""2D keypoint sources behind one interface: every person of every frame, in a named joint layout. No TensorFlow.

    OpenPose --write_json files (COCO-18 / BODY_25)       ┐
    a 3DPW sequence's poses2d (COCO-18, person ids known) │
    COCO-format / mmpose JSON (COCO-17, Halpe-26, ...)     ├─► KeypointSequence: per frame, FramePeople
    a pose model file (.tflite / .onnx, keypoint_models)   ┘      keypoints [P, K, 3] (x px, y px, confidence)
        ─► KeypointSequence.converted(joints.COCO_18)   (by joint name; neck and mid_hip synthesised)
        ─► mhr_tf.tracking.track_people                 (one track per person, with ids)

Confidence scales: the pipeline's test rule (`Preprocessing.confidence`, App. A) reads OpenPose's confidences; a pose
model's scores are mapped onto that scale by `open_for_contract` (MODEL_CONFIDENCE_THRESHOLDS, `rescale_confidence`).

A sequence keeps the source's own layout (`layout`, `joint_names`); `converted` maps it by name into any of the
project's joint sets. COCO-17 and Halpe-26 have no neck, COCO-17 no mid-hip: OpenPose defines both as midpoints
(neck of the shoulders, mid-hip of the hips), so `convert_keypoints` synthesises them there, with the smaller of the
two confidences, when both ends are detected (confidence > 0) — the same rule the mmpose/rtmlib COCO → OpenPose
conversion uses. Joints the source lacks otherwise are (0, 0, 0), OpenPose's and 3DPW's "not detected".

Frame numbers are 0-based video frames. Formats and their frame numbering (see each reader):
- OpenPose: `<name>_<frame:012d>_keypoints.json`, the frame from the file name (`openpose.frame_number`).
- COCO results (`[{"image_id", "category_id", "keypoints": [x, y, s] * K, "score", "bbox"?}]`, what mmpose's
  CocoMetric `outfile_prefix` and ViTPose's test script write): the frame is the image's rank in the image list
  sorted by file name (natural order) when the image list is given, else the image_id itself. A COCO annotation file
  (`{"images", "annotations"}`, visibility v in 0/1/2) reads the same way, confidence 1 for v > 0.
- mmpose's demo `--save-predictions` (`{"meta_info", "instance_info": [{"frame_id", "instances"}]}`): frame_id
  counts from 1 there (the demo increments it before reading a frame), so frame = frame_id - 1; an image's file
  holds `instance_info` as the instance list itself.
- MMPoseInferencer's `pred_out_dir` for a video (`[{"frame_id", "instances"}]`, frame_id from 0) and for images
  (one `<image stem>.json` per image holding the instance list; the frame is the last number in the stem).
  An instance is `{"keypoints": [[x, y], ...], "keypoint_scores": [...], "bbox": [[x0, y0, x1, y1]],
  "bbox_score"}` (mmpose's `split_instances` wraps the box in a one-element list).
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from mhr_tf.body import joints
from mhr_tf.data import openpose, threedpw

LAYOUTS = {name: joints.JOINT_SETS[name] for name in ("coco_17", "coco_18", "body_25", "halpe_26")}
# A file that does not name its layout is known by its number of keypoints.
LAYOUT_BY_COUNT = {len(names): name for name, names in LAYOUTS.items()}
# OpenPose's definition of the joints COCO-17 lacks: the midpoint of two joints it has.
MIDPOINT_JOINTS = {"neck": ("left_shoulder", "right_shoulder"), "mid_hip": ("left_hip", "right_hip")}
# mmpose's keypoint names (dataset_meta keypoint_id2name) that differ from the project's.
MMPOSE_NAME_ALIASES = {"hip": "mid_hip", "head": "head_top"}
# A person box needs this many keypoints above this confidence (App. A's keypoint rule, as openpose.person_box).
BOX_MIN_CONFIDENCE = openpose.KEYPOINT_MIN_CONFIDENCE
COCO_PERSON_CATEGORY = 1
MODEL_SUFFIXES = (".tflite", ".onnx")


class KeypointFormatError(ValueError):
    """A keypoint file that is unreadable or not in the layout its reader expects."""


@dataclasses.dataclass
class FramePeople:
    """Every person a source has for one frame."""
    frame: int              # 0-based video frame
    keypoints: np.ndarray   # [P, K, 3] float32 (x px, y px, confidence) in the sequence's layout; P may be 0
    boxes: np.ndarray       # [P, 4] float32 (x0, y0, x1, y1) px: the detector's box, else the box of the keypoints
                            # with confidence > BOX_MIN_CONFIDENCE; NaN when neither exists
    scores: np.ndarray      # [P] float32 person score (detector's, else the mean keypoint confidence)
    ids: np.ndarray         # [P] int64 identities the source knows (3DPW's person index); -1 = unknown

    @property
    def num_people(self) -> int:
        return int(self.keypoints.shape[0])


@dataclasses.dataclass
class KeypointSequence:
    """A source's people, frame by frame: `frames` ascending, one entry per frame the source has (a frame with no
    entry had no file or was not run; an entry may hold no person)."""
    source: str                      # what it was read from
    layout: str                      # a key of joints.JOINT_SETS, or "custom"
    joint_names: tuple[str, ...]
    frames: list[FramePeople]
    image_size: tuple[int, int] | None = None  # (H, W) px when the source knows it

    def __iter__(self) -> Iterator[FramePeople]:
        return iter(self.frames)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def frame_numbers(self) -> np.ndarray:
        return np.array([f.frame for f in self.frames], np.int64)

    def converted(self, joint_names: tuple[str, ...], synthesise: bool = True) -> "KeypointSequence":
        """The same people with keypoints in `joint_names` order (see `convert_keypoints`); boxes stay."""
        layout = next((name for name, names in joints.JOINT_SETS.items() if names == tuple(joint_names)), "custom")
        frames = [dataclasses.replace(f, keypoints=convert_keypoints(f.keypoints, self.joint_names, joint_names,
                                                                     synthesise)) for f in self.frames]
        return dataclasses.replace(self, layout=layout, joint_names=tuple(joint_names), frames=frames)

    def dense(self, num_frames: int | None = None) -> list[FramePeople]:
        """One entry per frame 0 .. num_frames - 1 (default: the last frame + 1); frames the source lacks are empty."""
        numbers = self.frame_numbers
        num_frames = int(numbers.max() + 1 if len(numbers) else 0) if num_frames is None else num_frames
        beyond = numbers[(numbers < 0) | (numbers >= num_frames)]
        if beyond.size:
            raise ValueError(f"{self.source}: frame {int(beyond[0])} is outside the video's {num_frames} frames "
                             "(0-based)")
        by_frame = {f.frame: f for f in self.frames}
        return [by_frame.get(t) or empty_frame(t, len(self.joint_names)) for t in range(num_frames)]


# --------------------------------------------------------------------------------------------------------------------
# Joint layouts

def convert_keypoints(keypoints, source: tuple[str, ...], target: tuple[str, ...],
                      synthesise: bool = True) -> np.ndarray:
    """`keypoints [..., len(source), 3]` (x, y, confidence) in `target` order by joint name.

    Joints `source` lacks are (0, 0, 0); with `synthesise`, a missing `neck` / `mid_hip` (MIDPOINT_JOINTS) becomes
    the midpoint of the two joints that define it, confidence the smaller of theirs, where both have confidence > 0.
    """
    keypoints = np.asarray(keypoints, np.float32)
    out = joints.convert(keypoints, tuple(source), tuple(target))
    if not synthesise:
        return out
    for name, (a, b) in MIDPOINT_JOINTS.items():
        if name in target and name not in source and a in source and b in source:
            first, second = keypoints[..., source.index(a), :], keypoints[..., source.index(b), :]
            both = (first[..., 2] > 0) & (second[..., 2] > 0)
            point = np.concatenate([(first[..., :2] + second[..., :2]) / 2,
                                    np.minimum(first[..., 2:], second[..., 2:])], axis=-1)
            out[..., target.index(name), :] = np.where(both[..., None], point, 0.0)
    return out


def to_coco18(sequence: KeypointSequence) -> KeypointSequence:
    """The sequence in COCO-18, the layout the pipeline's test branch reads (3DPW's poses2d)."""
    return sequence.converted(joints.COCO_18)


def layout_of(num_keypoints: int, where: str, layout: str | None = None) -> str:
    """The layout name for `num_keypoints` (or check `layout` against it); errors name `where`."""
    if layout is not None:
        if layout not in joints.JOINT_SETS:
            raise ValueError(f"{where}: layout {layout!r} is not one of {sorted(joints.JOINT_SETS)}")
        if len(joints.JOINT_SETS[layout]) != num_keypoints:
            raise KeypointFormatError(f"{where}: {num_keypoints} keypoints per person — layout {layout} has "
                                      f"{len(joints.JOINT_SETS[layout])}")
        return layout
    if num_keypoints not in LAYOUT_BY_COUNT:
        raise KeypointFormatError(f"{where}: {num_keypoints} keypoints per person — expected one of "
                                  + ", ".join(f"{len(n)} ({name})" for name, n in LAYOUTS.items())
                                  + "; pass layout= for another joint set")
    return LAYOUT_BY_COUNT[num_keypoints]


def keypoint_boxes(keypoints: np.ndarray, min_confidence: float = BOX_MIN_CONFIDENCE) -> np.ndarray:
    """(x0, y0, x1, y1) px around each person's keypoints `[P, K, 3]` with confidence > `min_confidence`: `[P, 4]`,
    NaN for a person with fewer than `openpose.MIN_BOX_KEYPOINTS` of them."""
    keypoints = np.asarray(keypoints, np.float32)
    boxes = np.full((keypoints.shape[0], 4), np.nan, np.float32)
    for p, person in enumerate(keypoints):
        box = openpose.person_box(person, min_confidence)
        if box is not None:
            boxes[p] = box
    return boxes


def make_frame(frame: int, keypoints, boxes=None, scores=None, ids=None) -> FramePeople:
    """A `FramePeople` with the defaults of the interface: boxes from keypoints where the source gives none (or NaN
    rows), scores the mean keypoint confidence, ids unknown."""
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"frame {frame}: keypoints have shape {keypoints.shape} — expected [P, K, 3]")
    num = keypoints.shape[0]
    fallback = keypoint_boxes(keypoints)
    boxes = fallback if boxes is None else np.asarray(boxes, np.float32).reshape(num, 4)
    boxes = np.where(np.isnan(boxes).any(axis=1, keepdims=True), fallback, boxes)
    if scores is None:
        scores = keypoints[..., 2].mean(axis=-1) if num else np.zeros(0, np.float32)
    ids = np.full(num, -1, np.int64) if ids is None else np.asarray(ids, np.int64).reshape(num)
    return FramePeople(frame=int(frame), keypoints=keypoints, boxes=boxes.astype(np.float32),
                       scores=np.asarray(scores, np.float32).reshape(num), ids=ids)


def empty_frame(frame: int, num_joints: int) -> FramePeople:
    return make_frame(frame, np.zeros((0, num_joints, 3), np.float32))


# --------------------------------------------------------------------------------------------------------------------
# OpenPose

def read_openpose(path: str | Path, layout: str | None = None) -> KeypointSequence:
    """OpenPose's `--write_json` output: a directory of `*_keypoints.json`, or one such file. Both key names
    (`pose_keypoints_2d`, and `pose_keypoints` before version 1.1) and both layouts (COCO-18, BODY_25) read."""
    path = Path(path)
    if path.is_dir():
        frames = openpose.load_openpose_frames(path, layout)
    else:
        frames = [openpose.load_openpose_frame(path, layout)]
    found = next((f.layout for f in frames if f.layout is not None), layout) or "body_25"
    names = openpose.LAYOUTS[found]
    people = [make_frame(f.frame, f.people if len(f.people) else np.zeros((0, len(names), 3), np.float32))
              for f in frames]
    return KeypointSequence(source=str(path), layout=found, joint_names=names, frames=people)


# --------------------------------------------------------------------------------------------------------------------
# 3DPW

def read_threedpw(path: str | Path) -> KeypointSequence:
    """A 3DPW sequence's `poses2d` (OpenPose COCO-18, one list per person): each frame holds the people detected in
    it (poses2d not all zero), with the file's person index as id."""
    tracks = threedpw.load_sequence(path)
    num_frames = tracks[0].num_frames
    frames = []
    for t in range(num_frames):
        present = [track for track in tracks if track.keypoints_valid[t]]
        keypoints = np.stack([track.keypoints2d[t] for track in present]) if present else \
            np.zeros((0, len(joints.COCO_18), 3), np.float32)
        frames.append(make_frame(t, keypoints, ids=[track.person for track in present]))
    return KeypointSequence(source=str(path), layout="coco_18", joint_names=joints.COCO_18, frames=frames)


# --------------------------------------------------------------------------------------------------------------------
# COCO-format and mmpose JSON

def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers inside file names by value: frame_2 before frame_10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _last_number(name: str, where: str) -> int:
    digits = re.findall(r"\d+", Path(name).stem)
    if not digits:
        raise KeypointFormatError(f"{where}: no frame number in the file name {name!r}")
    return int(digits[-1])


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise KeypointFormatError(f"{path}: not valid JSON ({error})") from error


def _image_frames(images, where: str) -> dict[int, int]:
    """image_id -> frame: the rank of each image's file name in natural order."""
    if isinstance(images, (str, Path)):
        where = str(images)
        content = _read_json(Path(images))
        images = content.get("images") if isinstance(content, dict) else content
    if isinstance(images, Mapping):
        names = {int(k): str(v) for k, v in images.items()}
    elif isinstance(images, list) and all(isinstance(i, dict) and "id" in i and "file_name" in i for i in images):
        names = {int(i["id"]): str(i["file_name"]) for i in images}
    else:
        raise KeypointFormatError(f"{where}: the image list must be COCO's 'images' "
                                  "([{'id': ..., 'file_name': ...}, ...]) or a mapping image_id -> file name")
    order = sorted(names, key=lambda image_id: natural_key(Path(names[image_id]).name))
    return {image_id: rank for rank, image_id in enumerate(order)}


def _layout_from_meta(meta, where: str) -> tuple[str, tuple[str, ...]] | None:
    """The layout mmpose's `meta_info` names (keypoint_id2name), mapped to the project's joint names."""
    if not isinstance(meta, dict) or not isinstance(meta.get("keypoint_id2name"), dict):
        return None
    id2name = meta["keypoint_id2name"]
    names = tuple(MMPOSE_NAME_ALIASES.get(id2name[key], id2name[key]) for key in sorted(id2name, key=int))
    for name, layout_names in joints.JOINT_SETS.items():
        if layout_names == names:
            return name, names
    return "custom", names


def _coco_person(entry: dict, where: str) -> tuple[np.ndarray, np.ndarray | None, float]:
    values = entry.get("keypoints")
    if not isinstance(values, list) or len(values) % 3:
        raise KeypointFormatError(f"{where}: 'keypoints' must be a flat list x, y, score per keypoint")
    keypoints = np.asarray(values, np.float32).reshape(-1, 3)
    box = None
    if isinstance(entry.get("bbox"), list) and len(entry["bbox"]) == 4:
        x, y, w, h = (float(v) for v in entry["bbox"])  # COCO boxes are (x, y, width, height)
        box = np.array([x, y, x + w, y + h], np.float32)
    score = float(entry["score"]) if "score" in entry else float(keypoints[:, 2].mean())
    return keypoints, box, score


def _read_coco_entries(entries: list, where: str, images, layout: str | None, annotations: bool):
    frame_of = _image_frames(images, where) if images is not None else None
    per_frame: dict[int, list] = {}
    num_keypoints = None
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image_id" not in entry:
            raise KeypointFormatError(f"{where}: entry {index} has no 'image_id' — expected COCO results "
                                      "[{'image_id', 'category_id', 'keypoints', 'score'}, ...]")
        if entry.get("category_id", COCO_PERSON_CATEGORY) != COCO_PERSON_CATEGORY:
            continue
        keypoints, box, score = _coco_person(entry, f"{where}: entry {index}")
        if annotations:  # visibility 0 / 1 / 2 -> confidence 0 / 1
            keypoints[:, 2] = (keypoints[:, 2] > 0).astype(np.float32)
        if num_keypoints is not None and len(keypoints) != num_keypoints:
            raise KeypointFormatError(f"{where}: entry {index} has {len(keypoints)} keypoints, earlier ones "
                                      f"{num_keypoints}")
        num_keypoints = len(keypoints)
        image_id = int(entry["image_id"])
        if frame_of is not None and image_id not in frame_of:
            raise KeypointFormatError(f"{where}: entry {index} has image_id {image_id}, which the image list lacks")
        frame = frame_of[image_id] if frame_of is not None else image_id
        per_frame.setdefault(frame, []).append((keypoints, box, score))
    if num_keypoints is None:
        raise KeypointFormatError(f"{where}: no person entries (category_id {COCO_PERSON_CATEGORY})")
    layout = layout_of(num_keypoints, where, layout)
    frames_with_people = set(per_frame)
    all_frames = sorted(frames_with_people | (set(frame_of.values()) if frame_of is not None else set()))
    frames = []
    for t in all_frames:
        people = per_frame.get(t, [])
        keypoints = np.stack([p[0] for p in people]) if people else np.zeros((0, num_keypoints, 3), np.float32)
        boxes = np.stack([p[1] if p[1] is not None else np.full(4, np.nan, np.float32) for p in people]) \
            if people else None
        frames.append(make_frame(t, keypoints, boxes, [p[2] for p in people] if people else None))
    return layout, joints.JOINT_SETS[layout], frames


def _instance_arrays(instances, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mmpose's `split_instances` output -> keypoints [P, K, 3], boxes [P, 4] (NaN without), scores [P]."""
    if not isinstance(instances, list):
        raise KeypointFormatError(f"{where}: 'instances' must be a list of mmpose instances")
    keypoints, boxes, scores = [], [], []
    for index, instance in enumerate(instances):
        label = f"{where}: instance {index}"
        try:
            points = np.asarray(instance["keypoints"], np.float32)
        except (KeyError, TypeError, ValueError) as error:
            raise KeypointFormatError(f"{label}: 'keypoints' must be [[x, y], ...] ({error})") from error
        if points.ndim != 2 or points.shape[1] not in (2, 3):
            raise KeypointFormatError(f"{label}: 'keypoints' has shape {points.shape} — expected [K, 2]")
        confidence = np.asarray(instance.get("keypoint_scores", np.ones(len(points))), np.float32).reshape(-1)
        if len(confidence) != len(points):
            raise KeypointFormatError(f"{label}: {len(confidence)} keypoint_scores for {len(points)} keypoints")
        keypoints.append(np.concatenate([points[:, :2], confidence[:, None]], axis=1))
        box = np.asarray(instance.get("bbox", np.full(4, np.nan)), np.float32).reshape(-1)  # [[x0, y0, x1, y1]]
        boxes.append(box if box.size == 4 else np.full(4, np.nan, np.float32))
        bbox_score = instance.get("bbox_score")
        scores.append(float(np.asarray(bbox_score).reshape(-1)[0]) if bbox_score is not None
                      else float(confidence.mean()))
    sizes = {len(k) for k in keypoints}
    if len(sizes) > 1:
        raise KeypointFormatError(f"{where}: instances with different keypoint counts {sorted(sizes)}")
    if not keypoints:
        return np.zeros((0, 0, 3), np.float32), np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    return np.stack(keypoints), np.stack(boxes), np.asarray(scores, np.float32)


def _read_instance_frames(items: list, where: str, first_frame_id: int, layout, meta) -> tuple:
    per_frame = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "frame_id" not in item or "instances" not in item:
            raise KeypointFormatError(f"{where}: entry {index} lacks 'frame_id' or 'instances' — expected mmpose's "
                                      "[{'frame_id': ..., 'instances': [...]}, ...]")
        per_frame.append((int(item["frame_id"]) - first_frame_id,
                          *_instance_arrays(item["instances"], f"{where}: frame_id {item['frame_id']}")))
    return _instance_sequence(per_frame, where, layout, meta)


def _instance_sequence(per_frame: list, where: str, layout, meta) -> tuple:
    counts = sorted({k.shape[1] for _, k, _, _ in per_frame if len(k)})
    if len(counts) > 1:
        raise KeypointFormatError(f"{where}: frames with different keypoint counts {counts}")
    named = _layout_from_meta(meta, where)
    if named is not None and layout is None:
        layout, names = named
        if counts and counts[0] != len(names):
            raise KeypointFormatError(f"{where}: instances have {counts[0]} keypoints, meta_info names "
                                      f"{len(names)}")
    elif counts:
        layout = layout_of(counts[0], where, layout)
        names = joints.JOINT_SETS[layout]
    elif layout is not None:
        names = joints.JOINT_SETS[layout]
    else:
        raise KeypointFormatError(f"{where}: no instance in any frame and no meta_info naming the layout — "
                                  "pass layout=")
    frames = []
    for frame, keypoints, boxes, scores in sorted(per_frame, key=lambda item: item[0]):
        if not len(keypoints):
            keypoints, boxes, scores = np.zeros((0, len(names), 3), np.float32), None, None
        frames.append(make_frame(frame, keypoints, boxes, scores))
    return layout, names, frames


def read_keypoint_json(path: str | Path, images=None, layout: str | None = None) -> KeypointSequence:
    """COCO-format or mmpose keypoint JSON (a file, or a directory of MMPoseInferencer per-image files); the formats
    and their frame numbering are in the module docstring. `images`: COCO's image list (a COCO JSON path, its
    'images' list, or {image_id: file name}) to number COCO results' frames; `layout` overrides the layout found."""
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.glob("*.json")), key=lambda p: natural_key(p.name))
        if not files:
            raise FileNotFoundError(f"{path}: no *.json files — expected mmpose's per-image prediction files")
        per_frame = [(_last_number(p.name, str(path)), *_instance_arrays(_read_json(p), str(p))) for p in files]
        layout, names, frames = _instance_sequence(per_frame, str(path), layout, None)
        return KeypointSequence(source=str(path), layout=layout, joint_names=names, frames=frames)
    content = _read_json(path)
    where = str(path)
    if isinstance(content, dict) and "instance_info" in content:  # mmpose demo --save-predictions
        info, meta = content["instance_info"], content.get("meta_info")
        if isinstance(info, list) and info and isinstance(info[0], dict) and "frame_id" in info[0]:
            layout, names, frames = _read_instance_frames(info, where, 1, layout, meta)
        else:
            layout, names, frames = _instance_sequence([(0, *_instance_arrays(info, where))], where, layout, meta)
    elif isinstance(content, dict) and "annotations" in content:  # a COCO annotation file
        layout, names, frames = _read_coco_entries(content["annotations"], where,
                                                   images if images is not None else content.get("images"), layout,
                                                   annotations=True)
    elif isinstance(content, list) and content and isinstance(content[0], dict) and "frame_id" in content[0]:
        layout, names, frames = _read_instance_frames(content, where, 0, layout, None)  # MMPoseInferencer, video
    elif isinstance(content, list) and content and isinstance(content[0], dict) and "image_id" in content[0]:
        layout, names, frames = _read_coco_entries(content, where, images, layout, annotations=False)
    elif isinstance(content, list):  # MMPoseInferencer, one image
        layout, names, frames = _instance_sequence([(0, *_instance_arrays(content, where))], where, layout, None)
    else:
        raise KeypointFormatError(f"{where}: not a COCO results list, COCO annotation file or mmpose prediction "
                                  "file (see mhr_tf.data.keypoint_sources)")
    return KeypointSequence(source=where, layout=layout, joint_names=names, frames=frames)


# --------------------------------------------------------------------------------------------------------------------
# One entry point

def open_keypoints(spec: str | Path, frames: Sequence[str] | None = None, layout: str | None = None,
                   images=None, **model_options) -> KeypointSequence:
    """The keypoint source `spec` names (what `--keypoints FILE|DIR|MODEL` gives):

    - a directory of `*_keypoints.json` → `read_openpose`; a directory of other `*.json` → `read_keypoint_json`;
    - `*.pkl` → `read_threedpw` (a 3DPW sequence's poses2d);
    - `*_keypoints.json` or a JSON with 'people' → `read_openpose`; any other `*.json` → `read_keypoint_json`;
    - `*.tflite` / `*.onnx` → run that pose model on `frames` (image paths, in frame order) with
      `keypoint_models.run_model` (`model_options` go to `keypoint_models.load_model`).
    """
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in MODEL_SUFFIXES:
        if frames is None:
            raise ValueError(f"{path}: a pose model needs the video's frames (frames=[image paths])")
        from mhr_tf.data import keypoint_models  # backends import on use
        return keypoint_models.run_model(keypoint_models.load_model(path, **model_options), frames)
    if path.is_dir():
        if any(path.glob("*" + openpose.FILE_SUFFIX)):
            return read_openpose(path, layout)
        return read_keypoint_json(path, images, layout)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such keypoint file or directory")
    if suffix == ".pkl":
        return read_threedpw(path)
    if suffix == ".json":
        if path.name.endswith(openpose.FILE_SUFFIX):
            return read_openpose(path, layout)
        content = _read_json(path)
        if isinstance(content, dict) and "people" in content:
            return read_openpose(path, layout)
        return read_keypoint_json(path, images, layout)
    raise ValueError(f"{path}: unknown keypoint source — expected a directory of OpenPose/mmpose JSON, a .json, "
                     f"a 3DPW .pkl or a pose model ({', '.join(MODEL_SUFFIXES)})")


# --------------------------------------------------------------------------------------------------------------------
# Confidence scales

# The score above which each pose model's own tooling counts a keypoint as found: MoveNet's TF Hub tutorial draws
# keypoints above 0.11 (`keypoint_threshold=0.11`); mmpose's demos default to `--kpt-thr 0.3` for RTMPose / RTMO
# (rtmlib draws above 0.5). The test rule of a model's contract (`Preprocessing.confidence`, App. A: OpenPose's 0.1)
# was set for OpenPose's confidences, so `open_for_contract` maps a model file's scores onto that scale with these.
MODEL_CONFIDENCE_THRESHOLDS = {"movenet_singlepose": 0.11, "movenet_multipose": 0.11, "rtmpose": 0.3, "rtmo": 0.3}


def rescale_confidence(confidence, source_threshold: float, target_threshold: float) -> np.ndarray:
    """Confidences mapped so that `c > source_threshold` exactly when the result is `> target_threshold`: piecewise
    linear through (0, 0), (source, target) and (1, 1), continued past 1 (SimCC maxima can exceed 1); float32."""
    if not 0.0 < source_threshold < 1.0 or not 0.0 < target_threshold < 1.0:
        raise ValueError(f"thresholds {source_threshold}, {target_threshold} must lie in (0, 1)")
    c = np.asarray(confidence, np.float64)
    out = np.where(c <= source_threshold, c * (target_threshold / source_threshold),
                   target_threshold + (c - source_threshold) * (1.0 - target_threshold) / (1.0 - source_threshold))
    out = out.astype(np.float32)
    # float32 rounding must not move a score across the threshold the pipeline compares with (in float32).
    target = np.float32(target_threshold)
    above = c > source_threshold
    out[above] = np.maximum(out[above], np.nextafter(target, np.float32(np.inf)))
    out[~above] = np.minimum(out[~above], target)
    return out


def with_confidence_scale(sequence: KeypointSequence, source_threshold: float,
                          target_threshold: float) -> KeypointSequence:
    """The sequence with every keypoint's confidence through `rescale_confidence` (boxes and scores stay)."""
    frames = []
    for f in sequence.frames:
        keypoints = f.keypoints.copy()
        keypoints[..., 2] = rescale_confidence(keypoints[..., 2], source_threshold, target_threshold)
        frames.append(dataclasses.replace(f, keypoints=keypoints))
    return dataclasses.replace(sequence, frames=frames)


def open_for_contract(spec: str | Path, frames: Sequence[str] | None, contract_confidence: float,
                      threshold: float | None = None, **options) -> tuple[KeypointSequence, float | None]:
    """`open_keypoints(spec, frames, **options)` with confidences on the contract's (OpenPose's) scale, and the
    source threshold used (None: unchanged). A pose model file's scores are mapped with its kind's threshold
    (MODEL_CONFIDENCE_THRESHOLDS); any source's with `threshold` when given (e.g. 0.3 for mmpose JSON from RTMPose);
    OpenPose and 3DPW files are on the contract's scale already."""
    path = Path(spec)
    if path.suffix.lower() in MODEL_SUFFIXES:
        if frames is None:
            raise ValueError(f"{path}: a pose model needs the video's frames (frames=[image paths])")
        from mhr_tf.data import keypoint_models  # backends import on use
        model = keypoint_models.load_model(path, **options)
        sequence = keypoint_models.run_model(model, frames)
        threshold = MODEL_CONFIDENCE_THRESHOLDS[model.kind] if threshold is None else threshold
    else:
        sequence = open_keypoints(path, frames, **options)
    if threshold is None:
        return sequence, None
    return with_confidence_scale(sequence, threshold, contract_confidence), float(threshold)
