"""OpenPose JSON decoder: a directory of `*_keypoints.json` (one file per frame) → one followed person's keypoints.

OpenPose's `--write_json` writes `<video>_<frame:012d>_keypoints.json` (or `<image>_keypoints.json`) with
```
{"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...], ...}, ...]}
```
`pose_keypoints_2d` has 3 × 18 values for the COCO model or 3 × 25 for BODY_25 (the default since 1.3); files of
version < 1.1 name it `pose_keypoints`. Undetected joints are (0, 0, 0). No TensorFlow here.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from mhr_tf.body import joints

LAYOUTS = {"coco_18": joints.COCO_18, "body_25": joints.BODY_25}
FILE_SUFFIX = "_keypoints.json"
FILE_PATTERN = "{name}_{frame:012d}" + FILE_SUFFIX  # what --write_json writes for a video
POSE_KEYS = ("pose_keypoints_2d", "pose_keypoints")  # version >= 1.1, then the older spelling
JSON_VERSION = 1.3  # the version the writer stamps (OpenPose 1.3+ adds person_id and the *_3d lists)
# App. A: a keypoint counts when OpenPose's confidence exceeds 0.1; boxes are built from those keypoints.
KEYPOINT_MIN_CONFIDENCE = 0.1
MIN_BOX_KEYPOINTS = 2  # a box needs two points; a person with fewer confident keypoints is not followed
# Person following: the followed person may move at most this many (previous) box diagonals per frame.
MAX_JUMP_DIAGONALS = 1.0


class OpenPoseFormatError(ValueError):
    """An OpenPose JSON file that is unreadable or not in OpenPose's layout."""


class NoPersonError(OpenPoseFormatError):
    """A frame with no person, where the caller demanded one."""


@dataclasses.dataclass
class OpenPoseFrame:
    """Every person of one `*_keypoints.json`, in the file's own layout."""
    path: str
    frame: int          # the frame number in the file name
    layout: str | None  # 'coco_18' | 'body_25'; None when the frame has no people
    people: np.ndarray  # [P, K, 3] float32 (x px, y px, confidence); P may be 0


@dataclasses.dataclass
class OpenPoseTrack:
    """One followed person over the files of a directory; missing frames are reported, never filled in."""
    keypoints: np.ndarray      # [T, J, 3] float32 (x px, y px, confidence) in `joint_names` order; 0 where missing
    present: np.ndarray        # [T] bool, the followed person was found in this frame
    boxes: np.ndarray          # [T, 4] float32 (x0, y0, x1, y1) px of its confident keypoints; NaN where missing
    frame_numbers: np.ndarray  # [T] int64 from the file names, ascending (a gap means a file is absent)
    num_people: np.ndarray     # [T] int64, people in each file before selection
    layout: str | None         # the files' layout; None when no file has anyone
    joint_names: tuple[str, ...]
    paths: list[str]


def load_openpose_frame(path: str | Path, layout: str | None = None,
                        require_person: bool = False) -> OpenPoseFrame:
    """Read one `*_keypoints.json`. `layout` None detects COCO-18 / BODY_25 from the number of values."""
    path = Path(path)
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"OpenPose layout {layout!r} is not one of {sorted(LAYOUTS)}")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OpenPoseFormatError(f"{path}: not valid JSON ({error}) — expected OpenPose's --write_json output") \
            from error
    if not isinstance(content, dict) or not isinstance(content.get("people"), list):
        raise OpenPoseFormatError(f"{path}: field 'people' missing or not a list — expected OpenPose's "
                                  "{'version': ..., 'people': [{'pose_keypoints_2d': [...]}, ...]}")
    people = []
    for index, person in enumerate(content["people"]):
        values = _pose_values(person, path, index)
        found = _layout_of(values, path, index)
        if layout is not None and found != layout:
            raise OpenPoseFormatError(f"{path}: people[{index}] has {len(values)} pose values ({found}) — "
                                      f"expected {3 * len(LAYOUTS[layout])} for {layout}")
        layout = found
        try:
            people.append(np.asarray(values, np.float32).reshape(-1, 3))
        except (TypeError, ValueError) as error:
            raise OpenPoseFormatError(f"{path}: people[{index}].pose_keypoints_2d is not all numbers ({error})") \
                from error
    if not people and require_person:
        raise NoPersonError(f"{path}: field 'people' is empty — expected at least one detected person")
    num_joints = len(LAYOUTS[layout]) if layout else 0
    stacked = np.stack(people) if people else np.zeros((0, num_joints, 3), np.float32)
    return OpenPoseFrame(path=str(path), frame=frame_number(path), layout=layout if people else None,
                         people=stacked)


def load_openpose_dir(directory: str | Path, layout: str | None = None,
                      joint_names: tuple[str, ...] = joints.COCO_18, require_person: bool = False,
                      max_jump: float = MAX_JUMP_DIAGONALS,
                      initial_centre: tuple[float, float] | None = None) -> OpenPoseTrack:
    """Read every `*_keypoints.json` of `directory` in frame order and follow one person (see `follow_person`).

    Keypoints are converted to `joint_names` (default COCO-18, the layout of 3DPW's poses2d) with
    `joints.convert`; joints the files lack are (0, 0, 0). `require_person` makes a frame without people an error
    (`NoPersonError`); otherwise it is a missing frame (`present` False).
    """
    frames = load_openpose_frames(directory, layout, require_person)
    paths = [Path(f.path) for f in frames]
    numbers = np.array([f.frame for f in frames], np.int64)
    layout = next((f.layout for f in frames if f.layout is not None), layout)

    chosen = follow_person([f.people for f in frames], max_jump=max_jump, initial_centre=initial_centre)
    source = LAYOUTS[layout] if layout else joint_names
    keypoints = np.zeros((len(frames), len(joint_names), 3), np.float32)
    boxes = np.full((len(frames), 4), np.nan, np.float32)
    for t, (frame, index) in enumerate(zip(frames, chosen)):
        if index >= 0:
            keypoints[t] = joints.convert(frame.people[index], source, joint_names)
            boxes[t] = person_box(frame.people[index])
    return OpenPoseTrack(keypoints=keypoints, present=chosen >= 0, boxes=boxes, frame_numbers=numbers,
                         num_people=np.array([len(f.people) for f in frames], np.int64), layout=layout,
                         joint_names=tuple(joint_names), paths=[str(p) for p in paths])


def load_openpose_frames(directory: str | Path, layout: str | None = None,
                         require_person: bool = False) -> list[OpenPoseFrame]:
    """Every `*_keypoints.json` of `directory` in frame order, with all its people (no following).

    The files must agree on one layout (`layout` None: the first file with people decides) and on one file per frame
    number; files without people have layout None.
    """
    directory = Path(directory)
    paths = sorted(directory.glob("*" + FILE_SUFFIX), key=frame_number)
    if not paths:
        raise FileNotFoundError(f"{directory}: no *{FILE_SUFFIX} files — expected OpenPose's --write_json output")
    frames = [load_openpose_frame(p, layout, require_person) for p in paths]
    numbers = np.array([f.frame for f in frames], np.int64)
    repeated = np.flatnonzero(np.diff(numbers) == 0)
    if repeated.size:
        raise OpenPoseFormatError(f"{paths[repeated[0] + 1]}: frame number {numbers[repeated[0]]} repeats "
                                  f"{paths[repeated[0]].name} — expected one file per frame")
    for frame in frames:
        if frame.layout is not None:
            if layout is not None and frame.layout != layout:
                raise OpenPoseFormatError(f"{frame.path}: people in the {frame.layout} layout — the earlier "
                                          f"files of {directory} are {layout}")
            layout = frame.layout
    return frames


def person_box(keypoints: np.ndarray, min_confidence: float = KEYPOINT_MIN_CONFIDENCE) -> np.ndarray | None:
    """(x0, y0, x1, y1) px around the keypoints `[K, 3]` with confidence > `min_confidence`; None if < 2 of them."""
    confident = keypoints[keypoints[:, 2] > min_confidence, :2]
    if len(confident) < MIN_BOX_KEYPOINTS:
        return None
    return np.concatenate([confident.min(0), confident.max(0)]).astype(np.float32)


def follow_person(people_per_frame: Sequence[np.ndarray], max_jump: float = MAX_JUMP_DIAGONALS,
                  initial_centre: tuple[float, float] | None = None) -> np.ndarray:
    """Index of the followed person in each frame's `[P, K, 3]`, -1 where it is missing: `[T]` int64.

    Only people with a box (`person_box`) count. The first frame with anyone picks the person closest to
    `initial_centre`, or by default the largest box. Each later frame picks the person whose box centre is closest
    to the last centre seen, if it is within `max_jump` × the last box diagonal × the frames since it was seen;
    otherwise the person is missing there (left the view or was not detected), rather than swapped for someone else.
    """
    chosen = np.full(len(people_per_frame), -1, np.int64)
    last_centre, last_diagonal, last_seen = None, 0.0, -1
    for t, people in enumerate(people_per_frame):
        boxes = [(i, box) for i, box in enumerate(person_box(p) for p in people) if box is not None]
        if not boxes:
            continue
        centres = np.array([(box[:2] + box[2:]) / 2 for _, box in boxes])
        if last_centre is None:
            if initial_centre is not None:
                pick = int(np.argmin(np.linalg.norm(centres - np.asarray(initial_centre), axis=1)))
            else:
                pick = int(np.argmax([np.prod(box[2:] - box[:2]) for _, box in boxes]))
        else:
            distances = np.linalg.norm(centres - last_centre, axis=1)
            pick = int(np.argmin(distances))
            if distances[pick] > max_jump * max(last_diagonal, 1.0) * (t - last_seen):
                continue
        index, box = boxes[pick]
        chosen[t] = index
        last_centre, last_diagonal, last_seen = centres[pick], float(np.linalg.norm(box[2:] - box[:2])), t
    return chosen


def frame_number(path: str | Path) -> int:
    """The frame number of `<name>_<frame>_keypoints.json`: the last run of digits before the suffix."""
    name = Path(path).name
    digits = re.findall(r"\d+", name[:-len(FILE_SUFFIX)] if name.endswith(FILE_SUFFIX) else name)
    if not digits:
        raise OpenPoseFormatError(f"{path}: no frame number in the file name — expected "
                                  f"{FILE_PATTERN.format(name='<video>', frame=0)}")
    return int(digits[-1])


def _pose_values(person, path: Path, index: int) -> list:
    if isinstance(person, dict):
        for key in POSE_KEYS:
            if isinstance(person.get(key), list):
                return person[key]
    raise OpenPoseFormatError(f"{path}: people[{index}] has no list 'pose_keypoints_2d' — expected "
                              "x, y, confidence per joint")


def _layout_of(values: list, path: Path, index: int) -> str:
    for name, names in LAYOUTS.items():
        if len(values) == 3 * len(names):
            return name
    raise OpenPoseFormatError(f"{path}: people[{index}].pose_keypoints_2d has {len(values)} values — expected "
                              + " or ".join(f"{3 * len(n)} ({name})" for name, n in LAYOUTS.items()))
